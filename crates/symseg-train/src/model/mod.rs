//! The network: a fully-convolutional 2D model mapping `C x N x N` pair features
//! to `N x N` logits — a 3x3 stem, residual blocks of 3x3 convolutions with
//! growing dilation (so the receptive field covers long-range pairs), ReLU, and a
//! 1x1 head — with parameters in one flat vector.

pub mod conv;
mod cpu_ops;
pub mod direct;
mod im2col_ops;
pub mod map;
mod ops;

use serde::{Deserialize, Serialize};
use symseg::rng::Rng;

use crate::error::{TrainError, TrainResult};

pub use conv::ConvShape;
pub use cpu_ops::{CpuOps, CpuTape};
pub use im2col_ops::{Im2colOps, Im2colTape};
pub use ops::ModelOps;

/// The architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arch {
    /// Input channels.
    pub channels: usize,
    /// Hidden width.
    pub width: usize,
    /// Dilation of each residual block.
    pub dilations: Vec<usize>,
}

impl Arch {
    /// The default for `channels` inputs: width 24, dilations 1, 2, 4, 8, 16, 1
    /// (receptive field 65 x 65).
    pub fn default_for(channels: usize) -> Self {
        Arch { channels, width: 24, dilations: vec![1, 2, 4, 8, 16, 1] }
    }

    /// Every layer in order: stem, blocks, head.
    pub fn layers(&self) -> Vec<ConvShape> {
        let mut v = vec![ConvShape { cin: self.channels, cout: self.width, k: 3, dilation: 1 }];
        v.extend(self.dilations.iter().map(|&d| ConvShape {
            cin: self.width,
            cout: self.width,
            k: 3,
            dilation: d,
        }));
        v.push(ConvShape { cin: self.width, cout: 1, k: 1, dilation: 1 });
        v
    }

    /// Offsets of each layer's weights in the flat parameter vector, and the total.
    pub fn offsets(&self) -> (Vec<usize>, usize) {
        let mut off = Vec::new();
        let mut total = 0;
        for l in self.layers() {
            off.push(total);
            total += l.params();
        }
        (off, total)
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.offsets().1
    }

    /// Checks that `params` fits this architecture and `shape` is `channels x N x N`.
    ///
    /// # Errors
    /// [`TrainError::Shape`].
    pub fn check(&self, params: &[f32], shape: &[usize]) -> TrainResult<()> {
        if params.len() != self.num_params() {
            return Err(TrainError::Shape(format!(
                "{} parameters for an architecture of {}",
                params.len(),
                self.num_params()
            )));
        }
        match *shape {
            [c, a, b] if c == self.channels && a == b && a > 0 => Ok(()),
            _ => Err(TrainError::Shape(format!(
                "input of shape {shape:?}, the model expects {} x N x N",
                self.channels
            ))),
        }
    }

    /// Whether each parameter is a weight (decayed by AdamW) rather than a bias.
    pub fn decay_mask(&self) -> Vec<bool> {
        let mut m = Vec::with_capacity(self.num_params());
        for l in self.layers() {
            m.extend(std::iter::repeat_n(true, l.cout * l.patch()));
            m.extend(std::iter::repeat_n(false, l.cout));
        }
        m
    }

    /// He-initialised parameters; residual branches start small and the head's bias
    /// at logit(0.02), the rough prior of a pair, so training starts stable.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed ^ 0x1417_1A11);
        let layers = self.layers();
        let mut p = Vec::with_capacity(self.num_params());
        for (k, l) in layers.iter().enumerate() {
            let mut std = (2.0 / l.patch() as f64).sqrt();
            if k > 0 && k + 1 < layers.len() {
                std *= 0.5;
            }
            if k + 1 == layers.len() {
                std = 0.01;
            }
            p.extend((0..l.cout * l.patch()).map(|_| (rng.normal() * std) as f32));
            let bias = if k + 1 == layers.len() { (0.02f32 / 0.98).ln() } else { 0.0 };
            p.extend(std::iter::repeat_n(bias, l.cout));
        }
        p
    }
}
