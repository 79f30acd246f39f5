//! SPEC §1's label/mask validation and counted-set sizes for one tile pair,
//! vectorised like the loss tiles: the mirror tile's labels (and
//! mask) are transposed into local buffers, then each row is checked with
//! branch-free lane loops. It only answers "clean, with these counts" or "look
//! closer": on any violation the caller reruns the shared scalar scan, which
//! names the first offending position.

use symseg_core::RegionCounts;

use super::SimdLevel;
use super::prefetch::prefetch_rows;
use super::transpose::transpose_u8_into;
use crate::batch::{Batch, TileSpan};
use crate::tiles::{TILE, Task};

/// Counts of a clean tile pair, or `None` if it breaks a rule.
#[inline(always)]
fn tile(bt: &Batch<'_>, t: &Task, require_symmetric: bool) -> Option<RegionCounts> {
    // Each flag as a constant, so the row loop holds only byte arithmetic.
    match (bt.mask.is_some(), require_symmetric) {
        (true, true) => tile_typed::<true, true>(bt, t),
        (true, false) => tile_typed::<true, false>(bt, t),
        (false, true) => tile_typed::<false, true>(bt, t),
        (false, false) => tile_typed::<false, false>(bt, t),
    }
}

/// [`tile`] for a batch with (`M`) or without a mask, and labels that must be
/// symmetric (`S`) or only have symmetric ignore marks.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // transposes index by (row, column)
fn tile_typed<const M: bool, const S: bool>(bt: &Batch<'_>, t: &Task) -> Option<RegionCounts> {
    let TileSpan { n, base, len, i0, ti, j0, tj, y, .. } = bt.span(t);
    let mask = bt.mask.map(|m| &m[base..base + n * n]);
    let mut yt = [[0u8; TILE]; TILE];
    let mut mt = [[1u8; TILE]; TILE];
    // The next task's tile pair (usually `(I, J + 1)`), into L2: its row side is
    // 64 separate short runs that the hardware prefetcher does not follow.
    let jn = j0 + TILE;
    let next = (jn < len).then(|| TILE.min(len - jn));
    for map in std::iter::once(y).chain(mask.filter(|_| M)) {
        prefetch_rows::<false, u8>(&map[i0 * n + j0..], n, ti, tj);
        if let Some(tn) = next {
            prefetch_rows::<true, u8>(&map[i0 * n + jn..], n, ti, tn);
            prefetch_rows::<true, u8>(&map[jn * n + i0..], n, tn, ti);
        }
    }
    transpose_u8_into(&y[j0 * n + i0..], n, tj, ti, &mut yt);
    if let (true, Some(m)) = (M, mask) {
        transpose_u8_into(&m[j0 * n + i0..], n, tj, ti, &mut mt);
    }
    // Scan tiles cover only the real region 0..len of each sample.
    debug_assert!(i0 + ti <= len && j0 + tj <= len);
    let diagonal = i0 == j0;
    let mut pairs = 0u64;
    // Per column, reduced once per tile: one byte reduced after every row was
    // a dozen shuffles per 64 bytes, a third of the row loop.
    let mut broken = [0u8; TILE];
    // Counted pairs per column, summed over the tile's rows (at most TILE, so
    // a byte): the row loop stays at byte width, 64 lanes per AVX-512
    // register, where a 32-bit row sum made it widen every byte fourfold.
    const _: () = assert!(TILE <= u8::MAX as usize, "a column's count must fit a byte");
    let mut column_pairs = [0u8; TILE];
    for il in 0..ti {
        let i = i0 + il;
        let row = i * n + j0;
        let yr = &y[row..row + tj];
        let ytr = &yt[il][..tj];
        let mr = if let (true, Some(m)) = (M, mask) { &m[row..row + tj] } else { yr };
        let mtr = &mt[il][..tj];
        // Pairs have j > i, so |i - j| >= min_sep is jl >= first. A diagonal
        // tile checks every position (both orders: harmless) but counts only
        // j > i here, its diagonal below.
        let first = if diagonal {
            (il + bt.min_sep.max(1)).min(TILE) as u8
        } else {
            (i + bt.min_sep).saturating_sub(j0).min(TILE) as u8
        };
        for jl in 0..tj {
            let (a, b) = (yr[jl], ytr[jl]);
            let bad_value = u8::from(a > 1 && a != 255) | u8::from(b > 1 && b != 255);
            let asym = if S { u8::from(a != b) } else { u8::from((a == 255) != (b == 255)) };
            let (ma, mb) = if M { (mr[jl] != 0, mtr[jl] != 0) } else { (true, true) };
            broken[jl] |= bad_value | asym | u8::from(ma != mb);
            column_pairs[jl] += u8::from(jl as u8 >= first) & u8::from(a != 255) & u8::from(ma);
        }
    }
    pairs += column_pairs.iter().map(|&c| u64::from(c)).sum::<u64>();
    let mut diag = 0u64;
    if diagonal && bt.min_sep == 0 {
        for il in 0..ti {
            let k = (i0 + il) * (n + 1);
            let m = if let (true, Some(m)) = (M, mask) { m[k] != 0 } else { true };
            diag += u64::from(y[k] != 255 && m);
        }
    }
    broken.iter().all(|&b| b == 0).then_some(RegionCounts { diagonal: diag, pairs })
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
