//! Exact, streaming average precision (scikit-learn's `average_precision_score`).
//!
//! Scores are kept as counts per distinct f64 value, so ties group exactly as
//! scikit-learn groups them and batches can be added one at a time. Memory grows
//! with the number of *distinct* scores, not with the number of pairs.

use std::collections::HashMap;

/// Positive and negative counts per distinct score.
#[derive(Debug, Clone, Default)]
pub struct ScoreCounts {
    // Key: the bits of a score in [0, 1]; for non-negative floats the bit order is
    // the value order, so sorting keys sorts scores.
    counts: HashMap<u64, (u64, u64)>,
    positives: u64,
}

impl ScoreCounts {
    /// Empty counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one scored pair (`score` in `[0, 1]`).
    #[inline]
    pub fn add(&mut self, score: f64, positive: bool) {
        let e = self.counts.entry(score.to_bits()).or_insert((0, 0));
        if positive {
            e.0 += 1;
            self.positives += 1;
        } else {
            e.1 += 1;
        }
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &ScoreCounts) {
        for (&k, &(p, n)) in &other.counts {
            let e = self.counts.entry(k).or_insert((0, 0));
            e.0 += p;
            e.1 += n;
        }
        self.positives += other.positives;
    }

    /// Distinct scores from highest to lowest with their `(positives, negatives)`.
    fn descending(&self) -> Vec<(f64, u64, u64)> {
        let mut v: Vec<(u64, (u64, u64))> = self.counts.iter().map(|(&k, &c)| (k, c)).collect();
        v.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        v.into_iter().map(|(k, (p, n))| (f64::from_bits(k), p, n)).collect()
    }

    /// Total positives recorded.
    pub fn positives(&self) -> u64 {
        self.positives
    }

    /// Average precision `sum_k (R_k - R_{k-1}) P_k` over the distinct thresholds,
    /// highest first; 0 without positives.
    pub fn average_precision(&self) -> f64 {
        if self.positives == 0 {
            return 0.0;
        }
        let total = self.positives as f64;
        let (mut tp, mut fp, mut ap, mut prev_recall) = (0u64, 0u64, 0.0f64, 0.0f64);
        for (_, p, n) in self.descending() {
            tp += p;
            fp += n;
            let recall = tp as f64 / total;
            ap += (recall - prev_recall) * (tp as f64 / (tp + fp) as f64);
            prev_recall = recall;
        }
        ap
    }

    /// The threshold (a score value) that maximises F1 when predicting
    /// `score >= threshold`, and that F1; ties go to the higher threshold. Without
    /// positives it returns `(1.0, 0.0)` only if there are scores, else `(0.5, 1.0)`.
    pub fn best_f1_threshold(&self) -> (f64, f64) {
        if self.counts.is_empty() {
            return (0.5, 1.0);
        }
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut best = (1.0, 0.0);
        for (s, p, n) in self.descending() {
            tp += p;
            fp += n;
            let f1 = 2.0 * tp as f64 / (2 * tp + fp + (self.positives - tp)) as f64;
            if f1 > best.1 {
                best = (s, f1);
            }
        }
        best
    }

    /// The precision–recall curve, one point per distinct threshold, highest first:
    /// `(threshold, precision, recall)`.
    pub fn pr_curve(&self) -> Vec<(f64, f64, f64)> {
        let total = self.positives.max(1) as f64;
        let (mut tp, mut fp) = (0u64, 0u64);
        self.descending()
            .into_iter()
            .map(|(s, p, n)| {
                tp += p;
                fp += n;
                (s, tp as f64 / (tp + fp) as f64, tp as f64 / total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(pairs: &[(f64, bool)]) -> f64 {
        let mut c = ScoreCounts::new();
        for &(s, y) in pairs {
            c.add(s, y);
        }
        c.average_precision()
    }

    #[test]
    fn matches_scikit_learn_by_hand() {
        // sklearn: average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.8333...
        let v = ap(&[(0.1, false), (0.4, false), (0.35, true), (0.8, true)]);
        assert!((v - 5.0 / 6.0).abs() < 1e-15, "{v}");
        // Ties grouped: all scores equal -> AP = prevalence.
        let v = ap(&[(0.5, true), (0.5, false), (0.5, false), (0.5, true)]);
        assert!((v - 0.5).abs() < 1e-15);
        // sklearn: average_precision_score([1, 0, 1, 0, 1], [0.9, 0.9, 0.5, 0.5, 0.1]) = 0.6333...
        // thresholds: 0.9 -> P 1/2 R 1/3; 0.5 -> P 2/4 R 2/3; 0.1 -> P 3/5 R 1
        let v = ap(&[(0.9, true), (0.9, false), (0.5, true), (0.5, false), (0.1, true)]);
        assert!((v - (1.0 / 3.0 * 0.5 + 1.0 / 3.0 * 0.5 + 1.0 / 3.0 * 0.6)).abs() < 1e-15, "{v}");
        assert_eq!(ap(&[(0.3, false), (0.9, false)]), 0.0);
        assert_eq!(ap(&[(0.3, true), (0.2, false)]), 1.0);
    }

    #[test]
    fn merging_equals_adding_everything_at_once() {
        let mut a = ScoreCounts::new();
        let mut b = ScoreCounts::new();
        let mut all = ScoreCounts::new();
        for k in 0..100u32 {
            let s = f64::from(k % 17) / 17.0;
            let y = k % 3 == 0;
            if k % 2 == 0 {
                a.add(s, y)
            } else {
                b.add(s, y)
            }
            all.add(s, y);
        }
        a.merge(&b);
        assert_eq!(a.average_precision(), all.average_precision());
        assert_eq!(a.positives(), all.positives());
    }

    #[test]
    fn best_threshold_maximises_f1() {
        let mut c = ScoreCounts::new();
        for (s, y) in [(0.9, true), (0.8, true), (0.7, false), (0.6, true), (0.2, false), (0.1, false)] {
            c.add(s, y);
        }
        // >= 0.6: tp 3 fp 1 fn 0 -> F1 6/7; >= 0.8: tp 2 fn 1 -> 0.8.
        let (t, f1) = c.best_f1_threshold();
        assert_eq!(t, 0.6);
        assert!((f1 - 6.0 / 7.0).abs() < 1e-15);
    }
}
