// SPEC §1's label validation and the per-sample counted-set sizes without a
// mask, streamed along rows: the same outputs as `scan.cu` (counts[2b] the
// pairs i < j of sample b's counted set, counts[2b + 1] its diagonal; the
// violation word), with no transposed tile, no shared-memory staging and no
// barrier but one a band of rows.
//
// Labels are mostly 0, and a 0 needs no mirror test of its own: for a
// position whose label is not 0 (1 or 255), the kernel reads its mirror
// label and compares. That is enough for the upper triangle's non-zero
// labels; a non-zero label below the diagonal whose mirror is 0 is found by
// counting instead. Each upper non-zero label checked against an equal
// mirror matches one lower non-zero label, so the labels are symmetric
// exactly when every upper check passes and both triangles hold as many
// non-zero labels (`tally[0]`, upper minus lower, wrapping, is 0). The last
// block to finish (`tally[1]` counts the blocks done) reads that balance.
// Where symmetry is not required, only ignore marks (255) are paired so.
//
// A violation sets the violation word to some upper-triangle flat index of
// a violating pair, not necessarily the lowest (an unbalanced count names
// none, and sets 0): the host then runs `scan.cu` to name the lowest.
//
// Work: a unit is a band of `band` rows of one sample (the host sizes it to
// about 1024 strips of 16 labels), of which only the real part, rows and
// columns below the sample's length, is read; blocks stride over units, and
// a block's threads over the band's strips, in order, so a warp reads 512
// consecutive bytes where rows are long. A thread issues up to ROUND strips'
// loads before it looks at any.

#define ROUND 4

// The real columns of a strip of 16 from column c (v of them) kept, the
// bytes beyond the sample's length cleared.
__device__ __forceinline__ void clear_beyond(unsigned* w, int v) {
    if (v < 16) {
#pragma unroll
        for (int s = 0; s < 4; ++s) {
            const int keep = v - 4 * s;
            w[s] = keep <= 0 ? 0u : (keep >= 4 ? w[s] : w[s] & ((1u << (8 * keep)) - 1u));
        }
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_scan_rows(
    const u8* __restrict__ y, const long long* __restrict__ lengths, long long batch, long long n, long long sep,
    int wide, int require_symmetric, int band, u64* __restrict__ counts, u64* __restrict__ violation,
    u64* __restrict__ tally) {
    __shared__ unsigned long long red[THREADS];

    const int nn = (int)n, k = sep < n ? (int)sep : nn;
    // The first column of row i that makes a pair (j > i and j - i >= k).
    const int first_pair = k > 1 ? k : 1;
    const bool wide16 = wide && nn % 16 == 0 && (unsigned long long)y % 16 == 0;
    const int bands = (nn + band - 1) / band;
    const long long units = batch * bands;
    // Upper minus lower non-zero labels checked, and the lowest violation
    // this thread found.
    unsigned long long balance = 0, first_bad = ~0ull;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const long long b = u / bands, base = b * n * n;
        const int r0 = (int)(u % bands) * band, len = (int)lengths[b];
        const int r1 = r0 + band < len ? r0 + band : len;
        if (r1 <= r0) {
            continue;  // padding rows: the same for the whole block
        }
        const int spr = (len + 15) / 16, strips = (r1 - r0) * spr;
        unsigned pairs = 0, diag = 0;
        for (int s0 = 0; s0 < strips; s0 += ROUND * THREADS) {
            unsigned w[ROUND][4];
            int row[ROUND], col[ROUND];
#pragma unroll
            for (int q = 0; q < ROUND; ++q) {
                // Unsigned: a shorter division than a signed one.
                const unsigned s = (unsigned)(s0 + q * THREADS) + thread_id();
                row[q] = r0 + (int)(s / (unsigned)spr);
                col[q] = 16 * (int)(s % (unsigned)spr);
                w[q][0] = w[q][1] = w[q][2] = w[q][3] = 0u;
                if (s < (unsigned)strips) {
                    load_strip16(y + base + (long long)row[q] * n + col[q], col[q], len, wide16, wide, w[q]);
                }
            }
#pragma unroll
            for (int q = 0; q < ROUND; ++q) {
                const int s = s0 + q * THREADS + (int)thread_id();
                if (s >= strips) {
                    continue;
                }
                const int i = row[q], c = col[q], v = len - c < 16 ? len - c : 16;
                clear_beyond(w[q], v);
                // The strip's counted positions, were every label 0 or 1:
                // its pairs j >= i + first_pair, and the diagonal when k = 0.
                const int lo = i + first_pair > c ? i + first_pair : c;
                pairs += lo < c + v ? (unsigned)(c + v - lo) : 0u;
                diag += (k == 0 && i >= c && i < c + v) ? 1u : 0u;
                if ((w[q][0] | w[q][1] | w[q][2] | w[q][3]) == 0u) {
                    continue;  // most strips: nothing but 0 labels
                }
#pragma unroll
                for (int h = 0; h < 4; ++h) {
                    unsigned m = nonzero_bytes(w[q][h]);
                    while (m) {
                        const int bit = lowest_bit(m);
                        m &= m - 1u;
                        const int j = c + 4 * h + bit / 8;
                        const unsigned a = (w[q][h] >> (bit - 7)) & 0xFFu;
                        const long long key = base + (long long)(i < j ? i : j) * n + (i < j ? j : i);
                        if (a != 1u && a != IGNORE) {
                            first_bad = key < first_bad ? key : first_bad;
                            continue;
                        }
                        if (a == IGNORE) {
                            // An ignore mark is not counted.
                            if (j > i && j - i >= k) {
                                --pairs;
                            } else if (j == i && k == 0) {
                                --diag;
                            }
                        }
                        if (j == i || (!require_symmetric && a != IGNORE)) {
                            continue;
                        }
                        if (j < i) {
                            --balance;
                            continue;
                        }
                        ++balance;
                        const unsigned mirror = y[base + (long long)j * n + i];
                        const bool asym = require_symmetric ? mirror != a : mirror != IGNORE;
                        if (asym) {
                            first_bad = key < first_bad ? key : first_bad;
                        }
                    }
                }
            }
        }
        // Pairs and diagonal in one word (each below 2^32: a band holds at
        // most max(1024 strips, one row) of labels).
        const unsigned long long both = block_sum(((unsigned long long)pairs << 32) | diag, red);
        if (thread_id() == 0) {
            if (both >> 32) {
                atomicAdd(&counts[2 * b], both >> 32);
            }
            if (both & 0xFFFFFFFFull) {
                atomicAdd(&counts[2 * b + 1], both & 0xFFFFFFFFull);
            }
        }
    }
    if (first_bad != ~0ull) {
        atomicMin(violation, first_bad);
    }
    const unsigned long long net = block_sum(balance, red);
    if (thread_id() == 0) {
        settle_balance(net, tally, violation);
    }
}
