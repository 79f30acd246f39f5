//! Software prefetch of short strided rows. A tile row is only a few cache
//! lines, too short for the hardware prefetcher, and the lane loops fill the
//! out-of-order window with arithmetic, so without a hint every row starts
//! with a wait for the L3.

/// Hints that the cache line holding `p` is about to be used. Never faults,
/// reads or writes anything, so any address will do.
#[inline(always)]
pub(crate) fn prefetch_ptr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches `rows` runs of `cols` elements, `stride` apart, from the start of `data`.
#[inline(always)]
pub(crate) fn prefetch_rows<T>(data: &[T], stride: usize, rows: usize, cols: usize) {
    let per_line = (64 / std::mem::size_of::<T>().max(1)).max(1);
    for r in 0..rows {
        for c in (0..cols).step_by(per_line) {
            if let Some(v) = data.get(r * stride + c) {
                prefetch_ptr(std::ptr::from_ref(v));
            }
        }
    }
}
