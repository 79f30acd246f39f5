// The loss pass for the strategies whose terms need no transposed element:
// `plain`, `upper`, `lower`, and `dual` on symmetric labels (whose swapped
// terms are its own, so it is twice `plain`), all without the penalty. Each
// element's loss and gradient then depend on its own logit, label and mask
// alone, so the batch is streamed along its rows, eight columns (two 16-byte
// accesses) a thread, with no shared-memory tiles and no barriers: the tile
// kernel (`loss.cu`) spent most of its instructions on the mirror tile's
// staging and the tile-pair walk. The host launches this kernel, with
// `symseg_loss`'s arguments, wherever it applies; SPEC §2–4 and the outputs
// (partial sums per block, the non-finite flag, the whole gradient) are as there.
//
// Compiled with SYMSEG_ROWS_CHECKED, the module's kernel is instead
// `symseg_loss_rows_checked`, for calls without a mask: it validates the
// labels itself, so that no scan and no factors kernel precede it (below).

#define STRAT_PLAIN 0
#define STRAT_DUAL 1
#define STRAT_UPPER 3
#define STRAT_LOWER 4

// Columns a thread takes at a time: two strips, so that the per-step work
// (the walk, the sample's length and factor, the band test, the sum) serves
// eight elements.
#define OCT (2 * STRIP)

// A thread's walk over the batch's octets: octet q (columns 8q .. 8q + 7) of
// row i of sample b, at flat offset `at`. A block's threads take consecutive
// octets, so a warp reads 1 KiB of consecutive logits where rows are long;
// the grid strides over the rest. The divisions are done once; a step adds
// the stride's quotients and carries.
struct OctWalk {
    long long at, b;
    int i, q;
};

struct OctStep {
    long long at, b;  // flat offset and samples per step (at: before carries)
    int i, q;         // rows and octets per step, below n and opr
    int opr;          // octets per row
    int n;
};

__device__ __forceinline__ void oct_walk_start(int n, OctWalk* w, OctStep* s) {
    const long long opr = (n + OCT - 1) / OCT;
    const long long u = (long long)blockIdx.x * THREADS + thread_id();
    const long long stride = (long long)gridDim.x * THREADS;
    const long long row = u / opr, step_row = stride / opr;
    w->q = (int)(u % opr);
    w->i = (int)(row % n);
    w->b = row / n;
    w->at = row * n + OCT * (long long)w->q;
    s->q = (int)(stride % opr);
    s->i = (int)(step_row % n);
    s->b = step_row / n;
    s->at = step_row * n + OCT * (long long)s->q;
    s->opr = (int)opr;
    s->n = n;
}

__device__ __forceinline__ void oct_walk_next(OctWalk* w, const OctStep& s) {
    w->q += s.q;
    w->at += s.at;
    int i = w->i + s.i;
    if (w->q >= s.opr) {
        // Into the next row: its octet 0 starts n elements after this row's.
        w->q -= s.opr;
        w->at += s.n - OCT * (long long)s.opr;
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

// One strip's loss and gradient: logits v, labels yw and the top bit of
// each counted column's byte in `counted`. All four are evaluated, the
// uncounted ones discarded by selects (their logits may be anything, NaN
// included): cheaper than a branch around each, and no divergence. Adds the
// strip's losses to *tacc, writes the gradients to gs and returns whether a
// counted logit may not be finite: the sum of the counted logits is not
// (also, harmlessly, where finite ones overflow it; the caller then looks
// at each), which holds no predicate per element.
// With ALL, every element counts (`counted` is ignored): no test and no
// select per element, for the octets inside the region (most of a map).
template <bool ALL>
__device__ __forceinline__ bool strip_loss(const Elem& e, const float* v, unsigned yw, unsigned counted, float rb,
                                           float* tacc, float* gs) {
    float probe = 0.0f;
#pragma unroll
    for (int c = 0; c < STRIP; ++c) {
        const bool in = ALL || (counted & (0x80u << (8 * c))) != 0u;
        // Bit 0 of a counted label (0 or 1) is the label.
        const bool pos = (yw & (1u << (8 * c))) != 0u;
        float l, g;
        elem_value_grad(e, v[c], pos, &l, &g);
        *tacc += in ? l : 0.0f;
        gs[c] = in ? rb * g : 0.0f;
        probe += in ? v[c] : 0.0f;
    }
    return !isfinite(probe);
}

// The top bit of each byte of a strip at columns j0 .. j0 + 3 of row i that
// lies inside a sample of length len and at least k off the diagonal (kb,
// kw: the band test below).
__device__ __forceinline__ unsigned strip_region(int i, int j0, int len, int kb, unsigned kw) {
    unsigned in = 0u;
#pragma unroll
    for (int c = 0; c < STRIP; ++c) {
        const int d = j0 + c - i;
        // |d| >= k as one unsigned comparison: d + kb >= kw.
        const bool ok = (unsigned)(d + kb) >= kw && j0 + c < len;
        in |= ok ? 0x80u << (8 * c) : 0u;
    }
    return in;
}

// The same for the side of the diagonal that `upper` (j >= i) or `lower`
// (j <= i) counts, of a strip whose first column is d0 = j0 - i off it.
__device__ __forceinline__ unsigned strip_side(int S, int d0) {
    unsigned in = 0u;
#pragma unroll
    for (int c = 0; c < STRIP; ++c) {
        const bool ok = S == STRAT_UPPER ? d0 + c >= 0 : d0 + c <= 0;
        in |= ok ? 0x80u << (8 * c) : 0u;
    }
    return in;
}

// Whether the sum of a strip's logits at the bytes of `in` is not finite.
__device__ __forceinline__ bool probe_strip(const float* v, unsigned in) {
    float probe = 0.0f;
#pragma unroll
    for (int c = 0; c < STRIP; ++c) {
        probe += (in & (0x80u << (8 * c))) != 0u ? v[c] : 0.0f;
    }
    return !isfinite(probe);
}

// The non-finite logits of an octet at flat offset `at` among the bytes of
// `in_a` and `in_b` go to `bad` (the smallest wins).
__device__ __forceinline__ void report_octet(const float* xa, const float* xb, unsigned in_a, unsigned in_b,
                                             long long at, u64* bad) {
#pragma unroll
    for (int c = 0; c < OCT; ++c) {
        const unsigned cw = c < STRIP ? in_a : in_b;
        const float v = c < STRIP ? xa[c] : xb[c - STRIP];
        if (((cw >> (8 * (c % STRIP) + 7)) & 1u) && !isfinite(v)) {
            atomicMin(bad, (u64)(at + c));
        }
    }
}

// The labels of a strip (columns j0 .. j0 + 3 of row i, those at or past
// len padding) checked as `scan_rows.cu` checks them, for the checked
// kernel below: a value outside {0, 1, 255} or an upper non-zero label
// whose mirror differs sets *bad; *balance gains the strip's upper
// non-zero labels that take part in the symmetry test and loses its lower
// ones; ignore marks of the counted set (pairs above the diagonal, the
// diagonal where k = 0) are counted. `ys` is the sample's first label.
__device__ __forceinline__ void check_strip(unsigned yw, int i, int j0, int len, int k, bool require_symmetric,
                                            const u8* __restrict__ ys, int n, int* balance, unsigned* ignored_pairs,
                                            unsigned* ignored_diag, bool* bad) {
    unsigned m = nonzero_bytes(yw);
    while (m) {
        const int bit = lowest_bit(m);
        m &= m - 1u;
        const int j = j0 + bit / 8;
        if (j >= len) {
            break;  // the bits run left to right: the rest is padding too
        }
        const unsigned a = (yw >> (bit - 7)) & 0xFFu;
        if (a != 1u && a != IGNORE) {
            *bad = true;
            continue;
        }
        if (a == IGNORE) {
            if (j > i && j - i >= k) {
                ++*ignored_pairs;
            } else if (j == i && k == 0) {
                ++*ignored_diag;
            }
        }
        if (j == i || (!require_symmetric && a != IGNORE)) {
            continue;
        }
        if (j < i) {
            --*balance;
            continue;
        }
        ++*balance;
        const unsigned mirror = ys[(long long)j * n + i];
        if (require_symmetric ? mirror != a : mirror != IGNORE) {
            *bad = true;
        }
    }
}

// The pass itself. CHECK: the checked kernel's label checks (see
// `symseg_loss_rows_checked`), without a mask; otherwise the scan has
// checked the labels and counted the set.
template <bool CHECK>
__device__ __forceinline__ void loss_rows(const float* __restrict__ x, const u8* __restrict__ y,
                                          const u8* __restrict__ mask, float* __restrict__ grad,
                                          const long long* __restrict__ lengths, long long batch, long long n,
                                          long long sep, int wide, int strategy, const Elem& e,
                                          const double* __restrict__ r, double* __restrict__ partial,
                                          u64* __restrict__ bad, bool require_symmetric, u64* __restrict__ ignored,
                                          u64* __restrict__ violation, u64* __restrict__ tally) {
    __shared__ double red[THREADS];
#ifdef SYMSEG_STRATEGY
    (void)strategy;
    const int S = SYMSEG_STRATEGY;
#else
    const int S = strategy;
#endif
    // 32-bit rows and columns (the host sends n <= 2^20); a separation of n
    // or more leaves no pair, as does n itself.
    const int nn = (int)n, k = sep < n ? (int)sep : nn;
    // |d| >= k for an integer d is (unsigned)(d + kb) >= kw: for k >= 1,
    // d + k - 1 outside [0, 2k - 2]; for k = 0, always (kw = 0).
    const int kb = k > 0 ? k - 1 : 0;
    const unsigned kw = k > 0 ? 2u * (unsigned)k - 1u : 0u;
    double acc = 0.0;
    // CHECK: upper minus lower non-zero labels in the symmetry test (wrapping).
    int balance = 0;
    OctWalk w;
    OctStep s;
    oct_walk_start(nn, &w, &s);
    // The current sample's length and reduction factor, read again only
    // when the walk enters another sample.
    long long cb = -1;
    int len = 0;
    double rd = 0.0;
    float rb = 0.0f;
    for (; w.b < batch; oct_walk_next(&w, s)) {
        if (w.b != cb) {
            cb = w.b;
            len = (int)lengths[cb];
            // `dual` on symmetric labels: l(x_ij, y_ij) + l(x_ij, y_ji) is
            // twice the first, as is its derivative; scaling the factor by 2
            // instead of each term gives the same bits (a product by 2 is
            // exact) for two multiplies an element fewer.
            rd = (S == STRAT_DUAL ? 2.0 : 1.0) * r[cb];
            rb = (float)rd;
        }
        const int i = w.i, j0 = OCT * w.q, j1 = j0 + STRIP;
        float ga[STRIP] = {}, gb[STRIP] = {};
        // Rows and octets wholly outside the sample's length are padding:
        // their gradient is zero and their inputs need not be read.
        if (i < len && j0 < len) {
            // Both strips' loads first, so that they are in flight together.
            float xa[STRIP] = {}, xb[STRIP] = {};
            load_strip(x + w.at, j0, nn, wide, xa);
            load_strip(x + w.at + STRIP, j1, nn, wide, xb);
            const unsigned ya = load_word(y + w.at, j0, nn, wide), yb = load_word(y + w.at + STRIP, j1, nn, wide);
            if (CHECK && (ya | yb) != 0u) {
                // Most octets hold only 0 labels and need no check.
                unsigned ignored_pairs = 0u, ignored_diag = 0u;
                bool invalid = false;
                const u8* ys = y + w.b * n * n;
                check_strip(ya, i, j0, len, k, require_symmetric, ys, nn, &balance, &ignored_pairs, &ignored_diag,
                            &invalid);
                check_strip(yb, i, j1, len, k, require_symmetric, ys, nn, &balance, &ignored_pairs, &ignored_diag,
                            &invalid);
                report_checks(invalid, ignored_pairs, ignored_diag, w.b, ignored, violation);
            }
            unsigned set_a = 0x80808080u, set_b = 0x80808080u;
            if (mask) {
                set_a = nonzero_bytes(load_word(mask + w.at, j0, nn, wide));
                set_b = nonzero_bytes(load_word(mask + w.at + STRIP, j1, nn, wide));
            }
            // A byte is in the counted set where its label is not an ignore
            // mark (255) and its mask not 0 ...
            set_a &= nonzero_bytes(~ya);
            set_b &= nonzero_bytes(~yb);
            // ... and where it lies in the sample's region: every column of
            // an octet wholly inside the sample and off the band |i - j| < k
            // (most octets of a large map; j - i runs over off .. off + 7),
            // else column by column.
            const int off = j0 - i, last = off + OCT - 1;
            if (!(j0 + OCT <= len && (off >= k || last <= -k))) {
                set_a &= strip_region(i, j0, len, kb, kw);
                set_b &= strip_region(i, j1, len, kb, kw);
            }
            // The loss counts the set's elements on the strategy's side of
            // the diagonal; the other side's must still be finite (SPEC §1).
            unsigned cnt_a = set_a, cnt_b = set_b;
            if (S == STRAT_UPPER || S == STRAT_LOWER) {
                const bool whole = S == STRAT_UPPER ? off >= 0 : last <= 0;
                const bool none = S == STRAT_UPPER ? last < 0 : off > 0;
                if (none) {
                    cnt_a = cnt_b = 0u;
                } else if (!whole) {
                    cnt_a &= strip_side(S, off);
                    cnt_b &= strip_side(S, off + STRIP);
                }
            }
            if ((cnt_a | cnt_b) != 0u) {
                float tacc = 0.0f;
                bool nfa, nfb;
                // `plain` and `dual` only: the select-free copy pushes
                // `upper`'s and `lower`'s builds past 64 registers.
                if ((S == STRAT_PLAIN || S == STRAT_DUAL) && (cnt_a & cnt_b) == 0x80808080u) {
                    nfa = strip_loss<true>(e, xa, ya, cnt_a, rb, &tacc, ga);
                    nfb = strip_loss<true>(e, xb, yb, cnt_b, rb, &tacc, gb);
                } else {
                    nfa = strip_loss<false>(e, xa, ya, cnt_a, rb, &tacc, ga);
                    nfb = strip_loss<false>(e, xb, yb, cnt_b, rb, &tacc, gb);
                }
                if (nfa || nfb) {
                    report_octet(xa, xb, cnt_a, cnt_b, w.at, bad);
                }
                acc = fma(rd, (double)tacc, acc);
            }
            if (S == STRAT_UPPER || S == STRAT_LOWER) {
                const unsigned oa = set_a & ~cnt_a, ob = set_b & ~cnt_b;
                if ((oa | ob) != 0u && (probe_strip(xa, oa) || probe_strip(xb, ob))) {
                    report_octet(xa, xb, oa, ob, w.at, bad);
                }
            }
        }
        if (grad) {
            store_strip(grad + w.at, j0, nn, wide, ga);
            store_strip(grad + w.at + STRIP, j1, nn, wide, gb);
        }
    }
    const double sum = block_sum(acc, red);
    if (thread_id() == 0) {
        partial[2 * blockIdx.x] = sum;
        partial[2 * blockIdx.x + 1] = 0.0;
    }
    if (CHECK) {
        // The symmetry balance, as `scan_rows.cu` settles it: the last
        // block to finish reads every block's.
        __shared__ unsigned long long red_balance[THREADS];
        const unsigned long long net = block_sum((unsigned long long)(long long)balance, red_balance);
        if (thread_id() == 0) {
            settle_balance(net, tally, violation);
        }
    } else {
        (void)balance;
        (void)require_symmetric;
        (void)ignored;
        (void)violation;
        (void)tally;
    }
}

#ifdef SYMSEG_ROWS_CHECKED
// The pass for a call without a mask that no scan precedes: it checks the
// labels itself, as `scan_rows.cu` does, while it computes the loss with
// reduction factors the host derived from the sample lengths alone (the
// counted set where no label is an ignore mark). Its outputs beside the
// loss kernel's: `ignored`, per sample the ignore marks of the counted set
// (pairs, diagonal; zeros before), which the host subtracts from its counts
// (and where they are not all 0 and the reduction is not a sum, its factors
// were wrong: it runs the scan and the loss again); `violation`, set to 0
// where the labels are invalid (the host then runs the scan, which names the
// violation); `tally`, the symmetry balance and the blocks done (zeros before).
extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_loss_rows_checked(
    const float* __restrict__ x, const u8* __restrict__ y, float* __restrict__ grad,
    const long long* __restrict__ lengths, long long batch, long long n, long long sep, int wide, int strategy,
    float w_pos, float w_neg, float gamma, int kind, int require_symmetric, const double* __restrict__ r,
    u64* __restrict__ ignored, u64* __restrict__ violation, u64* __restrict__ tally, double* __restrict__ partial,
    u64* __restrict__ bad) {
    const Elem e = {w_pos, w_neg, gamma, kind};
    loss_rows<true>(x, y, nullptr, grad, lengths, batch, n, sep, wide, strategy, e, r, partial, bad,
                    require_symmetric != 0, ignored, violation, tally);
}
#else
extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_loss_rows(
    const float* __restrict__ x, const u8* __restrict__ y, const u8* __restrict__ mask,
    float* __restrict__ grad, const long long* __restrict__ lengths, long long batch, long long n, long long sep,
    int wide, int strategy, float w_pos, float w_neg, float gamma, int kind,
    int pen_kind, int pen_probs, float delta,
    const double* __restrict__ r, const double* __restrict__ wp, const u64* __restrict__ violation,
    double* __restrict__ partial, u64* __restrict__ bad) {
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
    loss_rows<false>(x, y, mask, grad, lengths, batch, n, sep, wide, strategy, e, r, partial, bad, true, nullptr,
                     nullptr, nullptr);
}
#endif
