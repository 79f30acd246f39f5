//! The reference implementation of [`ModelOps`]: every convolution as im2col + one
//! matrix multiply (`matrixmultiply` through ndarray). Simple and obviously right,
//! it checks the faster [`super::CpuOps`] in the tests and can be chosen for training.

// Shapes here derive from the architecture and from inputs the data loaders and
// `train`/`Checkpoint::load` have already checked against it: a failed reshape is a
// programmer error, so it panics with the broken invariant named.
#![allow(clippy::expect_used)]

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut2};

use super::{Arch, ModelOps, conv};
use crate::error::TrainResult;

/// Convolutions as im2col + matrixmultiply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Im2colOps;

/// Saved activations of one forward pass.
#[derive(Debug)]
pub struct Im2colTape {
    n: usize,
    /// im2col matrix of each layer's input.
    cols: Vec<Array2<f32>>,
    /// Output of each ReLU layer (stem and block branches), `cout x n*n`; `> 0` marks the active units.
    relu_out: Vec<Array2<f32>>,
}

fn layer_views<'a>(
    params: &'a [f32],
    off: usize,
    s: &conv::ConvShape,
) -> (ArrayView2<'a, f32>, ndarray::ArrayView1<'a, f32>) {
    let nw = s.cout * s.patch();
    let w = ArrayView2::from_shape((s.cout, s.patch()), &params[off..off + nw]).expect("layout matches arch");
    let b = ndarray::ArrayView1::from(&params[off + nw..off + nw + s.cout]);
    (w, b)
}

fn grad_views<'a>(
    grad: &'a mut [f32],
    off: usize,
    s: &conv::ConvShape,
) -> (ArrayViewMut2<'a, f32>, ArrayViewMut1<'a, f32>) {
    let nw = s.cout * s.patch();
    let (w, b) = grad[off..off + s.params()].split_at_mut(nw);
    (ArrayViewMut2::from_shape((s.cout, s.patch()), w).expect("layout matches arch"), ArrayViewMut1::from(b))
}

impl ModelOps for Im2colOps {
    type Tape = Im2colTape;

    fn forward(
        &self,
        arch: &Arch,
        params: &[f32],
        x: ArrayView3<'_, f32>,
    ) -> TrainResult<(Array2<f32>, Im2colTape)> {
        arch.check(params, x.shape())?;
        let n = x.shape()[1];
        let layers = arch.layers();
        let (offs, _) = arch.offsets();
        let mut tape = Im2colTape { n, cols: Vec::new(), relu_out: Vec::new() };
        let last = layers.len() - 1;
        let mut h: Array3<f32> = x.to_owned();
        for (k, (s, &off)) in layers.iter().zip(&offs).enumerate() {
            let (w, b) = layer_views(params, off, s);
            let col = conv::im2col(s, h.view());
            let mut y = conv::forward(w, b, &col);
            tape.cols.push(col);
            if k == last {
                let logits = y.into_shape_with_order((n, n)).expect("head has one channel");
                return Ok((logits, tape));
            }
            y.mapv_inplace(|v| v.max(0.0));
            let y3 = y.view().into_shape_with_order((s.cout, n, n)).expect("cout x n x n");
            // Stem: h = relu(conv(x)); blocks: h = h + relu(conv(h)).
            h = if k == 0 { y3.to_owned() } else { &h + &y3 };
            tape.relu_out.push(y);
        }
        unreachable!("the architecture always ends with a head layer")
    }

    fn backward(
        &self,
        arch: &Arch,
        params: &[f32],
        tape: &Im2colTape,
        dlogits: ArrayView2<'_, f32>,
        grad: &mut [f32],
    ) {
        let n = tape.n;
        let layers = arch.layers();
        let (offs, _) = arch.offsets();
        let last = layers.len() - 1;
        // d loss / d h, where h is the input of the layer being walked back through.
        let mut dh: Option<Array3<f32>> = None;
        for k in (0..=last).rev() {
            let s = &layers[k];
            let (w, _) = layer_views(params, offs[k], s);
            let dy: Array2<f32> = if k == last {
                dlogits.to_owned().into_shape_with_order((1, n * n)).expect("n x n logits")
            } else {
                // Through the ReLU: only active units pass the gradient.
                let up = dh
                    .as_ref()
                    .expect("set by the layer above")
                    .view()
                    .into_shape_with_order((s.cout, n * n))
                    .expect("cout x n*n")
                    .to_owned();
                let mut g = up;
                g.zip_mut_with(&tape.relu_out[k], |g, &o| {
                    if o <= 0.0 {
                        *g = 0.0;
                    }
                });
                g
            };
            let (dw, db) = grad_views(grad, offs[k], s);
            let dcol = conv::backward(w, &tape.cols[k], dy.view(), dw, db, k > 0);
            if let Some(dcol) = dcol {
                let mut dx = Array3::<f32>::zeros((s.cin, n, n));
                conv::col2im(s, dcol.view(), n, &mut dx);
                // Residual blocks pass the gradient straight through as well.
                dh = Some(match (k, dh.take()) {
                    (k, Some(skip)) if k != last => dx + skip,
                    _ => dx,
                });
            }
        }
    }
}
