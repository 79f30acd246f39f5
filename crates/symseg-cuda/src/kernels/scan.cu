// Label and mask validation (SPEC §1) and the per-sample counted-set sizes,
// over the real region of each sample (the grid strides over tile pairs as in
// `common.cuh`). A violation records the lowest flat index of an offending
// upper-triangle position (the host reads those few bytes back to name the
// error); counts go to counts[2b] (pairs i < j) and counts[2b + 1] (diagonal),
// added once per block and sample (integer atomics: exact in any order).

extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_scan(
    const u8* __restrict__ y, const u8* __restrict__ mask, const long long* __restrict__ lengths,
    long long batch, long long n, long long sep, int wide, int require_symmetric,
    u64* __restrict__ counts, u64* __restrict__ violation) {
    __shared__ u8 sy[TILE][TILE + 4];
    __shared__ u8 sm[TILE][TILE + 4];
    __shared__ unsigned long long red[THREADS];

    const unsigned il = thread_id() / STRIPS, jl0 = STRIP * (thread_id() % STRIPS);
    unsigned long long pairs = 0, diag = 0;
    for (Walk k = walk_start(n, batch); walk_more(k); walk_next(k)) {
        const Tile t = tile_of(k, n);
        const long long base = t.base, i = t.i0 + il, len = lengths[t.b];

        // The own strip first, so that its loads and the staging's overlap.
        const long long col = t.j0 + jl0, row = base + i * n;
        const Strip own = load_own(nullptr, y, mask, row + col, col, n, wide, i < n);
        stage_rows(y + base, t.j0, t.i0, n, wide, sy);
        if (mask) {
            stage_rows(mask + base, t.j0, t.i0, n, wide, sm);
        }
        __syncthreads();
        const bool inner = interior(t, len, sep);
#pragma unroll
        for (int c = 0; c < STRIP; ++c) {
            const unsigned jl = jl0 + c;
            const long long j = col + c;
            if (!inner && (i >= len || j >= len || i > j)) {
                continue;
            }
            const u8 a = own.y[c], b = sy[jl][il];
            const u8 ma = own.m[c], mb = mask ? sm[jl][il] : (u8)1;
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
        if (last_of_sample(k)) {
            // block_sum's barriers also keep the next item's staging after this one's reads.
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
    }
}
