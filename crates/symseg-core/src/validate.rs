//! Input validation of SPEC §1, shared by every backend.
//!
//! Shapes and lengths are checked up front ([`check_inputs`]); label values,
//! label and mask symmetry and the size of the counted set are found by one
//! scan over each unordered pair ([`scan_block`]), which a backend may run over
//! tiles in parallel and add up with `+`. The non-finite
//! logit check rides in the backend's loss pass instead (it reads the logits).

use std::ops::Range;

use crate::config::{IGNORE_LABEL, Strategy};
use crate::error::{Error, Result};

/// The shape of a batch of square maps, `[batch, n, n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dims {
    /// `B`.
    pub batch: usize,
    /// `N`.
    pub n: usize,
}

impl Dims {
    /// Reads `[B, N, N]` or `[N, N]` (B = 1).
    ///
    /// # Errors
    /// [`Error::NotSquare`] for another rank or non-square maps, [`Error::Empty`] for N = 0 or B = 0.
    pub fn from_shape(what: &'static str, shape: &[usize]) -> Result<Dims> {
        let (batch, rows, cols) = match *shape {
            [r, c] => (1, r, c),
            [b, r, c] => (b, r, c),
            _ => return Err(Error::NotSquare { what, shape: shape.to_vec() }),
        };
        if rows != cols {
            return Err(Error::NotSquare { what, shape: shape.to_vec() });
        }
        if rows == 0 || batch == 0 {
            return Err(Error::Empty { shape: shape.to_vec() });
        }
        Ok(Dims { batch, n: rows })
    }

    /// `N * N`.
    pub fn map_len(self) -> usize {
        self.n * self.n
    }

    /// `B * N * N`.
    pub fn len(self) -> usize {
        self.batch * self.map_len()
    }

    /// Always false: validated dims have `B, N >= 1`.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// `[B, N, N]`.
    pub fn shape(self) -> [usize; 3] {
        [self.batch, self.n, self.n]
    }
}

/// Checks the shapes of all inputs and the lengths (SPEC §1).
///
/// # Errors
/// [`Error::NotSquare`], [`Error::Empty`], [`Error::ShapeMismatch`] (labels or mask),
/// [`Error::LengthsSize`] or [`Error::BadLength`].
pub fn check_inputs(
    logits: &[usize],
    labels: &[usize],
    mask: Option<&[usize]>,
    lengths: Option<&[usize]>,
) -> Result<Dims> {
    let dims = Dims::from_shape("logits", logits)?;
    if labels != logits {
        return Err(Error::ShapeMismatch { what: "labels", got: labels.to_vec(), expected: logits.to_vec() });
    }
    if let Some(m) = mask
        && m != logits
    {
        return Err(Error::ShapeMismatch { what: "mask", got: m.to_vec(), expected: logits.to_vec() });
    }
    if let Some(l) = lengths {
        check_lengths(l, dims)?;
    }
    Ok(dims)
}

/// Checks that there is one length per sample, each in `1..=N`.
///
/// # Errors
/// [`Error::LengthsSize`] or [`Error::BadLength`].
pub fn check_lengths(lengths: &[usize], dims: Dims) -> Result<()> {
    if lengths.len() != dims.batch {
        return Err(Error::LengthsSize { got: lengths.len(), expected: dims.batch });
    }
    for (sample, &len) in lengths.iter().enumerate() {
        if len == 0 || len > dims.n {
            return Err(Error::BadLength { sample, length: len as i64, n: dims.n });
        }
    }
    Ok(())
}

/// The real size of sample `b`: its length, or `N` without lengths.
#[inline]
pub fn sample_len(lengths: Option<&[usize]>, b: usize, n: usize) -> usize {
    lengths.map_or(n, |l| l[b])
}

/// Sizes of (part of) a counted set `S` (SPEC §1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RegionCounts {
    /// Counted diagonal elements `(i, i)`.
    pub diagonal: u64,
    /// Counted unordered off-diagonal pairs `i < j`.
    pub pairs: u64,
}

impl RegionCounts {
    /// The counted set of a sample of length `len` without a mask, were no
    /// label an ignore mark: every pair `i < j < len` with `j - i >= min_sep`,
    /// and the diagonal where `min_sep` is 0. A backend that has not scanned
    /// the labels yet can reduce by these, then subtract the ignore marks it
    /// finds.
    ///
    /// ```
    /// use symseg_core::validate::RegionCounts;
    /// // 4 positions, min_sep 2: pairs (0, 2), (0, 3), (1, 3).
    /// assert_eq!(RegionCounts::unmasked(4, 2), RegionCounts { diagonal: 0, pairs: 3 });
    /// assert_eq!(RegionCounts::unmasked(4, 0), RegionCounts { diagonal: 4, pairs: 6 });
    /// ```
    pub fn unmasked(len: usize, min_sep: usize) -> RegionCounts {
        // Pairs at distance d, min_sep.max(1) <= d < len: len - d of each.
        let far = len.saturating_sub(min_sep.max(1)) as u64;
        RegionCounts { diagonal: if min_sep == 0 { len as u64 } else { 0 }, pairs: far * (far + 1) / 2 }
    }

    /// `|S|`: ordered elements, `2 * pairs + diagonal`.
    pub fn ordered(self) -> u64 {
        2 * self.pairs + self.diagonal
    }

    /// `|{(i, j) in S : i <= j}|`, the count of `upper` and `lower`.
    pub fn triangle(self) -> u64 {
        self.pairs + self.diagonal
    }

    /// The element-loss terms `strategy` reduces over (SPEC §4): the
    /// triangle for `upper` and `lower`, every ordered element otherwise.
    pub fn terms(self, strategy: Strategy) -> u64 {
        match strategy {
            Strategy::Upper | Strategy::Lower => self.triangle(),
            _ => self.ordered(),
        }
    }

    /// The [`LossReport`](crate::LossReport) of a batch with these
    /// per-sample counts and sums.
    pub fn report(
        counts: &[RegionCounts],
        strategy: Strategy,
        element_loss: f64,
        penalty: f64,
    ) -> crate::LossReport {
        crate::LossReport {
            loss: element_loss + penalty,
            element_loss,
            penalty,
            counted: counts.iter().map(|c| c.ordered()).sum(),
            pairs: counts.iter().map(|c| c.pairs).sum(),
            nonempty_samples: counts.iter().filter(|c| c.terms(strategy) > 0).count(),
        }
    }
}

impl std::ops::Add for RegionCounts {
    type Output = RegionCounts;
    fn add(self, o: RegionCounts) -> RegionCounts {
        RegionCounts { diagonal: self.diagonal + o.diagonal, pairs: self.pairs + o.pairs }
    }
}

/// Where a scan looks: one sample's map and region.
#[derive(Debug, Clone, Copy)]
pub struct SampleRegion<'a> {
    /// Sample index (for error messages).
    pub sample: usize,
    /// The sample's `N x N` labels, C order.
    pub labels: &'a [u8],
    /// The sample's `N x N` mask, if any.
    pub mask: Option<&'a [u8]>,
    /// `N`.
    pub n: usize,
    /// The sample's length (`<= N`).
    pub len: usize,
    /// `min_sep`.
    pub min_sep: usize,
}

impl SampleRegion<'_> {
    /// Whether `(i, j)` (with `i, j < len`) is in the counted set, given its label.
    #[inline(always)]
    pub fn counts(&self, i: usize, j: usize, label: u8) -> bool {
        i.abs_diff(j) >= self.min_sep
            && label != IGNORE_LABEL
            && self.mask.is_none_or(|m| m[i * self.n + j] != 0)
    }
}

/// Validates and counts the unordered pairs `(i, j)`, `i <= j`, with `i` in `rows`
/// and `j` in `cols` (ranges inside `0..len`): label values of both orders, label
/// symmetry (unless `require_symmetric` is false, when only ignore marks must be
/// mirrored so that `S` stays symmetric), mask symmetry, and the counted set.
///
/// # Errors
/// The first [`Error::BadLabel`], [`Error::AsymmetricLabels`] or
/// [`Error::AsymmetricMask`] in row-major order of the block.
pub fn scan_block(
    r: &SampleRegion<'_>,
    rows: Range<usize>,
    cols: Range<usize>,
    require_symmetric: bool,
) -> Result<RegionCounts> {
    let n = r.n;
    let mut c = RegionCounts::default();
    for i in rows {
        let start = cols.start.max(i);
        for j in start..cols.end {
            let a = r.labels[i * n + j];
            let b = r.labels[j * n + i];
            for (v, (ii, jj)) in [(a, (i, j)), (b, (j, i))] {
                if v > 1 && v != IGNORE_LABEL {
                    return Err(Error::BadLabel { sample: r.sample, i: ii, j: jj, value: v });
                }
            }
            let asym = if require_symmetric { a != b } else { (a == IGNORE_LABEL) != (b == IGNORE_LABEL) };
            if asym {
                return Err(Error::AsymmetricLabels { sample: r.sample, i, j, upper: a, lower: b });
            }
            if let Some(m) = r.mask {
                let (ma, mb) = (m[i * n + j], m[j * n + i]);
                if (ma != 0) != (mb != 0) {
                    return Err(Error::AsymmetricMask { sample: r.sample, i, j, upper: ma, lower: mb });
                }
            }
            if r.counts(i, j, a) {
                if i == j {
                    c.diagonal += 1;
                } else {
                    c.pairs += 1;
                }
            }
        }
    }
    Ok(c)
}

/// [`scan_block`] over a whole sample.
///
/// # Errors
/// As [`scan_block`].
pub fn scan_sample(r: &SampleRegion<'_>, require_symmetric: bool) -> Result<RegionCounts> {
    scan_block(r, 0..r.len, 0..r.len, require_symmetric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region<'a>(
        labels: &'a [u8],
        mask: Option<&'a [u8]>,
        n: usize,
        len: usize,
        k: usize,
    ) -> SampleRegion<'a> {
        SampleRegion { sample: 3, labels, mask, n, len, min_sep: k }
    }

    /// The closed form against a scan of random binary symmetric labels
    /// (no ignore marks, no mask), over lengths and separations from 0 past
    /// the length.
    #[test]
    fn unmasked_counts_are_those_of_a_scan_without_ignore_marks() {
        let mut rng = crate::rng::Rng::new(17);
        for round in 0..200 {
            let n = 1 + rng.below(40);
            let len = 1 + rng.below(n);
            let k = [0, 1, 2, rng.below(n + 3)][round % 4];
            let mut labels = vec![0u8; n * n];
            for i in 0..n {
                for j in i..n {
                    let v = u8::from(rng.chance(0.3));
                    labels[i * n + j] = v;
                    labels[j * n + i] = v;
                }
            }
            let scanned = scan_sample(&region(&labels, None, n, len, k), true).expect("valid labels");
            assert_eq!(RegionCounts::unmasked(len, k), scanned, "n {n} len {len} min_sep {k}");
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(Dims::from_shape("logits", &[4, 4]), Ok(Dims { batch: 1, n: 4 }));
        assert_eq!(Dims::from_shape("logits", &[2, 5, 5]), Ok(Dims { batch: 2, n: 5 }));
        assert!(matches!(Dims::from_shape("logits", &[2, 5, 4]), Err(Error::NotSquare { .. })));
        assert!(matches!(Dims::from_shape("logits", &[5]), Err(Error::NotSquare { .. })));
        assert!(matches!(Dims::from_shape("logits", &[1, 0, 0]), Err(Error::Empty { .. })));
        assert!(matches!(Dims::from_shape("logits", &[0, 3, 3]), Err(Error::Empty { .. })));
        assert!(matches!(
            check_inputs(&[2, 3, 3], &[2, 3, 4], None, None),
            Err(Error::ShapeMismatch { what: "labels", .. })
        ));
        assert!(matches!(
            check_inputs(&[2, 3, 3], &[2, 3, 3], Some(&[3, 3]), None),
            Err(Error::ShapeMismatch { what: "mask", .. })
        ));
        assert_eq!(
            check_inputs(&[2, 3, 3], &[2, 3, 3], None, Some(&[1])),
            Err(Error::LengthsSize { got: 1, expected: 2 })
        );
        assert_eq!(
            check_inputs(&[2, 3, 3], &[2, 3, 3], None, Some(&[3, 4])),
            Err(Error::BadLength { sample: 1, length: 4, n: 3 })
        );
        assert_eq!(
            check_inputs(&[2, 3, 3], &[2, 3, 3], None, Some(&[0, 2])),
            Err(Error::BadLength { sample: 0, length: 0, n: 3 })
        );
    }

    #[test]
    fn counts_follow_the_counted_set_definition() {
        // 4x4, length 3, min_sep 1: pairs (0,1), (0,2), (1,2) minus the ignored (0,2).
        let mut y = [0u8; 16];
        y[2] = 255;
        y[8] = 255;
        y[15] = 7; // padding is not inspected
        let c = scan_sample(&region(&y, None, 4, 3, 1), true).unwrap();
        assert_eq!(c, RegionCounts { diagonal: 0, pairs: 2 });
        let c = scan_sample(&region(&y, None, 4, 3, 0), true).unwrap();
        assert_eq!((c.ordered(), c.triangle()), (7, 5));
        let mut m = [1u8; 16];
        m[1] = 0;
        m[4] = 0;
        let c = scan_sample(&region(&y, Some(&m), 4, 3, 0), true).unwrap();
        assert_eq!(c, RegionCounts { diagonal: 3, pairs: 1 });
    }

    #[test]
    fn errors_name_sample_and_position() {
        let mut y = [0u8; 9];
        y[5] = 2;
        assert_eq!(
            scan_sample(&region(&y, None, 3, 3, 0), true),
            Err(Error::BadLabel { sample: 3, i: 1, j: 2, value: 2 })
        );
        let mut y = [0u8; 9];
        y[7] = 1;
        assert_eq!(
            scan_sample(&region(&y, None, 3, 3, 0), true),
            Err(Error::AsymmetricLabels { sample: 3, i: 1, j: 2, upper: 0, lower: 1 })
        );
        assert!(scan_sample(&region(&y, None, 3, 3, 0), false).is_ok());
        y[5] = 255;
        y[7] = 0;
        assert!(matches!(
            scan_sample(&region(&y, None, 3, 3, 0), false),
            Err(Error::AsymmetricLabels { .. })
        ));
        let y = [0u8; 9];
        let mut m = [1u8; 9];
        m[3] = 0;
        assert_eq!(
            scan_sample(&region(&y, Some(&m), 3, 3, 0), true),
            Err(Error::AsymmetricMask { sample: 3, i: 0, j: 1, upper: 1, lower: 0 })
        );
    }
}
