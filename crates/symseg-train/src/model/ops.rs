//! Model operations behind a trait, so a GPU version can be added without
//! touching the training loop.

use ndarray::{Array2, ArrayView2, ArrayView3};

use super::Arch;
use crate::error::TrainResult;

/// Forward and backward of the whole network for one sample.
pub trait ModelOps: Send + Sync {
    /// What the backward pass needs from the forward pass.
    type Tape: Send;

    /// `N x N` logits of one `C x N x N` input, and the tape for [`ModelOps::backward`].
    ///
    /// # Errors
    /// [`crate::error::TrainError::Shape`] if `x` is not `arch.channels x N x N` or `params` does not fit `arch`.
    fn forward(
        &self,
        arch: &Arch,
        params: &[f32],
        x: ArrayView3<'_, f32>,
    ) -> TrainResult<(Array2<f32>, Self::Tape)>;

    /// Accumulates `d loss / d params` into `grad` from `d loss / d logits`.
    ///
    /// # Panics
    /// If `dlogits` is not the `N x N` shape of the forward pass that made `tape`, or
    /// `grad` and `params` are not `arch.num_params()` long: a programmer error, as
    /// both come from [`ModelOps::forward`] and [`Arch`].
    fn backward(
        &self,
        arch: &Arch,
        params: &[f32],
        tape: &Self::Tape,
        dlogits: ArrayView2<'_, f32>,
        grad: &mut [f32],
    );
}
