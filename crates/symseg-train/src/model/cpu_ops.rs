//! The default [`ModelOps`]: direct convolutions on channels-last maps
//! ([`super::direct`]), vectorised for the CPU it runs on.

use ndarray::{Array2, ArrayView2, ArrayView3};
use symseg::SimdLevel;

use super::direct::{LANES, Map, Packed, PackedGrad};
use super::{Arch, ConvShape, ModelOps};
use crate::error::TrainResult;

/// Direct convolutions, vectorised at the best [`SimdLevel`] of this CPU
/// (or the level given to [`CpuOps::with_simd`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuOps {
    level: Option<SimdLevel>,
}

impl CpuOps {
    /// Kernels at a fixed level (for tests and benchmarks); `level` must be one of
    /// [`SimdLevel::available`], otherwise the portable kernels run.
    pub fn with_simd(level: SimdLevel) -> CpuOps {
        let level = if SimdLevel::available().contains(&level) { level } else { SimdLevel::Scalar };
        CpuOps { level: Some(level) }
    }

    fn level(&self) -> SimdLevel {
        self.level.unwrap_or_else(SimdLevel::detect)
    }
}

/// Saved activations of one forward pass.
#[derive(Debug)]
pub struct CpuTape {
    /// The input of each layer.
    inputs: Vec<Map>,
    /// The ReLU output of each layer but the head; `> 0` marks the active units.
    relu_out: Vec<Map>,
}

/// The weights and biases of layer `s` at `off` in the flat parameters.
fn layer_params<'a>(params: &'a [f32], off: usize, s: &ConvShape) -> (&'a [f32], &'a [f32]) {
    let nw = s.cout * s.patch();
    (&params[off..off + nw], &params[off + nw..off + nw + s.cout])
}

/// `a + b`, blockwise.
fn sum(a: &Map, b: &Map) -> Map {
    let mut out = Map::scratch(a.n, a.channels);
    for ((o, x), y) in out.data.iter_mut().zip(&a.data).zip(&b.data) {
        for l in 0..LANES {
            o[l] = x[l] + y[l];
        }
    }
    out
}

/// `g` where `out > 0`, else 0: the gradient through a ReLU whose output was `out`.
fn relu_backward(g: &Map, out: &Map) -> Map {
    let mut d = Map::scratch(g.n, g.channels);
    for ((d, g), o) in d.data.iter_mut().zip(&g.data).zip(&out.data) {
        for l in 0..LANES {
            d[l] = if o[l] > 0.0 { g[l] } else { 0.0 };
        }
    }
    d
}

impl ModelOps for CpuOps {
    type Tape = CpuTape;

    fn forward(
        &self,
        arch: &Arch,
        params: &[f32],
        x: ArrayView3<'_, f32>,
    ) -> TrainResult<(Array2<f32>, CpuTape)> {
        arch.check(params, x.shape())?;
        let level = self.level();
        let n = x.shape()[1];
        let layers = arch.layers();
        let (offs, _) = arch.offsets();
        let last = layers.len() - 1;
        let mut tape = CpuTape { inputs: Vec::with_capacity(layers.len()), relu_out: Vec::new() };
        let mut h = Map::from_chw(x);
        for (k, (s, &off)) in layers.iter().zip(&offs).enumerate() {
            let (w, b) = layer_params(params, off, s);
            let y = Packed::new(s, w, b).apply(&h, k != last, level);
            if k == last {
                tape.inputs.push(h);
                let logits = Array2::from_shape_vec((n, n), y.channel(0))
                    .map_err(|e| crate::error::TrainError::Shape(e.to_string()))?;
                return Ok((logits, tape));
            }
            // Stem: h = relu(conv(x)); blocks: h = h + relu(conv(h)).
            let next = if k == 0 { y.clone() } else { sum(&h, &y) };
            tape.inputs.push(std::mem::replace(&mut h, next));
            tape.relu_out.push(y);
        }
        unreachable!("the architecture always ends with a head layer")
    }

    fn backward(
        &self,
        arch: &Arch,
        params: &[f32],
        tape: &CpuTape,
        dlogits: ArrayView2<'_, f32>,
        grad: &mut [f32],
    ) {
        let level = self.level();
        let layers = arch.layers();
        let (offs, _) = arch.offsets();
        let last = layers.len() - 1;
        let n = dlogits.nrows();
        let mut dy = Map::zeros(n, 1);
        for (d, &g) in dy.data.iter_mut().zip(dlogits.iter()) {
            d[0] = g;
        }
        // `dh`: d loss / d (input of the layer being walked back through).
        let mut dh = Map::zeros(0, 0);
        for k in (0..=last).rev() {
            let s = &layers[k];
            if k != last {
                // Through the ReLU: only active units pass the gradient.
                dy = relu_backward(&dh, &tape.relu_out[k]);
            }
            PackedGrad::compute(s, &tape.inputs[k], &dy, level)
                .add_to(s, &mut grad[offs[k]..offs[k] + s.params()]);
            if k == 0 {
                break;
            }
            let (w, _) = layer_params(params, offs[k], s);
            let adjoint = Packed::adjoint(s, w);
            if k == last {
                dh = Map::zeros(n, s.cin);
            }
            // Residual blocks pass the gradient straight through as well, so the
            // input gradient adds to it.
            adjoint.apply_add(&dy, &mut dh, level);
        }
    }
}
