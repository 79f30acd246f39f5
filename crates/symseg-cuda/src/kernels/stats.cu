// Per-sample confusion counts of the thresholded symmetrised prediction and
// the asymmetry sum (SPEC §5–6) over counted pairs, one tile pair per block.
// Counts are integers (atomics are exact); each block's asymmetry sum goes to
// its own slot, added by the host in block order. The symmetrised value is
// computed in f64, as on the host, and compared with `z_star`, the host's exact
// bound for the threshold (`symseg_core::metrics::decision_bound`), so that
// every backend thresholds identically; the scores only enter the asymmetry.

#define MODE_NONE 0
#define MODE_AVERAGE 1
#define MODE_UPPER 2
#define MODE_LOWER 3

__device__ __forceinline__ double score(double z) {
    return z >= 0.0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

extern "C" __global__ void symseg_stats(
    const float* __restrict__ x, const u8* __restrict__ y, const u8* __restrict__ mask,
    const long long* __restrict__ lengths, long long n, long long sep, int mode, double z_star,
    u64* __restrict__ confusion, double* __restrict__ asym, u64* __restrict__ bad) {
    __shared__ float sx[TILE][TILE + 1];
    __shared__ unsigned long long red[THREADS];
    __shared__ double dred[THREADS];

    const Block blk = this_block(n);
    const long long base = blk.base, i0 = blk.i0, j0 = blk.j0;
    const unsigned tiles = blk.tiles;
    const long long b = blk.b;
    const long long len = lengths[blk.b];
    const unsigned tx = threadIdx.x, ty = threadIdx.y;

    for (unsigned k = ty; k < TILE; k += ROWS) {
        long long row = j0 + k, col = i0 + tx;
        if (row < len && col < len) {
            sx[k][tx] = x[base + row * n + col];
        }
    }
    __syncthreads();

    unsigned long long tp = 0, fp = 0, fn = 0, tn = 0, np = 0;
    double as = 0.0;
    for (unsigned il = ty; il < TILE; il += ROWS) {
        const unsigned jl = tx;
        const long long i = i0 + il, j = j0 + jl;
        if (i >= len || j >= len || i > j) {
            continue;
        }
        const long long kij = base + i * n + j;
        const u8 yij = y[kij];
        const u8 mij = mask ? mask[kij] : (u8)1;
        if (!counted(i, j, len, sep, yij, mij)) {
            continue;
        }
        const float xij = x[kij], xji = sx[jl][il];
        if (!isfinite(xij) || !isfinite(xji)) {
            if (!isfinite(xij)) {
                atomicMin(bad, (u64)kij);
            }
            if (!isfinite(xji)) {
                atomicMin(bad, (u64)(base + j * n + i));
            }
            continue;
        }
        const double a = (double)xij, c = (double)xji;
        double zij = a, zji = c;
        if (mode == MODE_AVERAGE) {
            zij = zji = (a + c) / 2.0;
        } else if (mode == MODE_UPPER) {
            zij = zji = a;
        } else if (mode == MODE_LOWER) {
            zij = zji = c;
        }
        const bool positive = yij == 1;
        const bool p1 = zij >= z_star;
        tp += p1 && positive;
        fp += p1 && !positive;
        fn += !p1 && positive;
        tn += !p1 && !positive;
        if (i != j) {
            const bool p2 = zji >= z_star;
            tp += p2 && positive;
            fp += p2 && !positive;
            fn += !p2 && positive;
            tn += !p2 && !positive;
            as += fabs(score(a) - score(c));
            np += 1;
        }
    }
    const unsigned long long v[5] = {block_sum(tp, red), block_sum(fp, red), block_sum(fn, red),
                                     block_sum(tn, red), block_sum(np, red)};
    const double s = block_sum(as, dred);
    if (tx == 0 && ty == 0) {
        for (int k = 0; k < 5; ++k) {
            if (v[k]) {
                atomicAdd(&confusion[5 * b + k], v[k]);
            }
        }
        asym[b * (long long)tiles + blockIdx.x] = s;
    }
}
