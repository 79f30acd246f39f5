//! What a symmetric prediction is judged by (SPEC §5–6), with explicit conventions.
//!
//! - [`PredictConfig`]: how logits become a symmetric prediction (mode, threshold)
//!   and the optional decoding steps ([`crate::postprocess`]).
//! - [`Confusion`]: `tp, fp, fn, tn` and the figures derived from them, with the
//!   edge cases of SPEC §6.
//! - [`MetricsAccumulator`]: streams batches (so a data set larger than memory can
//!   be scored) and pools every figure of SPEC §6 plus the asymmetry diagnostic.
//!
//! Conventions that the field's tools disagree on, fixed here:
//! - counts are over the *ordered* pairs of the counted set (for symmetric
//!   predictions and `min_sep >= 1` this equals counting unordered pairs once);
//! - precision, recall, MCC are 0 where their denominator is 0; F1 and IoU are 1
//!   when prediction and reference are both empty;
//! - `f1_mean` averages per-sample F1 over every sample (empty ones included,
//!   with the convention above);
//! - AUPRC is scikit-learn's `average_precision_score` over `sigmoid(z)` in f64,
//!   ties grouped; it is exact (no histogram), and 0 without positives;
//! - top-k ranks by `z` (mode `none` ranks by `(x_ij + x_ji) / 2`), ties broken by
//!   `(i, j)` ascending.

mod accumulate;
mod auprc;
mod shift;
mod topk;

pub use accumulate::{HostBatch, MetricsAccumulator};
pub use auprc::ScoreCounts;
pub use shift::shift_matches;
pub use topk::{RANGES, Range, TopK, TopKRange};

use serde::{Deserialize, Serialize};

use crate::config::SymMode;
use crate::error::{Error, Result};

/// How logits become a prediction (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictConfig {
    /// Symmetrising mode.
    pub mode: SymMode,
    /// A pair is positive iff `sigmoid(z) >= threshold`.
    pub threshold: f64,
}

impl Default for PredictConfig {
    fn default() -> Self {
        PredictConfig { mode: SymMode::Average, threshold: 0.5 }
    }
}

impl PredictConfig {
    /// Sets the mode.
    pub fn mode(mut self, mode: SymMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the threshold.
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Checks `0 <= threshold <= 1`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(Error::InvalidConfig {
                param: "threshold",
                value: self.threshold.to_string(),
                reason: "must lie in [0, 1]",
            });
        }
        Ok(())
    }
}

/// `sigmoid(z)` in f64, the score of SPEC §5–6.
#[inline]
pub fn score(z: f64) -> f64 {
    if z >= 0.0 { 1.0 / (1.0 + (-z).exp()) } else { z.exp() / (1.0 + z.exp()) }
}

/// `(z_ij, z_ji)` of the unordered pair `i <= j` from `x_ij`, `x_ji` (SPEC §5),
/// in f64 so that every backend and the host agree exactly.
#[inline]
pub fn sym_pair(mode: SymMode, xij: f32, xji: f32) -> (f64, f64) {
    let (a, b) = (f64::from(xij), f64::from(xji));
    match mode {
        SymMode::None => (a, b),
        SymMode::Average => {
            let s = (a + b) / 2.0;
            (s, s)
        }
        SymMode::Upper => (a, a),
        SymMode::Lower => (b, b),
    }
}

/// Whether a symmetrised value `z` is predicted positive.
#[inline]
pub fn predicted(z: f64, threshold: f64) -> bool {
    score(z) >= threshold
}

/// [`predicted`] as a bound on the logit: the smallest f64 `z*` with
/// `predicted(z*, threshold)`, so that `predicted(z, threshold) == (z >= z*)`
/// for every finite `z` (the score never decreases with `z`). `-inf` when
/// every value is predicted positive, `+inf` when none is.
///
/// It is found by bisection over the f64 values in order, so it is the
/// reference's own decision, not a rounded `logit(threshold)`: a backend that
/// tests `z >= z*` needs no sigmoid per element and still counts exactly as
/// the f64 reference does.
///
/// ```
/// use symseg_core::metrics::{decision_bound, predicted};
///
/// let z_star = decision_bound(0.5);
/// // Not exactly 0: sigmoid(-5.6e-17) rounds to 0.5 in f64.
/// assert!(z_star < 0.0 && z_star > -1e-15);
/// assert!(predicted(z_star, 0.5) && !predicted(z_star.next_down(), 0.5));
/// ```
pub fn decision_bound(threshold: f64) -> f64 {
    if predicted(-f64::MAX, threshold) {
        return f64::NEG_INFINITY;
    }
    if !predicted(f64::MAX, threshold) {
        return f64::INFINITY;
    }
    // Invariant: predicted(from_key(lo)) is false, predicted(from_key(hi)) true.
    let (mut lo, mut hi) = (ordered_key(-f64::MAX), ordered_key(f64::MAX));
    // In i128: the keys span more than i64 can subtract.
    while i128::from(hi) - i128::from(lo) > 1 {
        let mid = ((i128::from(lo) + i128::from(hi)) / 2) as i64;
        if predicted(from_key(mid), threshold) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    from_key(hi)
}

/// Maps f64 to integers in the same order (both zeros to 0).
fn ordered_key(v: f64) -> i64 {
    let b = v.to_bits() as i64;
    if b < 0 { -(b & i64::MAX) } else { b }
}

fn from_key(k: i64) -> f64 {
    if k < 0 { -f64::from_bits((-k) as u64) } else { f64::from_bits(k as u64) }
}

/// The confusion counts of SPEC §6.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// True negatives.
    pub tn: u64,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

impl Confusion {
    /// Adds one ordered pair's outcome.
    #[inline]
    pub fn record(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// `tp / (tp + fp)`, 0 when nothing is predicted.
    pub fn precision(&self) -> f64 {
        ratio(self.tp as f64, (self.tp + self.fp) as f64)
    }

    /// `tp / (tp + fn)`, 0 when nothing is positive.
    pub fn recall(&self) -> f64 {
        ratio(self.tp as f64, (self.tp + self.fn_) as f64)
    }

    /// `2 tp / (2 tp + fp + fn)`; 1 when prediction and reference are both empty.
    pub fn f1(&self) -> f64 {
        if self.tp + self.fp + self.fn_ == 0 {
            return 1.0;
        }
        2.0 * self.tp as f64 / (2 * self.tp + self.fp + self.fn_) as f64
    }

    /// `tp / (tp + fp + fn)`; 1 when prediction and reference are both empty.
    pub fn iou(&self) -> f64 {
        if self.tp + self.fp + self.fn_ == 0 {
            return 1.0;
        }
        self.tp as f64 / (self.tp + self.fp + self.fn_) as f64
    }

    /// Matthews correlation coefficient, 0 when any marginal is empty.
    pub fn mcc(&self) -> f64 {
        let (tp, fp, fn_, tn) = (self.tp as f64, self.fp as f64, self.fn_ as f64, self.tn as f64);
        let den = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
        ratio(tp * tn - fp * fn_, den)
    }
}

impl std::ops::AddAssign for Confusion {
    fn add_assign(&mut self, o: Confusion) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.tn += o.tn;
    }
}

/// One sample's thresholded counts and asymmetry, as a backend's pass returns them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleStats {
    /// Confusion over the sample's counted (ordered) pairs.
    pub confusion: Confusion,
    /// Sum over counted pairs `i < j` of `|sigmoid(x_ij) - sigmoid(x_ji)|`.
    pub asym_sum: f64,
    /// Number of counted pairs `i < j`.
    pub asym_pairs: u64,
}

impl std::ops::AddAssign for SampleStats {
    fn add_assign(&mut self, o: SampleStats) {
        self.confusion += o.confusion;
        self.asym_sum += o.asym_sum;
        self.asym_pairs += o.asym_pairs;
    }
}

/// Every figure of SPEC §6 plus the asymmetry diagnostic, with SPEC §7's JSON names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsReport {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// True negatives.
    pub tn: u64,
    /// Pooled precision.
    pub precision: f64,
    /// Pooled recall.
    pub recall: f64,
    /// Pooled F1.
    pub f1: f64,
    /// Pooled MCC.
    pub mcc: f64,
    /// Pooled IoU.
    pub iou: f64,
    /// Mean of per-sample F1.
    pub f1_mean: f64,
    /// Shift-tolerant F1 (pooled).
    pub f1_shift: f64,
    /// Average precision over `sigmoid(z)`.
    pub auprc: f64,
    /// Top-k precision by range.
    pub top: TopK,
    /// Mean `|sigmoid(x_ij) - sigmoid(x_ji)|` over counted pairs `i < j`, of the raw logits.
    pub asymmetry: f64,
    /// Samples scored.
    pub samples: u64,
    /// Counted (ordered) pairs scored.
    pub counted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// `z >= decision_bound(t)` is `predicted(z, t)` for random logits, for
    /// logits within a few ulp of the bound, and at the thresholds' extremes.
    #[test]
    fn decision_bound_is_the_reference_decision() {
        let mut rng = Rng::new(41);
        let mut thresholds = vec![0.0, 1.0, 0.5, 1e-300, 1e-3, 0.999, 1.0 - 1e-16, f64::MIN_POSITIVE];
        thresholds.extend((0..40).map(|_| rng.uniform()));
        for t in thresholds {
            let z_star = decision_bound(t);
            let mut zs: Vec<f64> = (0..200).map(|_| 80.0 * rng.normal()).collect();
            zs.extend([0.0, -0.0, 745.0, -745.0, 40.0, -40.0, f64::MAX, -f64::MAX]);
            if z_star.is_finite() {
                let mut up = z_star;
                let mut down = z_star;
                for _ in 0..8 {
                    zs.extend([up, down]);
                    up = up.next_up();
                    down = down.next_down();
                }
            }
            for z in zs {
                assert_eq!(z >= z_star, predicted(z, t), "t = {t:e}, z = {z:e}, z* = {z_star:e}");
            }
        }
        assert_eq!(decision_bound(0.0), f64::NEG_INFINITY);
        assert!(decision_bound(0.5).abs() < 1e-15);
        assert!(decision_bound(1.0).is_finite() && decision_bound(1.0) > 30.0);
        assert_eq!(decision_bound(1.5), f64::INFINITY);
    }
}
