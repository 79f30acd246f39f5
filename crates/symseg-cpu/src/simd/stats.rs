//! SPEC §5–6's thresholded confusion counts and asymmetry for one tile pair,
//! vectorised like the loss tiles: the mirror tile's logits are transposed
//! into a local buffer, so both `x_ij` and `x_ji` are read along a row.
//!
//! The threshold test `sigmoid(z) >= t` is monotone in `z`, so it is replaced
//! by `z >= z*` with `z*` found once per call by bisection over the f64 values
//! ([`Predictor::new`]): the same answer as the f64 reference for every `z`,
//! without an `exp` per element. The asymmetry term needs the scores
//! themselves; their gap is evaluated in f64 lanes ([`sigmoid_gap_f64`]).

use symseg_core::SymMode;
use symseg_core::metrics::{Confusion, PredictConfig, SampleStats, decision_bound};

use super::fastmath::sigmoid_gap_f64;
use super::prefetch::prefetch_rows;
use super::transpose::transpose_into;
use super::{PORTABLE_FMA, SimdLevel};
use crate::batch::{Batch, TileSpan};
use crate::tiles::{TILE, Task};

/// Lanes per inner step (as the loss tiles).
const LANES: usize = 32;

const MODE_NONE: u8 = 0;
const MODE_AVERAGE: u8 = 1;
const MODE_UPPER: u8 = 2;
const MODE_LOWER: u8 = 3;

/// The threshold of a [`PredictConfig`] as a bound on `z`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Predictor {
    mode: u8,
    /// Smallest f32 `x` with `predicted(x)`: the test for modes that pick one logit.
    x_star: f32,
    /// `2 z*`: `average` predicts positive iff `x_ij + x_ji >= 2 z*` in f64
    /// (the sum of two f32 is what the reference halves; halving is exact).
    two_z_star: f64,
}

impl Predictor {
    /// Resolves `pred` (already validated: threshold in [0, 1]).
    pub fn new(pred: &PredictConfig) -> Predictor {
        let z_star = decision_bound(pred.threshold);
        // The smallest f32 whose f64 value reaches z*.
        let mut x_star = z_star as f32;
        if f64::from(x_star) < z_star {
            x_star = x_star.next_up();
        }
        while x_star > f32::NEG_INFINITY && f64::from(x_star.next_down()) >= z_star {
            x_star = x_star.next_down();
        }
        let mode = match pred.mode {
            SymMode::None => MODE_NONE,
            SymMode::Average => MODE_AVERAGE,
            SymMode::Upper => MODE_UPPER,
            SymMode::Lower => MODE_LOWER,
        };
        Predictor { mode, x_star, two_z_star: 2.0 * z_star }
    }
}

/// Row-invariant facts of one row of the tile pair.
struct RowCtx {
    i: u32,
    j0: u32,
    len: u32,
    sep: u32,
    has_mask: bool,
    x_star: f32,
    two_z_star: f64,
}

/// Whether `(i, j)` and `(j, i)` are predicted positive under `MODE` (SPEC §5),
/// from their logits and a [`Predictor`]'s bounds.
#[inline(always)]
fn decide<const MODE: u8>(xij: f32, xji: f32, x_star: f32, two_z_star: f64) -> (bool, bool) {
    match MODE {
        MODE_NONE => (xij >= x_star, xji >= x_star),
        MODE_UPPER => (xij >= x_star, xij >= x_star),
        MODE_LOWER => (xji >= x_star, xji >= x_star),
        _ => {
            let p = f64::from(xij) + f64::from(xji) >= two_z_star;
            (p, p)
        }
    }
}

/// One unordered pair's records (both orders): `(tp, fp, fn, counted, |s_ij - s_ji|, non-finite counted?)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pair<const MODE: u8, const F: bool, const EDGE: bool>(
    c: &RowCtx,
    jl: usize,
    xij: f32,
    xji: f32,
    y: u8,
    m: u8,
) -> (u32, u32, u32, u32, f64, bool) {
    let j = c.j0 + jl as u32;
    // `&` and `|`, not `&&` and `||`: their branches kept the AVX2 loop scalar.
    let inside = !EDGE || ((j > c.i) & (j < c.len) & (j.wrapping_sub(c.i) >= c.sep));
    let cnt = inside & (y != 255) & (!c.has_mask | (m != 0));
    let fin = xij.is_finite() & xji.is_finite();
    let (pij, pji) = decide::<MODE>(xij, xji, c.x_star, c.two_z_star);
    let pos = y == 1;
    let tp = u32::from(pij & pos) + u32::from(pji & pos);
    let fp = u32::from(pij & !pos) + u32::from(pji & !pos);
    let fne = u32::from(!pij & pos) + u32::from(!pji & pos);
    let asym = sigmoid_gap_f64::<F>(f64::from(xij), f64::from(xji));
    (
        if cnt { tp } else { 0 },
        if cnt { fp } else { 0 },
        if cnt { fne } else { 0 },
        u32::from(cnt),
        if cnt { asym } else { 0.0 },
        cnt & !fin,
    )
}

/// The stats of the pairs `i <= j` of tile pair `t`, or `None` if a counted
/// logit is not finite (the caller reruns it on the scalar path for the index).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the transposed buffer is indexed by (row, column)
fn tile<const MODE: u8, const F: bool>(
    bt: &Batch<'_>,
    t: &Task,
    p: &Predictor,
    xt: &mut [[f32; TILE]; TILE],
) -> Option<SampleStats> {
    let TileSpan { n, base, len, i0, ti, j0, tj, x, y } = bt.span(t);
    prefetch_rows::<false, f32>(&x[i0 * n + j0..], n, ti, tj);
    transpose_into(&x[j0 * n + i0..], n, tj, ti, xt);
    let (mut tp, mut fp, mut fne, mut pairs) = ([0u32; LANES], [0u32; LANES], [0u32; LANES], [0u32; LANES]);
    let mut asym = [0.0f64; LANES];
    let mut bads = [0u8; LANES];
    let mut bad = false;
    for il in 0..ti {
        let i = i0 + il;
        let row = i * n + j0;
        let xr = &x[row..row + tj];
        let yr = &y[row..row + tj];
        // Without a mask the labels stand in for it; `has_mask = false` never reads them as one.
        let mr = bt.mask.map_or(yr, |m| &m[base + row..base + row + tj]);
        let c = RowCtx {
            i: i as u32,
            j0: j0 as u32,
            len: len as u32,
            sep: bt.min_sep.min(n) as u32,
            has_mask: bt.mask.is_some(),
            x_star: p.x_star,
            two_z_star: p.two_z_star,
        };
        let full = tj / LANES * LANES;
        for s0 in (0..full).step_by(LANES) {
            let (Ok(xs), Ok(xts), Ok(ys), Ok(ms)) = (
                <&[f32; LANES]>::try_from(&xr[s0..s0 + LANES]),
                <&[f32; LANES]>::try_from(&xt[il][s0..s0 + LANES]),
                <&[u8; LANES]>::try_from(&yr[s0..s0 + LANES]),
                <&[u8; LANES]>::try_from(&mr[s0..s0 + LANES]),
            ) else {
                continue;
            };
            let lo = c.j0 + s0 as u32;
            let interior = lo >= c.i + c.sep.max(1) && lo + LANES as u32 <= c.len;
            // Separate arrays, not an array of tuples: tuples are not vectorised.
            let (mut a, mut b, mut d, mut e) = ([0u32; LANES], [0u32; LANES], [0u32; LANES], [0u32; LANES]);
            let mut v = [0.0f64; LANES];
            let mut f = [false; LANES];
            if interior {
                for s in 0..LANES {
                    (a[s], b[s], d[s], e[s], v[s], f[s]) =
                        pair::<MODE, F, false>(&c, s0 + s, xs[s], xts[s], ys[s], ms[s]);
                }
            } else {
                for s in 0..LANES {
                    (a[s], b[s], d[s], e[s], v[s], f[s]) =
                        pair::<MODE, F, true>(&c, s0 + s, xs[s], xts[s], ys[s], ms[s]);
                }
            }
            for s in 0..LANES {
                tp[s] += a[s];
                fp[s] += b[s];
                fne[s] += d[s];
                pairs[s] += e[s];
                asym[s] += v[s];
                bads[s] |= u8::from(f[s]);
            }
        }
        for jl in full..tj {
            let o = pair::<MODE, F, true>(&c, jl, xr[jl], xt[il][jl], yr[jl], mr[jl]);
            let s = jl - full;
            (tp[s], fp[s], fne[s], pairs[s]) = (tp[s] + o.0, fp[s] + o.1, fne[s] + o.2, pairs[s] + o.3);
            asym[s] += o.4;
            bad |= o.5;
        }
    }
    if bad || bads.iter().any(|&b| b != 0) {
        return None;
    }
    let sum = |a: &[u32; LANES]| a.iter().map(|&v| u64::from(v)).sum::<u64>();
    let (tp, fp, fne, pairs) = (sum(&tp), sum(&fp), sum(&fne), sum(&pairs));
    let mut out = SampleStats {
        confusion: Confusion { tp, fp, fn_: fne, tn: 2 * pairs - tp - fp - fne },
        asym_sum: asym.iter().sum(),
        asym_pairs: pairs,
    };
    // A diagonal tile's own diagonal: one record each, no asymmetry term
    // (every mode's z_ii is x_ii).
    if i0 == j0 && bt.min_sep == 0 {
        for i in t.rows.clone() {
            let k = i * n + i;
            let counted = y[k] != 255 && bt.mask.is_none_or(|m| m[base + k] != 0);
            if !counted {
                continue;
            }
            if !x[k].is_finite() {
                return None;
            }
            out.confusion.record(x[k] >= p.x_star, y[k] == 1);
        }
    }
    Some(out)
}

// Inlined into the `#[target_feature]` wrappers, so that they compile it for their level.
#[inline(always)]
fn tile_mode<const F: bool>(
    bt: &Batch<'_>,
    t: &Task,
    p: &Predictor,
    xt: &mut [[f32; TILE]; TILE],
) -> Option<SampleStats> {
    match p.mode {
        MODE_NONE => tile::<MODE_NONE, F>(bt, t, p, xt),
        MODE_AVERAGE => tile::<MODE_AVERAGE, F>(bt, t, p, xt),
        MODE_UPPER => tile::<MODE_UPPER, F>(bt, t, p, xt),
        _ => tile::<MODE_LOWER, F>(bt, t, p, xt),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
fn tile_avx512(bt: &Batch<'_>, t: &Task, p: &Predictor, xt: &mut [[f32; TILE]; TILE]) -> Option<SampleStats> {
    tile_mode::<true>(bt, t, p, xt)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_avx2(bt: &Batch<'_>, t: &Task, p: &Predictor, xt: &mut [[f32; TILE]; TILE]) -> Option<SampleStats> {
    tile_mode::<true>(bt, t, p, xt)
}

/// [`tile`] at `level`, with `xt` the worker's transpose buffer.
pub(crate) fn stats_tile(
    level: SimdLevel,
    bt: &Batch<'_>,
    t: &Task,
    p: &Predictor,
    xt: &mut [[f32; TILE]; TILE],
) -> Option<SampleStats> {
    match level {
        // SAFETY: `CpuBackend` only holds a level that `SimdLevel::available` detected.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { tile_avx512(bt, t, p, xt) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { tile_avx2(bt, t, p, xt) },
        _ => tile_mode::<PORTABLE_FMA>(bt, t, p, xt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symseg_core::metrics::{predicted, sym_pair};
    use symseg_core::rng::Rng;

    #[test]
    fn the_bound_decides_exactly_as_the_threshold() {
        let mut rng = Rng::new(0x57A7);
        let thresholds = [0.0, 1e-300, 1e-9, 0.1, 0.3, 0.5, 0.5 + 1e-16, 0.77, 0.999_999, 1.0 - 1e-16, 1.0];
        for t in thresholds {
            for mode in [SymMode::None, SymMode::Average, SymMode::Upper, SymMode::Lower] {
                let cfg = PredictConfig { mode, threshold: t };
                let p = Predictor::new(&cfg);
                let z = if p.two_z_star.is_finite() { (p.two_z_star / 2.0) as f32 } else { 0.0 };
                // Random logits, and logits within a few ulp of the bound.
                let mut xs: Vec<f32> = (0..2000).map(|_| rng.normal() as f32 * 8.0).collect();
                let mut v = z;
                for _ in 0..8 {
                    xs.push(v);
                    v = v.next_down();
                }
                v = z;
                for _ in 0..8 {
                    xs.push(v);
                    v = v.next_up();
                }
                xs.extend([-80.0, 80.0, 0.0, -0.0, f32::MAX, -f32::MAX]);
                for w in xs.windows(2) {
                    let (a, b) = (w[0], w[1]);
                    let (zij, zji) = sym_pair(mode, a, b);
                    let want = (predicted(zij, t), predicted(zji, t));
                    let got = match p.mode {
                        MODE_NONE => decide::<MODE_NONE>(a, b, p.x_star, p.two_z_star),
                        MODE_UPPER => decide::<MODE_UPPER>(a, b, p.x_star, p.two_z_star),
                        MODE_LOWER => decide::<MODE_LOWER>(a, b, p.x_star, p.two_z_star),
                        _ => decide::<MODE_AVERAGE>(a, b, p.x_star, p.two_z_star),
                    };
                    assert_eq!(got, want, "t={t} mode={mode:?} x=({a}, {b})");
                }
            }
        }
    }
}
