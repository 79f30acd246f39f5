//! The fused loss pass: validation scan, then one tiled pass that evaluates the
//! strategy and the penalty and writes the gradient.

mod kernels;

use symseg_core::elem::PenaltyFn;
use symseg_core::{LossConfig, LossReport, RegionCounts, Result, Strategy};

use crate::batch::{Batch, lowest, non_finite_index};
use crate::par::map_tasks;
use crate::simd::SimdLevel;
use crate::simd::elem::FastElem;
use crate::simd::penalty::FastPenalty;
use crate::simd::plain::Triangle;
use crate::simd::tiled;
use crate::tiles::{self, SharedMut, Task};
use kernels::{Average, Dual, Lower, Plain, StrategyKernel, Upper};

/// Per-sample factors applied to a task's unscaled sums.
#[derive(Debug, Clone, Copy, Default)]
struct Scales {
    /// Reduction factor `r_b` of the strategy loss.
    r: f64,
    /// `lambda * r_P` of the penalty.
    wp: f64,
}

/// One task's unscaled sums and the lowest index of a non-finite counted logit.
#[derive(Debug, Clone, Copy, Default)]
struct Partial {
    elem: f64,
    pen: f64,
    bad: Option<usize>,
}

/// Computes the loss, and the gradient into `grad` when given (same length as
/// the logits). Shapes, lengths and `cfg` are validated by the caller.
pub(crate) fn run(
    batch: &Batch<'_>,
    cfg: &LossConfig,
    grad: Option<&mut [f32]>,
    level: SimdLevel,
) -> Result<LossReport> {
    let counts = batch.scan(!cfg.allow_asymmetric_labels, level)?;
    let r = cfg.reduction.factors(&counts.iter().map(|c| c.terms(cfg.strategy)).collect::<Vec<_>>());
    let lambda = cfg.penalty.map_or(0.0, |p| p.weight);
    let rp = cfg.reduction.factors(&counts.iter().map(|c| c.pairs).collect::<Vec<_>>());
    let scales: Vec<Scales> = r.iter().zip(&rp).map(|(&r, &rp)| Scales { r, wp: lambda * rp }).collect();

    let row_pass = match cfg.strategy {
        Strategy::Plain => Some(Triangle::Full),
        Strategy::Upper => Some(Triangle::Upper),
        Strategy::Lower => Some(Triangle::Lower),
        Strategy::Dual if !cfg.allow_asymmetric_labels => Some(Triangle::Twice),
        _ => None,
    };
    let (element_loss, penalty, bad) = match row_pass {
        // No transposed twin needed: one vectorised row pass.
        Some(tri) if cfg.penalty.is_none() => {
            let (loss, bad) = crate::simd::plain::run(level, batch, tri, &cfg.loss, &r, grad);
            (loss, 0.0, bad)
        }
        _ => tiled(batch, cfg, &scales, grad, level),
    };
    if let Some(k) = bad {
        return Err(batch.non_finite(k));
    }
    Ok(RegionCounts::report(&counts, cfg.strategy, element_loss, penalty))
}

/// The tile-pair pass for strategies that read both twins (and any penalty):
/// `(element loss, penalty, lowest non-finite index)`.
fn tiled(
    batch: &Batch<'_>,
    cfg: &LossConfig,
    scales: &[Scales],
    grad: Option<&mut [f32]>,
    level: SimdLevel,
) -> (f64, f64, Option<usize>) {
    let f = FastElem::new(&cfg.loss, level.fused());
    let pen = cfg.penalty.as_ref().map(PenaltyFn::<f32>::new);
    let symmetric = !cfg.allow_asymmetric_labels;
    let fp = cfg.penalty.as_ref().map(FastPenalty::new);
    let parts = match cfg.strategy {
        Strategy::Plain => {
            dispatch::<_, tiled::Plain>(symmetric, &Plain(f), pen, fp, batch, scales, grad, level)
        }
        Strategy::Dual if symmetric => {
            dispatch::<_, tiled::DualSym>(symmetric, &Dual(f), pen, fp, batch, scales, grad, level)
        }
        Strategy::Dual => {
            dispatch::<_, tiled::DualAsym>(symmetric, &Dual(f), pen, fp, batch, scales, grad, level)
        }
        Strategy::Average => {
            dispatch::<_, tiled::Average>(symmetric, &Average(f), pen, fp, batch, scales, grad, level)
        }
        Strategy::Upper => {
            dispatch::<_, tiled::Upper>(symmetric, &Upper(f), pen, fp, batch, scales, grad, level)
        }
        Strategy::Lower => {
            dispatch::<_, tiled::Lower>(symmetric, &Lower(f), pen, fp, batch, scales, grad, level)
        }
    };
    let (mut element_loss, mut penalty, mut bad) = (0.0, 0.0, None::<usize>);
    for (t, p) in parts {
        let s = scales[t.sample];
        element_loss += s.r * p.elem;
        penalty += s.wp * p.pen;
        bad = lowest(bad, p.bad);
    }
    (element_loss, penalty, bad)
}

/// Runs every task of the batch with kernel `k`, in parallel, and returns the
/// partial sums in task order (so their sum is deterministic).
#[allow(clippy::too_many_arguments)]
fn dispatch<K: StrategyKernel, V: tiled::TileStrategy>(
    symmetric_labels: bool,
    k: &K,
    pen: Option<PenaltyFn<f32>>,
    fast_pen: Option<FastPenalty>,
    batch: &Batch<'_>,
    scales: &[Scales],
    grad: Option<&mut [f32]>,
    level: SimdLevel,
) -> Vec<(Task, Partial)> {
    let n = batch.dims.n;
    let (out, write, tasks) = match grad {
        // Tasks cover the whole N x N map so that padding gets its zeros in the same pass.
        Some(g) => (SharedMut::new(g), true, tiles::tasks(batch.dims.batch, |_| n)),
        None => (SharedMut::new(&mut []), false, tiles::tasks(batch.dims.batch, |b| batch.len(b))),
    };
    let parts: Vec<Partial> = map_tasks(batch.parallel, tasks.len(), tiled::Scratch::new, |scratch, ti| {
        let t = &tasks[ti];
        // The caller and rayon's workers both take runs of consecutive tasks.
        let next = tasks.get(ti + 1);
        let s = scales[t.sample];
        let job = tiled::TileJob {
            batch,
            fe: k.elem(),
            pen: fast_pen,
            r: s.r as f32,
            wp: s.wp as f32,
            mirror_labels: !symmetric_labels,
        };
        if let Some((elem, pen_sum)) = tiled::run_tile::<V>(level, &job, t, next, out, write, scratch) {
            if t.rows.start != t.cols.start {
                return Partial { elem, pen: pen_sum, bad: None };
            }
            let diag = if write {
                diagonal_at::<K, true>(level, k, batch, t, s, out)
            } else {
                diagonal_at::<K, false>(level, k, batch, t, s, out)
            };
            if let Some(d) = diag {
                return Partial { elem: elem + d, pen: pen_sum, bad: None };
            }
        }
        // Tiles with a non-finite counted logit, for its lowest index.
        if write {
            run_task_at::<K, true>(level, k, pen, batch, t, s, out)
        } else {
            run_task_at::<K, false>(level, k, pen, batch, t, s, out)
        }
    });
    tasks.into_iter().zip(parts).collect()
}

/// [`diagonal`] at `level`: on the SIMD levels the element math is fused
/// (as the vector kernels of the same call), and each fused multiply-add must
/// be an instruction, not a library call (4% of a 1x128^2 call before).
fn diagonal_at<K: StrategyKernel, const G: bool>(
    level: SimdLevel,
    k: &K,
    batch: &Batch<'_>,
    t: &Task,
    s: Scales,
    out: SharedMut,
) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    fn fused<K: StrategyKernel, const G: bool>(
        k: &K,
        batch: &Batch<'_>,
        t: &Task,
        s: Scales,
        out: SharedMut,
    ) -> Option<f64> {
        diagonal::<K, G>(k, batch, t, s, out)
    }
    match level {
        // SAFETY: both levels include FMA, and `CpuBackend` only holds a level
        // that `SimdLevel::available` detected on this CPU.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 | SimdLevel::Avx2 => unsafe { fused::<K, G>(k, batch, t, s, out) },
        _ => diagonal::<K, G>(k, batch, t, s, out),
    }
}

/// The diagonal elements `(i, i)` of a diagonal tile whose pairs the vector
/// path has done: their unscaled loss, with `r * g_ii` written, or `None` if a
/// counted one is not finite (the caller reruns the tile for its index). They
/// carry no penalty (`x_ii - x_ii = 0`).
#[inline(always)]
fn diagonal<K: StrategyKernel, const G: bool>(
    k: &K,
    batch: &Batch<'_>,
    t: &Task,
    s: Scales,
    out: SharedMut,
) -> Option<f64> {
    let n = batch.dims.n;
    let base = batch.offset(t.sample);
    let len = batch.len(t.sample);
    let region = batch.region(t.sample);
    let mut sum = 0.0;
    for i in t.rows.clone() {
        let kk = i * n + i;
        let y = region.labels[kk];
        if i >= len || !region.counts(i, i, y) {
            continue;
        }
        let x = batch.logits[base + kk];
        if !x.is_finite() {
            return None;
        }
        let (l, g) = k.diag::<G>(x, y == 1);
        sum += l;
        if G {
            // SAFETY: this task owns its diagonal tile, diagonal included.
            unsafe { out.write(base + kk, s.r as f32 * g) }
        }
    }
    Some(sum)
}

/// [`run_task`] compiled for `level`: the element math uses fused multiply-adds
/// on the SIMD levels (as the vector kernels of the same call do), which must
/// be instructions here, not library calls.
fn run_task_at<K: StrategyKernel, const G: bool>(
    level: SimdLevel,
    k: &K,
    pen: Option<PenaltyFn<f32>>,
    batch: &Batch<'_>,
    t: &Task,
    s: Scales,
    out: SharedMut,
) -> Partial {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
    fn avx512<K: StrategyKernel, const G: bool>(
        k: &K,
        pen: Option<PenaltyFn<f32>>,
        batch: &Batch<'_>,
        t: &Task,
        s: Scales,
        out: SharedMut,
    ) -> Partial {
        run_task::<K, G>(k, pen, batch, t, s, out)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2<K: StrategyKernel, const G: bool>(
        k: &K,
        pen: Option<PenaltyFn<f32>>,
        batch: &Batch<'_>,
        t: &Task,
        s: Scales,
        out: SharedMut,
    ) -> Partial {
        run_task::<K, G>(k, pen, batch, t, s, out)
    }
    match level {
        // SAFETY: `CpuBackend` only holds a level that `SimdLevel::available` detected on this CPU.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { avx512::<K, G>(k, pen, batch, t, s, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { avx2::<K, G>(k, pen, batch, t, s, out) },
        _ => run_task::<K, G>(k, pen, batch, t, s, out),
    }
}

/// Visits the task's unordered pairs once each: `(i, j)` and `(j, i)` together.
#[inline(always)]
fn run_task<K: StrategyKernel, const G: bool>(
    k: &K,
    pen: Option<PenaltyFn<f32>>,
    batch: &Batch<'_>,
    t: &Task,
    s: Scales,
    out: SharedMut,
) -> Partial {
    let n = batch.dims.n;
    let base = batch.offset(t.sample);
    let len = batch.len(t.sample);
    let region = batch.region(t.sample);
    let (x, y) = (&batch.logits[base..base + n * n], region.labels);
    let (r, wp) = (s.r as f32, s.wp as f32);
    let mut part = Partial::default();
    // SAFETY (for every `out.write` below): this task owns exactly the elements
    // (i, j) and (j, i) of its unordered pairs, see `tiles::tasks`.
    let put = |k: usize, v: f32| {
        if G {
            unsafe { out.write(base + k, v) }
        }
    };
    for i in t.rows.clone() {
        for j in t.cols.start.max(i)..t.cols.end {
            let (kij, kji) = (i * n + j, j * n + i);
            let yij = y[kij];
            if i >= len || j >= len || !region.counts(i, j, yij) {
                put(kij, 0.0);
                put(kji, 0.0);
                continue;
            }
            let (xij, xji) = (x[kij], x[kji]);
            if !(xij.is_finite() && xji.is_finite()) {
                part.bad = lowest(part.bad, Some(base + non_finite_index(kij, kji, xij, xji)));
                continue;
            }
            if i == j {
                let (l, g) = k.diag::<G>(xij, yij == 1);
                part.elem += l;
                put(kij, r * g);
                continue;
            }
            let yji = y[kji];
            let (l, mut gij, mut gji) = k.pair::<G>(xij, xji, yij == 1, yji == 1);
            part.elem += l;
            gij *= r;
            gji *= r;
            if let Some(p) = &pen {
                let (rho, da, db) = p.value_grad(xij, xji);
                part.pen += f64::from(rho);
                gij += wp * da;
                gji += wp * db;
            }
            put(kij, gij);
            put(kji, gji);
        }
    }
    part
}
