//! Streaming accumulation of every figure of SPEC §6 over batches.

use super::auprc::ScoreCounts;
use super::topk::TopKSums;
use super::{
    Confusion, MetricsReport, PredictConfig, SampleStats, predicted, score, shift_matches, sym_pair,
};
use crate::config::SymMode;
use crate::error::{Error, Result};
use crate::postprocess::one_partner;
use crate::validate::{Dims, SampleRegion, check_inputs, sample_len, scan_sample};

/// One batch on the host: C-order `[B, N, N]` slices.
#[derive(Debug, Clone, Copy)]
pub struct HostBatch<'a> {
    /// Shape.
    pub dims: Dims,
    /// Raw logits `x`.
    pub logits: &'a [f32],
    /// Labels in {0, 1, 255}.
    pub labels: &'a [u8],
    /// Optional region mask (0 excludes a pair from scoring).
    pub mask: Option<&'a [u8]>,
    /// Optional pair-type mask applied to *predictions* (0 forbids predicting a pair).
    pub pair_mask: Option<&'a [u8]>,
    /// Optional lengths.
    pub lengths: Option<&'a [usize]>,
    /// `min_sep`.
    pub min_sep: usize,
}

/// Pools SPEC §6's figures over any number of batches.
///
/// ```
/// use symseg_core::metrics::{HostBatch, MetricsAccumulator, PredictConfig};
/// use symseg_core::Dims;
/// // A perfect prediction of one pair (0, 2) in a 3 x 3 map.
/// let x = [-9.0, -9.0, 9.0, -9.0, -9.0, -9.0, 9.0, -9.0, -9.0f32];
/// let y = [0, 0, 1, 0, 0, 0, 1, 0, 0u8];
/// let b = HostBatch { dims: Dims { batch: 1, n: 3 }, logits: &x, labels: &y, mask: None,
///                     pair_mask: None, lengths: None, min_sep: 0 };
/// let mut acc = MetricsAccumulator::new(PredictConfig::default(), false);
/// acc.add(&b, None)?;
/// let r = acc.finish();
/// assert_eq!((r.tp, r.fp, r.fn_), (2, 0, 0));
/// assert_eq!((r.f1, r.mcc, r.auprc, r.f1_shift), (1.0, 1.0, 1.0, 1.0));
/// # Ok::<(), symseg_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricsAccumulator {
    pred: PredictConfig,
    one_partner: bool,
    confusion: Confusion,
    f1_sum: f64,
    samples: u64,
    shift_tp: u64,
    shift_pred: u64,
    shift_ref: u64,
    scores: ScoreCounts,
    topk: TopKSums,
    asym_sum: f64,
    asym_pairs: u64,
}

impl MetricsAccumulator {
    /// An empty accumulator predicting with `pred`, optionally with one-partner decoding.
    pub fn new(pred: PredictConfig, one_partner: bool) -> Self {
        MetricsAccumulator {
            pred,
            one_partner,
            confusion: Confusion::default(),
            f1_sum: 0.0,
            samples: 0,
            shift_tp: 0,
            shift_pred: 0,
            shift_ref: 0,
            scores: ScoreCounts::new(),
            topk: TopKSums::default(),
            asym_sum: 0.0,
            asym_pairs: 0,
        }
    }

    /// Whether predictions go through a decoding step beyond thresholding, so a
    /// backend's thresholded counts do not apply.
    pub fn decodes(&self, batch: &HostBatch<'_>) -> bool {
        self.one_partner || batch.pair_mask.is_some()
    }

    /// Scores one batch. `stats`, when given, are a backend's thresholded counts for
    /// this batch with the same [`PredictConfig`] (from
    /// `TensorBackend::sample_stats`): they are used for the confusion counts and
    /// asymmetry instead of recounting on the host. They are ignored when
    /// predictions are decoded further (one-partner or a pair-type mask).
    ///
    /// # Errors
    /// SPEC §1's validation errors; a non-finite logit in the counted set.
    pub fn add(&mut self, batch: &HostBatch<'_>, stats: Option<&[SampleStats]>) -> Result<()> {
        self.pred.validate()?;
        let dims = batch.dims;
        let shape = dims.shape();
        let (n, m) = (dims.n, dims.map_len());
        for (what, len) in [("logits", batch.logits.len()), ("labels", batch.labels.len())] {
            if len != dims.len() {
                return Err(Error::ShapeMismatch { what, got: vec![len], expected: shape.to_vec() });
            }
        }
        check_inputs(&shape, &shape, None, batch.lengths)?;
        for (what, v) in [("mask", batch.mask), ("pair mask", batch.pair_mask)] {
            if let Some(v) = v
                && v.len() != dims.len()
            {
                return Err(Error::ShapeMismatch { what, got: vec![v.len()], expected: shape.to_vec() });
            }
        }
        let stats = stats.filter(|s| !self.decodes(batch) && s.len() == dims.batch);
        for b in 0..dims.batch {
            let o = b * m;
            let region = SampleRegion {
                sample: b,
                labels: &batch.labels[o..o + m],
                mask: batch.mask.map(|v| &v[o..o + m]),
                n,
                len: sample_len(batch.lengths, b, n),
                min_sep: batch.min_sep,
            };
            scan_sample(&region, true)?;
            let sample =
                self.score_sample(&region, &batch.logits[o..o + m], batch.pair_mask.map(|v| &v[o..o + m]))?;
            let sample = match stats {
                Some(s) => s[b],
                None => sample,
            };
            self.confusion += sample.confusion;
            self.f1_sum += sample.confusion.f1();
            self.asym_sum += sample.asym_sum;
            self.asym_pairs += sample.asym_pairs;
            self.samples += 1;
        }
        Ok(())
    }

    /// Scores one sample: AUPRC, top-k and shift figures go straight into `self`;
    /// the thresholded (or decoded) counts and asymmetry are returned.
    fn score_sample(
        &mut self,
        r: &SampleRegion<'_>,
        x: &[f32],
        pair_mask: Option<&[u8]>,
    ) -> Result<SampleStats> {
        let (n, len) = (r.n, r.len);
        let mode = self.pred.mode;
        let mut pred = vec![false; n * n];
        let mut reference = vec![false; n * n];
        let mut counted = vec![false; n * n];
        let mut stats = SampleStats::default();
        let mut candidates = Vec::new(); // top-k: (z, positive, i, j)
        let mut decode = Vec::new(); // one-partner: (z, i, j)
        let allowed = |k: usize| pair_mask.is_none_or(|pm| pm[k] != 0);
        for i in 0..len {
            for j in i..len {
                let (kij, kji) = (i * n + j, j * n + i);
                let y = r.labels[kij];
                if !r.counts(i, j, y) {
                    continue;
                }
                for k in [kij, kji] {
                    if !x[k].is_finite() {
                        return Err(Error::NonFiniteLogit {
                            sample: r.sample,
                            i: k / n,
                            j: k % n,
                            value: x[k],
                        });
                    }
                }
                let (zij, zji) = sym_pair(mode, x[kij], x[kji]);
                let positive = y == 1;
                for (k, z) in [(kij, zij), (kji, zji)] {
                    counted[k] = true;
                    reference[k] = positive;
                    pred[k] = predicted(z, self.pred.threshold) && allowed(k);
                    self.scores.add(score(z), positive);
                    if i == j {
                        break;
                    }
                }
                if i < j {
                    let rank_z = if mode == SymMode::None {
                        sym_pair(SymMode::Average, x[kij], x[kji]).0
                    } else {
                        zij
                    };
                    candidates.push((rank_z, positive, i, j));
                    if self.one_partner && predicted(rank_z, self.pred.threshold) && allowed(kij) {
                        decode.push((rank_z, i, j));
                    }
                    stats.asym_sum += (score(f64::from(x[kij])) - score(f64::from(x[kji]))).abs();
                    stats.asym_pairs += 1;
                }
            }
        }
        if self.one_partner {
            pred.iter_mut().for_each(|p| *p = false);
            for (i, j) in one_partner(&mut decode, n) {
                pred[i * n + j] = true;
                pred[j * n + i] = true;
            }
        }
        for k in 0..n * n {
            if counted[k] {
                stats.confusion.record(pred[k], reference[k]);
            }
        }
        self.shift_tp += shift_matches(&pred, &reference, n);
        self.shift_pred += pred.iter().filter(|&&p| p).count() as u64;
        self.shift_ref += reference.iter().filter(|&&p| p).count() as u64;
        let min_sep = r.min_sep;
        candidates.retain(|c| c.3 - c.2 >= min_sep);
        self.topk.add_sample(&mut candidates, len);
        Ok(stats)
    }

    /// Adds another accumulator's figures (same configuration).
    pub fn merge(&mut self, o: &MetricsAccumulator) {
        self.confusion += o.confusion;
        self.f1_sum += o.f1_sum;
        self.samples += o.samples;
        self.shift_tp += o.shift_tp;
        self.shift_pred += o.shift_pred;
        self.shift_ref += o.shift_ref;
        self.scores.merge(&o.scores);
        self.topk.merge(&o.topk);
        self.asym_sum += o.asym_sum;
        self.asym_pairs += o.asym_pairs;
    }

    /// The scores seen so far (for the PR curve or choosing a threshold).
    pub fn scores(&self) -> &ScoreCounts {
        &self.scores
    }

    /// The pooled figures.
    pub fn finish(&self) -> MetricsReport {
        let c = self.confusion;
        let shift = Confusion {
            tp: self.shift_tp,
            fp: self.shift_pred - self.shift_tp,
            fn_: self.shift_ref - self.shift_tp,
            tn: 0,
        };
        MetricsReport {
            tp: c.tp,
            fp: c.fp,
            fn_: c.fn_,
            tn: c.tn,
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            mcc: c.mcc(),
            iou: c.iou(),
            f1_mean: if self.samples == 0 { 0.0 } else { self.f1_sum / self.samples as f64 },
            f1_shift: shift.f1(),
            auprc: self.scores.average_precision(),
            top: self.topk.finish(),
            asymmetry: if self.asym_pairs == 0 { 0.0 } else { self.asym_sum / self.asym_pairs as f64 },
            samples: self.samples,
            counted: c.tp + c.fp + c.fn_ + c.tn,
        }
    }
}
