// SPEC §5's symmetrised logits, the grid striding over tile pairs as in
// `common.cuh`: an off-diagonal pair's own tile is written straight from
// registers, its mirror (and a diagonal tile whole) through shared memory,
// all along rows.

#define MODE_NONE 0
#define MODE_AVERAGE 1
#define MODE_UPPER 2
#define MODE_LOWER 3

extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_symmetrise(const float* __restrict__ x, long long batch, long long n,
                                             int wide, int mode, float* __restrict__ out) {
    __shared__ float sx[TILE][TILE + 1];
    __shared__ float so[TILE][TILE + 1];

    const unsigned il = thread_id() / STRIPS, jl0 = STRIP * (thread_id() % STRIPS);
    for (Walk k = walk_start(n, batch); walk_more(k); walk_next(k)) {
        const Tile t = tile_of(k, n);
        const long long base = t.base, i = t.i0 + il;
        const bool diagonal = t.ti == t.tj;

        // The own strip first, so that its load and the staging's overlap.
        const long long col = t.j0 + jl0, row = base + i * n;
        float xs[STRIP] = {}, zs[STRIP] = {};
        if (i < n) {
            load_strip(x + row + col, col, n, wide, xs);
        }
        stage_rows(x + base, t.j0, t.i0, n, wide, sx);
        __syncthreads();
        for (int c = 0; c < STRIP; ++c) {
            const unsigned jl = jl0 + c;
            const long long j = col + c;
            if (i >= n || j >= n || (diagonal && i > j)) {
                continue;
            }
            const float a = xs[c], b = sx[jl][il];
            float zij = a, zji = b;
            if (mode == MODE_AVERAGE) {
                zij = zji = 0.5f * a + 0.5f * b;
            } else if (mode == MODE_UPPER) {
                zij = zji = a;
            } else if (mode == MODE_LOWER) {
                zij = zji = b;
            }
            zs[c] = zij;
            so[jl][il] = zji;
            if (diagonal) {
                so[il][jl] = zij;
            }
        }
        if (!diagonal && i < n) {
            store_strip(out + row + col, col, n, wide, zs);
        }
        __syncthreads();
        unstage_rows(so, t.j0, t.i0, n, wide, out + base);
    }
}
