// Per-sample confusion counts of the thresholded symmetrised prediction and
// the asymmetry sum (SPEC §5–6) over counted pairs, the grid striding over
// tile pairs as in `common.cuh`. Counts are integers (atomics are exact); a
// block's asymmetry sum over a sample goes to its own slot (asym[b * grid +
// block], zero where the block has none of the sample), added by the host in
// block order. The symmetrised value is computed in f64, as on the host, and
// compared with `z_star`, the host's exact bound for the threshold
// (`symseg_core::metrics::decision_bound`), so that every backend thresholds
// identically; the scores only enter the asymmetry.

#define MODE_NONE 0
#define MODE_AVERAGE 1
#define MODE_UPPER 2
#define MODE_LOWER 3

__device__ __forceinline__ double score(double z) {
    return z >= 0.0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_stats(
    const float* __restrict__ x, const u8* __restrict__ y, const u8* __restrict__ mask,
    const long long* __restrict__ lengths, long long batch, long long n, long long sep, int wide, int mode,
    double z_star, const u64* __restrict__ violation, u64* __restrict__ confusion, double* __restrict__ asym,
    u64* __restrict__ bad) {
    __shared__ float sx[TILE][TILE + 1];
    __shared__ unsigned long long red[THREADS];
    __shared__ double dred[THREADS];

    // Invalid labels or mask (the scan, queued before): nothing to count.
    if (*violation != ~0ull) {
        return;
    }
    const unsigned il = thread_id() / STRIPS, jl0 = STRIP * (thread_id() % STRIPS);
    // A thread's counts for one sample: at most two per element of its strips
    // over the sample's tile pairs, far inside 32 bits for any map that fits
    // in memory (which 32-bit counters keep this kernel in 64 registers).
    unsigned tp = 0, fp = 0, fn = 0, tn = 0, np = 0;
    double as = 0.0;
    for (Walk k = walk_start(n, batch); walk_more(k); walk_next(k)) {
        const Tile t = tile_of(k, n);
        const long long base = t.base, i = t.i0 + il, len = lengths[t.b];

        // The own strip first, so that its loads and the staging's overlap.
        const long long col = t.j0 + jl0, row = base + i * n;
        const Strip own = load_own(x, y, mask, row + col, col, n, wide, i < n);
        stage_rows(x + base, t.j0, t.i0, n, wide, sx);
        __syncthreads();
        for (int c = 0; c < STRIP; ++c) {
            const unsigned jl = jl0 + c;
            const long long j = col + c;
            if (i >= len || j >= len || i > j || !counted(i, j, len, sep, own.y[c], own.m[c])) {
                continue;
            }
            const float xij = own.x[c], xji = sx[jl][il];
            if (!isfinite(xij) || !isfinite(xji)) {
                if (!isfinite(xij)) {
                    atomicMin(bad, (u64)(row + j));
                }
                if (!isfinite(xji)) {
                    atomicMin(bad, (u64)(base + j * n + i));
                }
                continue;
            }
            const double a = (double)xij, b = (double)xji;
            double zij = a, zji = b;
            if (mode == MODE_AVERAGE) {
                zij = zji = (a + b) / 2.0;
            } else if (mode == MODE_UPPER) {
                zij = zji = a;
            } else if (mode == MODE_LOWER) {
                zij = zji = b;
            }
            const bool positive = own.y[c] == 1;
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
                as += fabs(score(a) - score(b));
                np += 1;
            }
        }
        if (last_of_sample(k)) {
            // block_sum's barriers also keep the next item's staging after this one's reads.
            const unsigned long long v[5] = {block_sum<unsigned long long>(tp, red),
                                             block_sum<unsigned long long>(fp, red),
                                             block_sum<unsigned long long>(fn, red),
                                             block_sum<unsigned long long>(tn, red),
                                             block_sum<unsigned long long>(np, red)};
            const double s = block_sum(as, dred);
            if (thread_id() == 0) {
                for (int k = 0; k < 5; ++k) {
                    if (v[k]) {
                        atomicAdd(&confusion[5 * t.b + k], v[k]);
                    }
                }
                asym[t.b * (long long)gridDim.x + blockIdx.x] = s;
            }
            tp = fp = fn = tn = np = 0;
            as = 0.0;
        } else {
            __syncthreads();
        }
    }
}
