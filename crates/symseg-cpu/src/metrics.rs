//! The thresholded confusion counts and asymmetry of SPEC §5–6 in one tiled
//! pass: vector tiles ([`crate::simd::stats`]), and this scalar f64 pass for
//! any tile holding a non-finite counted logit (to name the lowest one).

use symseg_core::Result;
use symseg_core::metrics::{PredictConfig, SampleStats, predicted, score, sym_pair};

use crate::batch::{Batch, lowest, non_finite_index};
use crate::par::map_tasks;
use crate::simd::SimdLevel;
use crate::simd::stats::{Predictor, stats_tile};
use crate::tiles::{self, TILE, Task};

/// Per-sample stats of the batch, combined in task order (deterministic).
pub(crate) fn sample_stats(
    batch: &Batch<'_>,
    pred: &PredictConfig,
    level: SimdLevel,
) -> Result<Vec<SampleStats>> {
    pred.validate()?;
    batch.scan(true, level)?;
    let tasks = tiles::tasks(batch.dims.batch, |b| batch.len(b));
    let predictor = Predictor::new(pred);
    let parts: Vec<(SampleStats, Option<usize>)> = map_tasks(
        batch.parallel,
        tasks.len(),
        || Box::new([[0.0f32; TILE]; TILE]),
        |xt, k| {
            let t = &tasks[k];
            match stats_tile(level, batch, t, &predictor, xt) {
                Some(s) => (s, None),
                None => run_task(batch, pred, t),
            }
        },
    );
    let mut out = vec![SampleStats::default(); batch.dims.batch];
    let mut bad: Option<usize> = None;
    for (t, (s, b)) in tasks.iter().zip(parts) {
        out[t.sample] += s;
        bad = lowest(bad, b);
    }
    if let Some(k) = bad {
        return Err(batch.non_finite(k));
    }
    Ok(out)
}

fn run_task(batch: &Batch<'_>, pred: &PredictConfig, t: &Task) -> (SampleStats, Option<usize>) {
    let n = batch.dims.n;
    let base = batch.offset(t.sample);
    let region = batch.region(t.sample);
    let x = &batch.logits[base..base + n * n];
    let mut s = SampleStats::default();
    let mut bad: Option<usize> = None;
    for i in t.rows.clone() {
        for j in t.cols.start.max(i)..t.cols.end {
            let (kij, kji) = (i * n + j, j * n + i);
            let y = region.labels[kij];
            if !region.counts(i, j, y) {
                continue;
            }
            let (xij, xji) = (x[kij], x[kji]);
            if !(xij.is_finite() && xji.is_finite()) {
                bad = lowest(bad, Some(base + non_finite_index(kij, kji, xij, xji)));
                continue;
            }
            let (zij, zji) = sym_pair(pred.mode, xij, xji);
            let positive = y == 1;
            s.confusion.record(predicted(zij, pred.threshold), positive);
            if i != j {
                s.confusion.record(predicted(zji, pred.threshold), positive);
                s.asym_sum += (score(f64::from(xij)) - score(f64::from(xji))).abs();
                s.asym_pairs += 1;
            }
        }
    }
    (s, bad)
}
