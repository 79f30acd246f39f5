// The fused loss pass (SPEC §2–4): every strategy, the penalty, the mask,
// lengths and min_sep in one read of x and y, writing the whole gradient
// (zeros outside the counted set) when `grad` is not null. Each block writes
// its two partial sums over all its tile pairs, each pair's already scaled by
// its sample's reduction factors; the host adds them in block order, so with
// the grid fixed the result is the same run to run. It runs after the scan and
// `symseg_factors` with no host step between, and does nothing where the scan
// found a violation. Compiled with SYMSEG_TILES_CHECKED, the module's kernel
// is instead `symseg_loss_checked`, for calls without a mask: it checks the
// labels itself, so that no scan and no factors kernel precede it (below).

#define STRAT_PLAIN 0
#define STRAT_DUAL 1
#define STRAT_AVERAGE 2
#define STRAT_UPPER 3
#define STRAT_LOWER 4

// The element terms of one off-diagonal pair (i, j) under strategy S: their
// sum, and the derivatives in x_ij and x_ji (before the reduction factor).
// S is uniform across the grid, so its branches never diverge. (Templating
// the body on S, one copy per strategy behind a switch, spilled 384 bytes:
// the assembler gave the five copies one register budget.)
__device__ __forceinline__ float pair_terms(int S, const Elem& e, float xij, float xji, bool pa, bool pb, float* gij,
                                            float* gji) {
    float l1, d1, l2, d2;
    if (S == STRAT_PLAIN) {
        elem_value_grad(e, xij, pa, &l1, &d1);
        elem_value_grad(e, xji, pb, &l2, &d2);
        *gij = d1;
        *gji = d2;
        return l1 + l2;
    } else if (S == STRAT_DUAL) {
        float l3, d3, l4, d4;
        elem_value_grad(e, xij, pa, &l1, &d1);
        elem_value_grad(e, xji, pb, &l3, &d3);
        if (pa == pb) {
            // Symmetric labels (always, unless asymmetric ones are allowed):
            // the swapped terms are these, bit for bit.
            l2 = l1;
            d2 = d1;
            l4 = l3;
            d4 = d3;
        } else {
            elem_value_grad(e, xij, pb, &l2, &d2);
            elem_value_grad(e, xji, pa, &l4, &d4);
        }
        *gij = d1 + d2;
        *gji = d3 + d4;
        return (l1 + l2) + (l3 + l4);
    } else if (S == STRAT_AVERAGE) {
        const float z = 0.5f * xij + 0.5f * xji;
        elem_value_grad(e, z, pa, &l1, &d1);
        if (pa == pb) {
            *gij = *gji = d1;
            return 2.0f * l1;
        }
        elem_value_grad(e, z, pb, &l2, &d2);
        *gij = *gji = 0.5f * (d1 + d2);
        return l1 + l2;
    } else if (S == STRAT_UPPER) {
        elem_value_grad(e, xij, pa, &l1, &d1);
        *gij = d1;
        *gji = 0.0f;
        return l1;
    } else {
        elem_value_grad(e, xji, pb, &l2, &d2);
        *gij = 0.0f;
        *gji = d2;
        return l2;
    }
}

// Whether labels a (at (i, j)) and b (at (j, i)) of a pair inside the
// sample break SPEC §1: a value outside {0, 1, 255}, or labels that differ
// (where symmetry is required) or of which one only is an ignore mark.
__device__ __forceinline__ bool invalid_pair(unsigned a, unsigned b, bool require_symmetric) {
    const bool bad_value = (a > 1u && a != IGNORE) || (b > 1u && b != IGNORE);
    return bad_value || (require_symmetric ? a != b : (a == IGNORE) != (b == IGNORE));
}

// The same for four pairs at once: a strip's labels `own` and their
// mirrors `mir`, a byte each.
__device__ __forceinline__ bool invalid_strip(unsigned own, unsigned mir, bool require_symmetric) {
    // Bytes above 1 that are not 255.
    const unsigned bad = (nonzero_bytes(own & 0xFEFEFEFEu) & nonzero_bytes(~own)) |
                         (nonzero_bytes(mir & 0xFEFEFEFEu) & nonzero_bytes(~mir));
    return bad != 0u || (require_symmetric ? own != mir : nonzero_bytes(~own) != nonzero_bytes(~mir));
}

// The kernel's body: the grid-stride walk over tile pairs. Rows, columns,
// lengths and the separation are 32-bit (the host sends n <= 2^20); flat
// offsets, 64-bit, are formed once a row. CHECK: the checked kernel's label
// checks (see `symseg_loss_checked`), without a mask.
template <bool CHECK>
__device__ __forceinline__ void loss_body(int S, const float* __restrict__ x, const u8* __restrict__ y,
                                          const u8* __restrict__ mask, float* __restrict__ grad,
                                          const long long* __restrict__ lengths, long long batch, long long n,
                                          long long sep, int wide, const Elem& e, int pen_kind, int pen_probs,
                                          float delta, const double* __restrict__ r, const double* __restrict__ wp,
                                          double* __restrict__ partial, u64* __restrict__ bad, float (*sx)[TILE + 1],
                                          float (*sg)[TILE + 1], u8 (*sy)[TILE + 4], double* red,
                                          bool require_symmetric, u64* __restrict__ ignored,
                                          u64* __restrict__ violation) {
    const int nn = (int)n, k = sep < n ? (int)sep : nn;
    const int il = (int)(thread_id() / STRIPS), jl0 = STRIP * (int)(thread_id() % STRIPS);
    double acc = 0.0, pacc = 0.0;
    // The current sample's length and factors, read again only when the
    // walk enters another sample.
    long long cb = -1;
    int len = 0;
    double rd = 0.0, wpd = 0.0;
    float rb = 0.0f, wpb = 0.0f;
    for (Walk w = walk_start(n, batch); walk_more(w); walk_next(w)) {
        const Tile t = tile_of(w, n);
        if (t.b != cb) {
            cb = t.b;
            len = (int)lengths[cb];
            rd = r[cb];
            wpd = wp[cb];
            rb = (float)rd;
            wpb = (float)wpd;
        }
        const int i0 = (int)t.i0, j0 = (int)t.j0, i = i0 + il, col = j0 + jl0;
        const bool diagonal = t.ti == t.tj;
        // Every element inside the sample and at least k off the diagonal:
        // then an element counts exactly when its label and mask let it.
        const bool inner = !diagonal && j0 + TILE <= len && i0 + TILE <= len && j0 - (i0 + TILE - 1) >= k;

        // This thread's strip of the own tile, (i, col + c), loaded before
        // the mirror's staging so that both loads are in flight at once.
        const long long own_at = t.base + (long long)i * nn + col;
        const Strip own = load_own(x, y, mask, own_at, col, nn, wide, i < nn);
        float gs[STRIP] = {};
        // The mirror tile (rows J, columns I), staged along its rows.
        const int mrow = j0 + il, mcol = i0 + jl0;
        const long long mir_at = t.base + (long long)mrow * nn + mcol;
        stage_strip(x + mir_at, mrow < nn, mcol, nn, wide, sx);
        stage_strip(y + mir_at, mrow < nn, mcol, nn, wide, sy);
        __syncthreads();
        // Sums of at most 16 non-negative f32 terms (error < 1e-6 relative),
        // then added in f64.
        float tacc = 0.0f, tpacc = 0.0f;
        // CHECK: this pair's invalid labels, and ignore marks of the counted set.
        bool invalid = false;
        unsigned ignored_pairs = 0u, ignored_diag = 0u;
        if (CHECK && inner) {
            // Every element real and counted but for ignore marks: the strip
            // and its mirrors as words.
            unsigned own_w = 0u, mir_w = 0u;
#pragma unroll
            for (int c = 0; c < STRIP; ++c) {
                own_w |= (unsigned)own.y[c] << (8 * c);
                mir_w |= (unsigned)sy[jl0 + c][il] << (8 * c);
            }
            invalid = invalid_strip(own_w, mir_w, require_symmetric);
            ignored_pairs = count_bits(nonzero_bytes(~own_w) ^ 0x80808080u);
        }
        // Unrolled, so that the strips stay in registers (indexed by a
        // variable they would go to local memory).
#pragma unroll
        for (int c = 0; c < STRIP; ++c) {
            const int jl = jl0 + c, j = col + c;
            const u8 yij = own.y[c];
            bool count;
            if (inner) {
                count = yij != IGNORE && own.m[c] != 0;
            } else {
                if (i >= nn || j >= nn || (diagonal && i > j)) {
                    continue;
                }
                count = counted(i, j, len, k, yij, own.m[c]);
                if (CHECK && i < len && j < len) {
                    invalid = invalid || invalid_pair(yij, sy[jl][il], require_symmetric);
                    if (yij == IGNORE) {
                        ignored_pairs += (i < j && j - i >= k) ? 1u : 0u;
                        ignored_diag += (i == j && k == 0) ? 1u : 0u;
                    }
                }
            }
            const float xij = own.x[c], xji = sx[jl][il];
            float gij = 0.0f, gji = 0.0f;
            if (count) {
                if (!isfinite(xij) || !isfinite(xji)) {
                    if (!isfinite(xij)) {
                        atomicMin(bad, (u64)(own_at + c));
                    }
                    if (!isfinite(xji)) {
                        atomicMin(bad, (u64)(t.base + (long long)j * nn + i));
                    }
                }
                const bool pa = yij == 1, pb = sy[jl][il] == 1;
                if (!inner && i == j) {
                    float l1, d1;
                    elem_value_grad(e, xij, pa, &l1, &d1);
                    const float f = S == STRAT_DUAL ? 2.0f : 1.0f;
                    tacc += f * l1;
                    gij = rb * (f * d1);
                } else {
                    tacc += pair_terms(S, e, xij, xji, pa, pb, &gij, &gji);
                    gij *= rb;
                    gji *= rb;
                    if (pen_kind != PEN_NONE) {
                        float rho, da, db;
                        penalty_value_grad(pen_kind, pen_probs, delta, xij, xji, &rho, &da, &db);
                        tpacc += rho;
                        gij += wpb * da;
                        gji += wpb * db;
                    }
                }
            }
            if (grad) {
                gs[c] = gij;
                sg[jl][il] = gji;
                // A diagonal tile goes out whole from shared memory (its
                // strips hold both halves), so its own half goes there too.
                if (diagonal) {
                    sg[il][jl] = gij;
                }
            }
        }
        acc += rd * (double)tacc;
        pacc += wpd * (double)tpacc;
        if (CHECK) {
            report_checks(invalid, ignored_pairs, ignored_diag, t.b, ignored, violation);
        } else {
            (void)invalid;
            (void)require_symmetric;
            (void)ignored;
            (void)violation;
        }
        if (grad && !diagonal && i < nn) {
            store_strip(grad + own_at, col, nn, wide, gs);
        }
        __syncthreads();
        // The mirror gradients (or a diagonal tile's), written along rows of J.
        if (grad) {
            unstage_strip(sg, grad + mir_at, mrow < nn, mcol, nn, wide);
        }
    }
    const double s_elem = block_sum(acc, red);
    const double s_pen = block_sum(pacc, red);
    if (thread_id() == 0) {
        partial[2 * blockIdx.x] = s_elem;
        partial[2 * blockIdx.x + 1] = s_pen;
    }
}

#ifdef SYMSEG_TILES_CHECKED
// The pass for a call without a mask that no scan precedes, as
// `symseg_loss_rows_checked` is for the row kernel's strategies: reduction
// factors the host derived from the lengths alone, the labels checked as
// the pass goes (each unordered pair's two labels are at hand here, so no
// balance is needed), and per sample the ignore marks of the counted set
// in `ignored` (pairs, diagonal; zeros before). `violation` is set to 0
// where the labels are invalid.
extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_loss_checked(
    const float* __restrict__ x, const u8* __restrict__ y, float* __restrict__ grad,
    const long long* __restrict__ lengths, long long batch, long long n, long long sep, int wide, int strategy,
    float w_pos, float w_neg, float gamma, int kind, int pen_kind, int pen_probs, float delta,
    int require_symmetric, const double* __restrict__ r, const double* __restrict__ wp, u64* __restrict__ ignored,
    u64* __restrict__ violation, double* __restrict__ partial, u64* __restrict__ bad) {
    __shared__ float sx[TILE][TILE + 1];
    __shared__ float sg[TILE][TILE + 1];
    __shared__ __align__(16) u8 sy[TILE][TILE + 4];
    __shared__ double red[THREADS];

    const Elem e = {w_pos, w_neg, gamma, kind};
#ifdef SYMSEG_STRATEGY
    (void)strategy;
    const int S = SYMSEG_STRATEGY;
#else
    const int S = strategy;
#endif
    loss_body<true>(S, x, y, nullptr, grad, lengths, batch, n, sep, wide, e, pen_kind, pen_probs, delta, r, wp,
                    partial, bad, sx, sg, sy, red, require_symmetric != 0, ignored, violation);
}
#else
extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_loss(
    const float* __restrict__ x, const u8* __restrict__ y, const u8* __restrict__ mask,
    float* __restrict__ grad, const long long* __restrict__ lengths, long long batch, long long n, long long sep,
    int wide, int strategy, float w_pos, float w_neg, float gamma, int kind,
    int pen_kind, int pen_probs, float delta,
    const double* __restrict__ r, const double* __restrict__ wp, const u64* __restrict__ violation,
    double* __restrict__ partial, u64* __restrict__ bad) {
    __shared__ float sx[TILE][TILE + 1];
    __shared__ float sg[TILE][TILE + 1];
    __shared__ __align__(16) u8 sy[TILE][TILE + 4];
    __shared__ double red[THREADS];

    // Invalid labels or mask (the scan, queued before): touch nothing, so the
    // gradient buffer stays as it was, as on the CPU backend.
    if (*violation != ~0ull) {
        return;
    }
    const Elem e = {w_pos, w_neg, gamma, kind};
#ifdef SYMSEG_STRATEGY
    // Compiled for one strategy (`kernels::LOSS_BY_STRATEGY`): a constant,
    // so its branches fold away; `strategy` then only repeats it.
    (void)strategy;
    const int S = SYMSEG_STRATEGY;
#else
    const int S = strategy;
#endif
    loss_body<false>(S, x, y, mask, grad, lengths, batch, n, sep, wide, e, pen_kind, pen_probs, delta, r, wp,
                     partial, bad, sx, sg, sy, red, true, nullptr, nullptr);
}
#endif
