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

// The loss kernel's tile pairs are LOSS_TILE wide (64; 32 with
// -DLOSS_TILE=32, for comparison): per pair, the decode, the staging of the
// mirror tile, the two barriers and the unstaging serve LOSS_TILE^2 / 1024
// passes of a strip per thread, each pass PASS_ROWS rows of the own tile.
// A warp's strips cover 4 rows x 32 columns in every pass, so that its
// column reads of the padded shared tiles hit 32 distinct banks.
#ifndef LOSS_TILE
#define LOSS_TILE 64
#endif
#define PASS_ROWS (THREADS * STRIP / LOSS_TILE)
#define PASSES (LOSS_TILE / PASS_ROWS)

// This thread's row in a pass and first column in the tile pair.
__device__ __forceinline__ int pass_row() {
    return 4 * (int)(thread_id() / 32 / (LOSS_TILE / 32)) + (int)(thread_id() % 32) / STRIPS;
}
__device__ __forceinline__ int pass_col() {
    return 32 * (int)(thread_id() / 32 % (LOSS_TILE / 32)) + STRIP * (int)(thread_id() % STRIPS);
}

// The own element (i, j) of a pair and its mirror (j, i) have non-finite
// logits: their flat offsets go to `bad` (the smallest wins). Valid input
// never comes here. (Out of line, the call's saved registers spilled.)
__device__ __forceinline__ void report_nonfinite(float xij, float xji, long long at_ij, long long at_ji, u64* bad) {
    if (!isfinite(xij)) {
        atomicMin(bad, (u64)at_ij);
    }
    if (!isfinite(xji)) {
        atomicMin(bad, (u64)at_ji);
    }
}

// The mirror tile (rows J from j0, columns I from mcol) into `sx` and `sy`,
// this thread's strip of every pass, the logits and then the labels: each
// time all the loads first, then the stores, so that the loads are in
// flight together. (A load and its store under one branch, as
// `stage_strip` has them, wait for each load in turn: eight memory
// latencies a tile pair instead of two. All eight loads at once spill.)
// Rows and columns outside the sample are staged as zeros.
__device__ __forceinline__ void stage_mirror(const float* __restrict__ x, const u8* __restrict__ y, long long base,
                                             int j0, int mcol, int il0, int jl0, int nn, bool wide,
                                             float (*sx)[LOSS_TILE + 1], u8 (*sy)[LOSS_TILE + 4]) {
    const long long at0 = base + (long long)(j0 + il0) * nn + mcol, step = (long long)PASS_ROWS * nn;
    const int rows_in = nn - (j0 + il0);  // this thread's passes with p * PASS_ROWS < rows_in are in the sample
    float v[PASSES][STRIP];
#pragma unroll
    for (int p = 0; p < PASSES; ++p) {
        const bool in_row = p * PASS_ROWS < rows_in;
#pragma unroll
        for (int c = 0; c < STRIP; ++c) {
            v[p][c] = 0.0f;
        }
        if (in_row) {
            load_strip(x + at0 + p * step, mcol, nn, wide, v[p]);
        }
    }
#pragma unroll
    for (int p = 0; p < PASSES; ++p) {
#pragma unroll
        for (int c = 0; c < STRIP; ++c) {
            sx[il0 + p * PASS_ROWS][jl0 + c] = v[p][c];
        }
    }
    unsigned w[PASSES];
#pragma unroll
    for (int p = 0; p < PASSES; ++p) {
        w[p] = p * PASS_ROWS < rows_in ? load_word(y + at0 + p * step, mcol, nn, wide) : 0u;
    }
#pragma unroll
    for (int p = 0; p < PASSES; ++p) {
        *reinterpret_cast<unsigned*>(&sy[il0 + p * PASS_ROWS][jl0]) = w[p];
    }
}

// A thread's strip of the own tile: logits, and labels and mask (all 1
// where there is none) as words, byte c for column c. (Bytes held one to a
// register cost the passes registers they need.)
struct OwnStrip {
    float x[STRIP];
    unsigned y, m;
};

__device__ __forceinline__ u8 byte_at(unsigned w, int c) { return (u8)(w >> (8 * c)); }

// The strip at flat offset `at` (column col of n); zeros (mask ones) where
// the row is outside the map (`in_row` false).
__device__ __forceinline__ OwnStrip load_own_words(const float* x, const u8* y, const u8* mask, long long at,
                                                   int col, int n, bool wide, bool in_row) {
    OwnStrip s = {{}, 0u, 0x01010101u};
    if (in_row) {
        load_strip(x + at, col, n, wide, s.x);
        s.y = load_word(y + at, col, n, wide);
        if (mask) {
            s.m = load_word(mask + at, col, n, wide);
        }
    }
    return s;
}

// v[c] and v[c] = a of a strip held in registers, for a variable c.
__device__ __forceinline__ float pick(const float* v, int c) {
    return c == 0 ? v[0] : (c == 1 ? v[1] : (c == 2 ? v[2] : v[3]));
}
__device__ __forceinline__ void put(float* v, int c, float a) {
#pragma unroll
    for (int k = 0; k < STRIP; ++k) {
        v[k] = c == k ? a : v[k];
    }
}

// What a pass adds to a tile pair's sums and checks.
struct PassSums {
    float loss, pen;
    bool invalid;
    unsigned ignored_pairs, ignored_diag;
};

// One pass's strip (row i of the own tile, columns col.. at local row il,
// columns jl0..) in an interior tile pair: every element of it and of its
// mirrors real, off the band and inside the sample, so that each counts
// exactly when its label is not an ignore mark and its mask not 0. No
// branch per element but the penalty's (uniform) and, on asymmetric labels,
// `average`'s and `dual`'s: the terms are evaluated for every element and
// selected by `count`, and a non-finite counted logit is found by one test
// of their sum (non-finite exactly when one of them is, or where large
// finite ones overflow it; then each is looked at).
template <bool CHECK>
__device__ __forceinline__ void interior_pass(int S, const Elem& e, const OwnStrip& own, int il, int jl0,
                                              long long own_at, long long base, int i, int col, int nn,
                                              float rb, float wpb, int pen_kind, int pen_probs, float delta,
                                              bool require_symmetric, const float* __restrict__ x,
                                              float (*sx)[LOSS_TILE + 1], const u8 (*sy)[LOSS_TILE + 4],
                                              bool write, float* gs, PassSums& ps, u64* bad) {
    if (CHECK) {
        // The strip's labels and their mirrors as words.
        const unsigned own_w = own.y;
        unsigned mir_w = 0u;
#pragma unroll
        for (int c = 0; c < STRIP; ++c) {
            mir_w |= (unsigned)sy[jl0 + c][il] << (8 * c);
        }
        ps.invalid = ps.invalid || invalid_strip(own_w, mir_w, require_symmetric);
        ps.ignored_pairs += count_bits(nonzero_bytes(~own_w) ^ 0x80808080u);
    }
    float counted_sum = 0.0f;
#pragma unroll
    for (int c = 0; c < STRIP; ++c) {
        const int jl = jl0 + c;
        const u8 yij = byte_at(own.y, c);
        const bool count = yij != IGNORE && byte_at(own.m, c) != 0;
        const float xij = own.x[c], xji = sx[jl][il];
        counted_sum += count ? xij + xji : 0.0f;
        float gij, gji;
        const float l = pair_terms(S, e, xij, xji, yij == 1, sy[jl][il] == 1, &gij, &gji);
        ps.loss += count ? l : 0.0f;
        gij *= rb;
        gji *= rb;
        if (pen_kind != PEN_NONE) {
            float rho, da, db;
            penalty_value_grad(pen_kind, pen_probs, delta, xij, xji, &rho, &da, &db);
            ps.pen += count ? rho : 0.0f;
            gij += wpb * da;
            gji += wpb * db;
        }
        if (write) {
            gs[c] = count ? gij : 0.0f;
            sx[jl][il] = count ? gji : 0.0f;
        }
    }
    if (!isfinite(counted_sum)) {
#pragma unroll 1
        for (int c = 0; c < STRIP; ++c) {
            if (byte_at(own.y, c) != IGNORE && byte_at(own.m, c) != 0) {
                // The mirror logit from memory: its place in `sx` holds its gradient now.
                const long long mir_at = base + (long long)(col + c) * nn + i;
                report_nonfinite(pick(own.x, c), x[mir_at], own_at + c, mir_at, bad);
            }
        }
    }
}

// The same for a tile pair on the diagonal or across the sample's edge or
// the band: each element tested on its own, the diagonal's (i, i) term
// once, and a diagonal tile's own half written to shared memory as well
// (its strips hold both halves; it goes out whole from there).
template <bool CHECK>
__device__ __forceinline__ void edge_pass(int S, const Elem& e, const OwnStrip& own, int il, int jl0, long long own_at,
                                          long long base, int i, int col, int nn, int len, int k, bool diagonal,
                                          float rb, float wpb, int pen_kind, int pen_probs, float delta,
                                          bool require_symmetric, float (*sx)[LOSS_TILE + 1],
                                          const u8 (*sy)[LOSS_TILE + 4], bool write, float* gs, PassSums& ps,
                                          u64* bad) {
    // Not unrolled (few pairs come here, and an unrolled copy would take
    // registers from the interior passes): the strip's elements are picked
    // by selects, since indexing a register array by a variable would put
    // it in local memory.
#pragma unroll 1
    for (int c = 0; c < STRIP; ++c) {
        const int jl = jl0 + c, j = col + c;
        const u8 yij = byte_at(own.y, c);
        if (i >= nn || j >= nn || (diagonal && i > j)) {
            continue;
        }
        const bool count = counted(i, j, len, k, yij, byte_at(own.m, c));
        if (CHECK && i < len && j < len) {
            ps.invalid = ps.invalid || invalid_pair(yij, sy[jl][il], require_symmetric);
            if (yij == IGNORE) {
                ps.ignored_pairs += (i < j && j - i >= k) ? 1u : 0u;
                ps.ignored_diag += (i == j && k == 0) ? 1u : 0u;
            }
        }
        const float xij = pick(own.x, c), xji = sx[jl][il];
        float gij = 0.0f, gji = 0.0f;
        if (count) {
            if (!isfinite(xij) || !isfinite(xji)) {
                report_nonfinite(xij, xji, own_at + c, base + (long long)j * nn + i, bad);
            }
            const bool pa = yij == 1, pb = sy[jl][il] == 1;
            if (i == j) {
                float l1, d1;
                elem_value_grad(e, xij, pa, &l1, &d1);
                const float f = S == STRAT_DUAL ? 2.0f : 1.0f;
                ps.loss += f * l1;
                gij = rb * (f * d1);
            } else {
                ps.loss += pair_terms(S, e, xij, xji, pa, pb, &gij, &gji);
                gij *= rb;
                gji *= rb;
                if (pen_kind != PEN_NONE) {
                    float rho, da, db;
                    penalty_value_grad(pen_kind, pen_probs, delta, xij, xji, &rho, &da, &db);
                    ps.pen += rho;
                    gij += wpb * da;
                    gji += wpb * db;
                }
            }
        }
        if (write) {
            put(gs, c, gij);
            sx[jl][il] = gji;
            if (diagonal) {
                sx[il][jl] = gij;
            }
        }
    }
}

// The kernel's body: the grid-stride walk over tile pairs. Rows, columns,
// lengths and the separation are 32-bit (the host sends n <= 2^20); flat
// offsets, 64-bit, are formed once a row. CHECK: the checked kernel's label
// checks (see `symseg_loss_checked`), without a mask.
//
// The mirror tile `sx` holds the logits and, at each place once its pair
// is evaluated, that logit's gradient: a place is staged, read, written
// and written out by one thread only (in a diagonal tile, half the places
// are written by the thread of their mirror place instead, and read by
// none). So one tile buffer serves both, and a block needs 25 KB of shared
// memory rather than 42 (four blocks an SM then fit on sm_80 as well).
template <bool CHECK>
__device__ __forceinline__ void loss_body(int S, const float* __restrict__ x, const u8* __restrict__ y,
                                          const u8* __restrict__ mask, float* __restrict__ grad,
                                          const long long* __restrict__ lengths, long long batch, long long n,
                                          long long sep, int wide, const Elem& e, int pen_kind, int pen_probs,
                                          float delta, const double* __restrict__ r, const double* __restrict__ wp,
                                          double* __restrict__ partial, u64* __restrict__ bad,
                                          float (*sx)[LOSS_TILE + 1], u8 (*sy)[LOSS_TILE + 4],
                                          double (*sums)[THREADS], bool require_symmetric,
                                          u64* __restrict__ ignored, u64* __restrict__ violation) {
    const int nn = (int)n, k = sep < n ? (int)sep : nn;
    const int il0 = pass_row(), jl0 = pass_col();
    // The thread's running sums (element terms, penalty) in f64, kept in
    // shared memory, not registers: the passes need every register.
    const unsigned tid = thread_id();
    sums[0][tid] = 0.0;
    sums[1][tid] = 0.0;
    for (Walk w = walk_start<LOSS_TILE>(n, batch); walk_more(w); walk_next(w)) {
        const Tile t = tile_of<LOSS_TILE>(w, n);
        // The sample's length and factors, read per pair (cached loads,
        // a few against the pair's thousands of elements; held across the
        // walk they cost registers the passes need). The f32 factors by
        // loads of their own (`__ldcg`, which the compiler does not merge
        // with the f64 reads of the sums below): from one shared load it
        // kept the f64 live through the passes and converted it again at
        // every element (F2F, two registers for one).
        const int len = (int)lengths[t.b];
        const float rb = (float)__ldcg(r + t.b), wpb = (float)__ldcg(wp + t.b);
        const int i0 = t.i0, j0 = t.j0, col = j0 + jl0, mcol = i0 + jl0;
        const bool diagonal = t.ti == t.tj;
        const bool inner = interior<LOSS_TILE>(t, len, k);

        stage_mirror(x, y, t.base, j0, mcol, il0, jl0, nn, wide, sx, sy);
        __syncthreads();
        // Sums of at most 4 * PASSES non-negative f32 terms (error < 1e-6
        // relative), then added in f64.
        PassSums ps = {0.0f, 0.0f, false, 0u, 0u};
#pragma unroll 1
        for (int p = 0; p < PASSES; ++p) {
            const int il = il0 + p * PASS_ROWS, i = i0 + il;
            const long long own_at = t.base + (long long)i * nn + col;
            const OwnStrip own = load_own_words(x, y, mask, own_at, col, nn, wide, i < nn);
            float gs[STRIP] = {};
            if (inner) {
                interior_pass<CHECK>(S, e, own, il, jl0, own_at, t.base, i, col, nn, rb, wpb, pen_kind, pen_probs,
                                     delta, require_symmetric, x, sx, sy, grad != nullptr, gs, ps, bad);
            } else {
                edge_pass<CHECK>(S, e, own, il, jl0, own_at, t.base, i, col, nn, len, k, diagonal, rb, wpb,
                                 pen_kind, pen_probs, delta, require_symmetric, sx, sy, grad != nullptr, gs,
                                 ps, bad);
            }
            if (grad && !diagonal && i < nn) {
                store_strip(grad + own_at, col, nn, wide, gs);
            }
        }
        sums[0][tid] += r[t.b] * (double)ps.loss;
        sums[1][tid] += wp[t.b] * (double)ps.pen;
        if (CHECK) {
            report_checks(ps.invalid, ps.ignored_pairs, ps.ignored_diag, t.b, ignored, violation);
        } else {
            (void)require_symmetric;
            (void)ignored;
            (void)violation;
        }
        __syncthreads();
        // The mirror gradients (or a diagonal tile's), which the passes left
        // in sx in place of the logits, written along rows of J.
        if (grad) {
#pragma unroll
            for (int p = 0; p < PASSES; ++p) {
                const int rl = il0 + p * PASS_ROWS, mrow = j0 + rl;
                const long long mir_at = t.base + (long long)mrow * nn + mcol;
                unstage_strip(sx, grad + mir_at, mrow < nn, mcol, nn, wide, rl, jl0);
            }
        }
    }
    const double s_elem = block_sum(sums[0][tid], sums[0]);
    const double s_pen = block_sum(sums[1][tid], sums[1]);
    if (thread_id() == 0) {
        partial[2 * blockIdx.x] = s_elem;
        partial[2 * blockIdx.x + 1] = s_pen;
    }
}

// The block's shared memory, for whichever entry point below the module
// holds: the mirror tile's logits (then gradients) and labels, and the
// threads' running sums.
__shared__ float loss_sx[LOSS_TILE][LOSS_TILE + 1];
__shared__ __align__(16) u8 loss_sy[LOSS_TILE][LOSS_TILE + 4];
__shared__ double loss_sums[2][THREADS];

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
    const Elem e = {w_pos, w_neg, gamma, kind};
#ifdef SYMSEG_STRATEGY
    (void)strategy;
    const int S = SYMSEG_STRATEGY;
#else
    const int S = strategy;
#endif
    loss_body<true>(S, x, y, nullptr, grad, lengths, batch, n, sep, wide, e, pen_kind, pen_probs, delta, r, wp,
                    partial, bad, loss_sx, loss_sy, loss_sums, require_symmetric != 0, ignored, violation);
}
#else
extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) symseg_loss(
    const float* __restrict__ x, const u8* __restrict__ y, const u8* __restrict__ mask,
    float* __restrict__ grad, const long long* __restrict__ lengths, long long batch, long long n, long long sep,
    int wide, int strategy, float w_pos, float w_neg, float gamma, int kind,
    int pen_kind, int pen_probs, float delta,
    const double* __restrict__ r, const double* __restrict__ wp, const u64* __restrict__ violation,
    double* __restrict__ partial, u64* __restrict__ bad) {
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
                     partial, bad, loss_sx, loss_sy, loss_sums, true, nullptr, nullptr);
}
#endif
