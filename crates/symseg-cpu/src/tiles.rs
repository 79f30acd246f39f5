//! The unit of parallel work: one sample's pair of square tiles `(I, J)`, `I <= J`.
//!
//! A task visits every unordered pair `(i, j)` with `i` in tile `I`, `j` in tile
//! `J` and `i <= j`, so an element and its transposed twin are read and written
//! by the same task while both tiles are in cache. Tasks partition the pairs of
//! a map, which is what makes the shared writes in [`SharedMut`] sound.

use std::ops::Range;

/// Side of a square tile. A tile pair of f32 logits and gradients plus u8 labels
/// (2 x 64 x 64 x 9 bytes = 72 KiB) stays in a core's L2 cache.
pub const TILE: usize = 64;

/// One sample's tile pair.
#[derive(Debug, Clone)]
pub struct Task {
    /// Sample index.
    pub sample: usize,
    /// Rows (tile `I`).
    pub rows: Range<usize>,
    /// Columns (tile `J`), starting at or after `rows.start`.
    pub cols: Range<usize>,
}

/// All tile pairs over `extent(b) x extent(b)` for each sample, in a fixed order
/// (sample, then `I`, then `J`): results combined in this order are independent
/// of the thread count.
pub fn tasks(batch: usize, extent: impl Fn(usize) -> usize) -> Vec<Task> {
    let mut out = Vec::new();
    for sample in 0..batch {
        let m = extent(sample);
        for i0 in (0..m).step_by(TILE) {
            for j0 in (i0..m).step_by(TILE) {
                out.push(Task { sample, rows: i0..(i0 + TILE).min(m), cols: j0..(j0 + TILE).min(m) });
            }
        }
    }
    out
}

/// A mutable buffer written concurrently by tasks that touch disjoint elements.
#[derive(Debug, Clone, Copy)]
pub struct SharedMut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `SharedMut` is only handed to tasks from [`tasks`], which write pairwise
// disjoint sets of elements (each unordered pair belongs to exactly one task).
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Wraps a buffer that outlives every use of the returned value.
    pub fn new(buf: &mut [f32]) -> Self {
        SharedMut { ptr: buf.as_mut_ptr(), len: buf.len() }
    }

    /// Writes `v` at `k`.
    ///
    /// # Safety
    /// No other thread reads or writes element `k` during this call: `k` must
    /// belong to the calling task's tile pair (or its mirror).
    #[inline(always)]
    pub unsafe fn write(&self, k: usize, v: f32) {
        debug_assert!(k < self.len);
        // SAFETY: `k < len` (checked in debug builds; callers index inside the
        // buffer's [B, N, N] shape) and the caller owns element `k`.
        unsafe { self.ptr.add(k).write(v) }
    }

    /// Hints that elements `k..k + len` are about to be written (`NEXT`: by
    /// the next tile): one prefetch per 64-byte line. Nothing is read or written.
    #[inline(always)]
    pub fn prefetch<const NEXT: bool>(&self, k: usize, len: usize) {
        // Addresses only (`wrapping_add`, no unsafe arithmetic): a prefetch
        // never faults, and a plain loop costs less than a `step_by` iterator.
        let end = (k + len).min(self.len);
        let mut o = k;
        while o < end {
            crate::simd::prefetch::prefetch_ptr::<NEXT, f32>(self.ptr.wrapping_add(o).cast_const());
            o += 16;
        }
        if end > k {
            crate::simd::prefetch::prefetch_ptr::<NEXT, f32>(self.ptr.wrapping_add(end - 1).cast_const());
        }
    }

    /// Writes `v` at `k..k + v.len()`.
    ///
    /// # Safety
    /// As [`SharedMut::write`], for every element of the range.
    #[inline(always)]
    pub unsafe fn write_row(&self, k: usize, v: &[f32]) {
        assert!(k + v.len() <= self.len, "row inside the buffer");
        // SAFETY: the range is inside the buffer (asserted) and owned by the caller;
        // `v` is a different allocation, so the two do not overlap.
        unsafe {
            if let Ok(full) = <&[f32; TILE]>::try_from(v) {
                // A whole tile row: a fixed-size copy is a few vector moves,
                // where a run-time length is a `memcpy` call per row.
                self.ptr.add(k).cast::<[f32; TILE]>().write_unaligned(*full);
            } else {
                std::ptr::copy_nonoverlapping(v.as_ptr(), self.ptr.add(k), v.len());
            }
        }
    }
}
