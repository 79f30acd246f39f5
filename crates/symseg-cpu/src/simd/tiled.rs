//! Off-diagonal tile pairs `(I, J)`, `I < J`, vectorised: the mirror tile is
//! copied transposed into a local buffer, so `x_ij` and `x_ji` are both read
//! contiguously along a row of `I`; `g_ji` goes to a local buffer and is written
//! back transposed. A diagonal tile is its own mirror: its rows and transposed
//! rows are merged (its diagonal elements are the caller's). A tile holding a
//! non-finite counted logit is rerun on the scalar tile-pair path, which
//! reports the lowest index.
//!
//! The lane loop over a row is written twice: portable lane code (`row_lanes`,
//! compiled for AVX2 and baseline x86-64), and AVX-512 intrinsics
//! ([`super::tile_row_avx512`]), which compute the same bits.

use super::elem::{FastElem, GAMMA_0, GAMMA_1, GAMMA_2, GAMMA_ANY};
use super::penalty::{FastPenalty, KIND_HUBER, KIND_L1, KIND_L2, PEN_LOGITS, PEN_NONE, PEN_PROBS};
use super::prefetch::prefetch_rows;
#[cfg(target_arch = "x86_64")]
use super::tile_row_avx512::{self, Row};
use super::transpose::{transpose_into, transpose_u8_into};
use super::{PORTABLE_FMA, SimdLevel};
use crate::batch::{Batch, TileSpan};
use crate::tiles::{SharedMut, TILE, Task};

/// Lanes per inner step: two AVX-512 registers of f32, so that independent
/// `exp`/division/`log1p` chains overlap.
pub(crate) const LANES: usize = 32;

/// A tile pair's unscaled sums, per lane of a 32-lane step (SPEC accumulates
/// in f64; a fixed lane order keeps every level and thread count at the same
/// bits), and whether a counted logit was not finite.
pub(crate) struct Sums {
    pub elem: [f64; LANES],
    pub pen: [f64; LANES],
    pub bad: bool,
}

/// A strategy's per-pair math for the vector kernels: the pair's loss as two f32
/// terms (their f64 sum is the loss of `(i, j)` and `(j, i)` together; f32 keeps
/// the lane loop at full vector width), and `(g_ij, g_ji) / r` (SPEC §3).
pub(crate) trait VecPair: Copy + Send + Sync {
    /// A power of two that the pair's loss and gradient are multiplied by,
    /// applied by [`run_tile`] to the tile's sum and the gradient's scale
    /// factor instead of per lane: the same bits (a power-of-two factor is
    /// exact before and after the multiply by `r`) at four multiplies fewer
    /// per 16 lanes.
    const SCALE: f32 = 1.0;
    fn pair<const K: u8, const F: bool>(fe: &FastElem, xij: f32, xji: f32, yij: bool, yji: bool) -> [f32; 4];
}

/// What the tile kernels need of a strategy: the portable pair math, and on
/// x86-64 its hand-written AVX-512 form too.
#[cfg(target_arch = "x86_64")]
pub(crate) use super::tile_row_avx512::VecPair512 as TileStrategy;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) use VecPair as TileStrategy;

/// `plain` (with a penalty; without one it takes the row pass).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plain;
/// `dual` on symmetric labels: `2 x plain`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DualSym;
/// `dual` on labels that may differ across the diagonal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DualAsym;
/// `average`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Average;
/// `upper`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upper;
/// `lower`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lower;

impl VecPair for Plain {
    #[inline(always)]
    fn pair<const K: u8, const F: bool>(fe: &FastElem, xij: f32, xji: f32, yij: bool, yji: bool) -> [f32; 4] {
        let a = fe.value_grad::<K, F>(xij, yij);
        let b = fe.value_grad::<K, F>(xji, yji);
        [a.0, b.0, a.1, b.1]
    }
}

impl VecPair for DualSym {
    // Doubling is exact, so this stays exactly twice `plain`.
    const SCALE: f32 = 2.0;

    #[inline(always)]
    fn pair<const K: u8, const F: bool>(
        fe: &FastElem,
        xij: f32,
        xji: f32,
        yij: bool,
        _yji: bool,
    ) -> [f32; 4] {
        let a = fe.value_grad::<K, F>(xij, yij);
        let b = fe.value_grad::<K, F>(xji, yij);
        [a.0, b.0, a.1, b.1]
    }
}

impl VecPair for DualAsym {
    #[inline(always)]
    fn pair<const K: u8, const F: bool>(fe: &FastElem, xij: f32, xji: f32, yij: bool, yji: bool) -> [f32; 4] {
        let a_own = fe.value_grad::<K, F>(xij, yij);
        let a_mirror = fe.value_grad::<K, F>(xij, yji);
        let b_own = fe.value_grad::<K, F>(xji, yji);
        let b_mirror = fe.value_grad::<K, F>(xji, yij);
        [a_own.0 + a_mirror.0, b_own.0 + b_mirror.0, a_own.1 + a_mirror.1, b_own.1 + b_mirror.1]
    }
}

impl VecPair for Average {
    #[inline(always)]
    fn pair<const K: u8, const F: bool>(
        fe: &FastElem,
        xij: f32,
        xji: f32,
        yij: bool,
        _yji: bool,
    ) -> [f32; 4] {
        let a = fe.value_grad::<K, F>(0.5 * xij + 0.5 * xji, yij);
        [a.0, a.0, a.1, a.1]
    }
}

impl VecPair for Upper {
    #[inline(always)]
    fn pair<const K: u8, const F: bool>(
        fe: &FastElem,
        xij: f32,
        _xji: f32,
        yij: bool,
        _yji: bool,
    ) -> [f32; 4] {
        let a = fe.value_grad::<K, F>(xij, yij);
        [a.0, 0.0, a.1, 0.0]
    }
}

impl VecPair for Lower {
    #[inline(always)]
    fn pair<const K: u8, const F: bool>(
        fe: &FastElem,
        _xij: f32,
        xji: f32,
        _yij: bool,
        yji: bool,
    ) -> [f32; 4] {
        let b = fe.value_grad::<K, F>(xji, yji);
        [0.0, b.0, 0.0, b.1]
    }
}

/// What one off-diagonal tile pair needs.
pub(crate) struct TileJob<'a> {
    pub batch: &'a Batch<'a>,
    pub fe: FastElem,
    pub pen: Option<FastPenalty>,
    /// `r_b` and `lambda * r_P` of the task's sample.
    pub r: f32,
    pub wp: f32,
    /// Labels may differ across the diagonal, so the mirror tile's labels are
    /// read (validated symmetric labels need not be transposed).
    pub mirror_labels: bool,
}

/// A worker's tile buffers, reused across its tiles: zeroing or allocating
/// 36 KiB per tile pair cost as much as the arithmetic.
pub(crate) struct Scratch {
    xt: Box<[[f32; TILE]; TILE]>,
    yt: Box<[[u8; TILE]; TILE]>,
    gt: Box<[[f32; TILE]; TILE]>,
    g_back: Box<[[f32; TILE]; TILE]>,
    /// A diagonal tile's own-row gradients, merged with `g_back` at the end.
    g_up: Box<[[f32; TILE]; TILE]>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            xt: Box::new([[0.0; TILE]; TILE]),
            yt: Box::new([[0; TILE]; TILE]),
            gt: Box::new([[0.0; TILE]; TILE]),
            g_back: Box::new([[0.0; TILE]; TILE]),
            g_up: Box::new([[0.0; TILE]; TILE]),
        }
    }
}

/// Row-invariant facts of one row of the tile pair (indices in 32 bits, so the
/// lane loop runs at 16 lanes per AVX-512 register).
struct LaneCtx<'a> {
    job: &'a TileJob<'a>,
    i: u32,
    j0: u32,
    len: u32,
    sep: u32,
    has_mask: bool,
}

/// The math of one pair `(i, j)` as if it were counted: `[loss of (i, j),
/// loss of (j, i), g_ij, g_ji, penalty]`, f32 values only, so the lane loop
/// vectorises at full width (the caller widens the sums to f64 in a separate
/// loop). A non-finite logit fails the call, so its (meaningless) values need
/// no guard.
#[inline(always)]
fn lane_math<S: VecPair, const K: u8, const F: bool, const P: u8, const PK: u8>(
    job: &TileJob<'_>,
    pen: &FastPenalty,
    xij: f32,
    xji: f32,
    yij: u8,
    yji: u8,
) -> [f32; 5] {
    let [la, lb, gij, gji] = S::pair::<K, F>(&job.fe, xij, xji, yij == 1, yji == 1);
    let (mut gij, mut gji) = (job.r * gij, job.r * gji);
    let mut rho = 0.0f32;
    // `P`: whether a penalty is configured, and on what (`PK`: its kind). A
    // run-time test here would be if-converted into selects, evaluating the
    // penalty in every lane.
    if P != PEN_NONE {
        let (v, da, db) = pen.value_grad::<F, P, PK>(xij, xji);
        rho = v;
        gij += job.wp * da;
        gji += job.wp * db;
    }
    [la, lb, gij, gji, rho]
}

/// Whether pair `(i, j0 + jl)` is counted, and whether it is counted with a
/// non-finite logit. `EDGE`: the step may hold positions outside the sample,
/// on or below the diagonal, or inside the `min_sep` band; steps that cannot
/// skip those tests.
#[inline(always)]
fn lane_counted<const EDGE: bool>(
    c: &LaneCtx<'_>,
    jl: usize,
    xij: f32,
    xji: f32,
    yij: u8,
    m: u8,
) -> (bool, bool) {
    let j = c.j0 + jl as u32;
    // Each unordered pair once: j > i (a diagonal tile's lower half and its
    // diagonal are not pairs here), so |i - j| = j - i; j < len implies i < len.
    // `&` and `|`, not `&&` and `||`: branches here kept the loop scalar.
    let inside = !EDGE || ((j > c.i) & (j < c.len) & (j.wrapping_sub(c.i) >= c.sep));
    let cnt = inside & (yij != 255) & (!c.has_mask | (m != 0));
    (cnt, cnt & !(xij.is_finite() & xji.is_finite()))
}

/// Whether every pair `(i, j0 + c .. j0 + c + LANES)` of the row is in the
/// sample, above the diagonal and outside the `min_sep` band.
#[inline(always)]
fn interior(c: &LaneCtx<'_>, first: usize) -> bool {
    let lo = c.j0 + first as u32;
    lo >= c.i + c.sep.max(1) && lo + LANES as u32 <= c.len
}

/// Hints into L2 the lines of row `r` of the tile pair `t` and of its mirror
/// (logits, labels, mask, gradient when written). Spread over the current
/// tile's rows, one row each: a whole tile's worth at once would fill the line
/// fill buffers and stall the arithmetic it is meant to overlap.
#[inline(always)]
fn prefetch_next_row(job: &TileJob<'_>, t: &Task, r: usize, out: SharedMut, grad: bool) {
    let bt = job.batch;
    let n = bt.dims.n;
    let base = bt.offset(t.sample);
    let (i0, ti) = (t.rows.start, t.rows.len());
    let (j0, tj) = (t.cols.start, t.cols.len());
    if r < ti {
        let own = base + (i0 + r) * n + j0;
        prefetch_rows::<true, f32>(&bt.logits[own..], n, 1, tj);
        prefetch_rows::<true, u8>(&bt.labels[own..], n, 1, tj);
        if let Some(m) = bt.mask {
            prefetch_rows::<true, u8>(&m[own..], n, 1, tj);
        }
        if grad {
            out.prefetch::<true>(own, tj);
        }
    }
    if r < tj {
        let mirror = base + (j0 + r) * n + i0;
        prefetch_rows::<true, f32>(&bt.logits[mirror..], n, 1, ti);
        if job.mirror_labels {
            prefetch_rows::<true, u8>(&bt.labels[mirror..], n, 1, ti);
        }
        if grad {
            out.prefetch::<true>(mirror, ti);
        }
    }
}

/// Unscaled element-loss and penalty sums of the tile pair, or `None` when a
/// counted logit is not finite (the caller reruns the tile on the scalar path).
#[inline(always)]
// Transposes index both buffers by (row, column); iterators would hide that.
#[allow(clippy::needless_range_loop)]
fn tile<S: TileStrategy, const K: u8, const G: bool, const F: bool, const P: u8, const H: bool>(
    job: &TileJob<'_>,
    t: &Task,
    next: Option<&Task>,
    out: SharedMut,
    scratch: &mut Scratch,
) -> Option<(f64, f64)> {
    let bt = job.batch;
    let TileSpan { n, base, len, i0, ti, j0, tj, x, y } = bt.span(t);
    // Transposed mirror tile: xt[il][jl] = x[j0 + jl][i0 + il], likewise labels.
    // Only [..ti][..tj] of the buffers is written and read.
    let Scratch { xt, yt, gt, g_back, g_up } = scratch;
    // A diagonal tile is its own mirror: its rows and its transposed rows write
    // the same elements, so both go to buffers and are merged.
    let diagonal = i0 == j0;
    prefetch_rows::<false, f32>(&x[i0 * n + j0..], n, ti, tj);
    if G {
        // The gradient rows of both tiles too (see `prefetch`).
        for il in 0..ti {
            out.prefetch::<false>(base + (i0 + il) * n + j0, tj);
        }
        for jl in 0..tj {
            out.prefetch::<false>(base + (j0 + jl) * n + i0, ti);
        }
    }
    transpose_into(&x[j0 * n + i0..], n, tj, ti, xt);
    if job.mirror_labels {
        transpose_u8_into(&y[j0 * n + i0..], n, tj, ti, yt);
    }
    let mut sums = Sums { elem: [0.0; LANES], pen: [0.0; LANES], bad: false };
    let sep = bt.min_sep;
    for il in 0..ti {
        let i = i0 + il;
        let row = i * n + j0;
        let xr = &x[row..row + tj];
        let yr = &y[row..row + tj];
        let ytr = if job.mirror_labels { &yt[il][..tj] } else { yr };
        let mr = bt.mask.map(|m| &m[base + row..base + row + tj]);
        if let Some(next) = next {
            prefetch_next_row(job, next, il, out, G);
        }
        let mut g_row = [0.0f32; TILE];
        if H {
            #[cfg(target_arch = "x86_64")]
            {
                // Columns j with i + max(sep, 1) <= j < len: the pairs above
                // the diagonal, outside the band, inside the sample.
                let row = Row {
                    lo: (i + sep.min(n).max(1)).saturating_sub(j0).min(tj),
                    hi: len.saturating_sub(j0).min(tj),
                    x: xr,
                    y: yr,
                    xt: &xt[il],
                    yt: ytr,
                    mask: mr,
                };
                // SAFETY: `H` is set only by `tile_avx512`, compiled with
                // AVX-512 F/BW/DQ/VL; every row slice is `tj` long.
                unsafe { tile_row_avx512::run::<S, K, P>(job, &row, &mut g_row, &mut gt[il], &mut sums) }
            }
        } else {
            let ctx = LaneCtx {
                job,
                i: i as u32,
                j0: j0 as u32,
                len: len as u32,
                sep: sep.min(n) as u32,
                has_mask: bt.mask.is_some(),
            };
            // Without a mask the labels stand in for it; `has_mask = false` never reads them as one.
            let lanes_in = LanesIn { x: xr, xt: &xt[il], y: yr, yt: ytr, mask: mr.unwrap_or(yr) };
            row_lanes::<S, K, F, P>(&ctx, &lanes_in, &mut g_row, &mut gt[il], &mut sums);
        }
        if G && diagonal {
            g_up[il][..tj].copy_from_slice(&g_row[..tj]);
        } else if G {
            // SAFETY: this task owns (i, j) for i in I, j in J (`tiles::tasks`).
            unsafe { out.write_row(base + row, &g_row[..tj]) }
        }
    }
    if sums.bad {
        return None;
    }
    if G {
        transpose_into(gt.as_flattened(), TILE, ti, tj, g_back);
        for jl in 0..tj {
            if diagonal {
                // Upper half from the rows, lower half from the mirror; each is
                // zero where the other is set, and both are zero on the diagonal.
                for (b, u) in g_back[jl][..ti].iter_mut().zip(&g_up[jl][..ti]) {
                    *b += *u;
                }
            }
            // SAFETY: this task owns the mirror elements (j, i).
            unsafe { out.write_row(base + (j0 + jl) * n + i0, &g_back[jl][..ti]) }
        }
    }
    Some((sums.elem.iter().sum(), sums.pen.iter().sum()))
}

/// One row's slices for [`row_lanes`], each `tj` long (`xt`: the transposed
/// mirror row, TILE long).
struct LanesIn<'a> {
    x: &'a [f32],
    xt: &'a [f32; TILE],
    y: &'a [u8],
    yt: &'a [u8],
    mask: &'a [u8],
}

/// The portable lane loop over one row of a tile pair, for the penalty's kind.
#[inline(always)]
fn row_lanes<S: VecPair, const K: u8, const F: bool, const P: u8>(
    ctx: &LaneCtx<'_>,
    r: &LanesIn<'_>,
    g_row: &mut [f32; TILE],
    gt_row: &mut [f32; TILE],
    sums: &mut Sums,
) {
    match ctx.job.pen {
        Some(pen) if P != PEN_NONE => match pen.kind() {
            KIND_L1 => row_lanes_as::<S, K, F, P, KIND_L1>(ctx, &pen, r, g_row, gt_row, sums),
            KIND_L2 => row_lanes_as::<S, K, F, P, KIND_L2>(ctx, &pen, r, g_row, gt_row, sums),
            _ => row_lanes_as::<S, K, F, P, KIND_HUBER>(ctx, &pen, r, g_row, gt_row, sums),
        },
        // Without a penalty `PK` is never read.
        _ => row_lanes_as::<S, K, F, PEN_NONE, KIND_L1>(ctx, &FastPenalty::default(), r, g_row, gt_row, sums),
    }
}

/// [`row_lanes`] for penalty kind `PK`.
#[inline(always)]
fn row_lanes_as<S: VecPair, const K: u8, const F: bool, const P: u8, const PK: u8>(
    ctx: &LaneCtx<'_>,
    pen: &FastPenalty,
    r: &LanesIn<'_>,
    g_row: &mut [f32; TILE],
    gt_row: &mut [f32; TILE],
    sums: &mut Sums,
) {
    let tj = r.x.len();
    let full = tj / LANES * LANES;
    for c in (0..full).step_by(LANES) {
        // Fixed-size chunks: no bounds checks inside the lane loop.
        let (Ok(xs), Ok(xts), Ok(ys), Ok(yts), Ok(ms)) = (
            <&[f32; LANES]>::try_from(&r.x[c..c + LANES]),
            <&[f32; LANES]>::try_from(&r.xt[c..c + LANES]),
            <&[u8; LANES]>::try_from(&r.y[c..c + LANES]),
            <&[u8; LANES]>::try_from(&r.yt[c..c + LANES]),
            <&[u8; LANES]>::try_from(&r.mask[c..c + LANES]),
        ) else {
            continue;
        };
        let mut gij = [0.0f32; LANES];
        let mut gji = [0.0f32; LANES];
        // Separate arrays, not `[f32; 2]` pairs: interleaved pairs cost a
        // permute per register.
        let mut la = [0.0f32; LANES];
        let mut lb = [0.0f32; LANES];
        let mut ps = [0.0f32; LANES];
        let mut nbs = [false; LANES];
        // The math for every lane, then the counted-set selects in a loop of
        // their own: with both in one loop LLVM left the AVX2 build scalar
        // (each select became a branch around the math), 6x slower.
        for s in 0..LANES {
            [la[s], lb[s], gij[s], gji[s], ps[s]] =
                lane_math::<S, K, F, P, PK>(ctx.job, pen, xs[s], xts[s], ys[s], yts[s]);
        }
        macro_rules! keep_counted {
            ($edge:expr) => {
                for s in 0..LANES {
                    let (cnt, bad) = lane_counted::<$edge>(ctx, c + s, xs[s], xts[s], ys[s], ms[s]);
                    // Selects on every lane, so the loop stays branch-free.
                    let keep = |v: f32| if cnt { v } else { 0.0 };
                    (la[s], lb[s], gij[s], gji[s], ps[s]) =
                        (keep(la[s]), keep(lb[s]), keep(gij[s]), keep(gji[s]), keep(ps[s]));
                    nbs[s] = bad;
                }
            };
        }
        if interior(ctx, c) {
            keep_counted!(false)
        } else {
            keep_counted!(true)
        }
        // Widening in a loop of its own keeps the one above at 16 f32 lanes.
        let mut bads = 0u8;
        for s in 0..LANES {
            sums.elem[s] += f64::from(la[s]) + f64::from(lb[s]);
            if P != PEN_NONE {
                sums.pen[s] += f64::from(ps[s]);
            }
            bads |= u8::from(nbs[s]);
        }
        sums.bad |= bads != 0;
        g_row[c..c + LANES].copy_from_slice(&gij);
        gt_row[c..c + LANES].copy_from_slice(&gji);
    }
    for jl in full..tj {
        let (cnt, bad) = lane_counted::<true>(ctx, jl, r.x[jl], r.xt[jl], r.y[jl], r.mask[jl]);
        let [la, lb, gij, gji, rho] = if cnt {
            lane_math::<S, K, F, P, PK>(ctx.job, pen, r.x[jl], r.xt[jl], r.y[jl], r.yt[jl])
        } else {
            [0.0; 5]
        };
        sums.elem[jl - full] += f64::from(la) + f64::from(lb);
        sums.pen[jl - full] += f64::from(rho);
        g_row[jl] = gij;
        gt_row[jl] = gji;
        sums.bad |= bad;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
fn tile_avx512<S: TileStrategy, const K: u8, const G: bool, const P: u8>(
    job: &TileJob<'_>,
    t: &Task,
    next: Option<&Task>,
    out: SharedMut,
    scratch: &mut Scratch,
) -> Option<(f64, f64)> {
    tile::<S, K, G, true, P, true>(job, t, next, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_avx2<S: TileStrategy, const K: u8, const G: bool, const P: u8>(
    job: &TileJob<'_>,
    t: &Task,
    next: Option<&Task>,
    out: SharedMut,
    scratch: &mut Scratch,
) -> Option<(f64, f64)> {
    tile::<S, K, G, true, P, false>(job, t, next, out, scratch)
}

fn tile_at<S: TileStrategy, const K: u8, const G: bool, const P: u8>(
    level: SimdLevel,
    job: &TileJob<'_>,
    t: &Task,
    next: Option<&Task>,
    out: SharedMut,
    scratch: &mut Scratch,
) -> Option<(f64, f64)> {
    match level {
        // SAFETY: `CpuBackend` only holds a level that `SimdLevel::available` detected.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { tile_avx512::<S, K, G, P>(job, t, next, out, scratch) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { tile_avx2::<S, K, G, P>(job, t, next, out, scratch) },
        _ => tile::<S, K, G, PORTABLE_FMA, P, false>(job, t, next, out, scratch),
    }
}

/// Runs one tile pair with strategy `S` (and hints the lines of `next`, the
/// tile pair this worker most likely runs after it, into L2): every unordered
/// off-diagonal pair of it (on a diagonal tile, the gradient's diagonal is left at zero for the
/// caller's diagonal kernel).
pub(crate) fn run_tile<S: TileStrategy>(
    level: SimdLevel,
    job: &TileJob<'_>,
    t: &Task,
    next: Option<&Task>,
    out: SharedMut,
    grad: bool,
    scratch: &mut Scratch,
) -> Option<(f64, f64)> {
    // Before the macro: a `job` bound after its definition would not be the one it sees.
    let job = &TileJob { r: S::SCALE * job.r, ..*job };
    macro_rules! by_kind {
        ($g:expr, $p:expr) => {
            match job.fe.kind {
                GAMMA_0 => tile_at::<S, GAMMA_0, $g, $p>(level, job, t, next, out, scratch),
                GAMMA_1 => tile_at::<S, GAMMA_1, $g, $p>(level, job, t, next, out, scratch),
                GAMMA_2 => tile_at::<S, GAMMA_2, $g, $p>(level, job, t, next, out, scratch),
                _ => tile_at::<S, GAMMA_ANY, $g, $p>(level, job, t, next, out, scratch),
            }
        };
    }
    let sums = match (grad, job.pen.map_or(PEN_NONE, |p| p.on())) {
        (true, PEN_LOGITS) => by_kind!(true, PEN_LOGITS),
        (true, PEN_PROBS) => by_kind!(true, PEN_PROBS),
        (true, _) => by_kind!(true, PEN_NONE),
        (false, PEN_LOGITS) => by_kind!(false, PEN_LOGITS),
        (false, PEN_PROBS) => by_kind!(false, PEN_PROBS),
        (false, _) => by_kind!(false, PEN_NONE),
    };
    sums.map(|(elem, pen)| (f64::from(S::SCALE) * elem, pen))
}
