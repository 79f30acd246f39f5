//! The backend trait: the few fused operations every backend provides.
//!
//! # Design
//! The trait is narrow on purpose — a loss with its gradient, the loss alone, and
//! symmetrise — so a new backend implements a handful of fused passes instead of
//! a tensor library. Each backend owns its storage: the CPU backend takes
//! `ndarray` views, a GPU backend takes device buffers. Code built on top (the
//! trainer, the command line) is generic over `B: TensorBackend`.
//!
//! Validation is shared: backends call [`crate::validate`] before their pass, so
//! every backend rejects bad input with the same error.

use serde::Serialize;

use crate::config::{LossConfig, SymMode};
use crate::error::Result;
use crate::metrics::{PredictConfig, SampleStats};

/// Element types a backend stores: `f32` logits and gradients, `u8` labels and masks.
pub trait Element: Copy + Send + Sync + std::fmt::Debug + 'static + sealed::Sealed {}
impl Element for f32 {}
impl Element for u8 {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u8 {}
}

/// Which pairs count (SPEC §1), besides ignore labels (255).
#[derive(Debug, Clone, Copy)]
pub struct Region<'a, M> {
    /// Per-sample lengths `1 <= len_b <= N`; the rest of each map is padding.
    pub lengths: Option<&'a [usize]>,
    /// Only pairs with `|i - j| >= min_sep` count (`1` drops the diagonal).
    pub min_sep: usize,
    /// A symmetric mask, same shape as the logits: 0 excludes a pair.
    pub mask: Option<M>,
}

impl<M> Default for Region<'_, M> {
    fn default() -> Self {
        Region { lengths: None, min_sep: 0, mask: None }
    }
}

impl<'a, M> Region<'a, M> {
    /// Sets the lengths.
    pub fn lengths(mut self, lengths: &'a [usize]) -> Self {
        self.lengths = Some(lengths);
        self
    }

    /// Sets `min_sep`.
    pub fn min_sep(mut self, min_sep: usize) -> Self {
        self.min_sep = min_sep;
        self
    }

    /// Sets the mask.
    pub fn mask(mut self, mask: M) -> Self {
        self.mask = Some(mask);
        self
    }
}

/// What a loss is computed on: logits `[B, N, N]`, labels of the same shape and the region.
pub struct LossInput<'a, B: TensorBackend + ?Sized + 'a> {
    /// Logits `x`.
    pub logits: B::View<'a, f32>,
    /// Labels `y` in {0, 1, 255}.
    pub labels: B::View<'a, u8>,
    /// Lengths, `min_sep` and mask.
    pub region: Region<'a, B::View<'a, u8>>,
}

impl<'a, B: TensorBackend + ?Sized + 'a> LossInput<'a, B> {
    /// Logits and labels with the whole map counted.
    pub fn new(logits: B::View<'a, f32>, labels: B::View<'a, u8>) -> Self {
        LossInput { logits, labels, region: Region::default() }
    }

    /// Replaces the region.
    pub fn region(mut self, region: Region<'a, B::View<'a, u8>>) -> Self {
        self.region = region;
        self
    }
}

impl<'a, B: TensorBackend + ?Sized + 'a> std::fmt::Debug for LossInput<'a, B>
where
    B::View<'a, f32>: std::fmt::Debug,
    B::View<'a, u8>: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossInput")
            .field("logits", &self.logits)
            .field("labels", &self.labels)
            .field("region", &self.region)
            .finish()
    }
}

/// The outcome of a loss call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LossReport {
    /// The total loss: reduced strategy loss plus the penalty (f64, SPEC §4).
    pub loss: f64,
    /// The reduced strategy loss alone.
    pub element_loss: f64,
    /// The penalty `P` alone (0 without a penalty).
    pub penalty: f64,
    /// `|S|`, the number of counted (ordered) elements in the batch.
    pub counted: u64,
    /// Counted unordered off-diagonal pairs `i < j`.
    pub pairs: u64,
    /// Samples whose counted set for this strategy is non-empty.
    pub nonempty_samples: usize,
}

/// A compute backend for symseg's fused operations.
///
/// # Examples
/// Code generic over backends:
/// ```
/// # #![allow(dead_code)]
/// use symseg_core::{LossConfig, LossInput, Result, TensorBackend};
/// /// The default loss of `input` on any backend.
/// pub fn total<B: TensorBackend>(b: &B, input: &LossInput<'_, B>) -> Result<f64> {
///     Ok(b.loss(input, &LossConfig::default())?.loss)
/// }
/// ```
pub trait TensorBackend: Send + Sync {
    /// A read-only `[B, N, N]` (or `[N, N]`) view of backend memory.
    type View<'a, T: Element + 'a>;
    /// A writable view of the same shapes.
    type ViewMut<'a, T: Element + 'a>;

    /// The backend's name (`"cpu"`, `"cuda"`), as in `--backend`.
    fn name(&self) -> &'static str;

    /// The loss and its gradient, written into `grad` (same shape as the logits).
    /// The gradient is exactly zero outside the counted set.
    ///
    /// # Errors
    /// Any validation error of SPEC §1, or [`crate::Error::ShapeMismatch`] for `grad`.
    fn loss_grad(
        &self,
        input: &LossInput<'_, Self>,
        cfg: &LossConfig,
        grad: Self::ViewMut<'_, f32>,
    ) -> Result<LossReport>;

    /// The loss alone (no gradient written).
    ///
    /// # Errors
    /// As [`TensorBackend::loss_grad`].
    fn loss(&self, input: &LossInput<'_, Self>, cfg: &LossConfig) -> Result<LossReport>;

    /// Each sample's confusion counts of the thresholded prediction (SPEC §5–6)
    /// over its counted pairs, and the asymmetry sum of the raw logits. Labels
    /// must be symmetric.
    ///
    /// # Errors
    /// As [`TensorBackend::loss_grad`], and [`crate::Error::InvalidConfig`] for a
    /// threshold outside `[0, 1]`.
    fn sample_stats(&self, input: &LossInput<'_, Self>, pred: &PredictConfig) -> Result<Vec<SampleStats>>;

    /// A symmetrised copy of `x` (SPEC §5) written into `out`.
    ///
    /// # Errors
    /// Shape errors of `x` or `out`.
    fn symmetrise(&self, x: Self::View<'_, f32>, mode: SymMode, out: Self::ViewMut<'_, f32>) -> Result<()>;

    /// Waits for queued work (a no-op on synchronous backends).
    ///
    /// # Errors
    /// A device error.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}
