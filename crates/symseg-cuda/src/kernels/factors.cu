// SPEC §4's per-sample reduction factors from the scan's counts, on the
// device, so that the loss kernel can follow the scan without the host
// reading the counts back in between: r[b] for the element loss (over each
// sample's terms: the triangle for `upper`/`lower`, every ordered element
// otherwise) and wp[b] = lambda * r_P[b] for the penalty (over its pairs).
// The same operations in the same order as `Reduction::factors`, so the same
// bits. One block; its threads stride over the samples.

#define RED_MEAN 0
#define RED_SAMPLE_MEAN 1
#define RED_SUM 2

__device__ __forceinline__ double reduction_factor(int reduction, u64 c, u64 total, u64 nonempty) {
    if (reduction == RED_SUM) {
        return 1.0;
    }
    if (reduction == RED_MEAN) {
        return total > 0 ? 1.0 / (double)total : 0.0;
    }
    return c > 0 ? 1.0 / ((double)c * (double)nonempty) : 0.0;
}

extern "C" __global__ void __launch_bounds__(THREADS, 1) symseg_factors(
    const u64* __restrict__ counts, long long batch, int triangle, int reduction, double lambda,
    double* __restrict__ r, double* __restrict__ wp) {
    __shared__ unsigned long long red[THREADS];

    // counts[2b] are sample b's pairs, counts[2b + 1] its diagonal.
    unsigned long long terms = 0, nonempty = 0, pairs = 0, paired = 0;
    for (long long b = thread_id(); b < batch; b += THREADS) {
        const u64 p = counts[2 * b], t = (triangle ? p : 2 * p) + counts[2 * b + 1];
        terms += t;
        nonempty += t > 0;
        pairs += p;
        paired += p > 0;
    }
    terms = block_sum(terms, red);
    nonempty = block_sum(nonempty, red);
    pairs = block_sum(pairs, red);
    paired = block_sum(paired, red);
    for (long long b = thread_id(); b < batch; b += THREADS) {
        const u64 p = counts[2 * b], t = (triangle ? p : 2 * p) + counts[2 * b + 1];
        r[b] = reduction_factor(reduction, t, terms, nonempty);
        wp[b] = lambda * reduction_factor(reduction, p, pairs, paired);
    }
}
