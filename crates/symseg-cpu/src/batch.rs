//! A validated-shape batch as flat C-order slices: what every CPU pass reads.

use symseg_core::validate::{SampleRegion, sample_len};
use symseg_core::{Dims, Error, RegionCounts, Result};

use crate::par::map_tasks;
use crate::simd::SimdLevel;
use crate::tiles::{self, Task};

/// Flat views of one call's inputs (shapes already checked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batch<'a> {
    pub dims: Dims,
    pub logits: &'a [f32],
    pub labels: &'a [u8],
    pub mask: Option<&'a [u8]>,
    pub lengths: Option<&'a [usize]>,
    pub min_sep: usize,
    /// Whether the passes run on rayon (else on the calling thread).
    pub parallel: bool,
}

impl<'a> Batch<'a> {
    /// The real size of sample `b`.
    pub fn len(&self, b: usize) -> usize {
        sample_len(self.lengths, b, self.dims.n)
    }

    /// Offset of sample `b` in the flat buffers.
    pub fn offset(&self, b: usize) -> usize {
        b * self.dims.map_len()
    }

    /// Sample `b`'s region, for the shared validation scan and membership test.
    pub fn region(&self, b: usize) -> SampleRegion<'a> {
        let (o, m) = (self.offset(b), self.dims.map_len());
        SampleRegion {
            sample: b,
            labels: &self.labels[o..o + m],
            mask: self.mask.map(|mk| &mk[o..o + m]),
            n: self.dims.n,
            len: self.len(b),
            min_sep: self.min_sep,
        }
    }

    /// Validates labels and mask (SPEC §1) over tiles in parallel and returns each
    /// sample's counted-set sizes. The first error in task order wins, so the
    /// reported position does not depend on the thread count.
    pub fn scan(&self, require_symmetric: bool, level: SimdLevel) -> Result<Vec<RegionCounts>> {
        let tasks = tiles::tasks(self.dims.batch, |b| self.len(b));
        let parts: Vec<Result<RegionCounts>> = map_tasks(
            self.parallel,
            tasks.len(),
            || (),
            |_, k| {
                let t = &tasks[k];
                // Tiles take the vector check; any tile it flags, the shared scan
                // that names the offending position.
                if let Some(c) = crate::simd::scan::scan_tile(level, self, t, require_symmetric) {
                    return Ok(c);
                }
                symseg_core::validate::scan_block(
                    &self.region(t.sample),
                    t.rows.clone(),
                    t.cols.clone(),
                    require_symmetric,
                )
            },
        );
        let mut counts = vec![RegionCounts::default(); self.dims.batch];
        for (t, part) in tasks.iter().zip(parts) {
            counts[t.sample] = counts[t.sample] + part?;
        }
        Ok(counts)
    }
}

/// Where a tile pair lies in its sample: what every tile kernel starts from.
pub(crate) struct TileSpan<'a> {
    /// Side of the maps, the sample's offset in the flat buffers and its real size.
    pub n: usize,
    pub base: usize,
    pub len: usize,
    /// First row and row count of tile `I`; first column and column count of tile `J`.
    pub i0: usize,
    pub ti: usize,
    pub j0: usize,
    pub tj: usize,
    /// The sample's logits and labels.
    pub x: &'a [f32],
    pub y: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The span of task `t`.
    #[inline(always)]
    pub fn span(&self, t: &Task) -> TileSpan<'a> {
        let n = self.dims.n;
        let base = self.offset(t.sample);
        TileSpan {
            n,
            base,
            len: self.len(t.sample),
            i0: t.rows.start,
            ti: t.rows.len(),
            j0: t.cols.start,
            tj: t.cols.len(),
            x: &self.logits[base..base + n * n],
            y: &self.labels[base..base + n * n],
        }
    }
}

/// The lower of the two indices whose logit is not finite (one of them is not).
#[inline]
pub(crate) fn non_finite_index(kij: usize, kji: usize, xij: f32, xji: f32) -> usize {
    match (xij.is_finite(), xji.is_finite()) {
        (false, false) => kij.min(kji),
        (false, true) => kij,
        _ => kji,
    }
}

/// The lowest of two optional offending indices.
#[inline]
pub(crate) fn lowest(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Batch<'_> {
    /// SPEC §1's error for the non-finite logit at flat index `k`.
    pub fn non_finite(&self, k: usize) -> Error {
        let (n, m) = (self.dims.n, self.dims.map_len());
        Error::NonFiniteLogit { sample: k / m, i: (k % m) / n, j: k % n, value: self.logits[k] }
    }
}
