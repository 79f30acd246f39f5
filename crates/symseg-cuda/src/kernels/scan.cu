// Label and mask validation (SPEC §1) and the per-sample counted-set sizes,
// one tile pair per block over the real region of each sample. A violation
// records the lowest flat index of an offending upper-triangle position (the
// host reads those few bytes back to name the error); counts go to
// counts[2b] (pairs i < j) and counts[2b + 1] (diagonal).

extern "C" __global__ void symseg_scan(
    const u8* __restrict__ y, const u8* __restrict__ mask, const long long* __restrict__ lengths,
    long long n, long long sep, int require_symmetric,
    u64* __restrict__ counts, u64* __restrict__ violation) {
    __shared__ u8 sy[TILE][TILE + 1];
    __shared__ u8 sm[TILE][TILE + 1];
    __shared__ unsigned long long red[THREADS];

    const Block blk = this_block(n);
    const long long base = blk.base, i0 = blk.i0, j0 = blk.j0;
    const long long b = blk.b;
    const long long len = lengths[blk.b];
    const unsigned tx = threadIdx.x, ty = threadIdx.y;

    for (unsigned k = ty; k < TILE; k += ROWS) {
        long long row = j0 + k, col = i0 + tx;
        if (row < len && col < len) {
            sy[k][tx] = y[base + row * n + col];
            sm[k][tx] = mask ? mask[base + row * n + col] : (u8)1;
        }
    }
    __syncthreads();

    unsigned long long pairs = 0, diag = 0;
    for (unsigned il = ty; il < TILE; il += ROWS) {
        const unsigned jl = tx;
        const long long i = i0 + il, j = j0 + jl;
        if (i >= len || j >= len || i > j) {
            continue;
        }
        const long long kij = base + i * n + j;
        const u8 a = y[kij], c = sy[jl][il];
        const u8 ma = mask ? mask[kij] : (u8)1, mc = sm[jl][il];
        const bool bad_label = (a > 1 && a != IGNORE) || (c > 1 && c != IGNORE);
        const bool asym = require_symmetric ? a != c : (a == IGNORE) != (c == IGNORE);
        const bool asym_mask = (ma != 0) != (mc != 0);
        if (bad_label || asym || asym_mask) {
            atomicMin(violation, (u64)kij);
        }
        if (counted(i, j, len, sep, a, ma)) {
            if (i == j) {
                diag += 1;
            } else {
                pairs += 1;
            }
        }
    }
    const unsigned long long p = block_sum(pairs, red);
    const unsigned long long d = block_sum(diag, red);
    if (tx == 0 && ty == 0) {
        if (p) {
            atomicAdd(&counts[2 * b], p);
        }
        if (d) {
            atomicAdd(&counts[2 * b + 1], d);
        }
    }
}
