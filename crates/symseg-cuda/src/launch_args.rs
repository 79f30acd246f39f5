//! What the host passes to the kernels and makes of what they return, apart
//! from the driver calls: the kernels' integer codes, the reduction factors,
//! the grid and whether rows take wide accesses, and the block-ordered sums. The backend and the CPU emulation of
//! the kernels (its tests) share these, so the emulation checks the host's
//! side of each launch too.

use std::ops::Range;

use symseg_core::metrics::{Confusion, SampleStats};
use symseg_core::validate::RegionCounts;
use symseg_core::{ElementLoss, LossConfig, PenaltyKind, PenaltyOn, Reduction, Strategy, SymMode};

pub(crate) use crate::kernels::THREADS;

/// Tile side and elements per wide access (`TILE` and `STRIP` of `common.cuh`).
pub(crate) const TILE: usize = 32;
pub(crate) const STRIP: usize = 4;
/// The tile sides of the loss kernel over tile pairs and of the tile scan
/// (`LOSS_TILE` of `loss.cu`, `SCAN_TILE` of `scan.cu`).
pub(crate) const LOSS_TILE: usize = 64;
pub(crate) const SCAN_TILE: usize = 64;

/// The widest map the kernels index: rows, columns and a sample's tile
/// pairs are counted in 32 bits (`common.cuh`). A map this wide holds
/// 2^40 elements, 4 TiB of logits, so no map that fits on a device is refused.
pub(crate) const MAX_N: usize = 1 << 20;

/// [`MAX_N`] as a check.
pub(crate) fn check_width(n: usize) -> symseg_core::Result<()> {
    if n > MAX_N {
        return Err(symseg_core::Error::Backend {
            backend: "cuda",
            message: format!("maps of N = {n} are wider than the CUDA kernels index (N <= {MAX_N})"),
        });
    }
    Ok(())
}

/// Tile pairs `(I, J)`, `I <= J`, of side `tile` in one `n x n` sample.
pub(crate) fn tile_pairs(n: usize, tile: usize) -> usize {
    let nt = n.div_ceil(tile.max(1));
    nt * (nt + 1) / 2
}

/// The grid of a kernel over tile pairs of side `tile`
/// (`kernels::tile_side`): as many blocks as the device keeps resident
/// (`resident`), or one per tile pair of the batch where that is fewer; the
/// kernels stride over the rest. Fixed for a device and shape, so the
/// block-ordered sums are the same run to run.
pub(crate) fn blocks(batch: usize, n: usize, tile: usize, resident: u32) -> u32 {
    let work = batch.saturating_mul(tile_pairs(n, tile));
    u32::try_from(work).unwrap_or(u32::MAX).min(resident).max(1)
}

/// The grid of `symseg_loss_rows`, which gives each thread an octet (two
/// strips, `2 * STRIP` columns of a row) at a time: as many blocks as the
/// device keeps resident, or as many as the batch's octets fill where that is fewer.
pub(crate) fn row_blocks(batch: usize, n: usize, resident: u32) -> u32 {
    let octets = batch.saturating_mul(n).saturating_mul(n.div_ceil(2 * STRIP));
    u32::try_from(octets.div_ceil(THREADS as usize)).unwrap_or(u32::MAX).min(resident).max(1)
}

/// Whether the kernels may read and write rows `STRIP` elements at a time:
/// rows a whole number of strips long, and every buffer (device addresses;
/// 0 for an absent one) aligned to a strip, 16 bytes for `f32`, 4 for bytes.
pub(crate) fn wide(n: usize, floats: &[u64], bytes: &[u64]) -> bool {
    let aligned = |ptrs: &[u64], size: u64| ptrs.iter().all(|&p| p.is_multiple_of(STRIP as u64 * size));
    n.is_multiple_of(STRIP) && aligned(floats, 4) && aligned(bytes, 1)
}

/// The element loss as `symseg_loss` takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElemArgs {
    pub w_pos: f32,
    pub w_neg: f32,
    pub gamma: f32,
    /// How `s^gamma` is evaluated: 0, 1, 2 by multiplication, 3 by `exp`.
    pub kind: i32,
}

impl ElemArgs {
    pub fn new(loss: &ElementLoss) -> ElemArgs {
        match *loss {
            ElementLoss::Focal { alpha, gamma } => {
                let (a1, a0) = alpha.map_or((1.0, 1.0), |a| (a, 1.0 - a));
                let kind = if gamma == 0.0 {
                    0
                } else if gamma == 1.0 {
                    1
                } else if gamma == 2.0 {
                    2
                } else {
                    3
                };
                ElemArgs { w_pos: a1 as f32, w_neg: a0 as f32, gamma: gamma as f32, kind }
            }
            ElementLoss::Bce { pos_weight } => {
                ElemArgs { w_pos: pos_weight as f32, w_neg: 1.0, gamma: 0.0, kind: 0 }
            }
        }
    }
}

/// Everything `symseg_loss` and `symseg_factors` take besides buffers and shape.
#[derive(Debug, Clone)]
pub(crate) struct LossArgs {
    /// `STRAT_*` of `loss.cu`.
    pub strategy: i32,
    pub elem: ElemArgs,
    /// `PEN_*` of `common.cuh` (0 = none), whether on probabilities, Huber's delta.
    pub pen_kind: i32,
    pub pen_probs: i32,
    pub delta: f32,
    /// For `symseg_factors`: whether the strategy's terms are the triangle
    /// (`upper`, `lower`), the `RED_*` code, and the penalty's weight.
    pub triangle: i32,
    pub reduction: i32,
    pub lambda: f64,
}

impl LossArgs {
    /// The arguments for `cfg`.
    pub fn new(cfg: &LossConfig) -> LossArgs {
        let (pen_kind, pen_probs, delta) = match cfg.penalty {
            None => (0, 0, 0.0),
            Some(p) => {
                let (kind, delta) = match p.kind {
                    PenaltyKind::L1 => (1, 0.0),
                    PenaltyKind::L2 => (2, 0.0),
                    PenaltyKind::Huber { delta } => (3, delta as f32),
                };
                (kind, i32::from(p.on == PenaltyOn::Probs), delta)
            }
        };
        let strategy = match cfg.strategy {
            Strategy::Plain => 0,
            Strategy::Dual => 1,
            Strategy::Average => 2,
            Strategy::Upper => 3,
            Strategy::Lower => 4,
        };
        let reduction = match cfg.reduction {
            Reduction::Mean => 0,
            Reduction::SampleMean => 1,
            Reduction::Sum => 2,
        };
        let triangle = i32::from(matches!(cfg.strategy, Strategy::Upper | Strategy::Lower));
        LossArgs {
            strategy,
            elem: ElemArgs::new(&cfg.loss),
            pen_kind,
            pen_probs,
            delta,
            triangle,
            reduction,
            lambda: cfg.penalty.map_or(0.0, |p| p.weight),
        }
    }
}

/// Per sample, `r_b` and `lambda * r_P` (SPEC §3–4) of a batch with these
/// counted sets, as the host computes them: what `symseg_factors` must
/// reproduce bit for bit, and what the checked loss kernels are given.
pub(crate) fn host_factors(cfg: &LossConfig, counts: &[RegionCounts]) -> (Vec<f64>, Vec<f64>) {
    let terms: Vec<u64> = counts.iter().map(|c| c.terms(cfg.strategy)).collect();
    let lambda = cfg.penalty.map_or(0.0, |p| p.weight);
    let rp = cfg.reduction.factors(&counts.iter().map(|c| c.pairs).collect::<Vec<_>>());
    (cfg.reduction.factors(&terms), rp.iter().map(|&v| lambda * v).collect())
}

/// The element-loss and penalty totals from `symseg_loss`'s per-block
/// `(element, penalty)` partials, added in block order (the same sum run to run).
pub(crate) fn sum_partials(partial: &[f64]) -> (f64, f64) {
    partial.chunks(2).fold((0.0, 0.0), |(e, p), c| (e + c[0], p + c[1]))
}

/// `MODE_*` of `stats.cu` and `symmetrise.cu`.
pub(crate) fn mode_code(mode: SymMode) -> i32 {
    match mode {
        SymMode::None => 0,
        SymMode::Average => 1,
        SymMode::Upper => 2,
        SymMode::Lower => 3,
    }
}

/// Per-sample statistics from `symseg_stats`'s outputs: five counts per
/// sample (`tp, fp, fn, tn`, asymmetry pairs) and, per sample, one asymmetry
/// sum per block of the grid's `blocks`, added in block order.
pub(crate) fn sample_stats(confusion: &[u64], asym: &[f64], blocks: usize) -> Vec<SampleStats> {
    confusion
        .chunks(5)
        .zip(asym.chunks(blocks.max(1)))
        .map(|(c, a)| SampleStats {
            confusion: Confusion { tp: c[0], fp: c[1], fn_: c[2], tn: c[3] },
            asym_sum: a.iter().sum(),
            asym_pairs: c[4],
        })
        .collect()
}

/// Where a call's small device buffers lie among the backend's scratch words
/// (`u64` each: lengths as `i64`, sums and factors as `f64` bits), so that one
/// upload before a call's kernels and one download after them move all of them.
///
/// The scan's words come first: lengths, then the `(pairs, diagonal)` counts,
/// the violation flag, and the row scan's tally (its label balance and the
/// blocks done, zeros before it runs); the call's download starts at the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanWords {
    pub lengths: Range<usize>,
    pub counts: Range<usize>,
    pub violation: usize,
    pub tally: Range<usize>,
    /// The first word after them.
    pub end: usize,
}

impl ScanWords {
    pub fn new(batch: usize) -> ScanWords {
        let violation = 3 * batch;
        ScanWords {
            lengths: 0..batch,
            counts: batch..violation,
            violation,
            tally: violation + 1..violation + 3,
            end: violation + 3,
        }
    }
}

/// Strips of 16 labels a band of `symseg_scan_rows` holds, about: four a
/// thread, whose loads are in flight together.
const BAND_STRIPS: usize = 4 * THREADS as usize;

/// The rows of a band of `symseg_scan_rows` for maps of width `n`: about
/// [`BAND_STRIPS`] strips, at least one row, at most the map.
pub(crate) fn scan_band(n: usize) -> i32 {
    let rows = (BAND_STRIPS / n.div_ceil(16).max(1)).clamp(1, n.max(1));
    i32::try_from(rows).unwrap_or(i32::MAX)
}

/// The grid of `symseg_scan_rows` with bands of `band` rows: the resident
/// blocks, or one per band of the batch where that is fewer.
pub(crate) fn scan_row_blocks(batch: usize, n: usize, band: i32, resident: u32) -> u32 {
    let band = usize::try_from(band).unwrap_or(1).max(1);
    let units = batch.saturating_mul(n.div_ceil(band));
    u32::try_from(units).unwrap_or(u32::MAX).min(resident).max(1)
}

/// The loss kernel's words, after the scan's (`start`): the per-sample
/// factors `r` and `wp` (which `symseg_factors` writes), the non-finite flag,
/// and the per-block partial sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LossWords {
    pub r: Range<usize>,
    pub wp: Range<usize>,
    pub bad: usize,
    pub partial: Range<usize>,
}

impl LossWords {
    pub fn new(start: usize, batch: usize, blocks: usize) -> LossWords {
        let bad = start + 2 * batch;
        LossWords {
            r: start..start + batch,
            wp: start + batch..bad,
            bad,
            partial: bad + 1..bad + 1 + 2 * blocks,
        }
    }
}

/// The stats kernel's words, after the scan's: five counts per sample, the
/// non-finite flag, and one asymmetry sum per sample and block (all uploaded,
/// zeros but the flag, and downloaded together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatsWords {
    pub confusion: Range<usize>,
    pub bad: usize,
    pub asym: Range<usize>,
}

impl StatsWords {
    pub fn new(start: usize, batch: usize, blocks: usize) -> StatsWords {
        let bad = start + 5 * batch;
        StatsWords { confusion: start..bad, bad, asym: bad + 1..bad + 1 + batch * blocks }
    }
}

/// Per-sample counted-set sizes from `symseg_scan`'s `(pairs, diagonal)` counts.
pub(crate) fn region_counts(counts: &[u64]) -> Vec<RegionCounts> {
    counts.chunks(2).map(|p| RegionCounts { pairs: p[0], diagonal: p[1] }).collect()
}

#[cfg(test)]
mod tests {
    use super::{
        LossWords, ScanWords, StatsWords, blocks, row_blocks, scan_band, scan_row_blocks, tile_pairs, wide,
    };

    #[test]
    fn the_scratch_words_tile_without_gaps_or_overlap() {
        let (b, g) = (3, 5);
        let scan = ScanWords::new(b);
        assert_eq!(
            (scan.lengths.clone(), scan.counts.clone(), scan.violation, scan.tally.clone()),
            (0..3, 3..9, 9, 10..12)
        );
        let loss = LossWords::new(scan.end, b, g);
        assert_eq!((loss.r, loss.wp, loss.bad, loss.partial), (12..15, 15..18, 18, 19..29));
        let stats = StatsWords::new(scan.end, b, g);
        assert_eq!((stats.confusion, stats.bad, stats.asym), (12..27, 27, 28..43));
    }

    #[test]
    fn the_grid_is_the_resident_blocks_or_one_per_tile_pair() {
        assert_eq!(tile_pairs(1, 32), 1);
        assert_eq!(tile_pairs(33, 32), 3);
        assert_eq!(tile_pairs(2048, 32), 64 * 65 / 2);
        assert_eq!(tile_pairs(2048, 64), 32 * 33 / 2);
        assert_eq!(tile_pairs(65, 64), 3);
        // 8 x 2048^2 on 132 SMs holding 4 blocks each: every block strides.
        assert_eq!(blocks(8, 2048, 32, 132 * 4), 528);
        assert_eq!(blocks(8, 2048, 64, 132 * 4), 528);
        // A small batch: one block per tile pair.
        assert_eq!(blocks(3, 33, 32, 528), 9);
        assert_eq!(blocks(3, 33, 64, 528), 3);
        assert_eq!(blocks(2, 100, 64, 528), 6);
        // More work than a u32 counts is still capped by the device.
        assert_eq!(blocks(usize::MAX, 2048, 32, 528), 528);
        assert_eq!(blocks(1, 1, 32, 0), 1);
    }

    #[test]
    fn maps_wider_than_the_kernels_index_are_refused() {
        assert!(super::check_width(super::MAX_N).is_ok());
        let e = super::check_width(super::MAX_N + 1).expect_err("too wide");
        assert!(e.to_string().contains("wider than the CUDA kernels index"), "{e}");
    }

    #[test]
    fn the_row_grid_is_the_resident_blocks_or_one_per_256_octets() {
        // 8 x 2048^2: 8 * 2048 * 256 octets, far more than 132 * 4 blocks hold.
        assert_eq!(row_blocks(8, 2048, 132 * 4), 528);
        // 2 x 33^2: 5 octets a row (the last one partial), 330 octets, 2 blocks.
        assert_eq!(row_blocks(2, 33, 528), 2);
        // 3 x 70^2: 9 octets a row, 1890 octets, 8 blocks.
        assert_eq!(row_blocks(3, 70, 528), 8);
        assert_eq!(row_blocks(1, 1, 528), 1);
        assert_eq!(row_blocks(usize::MAX, 2048, 528), 528);
        assert_eq!(row_blocks(1, 1, 0), 1);
    }

    #[test]
    fn a_scan_band_holds_about_four_strips_a_thread() {
        // 2048 columns: 128 strips a row, 8 rows a band, 256 bands a sample.
        assert_eq!(scan_band(2048), 8);
        assert_eq!(scan_row_blocks(8, 2048, 8, 132 * 4), 528);
        assert_eq!(scan_row_blocks(2, 2048, 8, 10_000), 512);
        // Narrow maps: the band is the whole map; wide ones: one row.
        assert_eq!(scan_band(33), 33);
        assert_eq!(scan_row_blocks(3, 33, 33, 528), 3);
        assert_eq!(scan_band(1 << 20), 1);
        assert_eq!(scan_band(1), 1);
        assert_eq!(scan_row_blocks(1, 1, 1, 0), 1);
    }

    #[test]
    fn rows_are_wide_only_when_whole_strips_and_aligned() {
        assert!(wide(64, &[0x1000, 0], &[0x2004, 0]));
        assert!(!wide(66, &[0x1000], &[0x2000]), "a strip would straddle rows");
        assert!(!wide(64, &[0x1008], &[0x2000]), "floats need 16 bytes");
        assert!(!wide(64, &[0x1000], &[0x2002]), "bytes need 4");
        assert!(wide(4, &[], &[]));
    }
}
