//! Software prefetch of short strided rows. A tile row is only a few cache
//! lines, too short for the hardware prefetcher, and the lane loops fill the
//! out-of-order window with arithmetic, so without a hint every row starts
//! with a wait for the L3.
//!
//! Two distances: `NEXT = false` for the tile about to be used (into L1), and
//! `NEXT = true` for the tile after it (into L2 only, so the current tile's
//! lines stay in L1), which gives the lines a whole tile's work to arrive.

/// Hints that the cache line holding `p` is about to be used. Never faults,
/// reads or writes anything, so any address will do.
#[inline(always)]
pub(crate) fn prefetch_ptr<const NEXT: bool, T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache and never faults.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
        if NEXT {
            _mm_prefetch::<_MM_HINT_T1>(p.cast::<i8>());
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches `rows` runs of `cols` elements, `stride` apart, from the start of
/// `data`. Only addresses are formed (a prefetch never faults), so there are no
/// bounds checks: with iterators and `get` they cost as many instructions as
/// the prefetches themselves, in the tile loops' innermost rows.
#[inline(always)]
pub(crate) fn prefetch_rows<const NEXT: bool, T>(data: &[T], stride: usize, rows: usize, cols: usize) {
    if cols == 0 {
        return;
    }
    let per_line = (64 / std::mem::size_of::<T>().max(1)).max(1);
    let base = data.as_ptr();
    for r in 0..rows {
        let row = base.wrapping_add(r * stride);
        let mut c = 0;
        while c < cols {
            prefetch_ptr::<NEXT, T>(row.wrapping_add(c));
            c += per_line;
        }
        // The run's last line, where the run does not start on a line boundary.
        prefetch_ptr::<NEXT, T>(row.wrapping_add(cols - 1));
    }
}
