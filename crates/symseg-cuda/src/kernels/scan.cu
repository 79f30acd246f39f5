// Label and mask validation (SPEC §1) and the per-sample counted-set sizes,
// over the real region of each sample (the grid strides over tile pairs as in
// `common.cuh`, here of 64 x 64 tiles). A violation records the lowest flat
// index of an offending upper-triangle position (the host reads those few
// bytes back to name the error); counts go to counts[2b] (pairs i < j) and
// counts[2b + 1] (diagonal), added once per block and sample (integer
// atomics: exact in any order).
//
// The scan reads one or two bytes an element, so its cost is the per-pair
// work (the walk, the staging, the barriers), not the bytes: a 64-wide tile
// pair gives each thread a 16-byte strip (16 elements, against 4 in a
// 32-wide pair) for the same per-pair instructions.

#define SCAN_TILE 64
#define SCAN_STRIP 16
#define SCAN_STRIPS (SCAN_TILE / SCAN_STRIP)
// Blocks an SM must hold at once: three, not `MIN_BLOCKS`' four, so 80
// registers a thread. Measured on an H200 (docs/cuda.md): 40.8 us against
// 47.0 us at 8 x 2048^2; the scan, which waits on its loads more than it
// computes, gains more from the registers than it loses in occupancy.
#define SCAN_MIN_BLOCKS 3
// A row of a staged tile: 4 bytes of padding, so that the column reads of a
// warp (4 strips of 8 rows) meet at most two to a bank.
#define SCAN_ROW (SCAN_TILE + 4)

// One tile pair's loads, for this thread: its strip of the own tile (row
// i0 + t / SCAN_STRIPS, columns j0 + SCAN_STRIP * (t % SCAN_STRIPS) ..) and its
// strip of the mirror tile (rows J, columns I), labels and mask (all ones
// without one). Zero beyond the map.
struct PairLoad {
    unsigned oy[4], om[4], my[4], mm[4];
};

__device__ __forceinline__ void load_pair(const u8* y, const u8* mask, const Tile& t, long long n, bool wide16,
                                          bool wide, PairLoad* p) {
    const unsigned r = thread_id() / SCAN_STRIPS, c0 = SCAN_STRIP * (thread_id() % SCAN_STRIPS);
    for (int s = 0; s < 4; ++s) {
        p->oy[s] = p->my[s] = 0u;
        p->om[s] = p->mm[s] = ~0u;
    }
    const long long i = t.i0 + r, j = t.j0 + r;
    if (i < n) {
        const long long at = t.base + i * n + t.j0 + c0;
        load_strip16(y + at, t.j0 + c0, n, wide16, wide, p->oy);
        if (mask) {
            load_strip16(mask + at, t.j0 + c0, n, wide16, wide, p->om);
        }
    }
    if (j < n) {
        const long long at = t.base + j * n + t.i0 + c0;
        load_strip16(y + at, t.i0 + c0, n, wide16, wide, p->my);
        if (mask) {
            load_strip16(mask + at, t.i0 + c0, n, wide16, wide, p->mm);
        }
    }
}

// The mirror strips into row t / SCAN_STRIPS of the shared tiles (word
// stores: a row of SCAN_ROW bytes keeps 4-byte alignment).
__device__ __forceinline__ void stage_pair(const PairLoad& p, bool masked, u8 (*sy)[SCAN_ROW],
                                           u8 (*sm)[SCAN_ROW]) {
    const unsigned r = thread_id() / SCAN_STRIPS, c0 = SCAN_STRIP * (thread_id() % SCAN_STRIPS);
    for (int s = 0; s < 4; ++s) {
        *reinterpret_cast<unsigned*>(&sy[r][c0 + 4 * s]) = p.my[s];
        if (masked) {
            *reinterpret_cast<unsigned*>(&sm[r][c0 + 4 * s]) = p.mm[s];
        }
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, SCAN_MIN_BLOCKS) symseg_scan(
    const u8* __restrict__ y, const u8* __restrict__ mask, const long long* __restrict__ lengths,
    long long batch, long long n, long long sep, int wide, int require_symmetric,
    u64* __restrict__ counts, u64* __restrict__ violation) {
    // Two staging buffers: pair k is checked from one while pair k + 1's
    // mirror goes into the other, so one barrier a pair suffices, and pair
    // k + 1's loads are in flight while pair k is checked.
    __shared__ __align__(16) u8 sy[2][SCAN_TILE][SCAN_ROW];
    __shared__ __align__(16) u8 sm[2][SCAN_TILE][SCAN_ROW];
    __shared__ unsigned long long red[THREADS];

    // 16-byte rows need n a multiple of 16 and 16-byte aligned buffers (the
    // host's `wide` promises 4).
    const bool wide16 = wide && n % SCAN_STRIP == 0 && (unsigned long long)y % 16 == 0 &&
                        (unsigned long long)mask % 16 == 0;
    const unsigned il = thread_id() / SCAN_STRIPS, jl0 = SCAN_STRIP * (thread_id() % SCAN_STRIPS);
    unsigned long long pairs = 0, diag = 0;
    Walk k = walk_start<SCAN_TILE>(n, batch);
    Tile t = {};
    PairLoad cur;
    if (walk_more(k)) {
        t = tile_of<SCAN_TILE>(k, n);
        load_pair(y, mask, t, n, wide16, wide, &cur);
        stage_pair(cur, mask != nullptr, sy[0], sm[0]);
    }
    __syncthreads();
    for (int buf = 0; walk_more(k); buf ^= 1) {
        // The next pair's loads first, so that they arrive while this one is checked.
        Walk kn = k;
        walk_next(kn);
        Tile tn = {};
        PairLoad next;
        if (walk_more(kn)) {
            tn = tile_of<SCAN_TILE>(kn, n);
            load_pair(y, mask, tn, n, wide16, wide, &next);
        } else {
            next = cur;  // unused: the walk ends here
        }

        const long long i = t.i0 + il, len = lengths[t.b];
        const long long col = t.j0 + jl0, row = t.base + i * n;
        const bool inner = interior<SCAN_TILE>(t, len, sep);
        const u8(*const my)[SCAN_ROW] = sy[buf];
        const u8(*const mm)[SCAN_ROW] = sm[buf];
#pragma unroll
        for (int q = 0; q < SCAN_STRIP / 4; ++q) {
            // Four columns at once where they are plainly valid: labels 0 or
            // 1 on both sides (and equal where symmetry is required), masks
            // non-zero on both sides; then all four count. Otherwise (an
            // ignore label, a zero mask, a violation, the tile's edge) one by one.
            if (inner) {
                const unsigned jq = jl0 + 4 * q;
                const unsigned bw = (unsigned)my[jq][il] | (unsigned)my[jq + 1][il] << 8 |
                                    (unsigned)my[jq + 2][il] << 16 | (unsigned)my[jq + 3][il] << 24;
                bool plain = ((cur.oy[q] | bw) & 0xFEFEFEFEu) == 0 && (!require_symmetric || cur.oy[q] == bw);
                if (mask) {
                    const unsigned mbw = (unsigned)mm[jq][il] | (unsigned)mm[jq + 1][il] << 8 |
                                         (unsigned)mm[jq + 2][il] << 16 | (unsigned)mm[jq + 3][il] << 24;
                    plain = plain && !has_zero_byte(cur.om[q]) && !has_zero_byte(mbw);
                }
                if (plain) {
                    pairs += 4;
                    continue;
                }
            }
#pragma unroll
            for (int c = 4 * q; c < 4 * q + 4; ++c) {
                const unsigned jl = jl0 + c;
                const long long j = col + c;
                if (!inner && (i >= len || j >= len || i > j)) {
                    continue;
                }
                const u8 a = byte_of(cur.oy, c), b = my[jl][il];
                const u8 ma = byte_of(cur.om, c), mb = mask ? mm[jl][il] : (u8)1;
                const bool bad_label = (a > 1 && a != IGNORE) || (b > 1 && b != IGNORE);
                const bool asym = require_symmetric ? a != b : (a == IGNORE) != (b == IGNORE);
                const bool asym_mask = (ma != 0) != (mb != 0);
                if (bad_label || asym || asym_mask) {
                    atomicMin(violation, (u64)(row + j));
                }
                if (inner) {
                    pairs += a != IGNORE && ma != 0;
                } else if (counted(i, j, len, sep, a, ma)) {
                    if (i == j) {
                        diag += 1;
                    } else {
                        pairs += 1;
                    }
                }
            }
        }
        // The next mirror into the other buffer, whose last reads (two pairs
        // back) ended before the previous barrier.
        if (walk_more(kn)) {
            stage_pair(next, mask != nullptr, sy[buf ^ 1], sm[buf ^ 1]);
        }
        if (last_of_sample(k)) {
            // block_sum's barriers also order the staging above before the next pair's reads.
            const unsigned long long p = block_sum(pairs, red);
            const unsigned long long d = block_sum(diag, red);
            if (thread_id() == 0) {
                if (p) {
                    atomicAdd(&counts[2 * t.b], p);
                }
                if (d) {
                    atomicAdd(&counts[2 * t.b + 1], d);
                }
            }
            pairs = 0;
            diag = 0;
        } else {
            __syncthreads();
        }
        k = kn;
        t = tn;
        cur = next;
    }
}
