// The loss pass for the strategies whose terms need no transposed element:
// `plain`, `upper`, `lower`, and `dual` on symmetric labels (whose swapped
// terms are its own, so it is twice `plain`), all without the penalty. Each
// element's loss and gradient then depend on its own logit, label and mask
// alone, so the batch is streamed along its rows, four columns (one 16-byte
// access) a thread, with no shared-memory tiles and no barriers: the tile
// kernel (`loss.cu`) spent most of its instructions on the mirror tile's
// staging and the tile-pair walk. The host launches this kernel, with
// `symseg_loss`'s arguments, wherever it applies; SPEC §2–4 and the outputs
// (partial sums per block, the non-finite flag, the whole gradient) are as there.

#define STRAT_PLAIN 0
#define STRAT_DUAL 1
#define STRAT_UPPER 3
#define STRAT_LOWER 4

// A thread's walk over the batch's quads: quad q (columns 4q .. 4q + 3) of
// row i of sample b, at flat offset `at`. A block's threads take consecutive
// quads, so a warp reads 512 consecutive bytes of logits where rows are wide;
// the grid strides over the rest. The divisions are done once; a step adds
// the stride's quotients and carries.
struct QuadWalk {
    long long at, b;
    int i, q;
};

struct QuadStep {
    long long at, b;  // flat offset and samples per step (at: before carries)
    int i, q;         // rows and quads per step, below n and qpr
    int qpr;          // quads per row
    int n;
};

__device__ __forceinline__ void quad_walk_start(long long batch, int n, QuadWalk* w, QuadStep* s) {
    const long long qpr = (n + STRIP - 1) / STRIP;
    const long long u = (long long)blockIdx.x * THREADS + thread_id();
    const long long stride = (long long)gridDim.x * THREADS;
    const long long row = u / qpr, step_row = stride / qpr;
    w->q = (int)(u % qpr);
    w->i = (int)(row % n);
    w->b = row / n;
    w->at = row * n + STRIP * (long long)w->q;
    s->q = (int)(stride % qpr);
    s->i = (int)(step_row % n);
    s->b = step_row / n;
    s->at = step_row * n + STRIP * (long long)s->q;
    s->qpr = (int)qpr;
    s->n = n;
    (void)batch;
}

__device__ __forceinline__ void quad_walk_next(QuadWalk* w, const QuadStep& s) {
    w->q += s.q;
    w->at += s.at;
    int i = w->i + s.i;
    if (w->q >= s.qpr) {
        // Into the next row: its quad 0 starts n elements after this row's.
        w->q -= s.qpr;
        w->at += s.n - STRIP * (long long)s.qpr;
        ++i;
    }
    long long b = w->b + s.b;
    if (i >= s.n) {
        i -= s.n;
        ++b;
    }
    w->i = i;
    w->b = b;
}

extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_loss_rows(
    const float* __restrict__ x, const u8* __restrict__ y, const u8* __restrict__ mask,
    float* __restrict__ grad, const long long* __restrict__ lengths, long long batch, long long n, long long sep,
    int wide, int strategy, float w_pos, float w_neg, float gamma, int kind,
    int pen_kind, int pen_probs, float delta,
    const double* __restrict__ r, const double* __restrict__ wp, const u64* __restrict__ violation,
    double* __restrict__ partial, u64* __restrict__ bad) {
    __shared__ double red[THREADS];

    // Invalid labels or mask (the scan, queued before): touch nothing.
    if (*violation != ~0ull) {
        return;
    }
    // No penalty here (the host sends those to `symseg_loss`).
    (void)pen_kind;
    (void)pen_probs;
    (void)delta;
    (void)wp;
    const Elem e = {w_pos, w_neg, gamma, kind};
#ifdef SYMSEG_STRATEGY
    (void)strategy;
    const int S = SYMSEG_STRATEGY;
#else
    const int S = strategy;
#endif
    // `dual` on symmetric labels: l(x_ij, y_ij) + l(x_ij, y_ji) is twice
    // the first, bit for bit, as is its derivative.
    const float twice = S == STRAT_DUAL ? 2.0f : 1.0f;
    // 32-bit rows and columns (the host sends n <= 2^20); a separation of n
    // or more leaves no pair, as does n itself.
    const int nn = (int)n, k = sep < n ? (int)sep : nn;
    // |d| >= k for an integer d is (unsigned)(d + kb) >= kw: for k >= 1,
    // d + k - 1 outside [0, 2k - 2]; for k = 0, always (kw = 0).
    const int kb = k > 0 ? k - 1 : 0;
    const unsigned kw = k > 0 ? 2u * (unsigned)k - 1u : 0u;
    double acc = 0.0;
    QuadWalk w;
    QuadStep s;
    quad_walk_start(batch, nn, &w, &s);
    // The current sample's length and reduction factor, read again only
    // when the walk enters another sample.
    long long cb = -1;
    int len = 0;
    double rd = 0.0;
    float rb = 0.0f;
    for (; w.b < batch; quad_walk_next(&w, s)) {
        if (w.b != cb) {
            cb = w.b;
            len = (int)lengths[cb];
            rd = r[cb];
            rb = (float)rd;
        }
        const int i = w.i, j0 = STRIP * w.q;
        float gs[STRIP] = {};
        // Rows and quads wholly outside the sample's length are padding:
        // their gradient is zero and their inputs need not be read.
        if (i < len && j0 < len) {
            Strip own = load_own(x, y, mask, w.at, j0, nn, wide, true);
            // Whether the quad lies wholly inside the sample, off the band
            // |i - j| < k and on the strategy's side of the diagonal (most
            // quads of a large map): then an element counts exactly when its
            // label and mask let it, and the tests per column are skipped.
            // (j - i runs over off .. last; k >= 0, so a quad clear of the
            // band lies wholly on one side of the diagonal.)
            const int off = j0 - i, last = off + STRIP - 1;
            bool inner = j0 + STRIP <= len;
            if (S == STRAT_UPPER) {
                inner = inner && off >= k;
            } else if (S == STRAT_LOWER) {
                inner = inner && last <= -k;
            } else {
                inner = inner && (off >= k || last <= -k);
            }
            bool count[STRIP];
            bool any = false;
            if (inner) {
#pragma unroll
                for (int c = 0; c < STRIP; ++c) {
                    count[c] = own.y[c] != IGNORE && own.m[c] != 0;
                    any = any || count[c];
                }
            } else {
#pragma unroll
                for (int c = 0; c < STRIP; ++c) {
                    // |i - j| >= k as one unsigned comparison: j - i + kb >= kw.
                    bool in = (unsigned)(off + c + kb) >= kw && j0 + c < len;
                    if (S == STRAT_UPPER) {
                        in = in && off + c >= 0;
                    } else if (S == STRAT_LOWER) {
                        in = in && off + c <= 0;
                    }
                    count[c] = in && own.y[c] != IGNORE && own.m[c] != 0;
                    any = any || count[c];
                }
            }
            if (any) {
                // All four evaluated, the uncounted ones discarded by
                // selects (their logits may be anything, NaN included):
                // cheaper than a branch around each, and no divergence.
                float tacc = 0.0f;
                bool nonfinite = false;
#pragma unroll
                for (int c = 0; c < STRIP; ++c) {
                    float l, g;
                    elem_value_grad(e, own.x[c], own.y[c] == 1, &l, &g);
                    tacc += count[c] ? twice * l : 0.0f;
                    gs[c] = count[c] ? rb * (twice * g) : 0.0f;
                    nonfinite = nonfinite || (count[c] && !isfinite(own.x[c]));
                }
                if (nonfinite) {
                    for (int c = 0; c < STRIP; ++c) {
                        if (count[c] && !isfinite(own.x[c])) {
                            atomicMin(bad, (u64)(w.at + c));
                        }
                    }
                }
                acc = fma(rd, (double)tacc, acc);
            }
        }
        if (grad) {
            store_strip(grad + w.at, j0, nn, wide, gs);
        }
    }
    const double sum = block_sum(acc, red);
    if (thread_id() == 0) {
        partial[2 * blockIdx.x] = sum;
        partial[2 * blockIdx.x + 1] = 0.0;
    }
}
