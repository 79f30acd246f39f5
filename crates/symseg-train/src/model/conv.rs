//! A 2D convolution with "same" padding and dilation, as im2col + one matrix
//! multiply (ndarray's `general_mat_mul`, backed by `matrixmultiply`), with its
//! hand-written backward.

// Shapes here derive from the architecture and from inputs the data loaders and
// `train`/`Checkpoint::load` have already checked against it: a failed reshape is a
// programmer error, so it panics with the broken invariant named.
#![allow(clippy::expect_used)]

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut2, Axis};

/// Shape of one convolution layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvShape {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side (1 or 3).
    pub k: usize,
    /// Dilation.
    pub dilation: usize,
}

impl ConvShape {
    /// `cin * k * k`: the rows of the im2col matrix.
    pub fn patch(&self) -> usize {
        self.cin * self.k * self.k
    }

    /// Weights `cout x patch` followed by `cout` biases.
    pub fn params(&self) -> usize {
        self.cout * self.patch() + self.cout
    }

    /// Offset of kernel tap `t` (0..k) from the centre, in pixels.
    fn offset(&self, t: usize) -> isize {
        (t as isize - (self.k / 2) as isize) * self.dilation as isize
    }
}

/// The im2col matrix of `x` (`cin x n x n`): `patch x n*n`, zero outside the map.
pub fn im2col(s: &ConvShape, x: ArrayView3<'_, f32>) -> Array2<f32> {
    let n = x.shape()[1];
    let mut col = Array2::<f32>::zeros((s.patch(), n * n));
    for c in 0..s.cin {
        for ky in 0..s.k {
            let dy = s.offset(ky);
            for kx in 0..s.k {
                let dx = s.offset(kx);
                let mut row = col.row_mut((c * s.k + ky) * s.k + kx);
                let row = row.as_slice_mut().expect("fresh arrays are contiguous");
                for i in 0..n {
                    let si = i as isize + dy;
                    if si < 0 || si >= n as isize {
                        continue;
                    }
                    // Columns j with 0 <= j + dx < n, copied as one run.
                    let j0 = (-dx).max(0) as usize;
                    let j1 = (n as isize - dx).min(n as isize).max(0) as usize;
                    if j0 >= j1 {
                        continue;
                    }
                    let src = x.slice(ndarray::s![
                        c,
                        si as usize,
                        (j0 as isize + dx) as usize..(j1 as isize + dx) as usize
                    ]);
                    for (d, v) in row[i * n + j0..i * n + j1].iter_mut().zip(src.iter()) {
                        *d = *v;
                    }
                }
            }
        }
    }
    col
}

/// Scatter-adds `dcol` (`patch x n*n`) back onto `dx` (`cin x n x n`): the adjoint of [`im2col`].
pub fn col2im(s: &ConvShape, dcol: ArrayView2<'_, f32>, n: usize, dx: &mut ndarray::Array3<f32>) {
    for c in 0..s.cin {
        for ky in 0..s.k {
            let dy = s.offset(ky);
            for kx in 0..s.k {
                let ddx = s.offset(kx);
                let row = dcol.row((c * s.k + ky) * s.k + kx);
                for i in 0..n {
                    let si = i as isize + dy;
                    if si < 0 || si >= n as isize {
                        continue;
                    }
                    let j0 = (-ddx).max(0) as usize;
                    let j1 = (n as isize - ddx).min(n as isize).max(0) as usize;
                    for j in j0..j1 {
                        dx[[c, si as usize, (j as isize + ddx) as usize]] += row[i * n + j];
                    }
                }
            }
        }
    }
}

/// `y = w . col + b` (`cout x n*n`).
pub fn forward(w: ArrayView2<'_, f32>, b: ArrayView1<'_, f32>, col: &Array2<f32>) -> Array2<f32> {
    let mut y = Array2::<f32>::zeros((w.nrows(), col.ncols()));
    for (mut row, &bias) in y.axis_iter_mut(Axis(0)).zip(b.iter()) {
        row.fill(bias);
    }
    general_mat_mul(1.0, &w, col, 1.0, &mut y);
    y
}

/// Accumulates `dw += dy . col^T`, `db += sum_positions dy`, and returns `dcol = w^T . dy`
/// when `need_input_grad`.
pub fn backward(
    w: ArrayView2<'_, f32>,
    col: &Array2<f32>,
    dy: ArrayView2<'_, f32>,
    mut dw: ArrayViewMut2<'_, f32>,
    mut db: ArrayViewMut1<'_, f32>,
    need_input_grad: bool,
) -> Option<Array2<f32>> {
    general_mat_mul(1.0, &dy, &col.t(), 1.0, &mut dw);
    db += &dy.sum_axis(Axis(1));
    need_input_grad.then(|| {
        let mut dcol = Array2::<f32>::zeros((col.nrows(), col.ncols()));
        general_mat_mul(1.0, &w.t(), &dy, 0.0, &mut dcol);
        dcol
    })
}
