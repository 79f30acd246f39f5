//! Top-k precision by separation range (the CASP contact convention, SPEC §6).

use serde::Serialize;

/// A separation range `lo <= j - i <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// JSON name.
    pub name: &'static str,
    /// Smallest separation.
    pub lo: usize,
    /// Largest separation (inclusive).
    pub hi: usize,
}

/// short 6–11, medium 12–23, long >= 24, all.
pub const RANGES: [Range; 4] = [
    Range { name: "short", lo: 6, hi: 11 },
    Range { name: "medium", lo: 12, hi: 23 },
    Range { name: "long", lo: 24, hi: usize::MAX },
    Range { name: "all", lo: 1, hi: usize::MAX },
];

/// The divisors `d` of `k = ceil(len / d)`.
pub const DIVISORS: [usize; 3] = [1, 2, 5];

/// Precision at `L`, `L/2`, `L/5` for one range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TopKRange {
    /// `k = L`.
    #[serde(rename = "L")]
    pub l1: f64,
    /// `k = ceil(L / 2)`.
    #[serde(rename = "L/2")]
    pub l2: f64,
    /// `k = ceil(L / 5)`.
    #[serde(rename = "L/5")]
    pub l5: f64,
}

/// Top-k precision for every range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TopK {
    /// Separation 6–11.
    pub short: TopKRange,
    /// Separation 12–23.
    pub medium: TopKRange,
    /// Separation >= 24.
    pub long: TopKRange,
    /// Any separation.
    pub all: TopKRange,
}

/// Running sums of per-sample top-k precision: `[range][divisor]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopKSums {
    sum: [[f64; 3]; 4],
    samples: [u64; 4],
}

impl TopKSums {
    /// Adds one sample: `candidates` are `(z, positive, i, j)` over the counted pairs
    /// `i < j` with separation `>= min_sep`; `len` is the sample's length.
    pub fn add_sample(&mut self, candidates: &mut [(f64, bool, usize, usize)], len: usize) {
        // Highest z first; ties by (i, j) ascending, so the result is deterministic.
        // `+ 0.0` makes -0.0 a +0.0: `total_cmp` alone would rank 0.0 above -0.0.
        candidates
            .sort_unstable_by(|a, b| (b.0 + 0.0).total_cmp(&(a.0 + 0.0)).then((a.2, a.3).cmp(&(b.2, b.3))));
        for (r, range) in RANGES.iter().enumerate() {
            let mut in_range = candidates.iter().filter(|c| (range.lo..=range.hi).contains(&(c.3 - c.2)));
            let ranked: Vec<bool> = in_range.by_ref().map(|c| c.1).collect();
            if ranked.is_empty() {
                continue;
            }
            self.samples[r] += 1;
            for (d, &div) in DIVISORS.iter().enumerate() {
                let k = len.div_ceil(div);
                let taken = k.min(ranked.len());
                let hits = ranked[..taken].iter().filter(|&&p| p).count();
                self.sum[r][d] += hits as f64 / taken as f64;
            }
        }
    }

    /// Adds another accumulator.
    pub fn merge(&mut self, o: &TopKSums) {
        for r in 0..4 {
            self.samples[r] += o.samples[r];
            for d in 0..3 {
                self.sum[r][d] += o.sum[r][d];
            }
        }
    }

    /// Means over the samples that had candidates (0 for a range no sample had).
    pub fn finish(&self) -> TopK {
        let get = |r: usize| {
            let m =
                |d: usize| if self.samples[r] == 0 { 0.0 } else { self.sum[r][d] / self.samples[r] as f64 };
            TopKRange { l1: m(0), l2: m(1), l5: m(2) }
        };
        TopK { short: get(0), medium: get(1), long: get(2), all: get(3) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal scores tie by `(i, j)` whatever their sign bit: -0.0 is 0.0.
    #[test]
    fn signed_zeros_tie_by_position() {
        // len 2 and one candidate in range per call would hide the order; use
        // len 1 (k = 1) and three candidates at separation 6 (short and all).
        for (first, second) in [(0.0, -0.0), (-0.0, 0.0)] {
            let mut sums = TopKSums::default();
            let mut c = vec![(second, false, 3, 9), (first, true, 0, 6), (-1.0, true, 1, 7)];
            sums.add_sample(&mut c, 1);
            let t = sums.finish();
            assert_eq!(t.short.l1, 1.0, "({first}, {second})");
            assert_eq!(t.all.l1, 1.0);
        }
    }
}
