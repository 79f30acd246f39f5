// SPEC §5's symmetrised logits, one tile pair per block, both tiles written
// along their rows (the mirror through shared memory).

#define MODE_NONE 0
#define MODE_AVERAGE 1
#define MODE_UPPER 2
#define MODE_LOWER 3

extern "C" __global__ void symseg_symmetrise(const float* __restrict__ x, long long n, int mode,
                                             float* __restrict__ out) {
    __shared__ float sx[TILE][TILE + 1];
    __shared__ float so[TILE][TILE + 1];

    const Block blk = this_block(n);
    const unsigned ti = blk.ti, tj = blk.tj;
    const long long base = blk.base, i0 = blk.i0, j0 = blk.j0;
    const unsigned tx = threadIdx.x, ty = threadIdx.y;

    for (unsigned k = ty; k < TILE; k += ROWS) {
        long long row = j0 + k, col = i0 + tx;
        if (row < n && col < n) {
            sx[k][tx] = x[base + row * n + col];
        }
    }
    __syncthreads();
    for (unsigned il = ty; il < TILE; il += ROWS) {
        const unsigned jl = tx;
        const long long i = i0 + il, j = j0 + jl;
        if (i >= n || j >= n || (ti == tj && i > j)) {
            continue;
        }
        const float a = x[base + i * n + j], c = sx[jl][il];
        float zij = a, zji = c;
        if (mode == MODE_AVERAGE) {
            zij = zji = 0.5f * a + 0.5f * c;
        } else if (mode == MODE_UPPER) {
            zij = zji = a;
        } else if (mode == MODE_LOWER) {
            zij = zji = c;
        }
        out[base + i * n + j] = zij;
        so[jl][il] = zji;
    }
    __syncthreads();
    for (unsigned k = ty; k < TILE; k += ROWS) {
        long long row = j0 + k, col = i0 + tx;
        if (row < n && col < n && (ti != tj || row > col)) {
            out[base + row * n + col] = so[k][tx];
        }
    }
}
