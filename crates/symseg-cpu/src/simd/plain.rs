//! `plain`, `upper` and `lower` without a penalty need no transposed twin, so
//! they run row by row: one contiguous pass over logits, labels (and mask) that
//! writes the gradient, vectorised across 32 lanes, parallel over fixed blocks
//! of rows. `upper` and `lower` evaluate the element loss on their triangle
//! only; on the other half they only check that no counted logit is
//! non-finite (SPEC §1 counts both halves) and write zeros.

use super::elem::{FastElem, GAMMA_0, GAMMA_1, GAMMA_2, GAMMA_ANY};
use super::{PORTABLE_FMA, SimdLevel};
use crate::batch::{Batch, lowest};
use crate::par::{map_chunks_mut, map_tasks};

/// Rows per parallel task: fixed, so the sum order (and result) never depends
/// on the thread count.
const ROWS: usize = 8;
/// Lanes per inner step: two AVX-512 registers of f32, so that two independent
/// dependency chains (`exp`, division, `log1p`) overlap.
const LANES: usize = 32;

/// Which part of each row a strategy evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Triangle {
    /// Every column (`plain`).
    Full,
    /// Columns `j >= i` (`upper`).
    Upper,
    /// Columns `j <= i` (`lower`).
    Lower,
    /// Every column, loss and gradient doubled: `dual` on symmetric labels,
    /// which is exactly twice `plain` (doubling is exact in floating point).
    Twice,
}

/// Everything a block of rows needs.
struct Rows<'a> {
    batch: &'a Batch<'a>,
    fe: FastElem,
    tri: Triangle,
    /// Reduction factor per sample.
    r: &'a [f64],
    /// First global row (`b * n + i`) of the block, and the row count.
    first: usize,
    count: usize,
}

/// Where one row is and what counts in it.
struct RowCtx<'a> {
    x: &'a [f32],
    y: &'a [u8],
    m: &'a [u8],
    /// Row index within its sample, the sample's length, and `min_sep` (32-bit,
    /// so that the lane loop runs at 16 lanes per AVX-512 register).
    i: i32,
    len: i32,
    sep: i32,
    row_ok: bool,
    /// The columns `lo..hi` whose loss is evaluated (the strategy's triangle).
    lo: i32,
    hi: i32,
    r: f32,
}

/// How a step of `LANES` columns relates to the row's counted set and triangle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Every position is in the sample, outside the `min_sep` band and in the
    /// triangle: only labels and mask decide what counts.
    Interior,
    /// Anything else inside the triangle's column range: every test per lane.
    Edge,
    /// No position is in the triangle: only the non-finite check.
    Outside,
}

/// One element `j` of the row: `(loss term, gradient, non-finite counted?)`. A
/// plain `#[inline(always)]` fn of values, not a closure writing through
/// references: closures do not inherit the caller's target features, and
/// bounds-checked writes would keep the lane loop from vectorising. `S` is a
/// [`Step`] as a number (0 interior, 1 edge, 2 outside), so that each kind of
/// step compiles to its own loop.
#[inline(always)]
fn lane<const K: u8, const M: bool, const F: bool, const S: u8>(
    fe: &FastElem,
    c: &RowCtx<'_>,
    j: usize,
    xv: f32,
    yv: u8,
    mv: u8,
) -> (f32, f32, bool) {
    let jj = j as i32;
    let inside = S == 0 || (c.row_ok && jj < c.len && (jj + c.sep <= c.i || jj >= c.i + c.sep));
    let cnt = inside && yv != 255 && (!M || mv != 0);
    let bad = cnt && !xv.is_finite();
    if S == 2 {
        return (0.0, 0.0, bad);
    }
    let active = cnt && (S == 0 || (jj >= c.lo && jj < c.hi));
    // A non-finite counted logit fails the call, so its (meaningless) values
    // need no guard; uncounted ones are selected away.
    let (l, d) = fe.value_grad::<K, F>(xv, yv == 1);
    (if active { l } else { 0.0 }, if active { c.r * d } else { 0.0 }, bad)
}

/// Which [`Step`] `base..base + LANES` of row `c.i` is.
#[inline(always)]
fn step(c: &RowCtx<'_>, base: usize) -> Step {
    let (lo, hi) = (base as i64, (base + LANES) as i64);
    let (i, sep) = (i64::from(c.i), i64::from(c.sep));
    if hi <= i64::from(c.lo) || lo >= i64::from(c.hi) {
        Step::Outside
    } else if c.row_ok
        && lo >= i64::from(c.lo)
        && hi <= i64::from(c.hi.min(c.len))
        && (hi - 1 + sep <= i || lo >= i + sep)
    {
        Step::Interior
    } else {
        Step::Edge
    }
}

/// One row's loss sum (unscaled) and whether a counted logit was not finite.
#[inline(always)]
fn row<const K: u8, const G: bool, const M: bool, const F: bool>(
    a: &Rows<'_>,
    k: usize,
    g: &mut [f32],
) -> (f64, bool) {
    let bt = a.batch;
    let n = bt.dims.n;
    let (b, i) = (k / n, k % n);
    let len = bt.len(b);
    let o = k * n;
    let y = &bt.labels[o..o + n];
    let c = RowCtx {
        x: &bt.logits[o..o + n],
        y,
        // Without a mask the labels stand in for it; `M = false` never reads them as one.
        m: bt.mask.map_or(y, |mk| &mk[o..o + n]),
        i: i as i32,
        len: len as i32,
        sep: bt.min_sep.min(n) as i32,
        row_ok: i < len,
        lo: if a.tri == Triangle::Upper { i as i32 } else { 0 },
        hi: if a.tri == Triangle::Lower { (i + 1).min(len) as i32 } else { len as i32 },
        r: a.r[b] as f32,
    };
    // A local copy: selecting between fields read through `a` let LLVM load
    // the selected field per lane, a gather (16 loads per register) that it
    // emitted for the loss-only loops and that made them slower than the
    // loops that also write the gradient.
    let fe = a.fe;
    let mut acc = [0.0f64; LANES];
    // Per lane, so that the flag stays a vector operation (an `any` per step
    // became 16 byte extracts).
    let mut bads = [0u8; LANES];
    let full = n / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        // Fixed-size chunks: no bounds checks inside the lane loop.
        let (Ok(xs), Ok(ys), Ok(ms)) = (
            <&[f32; LANES]>::try_from(&c.x[base..base + LANES]),
            <&[u8; LANES]>::try_from(&c.y[base..base + LANES]),
            <&[u8; LANES]>::try_from(&c.m[base..base + LANES]),
        ) else {
            continue;
        };
        let mut gs = [0.0f32; LANES];
        let mut ls = [0.0f32; LANES];
        let mut nbs = [false; LANES];
        match step(&c, base) {
            Step::Interior => {
                for s in 0..LANES {
                    (ls[s], gs[s], nbs[s]) = lane::<K, M, F, 0>(&fe, &c, base + s, xs[s], ys[s], ms[s]);
                }
            }
            Step::Edge => {
                for s in 0..LANES {
                    (ls[s], gs[s], nbs[s]) = lane::<K, M, F, 1>(&fe, &c, base + s, xs[s], ys[s], ms[s]);
                }
            }
            Step::Outside => {
                for s in 0..LANES {
                    (ls[s], gs[s], nbs[s]) = lane::<K, M, F, 2>(&fe, &c, base + s, xs[s], ys[s], ms[s]);
                }
            }
        }
        // A separate loop: widening to f64 inside the one above would make the
        // compiler run the f32 math at 8 lanes to match the f64 registers.
        for s in 0..LANES {
            acc[s] += f64::from(ls[s]);
            bads[s] |= u8::from(nbs[s]);
        }
        if G {
            if a.tri == Triangle::Twice {
                for v in &mut gs {
                    *v *= 2.0;
                }
            }
            g[base..base + LANES].copy_from_slice(&gs);
        }
    }
    let mut bad = bads.iter().any(|&b| b != 0);
    for j in full..n {
        let (l, d, nb) = lane::<K, M, F, 1>(&fe, &c, j, c.x[j], c.y[j], c.m[j]);
        acc[j - full] += f64::from(l);
        if G {
            g[j] = if a.tri == Triangle::Twice { 2.0 * d } else { d };
        }
        bad |= nb;
    }
    let sum: f64 = acc.iter().sum();
    (if a.tri == Triangle::Twice { 2.0 * sum } else { sum }, bad)
}

/// A block of rows: the loss scaled by each row's sample factor, and the lowest
/// flat index of a non-finite counted logit.
#[inline(always)]
fn block<const K: u8, const G: bool, const M: bool, const F: bool>(
    a: &Rows<'_>,
    g: &mut [f32],
) -> (f64, Option<usize>) {
    let n = a.batch.dims.n;
    let mut total = 0.0;
    let mut bad = None;
    for t in 0..a.count {
        let k = a.first + t;
        let gr = if G { &mut g[t * n..(t + 1) * n] } else { &mut g[..0] };
        let (sum, any_bad) = row::<K, G, M, F>(a, k, gr);
        total += a.r[k / n] * sum;
        if any_bad && bad.is_none() {
            bad = first_bad(a.batch, k);
        }
    }
    (total, bad)
}

/// The lowest index in row `k` whose logit is counted and not finite.
fn first_bad(bt: &Batch<'_>, k: usize) -> Option<usize> {
    let n = bt.dims.n;
    let (b, i) = (k / n, k % n);
    let region = bt.region(b);
    (0..n)
        .find(|&j| {
            let kk = k * n + j;
            i < region.len
                && j < region.len
                && region.counts(i, j, bt.labels[kk])
                && !bt.logits[kk].is_finite()
        })
        .map(|j| k * n + j)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
fn block_avx512<const K: u8, const G: bool, const M: bool>(
    a: &Rows<'_>,
    g: &mut [f32],
) -> (f64, Option<usize>) {
    block::<K, G, M, true>(a, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn block_avx2<const K: u8, const G: bool, const M: bool>(
    a: &Rows<'_>,
    g: &mut [f32],
) -> (f64, Option<usize>) {
    block::<K, G, M, true>(a, g)
}

fn block_at<const K: u8, const G: bool, const M: bool>(
    level: SimdLevel,
    a: &Rows<'_>,
    g: &mut [f32],
) -> (f64, Option<usize>) {
    match level {
        // SAFETY: `CpuBackend` only holds a level that `SimdLevel::available` detected on this CPU.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { block_avx512::<K, G, M>(a, g) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { block_avx2::<K, G, M>(a, g) },
        _ => block::<K, G, M, PORTABLE_FMA>(a, g),
    }
}

fn run_typed<const K: u8, const M: bool>(
    level: SimdLevel,
    batch: &Batch<'_>,
    fe: FastElem,
    tri: Triangle,
    r: &[f64],
    grad: Option<&mut [f32]>,
) -> (f64, Option<usize>) {
    let n = batch.dims.n;
    let total_rows = batch.dims.batch * n;
    let rows = |c: usize| Rows { batch, fe, tri, r, first: c * ROWS, count: ROWS.min(total_rows - c * ROWS) };
    let parts: Vec<(f64, Option<usize>)> = match grad {
        Some(g) => {
            map_chunks_mut(batch.parallel, g, ROWS * n, |c, gc| block_at::<K, true, M>(level, &rows(c), gc))
        }
        None => map_tasks(
            batch.parallel,
            total_rows.div_ceil(ROWS),
            || (),
            |_, c| block_at::<K, false, M>(level, &rows(c), &mut []),
        ),
    };
    parts.into_iter().fold((0.0, None), |(s, bad), (t, b)| (s + t, lowest(bad, b)))
}

/// The reduced `plain` (`upper`, `lower`: [`Triangle`]) loss (per-sample
/// factors `r`) and, when given, its gradient. Returns the loss and the lowest
/// index of a non-finite counted logit.
pub(crate) fn run(
    level: SimdLevel,
    batch: &Batch<'_>,
    tri: Triangle,
    loss: &symseg_core::ElementLoss,
    r: &[f64],
    grad: Option<&mut [f32]>,
) -> (f64, Option<usize>) {
    let fe = FastElem::new(loss, level.fused());
    macro_rules! by_mask {
        ($k:expr) => {
            if batch.mask.is_some() {
                run_typed::<$k, true>(level, batch, fe, tri, r, grad)
            } else {
                run_typed::<$k, false>(level, batch, fe, tri, r, grad)
            }
        };
    }
    match fe.kind {
        GAMMA_0 => by_mask!(GAMMA_0),
        GAMMA_1 => by_mask!(GAMMA_1),
        GAMMA_2 => by_mask!(GAMMA_2),
        _ => by_mask!(GAMMA_ANY),
    }
}
