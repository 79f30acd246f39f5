//! SPEC §1's label/mask validation and counted-set sizes for one off-diagonal
//! tile pair, vectorised like the loss tiles: the mirror tile's labels (and
//! mask) are transposed into local buffers, then each row is checked with
//! branch-free lane loops. It only answers "clean, with these counts" or "look
//! closer": on any violation the caller reruns the shared scalar scan, which
//! names the first offending position.

use symseg_core::RegionCounts;

use super::SimdLevel;
use crate::batch::Batch;
use crate::tiles::{TILE, Task};

/// Counts of a clean off-diagonal tile pair, or `None` if it breaks a rule.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // transposes index by (row, column)
fn tile(bt: &Batch<'_>, t: &Task, require_symmetric: bool) -> Option<RegionCounts> {
    let n = bt.dims.n;
    let base = bt.offset(t.sample);
    let len = bt.len(t.sample);
    let (i0, ti) = (t.rows.start, t.rows.len());
    let (j0, tj) = (t.cols.start, t.cols.len());
    let y = &bt.labels[base..base + n * n];
    let mut yt = [[0u8; TILE]; TILE];
    let mut mt = [[1u8; TILE]; TILE];
    for jl in 0..tj {
        let row = (j0 + jl) * n + i0;
        for il in 0..ti {
            yt[il][jl] = y[row + il];
        }
        if let Some(m) = bt.mask {
            for il in 0..ti {
                mt[il][jl] = m[base + row + il];
            }
        }
    }
    // Scan tiles cover only the real region 0..len of each sample.
    debug_assert!(i0 + ti <= len && j0 + tj <= len);
    let mut pairs = 0u64;
    let mut broken = false;
    for il in 0..ti {
        let i = i0 + il;
        let row = i * n + j0;
        let yr = &y[row..row + tj];
        let mr = bt.mask.map(|m| &m[base + row..base + row + tj]);
        let mut row_pairs = 0u32;
        for jl in 0..tj {
            let (a, b) = (yr[jl], yt[il][jl]);
            let ma = mr.map_or(1, |m| m[jl]);
            let mb = mt[il][jl];
            let bad_value = (a > 1 && a != 255) || (b > 1 && b != 255);
            let asym = if require_symmetric { a != b } else { (a == 255) != (b == 255) };
            broken |= bad_value | asym | ((ma != 0) != (mb != 0));
            // Off-diagonal tiles have j > i, so |i - j| = j - i.
            row_pairs += u32::from(j0 + jl - i >= bt.min_sep && a != 255 && ma != 0);
        }
        pairs += u64::from(row_pairs);
    }
    (!broken).then_some(RegionCounts { diagonal: 0, pairs })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn tile_avx512(bt: &Batch<'_>, t: &Task, require_symmetric: bool) -> Option<RegionCounts> {
    tile(bt, t, require_symmetric)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn tile_avx2(bt: &Batch<'_>, t: &Task, require_symmetric: bool) -> Option<RegionCounts> {
    tile(bt, t, require_symmetric)
}

/// [`tile`] at `level`.
pub(crate) fn scan_tile(
    level: SimdLevel,
    bt: &Batch<'_>,
    t: &Task,
    require_symmetric: bool,
) -> Option<RegionCounts> {
    match level {
        // SAFETY: `CpuBackend` only holds a level that `SimdLevel::available` detected.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { tile_avx512(bt, t, require_symmetric) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { tile_avx2(bt, t, require_symmetric) },
        _ => tile(bt, t, require_symmetric),
    }
}
