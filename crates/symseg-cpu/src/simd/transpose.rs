//! Transposing a tile (f32 in 4 x 4 blocks, bytes in 16 x 16 blocks): the lane-loop kernels need the
//! mirror tile row by row, and a plain double loop is vectorised by the
//! compiler into gathers or scatters that cost more than the loss itself.

use crate::tiles::TILE;

/// `dst[c][r] = src[r * stride + c]` for `r < rows`, `c < cols`, in `B x B`
/// blocks transposed by `block` (in registers), the ragged edges element by element.
#[inline(always)]
fn transpose_blocks<T: Copy + Default, const B: usize>(
    src: &[T],
    stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [[T; TILE]; TILE],
    block: impl Fn([[T; B]; B]) -> [[T; B]; B],
) {
    let (rb, cb) = (rows / B * B, cols / B * B);
    for r in (0..rb).step_by(B) {
        for c in (0..cb).step_by(B) {
            // One vector load per row (element-wise indexing gave scalar loads);
            // a loop, not `array::from_fn`, which was left as a call outside
            // the `#[target_feature]` kernels.
            let mut rows_in = [[T::default(); B]; B];
            for (k, row) in rows_in.iter_mut().enumerate() {
                let o = (r + k) * stride + c;
                row.copy_from_slice(&src[o..o + B]);
            }
            for (k, row) in block(rows_in).iter().enumerate() {
                dst[c + k][r..r + B].copy_from_slice(row);
            }
        }
    }
    // Ragged edges (tiles at the end of a map).
    for r in 0..rows {
        let from = if r < rb { cb } else { 0 };
        for c in from..cols {
            dst[c][r] = src[r * stride + c];
        }
    }
}

/// `dst[c][r] = src[r * stride + c]` for logits and gradients, in 4 x 4 blocks.
#[inline(always)]
pub(crate) fn transpose_into(
    src: &[f32],
    stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [[f32; TILE]; TILE],
) {
    transpose_blocks::<f32, 4>(src, stride, rows, cols, dst, transpose4)
}

/// `dst[c][r] = src[r * stride + c]` for bytes (labels, masks), in 16 x 16 blocks.
#[inline(always)]
pub(crate) fn transpose_u8_into(
    src: &[u8],
    stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [[u8; TILE]; TILE],
) {
    transpose_blocks::<u8, 16>(src, stride, rows, cols, dst, transpose16_u8)
}

/// A 4 x 4 transpose in SSE registers (baseline on x86-64).
#[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
#[inline(always)]
fn transpose4(b: [[f32; 4]; 4]) -> [[f32; 4]; 4] {
    use std::arch::x86_64::{__m128, _mm_movehl_ps, _mm_movelh_ps, _mm_unpackhi_ps, _mm_unpacklo_ps};
    // SAFETY: `[f32; 4]` and `__m128` are both 16 bytes of f32 lanes; every bit pattern is valid in both.
    let v = |a: [f32; 4]| unsafe { std::mem::transmute::<[f32; 4], __m128>(a) };
    // SAFETY: as above.
    let a = |m: __m128| unsafe { std::mem::transmute::<__m128, [f32; 4]>(m) };
    let (r0, r1, r2, r3) = (v(b[0]), v(b[1]), v(b[2]), v(b[3]));
    // SAFETY: SSE is part of the x86-64 baseline (`target_feature = "sse"` is always set there).
    unsafe {
        let t0 = _mm_unpacklo_ps(r0, r1);
        let t1 = _mm_unpacklo_ps(r2, r3);
        let t2 = _mm_unpackhi_ps(r0, r1);
        let t3 = _mm_unpackhi_ps(r2, r3);
        [
            a(_mm_movelh_ps(t0, t1)),
            a(_mm_movehl_ps(t1, t0)),
            a(_mm_movelh_ps(t2, t3)),
            a(_mm_movehl_ps(t3, t2)),
        ]
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
#[inline(always)]
fn transpose4(b: [[f32; 4]; 4]) -> [[f32; 4]; 4] {
    std::array::from_fn(|c| std::array::from_fn(|r| b[r][c]))
}

/// A 16 x 16 byte transpose: four rounds of interleaving row `k` with row
/// `k + 8` (each round is a perfect shuffle of the 8-bit element index, and
/// four of them swap its row and column halves).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn transpose16_u8(b: [[u8; 16]; 16]) -> [[u8; 16]; 16] {
    use std::arch::x86_64::{__m128i, _mm_unpackhi_epi8, _mm_unpacklo_epi8};
    // SAFETY: `[u8; 16]` and `__m128i` are both 16 plain bytes; every bit pattern is valid in both.
    // SAFETY: as above.
    let mut v: [__m128i; 16] = unsafe { std::mem::transmute::<[[u8; 16]; 16], [__m128i; 16]>(b) };
    for _ in 0..4 {
        // Plain loops (not `array::from_fn`/`map`, which can stay calls outside the kernels).
        let mut next = v;
        for k in 0..8 {
            let (a, c) = (v[k], v[k + 8]);
            // SAFETY: SSE2 is part of the x86-64 baseline.
            unsafe {
                next[2 * k] = _mm_unpacklo_epi8(a, c);
                next[2 * k + 1] = _mm_unpackhi_epi8(a, c);
            }
        }
        v = next;
    }
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[__m128i; 16], [[u8; 16]; 16]>(v) }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn transpose16_u8(b: [[u8; 16]; 16]) -> [[u8; 16]; 16] {
    std::array::from_fn(|c| std::array::from_fn(|r| b[r][c]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_every_shape() {
        for (rows, cols) in [(64, 64), (1, 1), (3, 7), (17, 64), (64, 5), (4, 4)] {
            let stride = 70;
            let src: Vec<f32> = (0..rows * stride).map(|k| k as f32 * 0.5 - 3.0).collect();
            let mut dst = Box::new([[f32::NAN; TILE]; TILE]);
            transpose_into(&src, stride, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c][r], src[r * stride + c], "{rows}x{cols} at ({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn transposes_bytes_of_every_shape() {
        for (rows, cols) in [(64, 64), (1, 1), (3, 7), (17, 64), (64, 5), (16, 16), (33, 48)] {
            let stride = 70;
            let src: Vec<u8> = (0..rows * stride).map(|k| (k * 7 % 251) as u8).collect();
            let mut dst = Box::new([[0u8; TILE]; TILE]);
            transpose_u8_into(&src, stride, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c][r], src[r * stride + c], "{rows}x{cols} at ({r}, {c})");
                }
            }
        }
    }
}
