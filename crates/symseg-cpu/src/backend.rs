//! [`CpuBackend`]: the [`TensorBackend`] over `ndarray` views.

use std::borrow::Cow;
use std::sync::Arc;

use ndarray::{ArrayView3, ArrayViewMut3};
use symseg_core::metrics::{PredictConfig, SampleStats};
use symseg_core::validate::check_inputs;
use symseg_core::{Dims, Error, LossConfig, LossInput, LossReport, Result, SymMode, TensorBackend};

use crate::batch::Batch;
use crate::simd::SimdLevel;

/// The CPU backend: fused, tiled passes, parallel over tiles with rayon.
///
/// Results are deterministic: partial sums are combined in a fixed order, so the
/// same input gives the same bits whatever the thread count.
///
/// # Examples
/// ```
/// use ndarray::Array3;
/// use symseg_cpu::CpuBackend;
/// use symseg_core::{LossConfig, LossInput, Strategy, TensorBackend};
///
/// let n = 6;
/// let logits = Array3::<f32>::from_shape_fn((1, n, n), |(_, i, j)| (i as f32 - j as f32) * 0.3);
/// // One symmetric positive pair (1, 4).
/// let labels = Array3::<u8>::from_shape_fn((1, n, n), |(_, i, j)| u8::from(i.min(j) == 1 && i.max(j) == 4));
/// let mut grad = Array3::<f32>::zeros((1, n, n));
///
/// let backend = CpuBackend::new();
/// let input = LossInput::new(logits.view(), labels.view());
/// let plain = backend.loss_grad(&input, &LossConfig::default(), grad.view_mut())?;
/// let dual = backend.loss(&input, &LossConfig::default().strategy(Strategy::Dual))?;
/// assert_eq!(plain.counted, 36);
/// assert!((dual.loss - 2.0 * plain.loss).abs() <= 1e-12 * plain.loss);
/// # Ok::<(), symseg_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CpuBackend {
    pool: Option<Arc<rayon::ThreadPool>>,
    simd: SimdLevel,
    /// Inputs with fewer elements run on the calling thread.
    sequential_below: usize,
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::new()
    }
}

impl CpuBackend {
    /// A backend on rayon's global thread pool, at the best SIMD level this CPU has.
    pub fn new() -> Self {
        CpuBackend { pool: None, simd: SimdLevel::detect(), sequential_below: crate::par::SEQUENTIAL_BELOW }
    }

    /// The same backend forced to run its vector kernels at `level` (for tests
    /// and benchmarks of each level).
    ///
    /// # Errors
    /// [`Error::Unsupported`] if this CPU lacks `level`.
    pub fn with_simd(mut self, level: SimdLevel) -> Result<Self> {
        if !SimdLevel::available().contains(&level) {
            return Err(Error::Unsupported { op: level.as_str(), backend: "cpu" });
        }
        self.simd = level;
        Ok(self)
    }

    /// The SIMD level the vector kernels run at.
    pub fn simd_level(&self) -> SimdLevel {
        self.simd
    }

    /// A backend with its own pool of `threads` threads.
    ///
    /// # Errors
    /// [`Error::Backend`] if the pool cannot be created.
    pub fn with_threads(threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Backend { backend: "cpu", message: e.to_string() })?;
        Ok(CpuBackend { pool: Some(Arc::new(pool)), ..CpuBackend::new() })
    }

    /// The same backend running inputs of fewer than `elements` elements
    /// (`B * N * N`; by default 128², where two threads stop paying for
    /// their start) on the calling thread, without rayon. `0` makes every
    /// call parallel; `usize::MAX` none, e.g. for callers that already run
    /// one loss per thread. Results are the same bits either way.
    ///
    /// # Examples
    /// ```
    /// use symseg_cpu::CpuBackend;
    /// // One call per sample from the caller's own worker threads.
    /// let backend = CpuBackend::new().sequential_below(usize::MAX);
    /// # let _ = backend;
    /// ```
    #[must_use]
    pub fn sequential_below(mut self, elements: usize) -> Self {
        self.sequential_below = elements;
        self
    }

    /// Whether an input of `elements` elements runs on rayon.
    fn parallel(&self, elements: usize) -> bool {
        elements >= self.sequential_below
    }

    /// Runs `f` in this backend's pool, or on the calling thread when `parallel`
    /// is false (the pool would only add a hand-over).
    fn install<R: Send>(&self, parallel: bool, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) if parallel => p.install(f),
            _ => f(),
        }
    }

    /// Shapes checked and inputs as flat C-order slices (copied only when not contiguous).
    fn with_batch<R: Send>(
        &self,
        input: &LossInput<'_, Self>,
        f: impl FnOnce(&Batch<'_>) -> Result<R> + Send,
    ) -> Result<R> {
        let r = &input.region;
        let dims = check_inputs(
            input.logits.shape(),
            input.labels.shape(),
            r.mask.as_ref().map(|m| m.shape()),
            r.lengths,
        )?;
        let logits = contiguous(&input.logits);
        let labels = contiguous(&input.labels);
        let mask = r.mask.as_ref().map(contiguous);
        let batch = Batch {
            dims,
            logits: &logits,
            labels: &labels,
            mask: mask.as_deref(),
            lengths: r.lengths,
            min_sep: r.min_sep,
            parallel: self.parallel(dims.len()),
        };
        self.install(batch.parallel, || f(&batch))
    }

    fn run(
        &self,
        input: &LossInput<'_, Self>,
        cfg: &LossConfig,
        grad: Option<ArrayViewMut3<'_, f32>>,
    ) -> Result<LossReport> {
        cfg.validate()?;
        match grad {
            Some(mut g) => {
                let dims = Dims::from_shape("logits", input.logits.shape())?;
                let out = output_slice(&mut g, dims, "gradient")?;
                self.with_batch(input, |batch| crate::loss::run(batch, cfg, Some(out), self.simd))
            }
            None => self.with_batch(input, |batch| crate::loss::run(batch, cfg, None, self.simd)),
        }
    }
}

/// The view's elements in C order: borrowed when already contiguous, copied otherwise.
fn contiguous<'a, T: Clone>(v: &'a ArrayView3<'_, T>) -> Cow<'a, [T]> {
    match v.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(v.iter().cloned().collect()),
    }
}

fn output_slice<'a>(
    g: &'a mut ArrayViewMut3<'_, f32>,
    dims: Dims,
    what: &'static str,
) -> Result<&'a mut [f32]> {
    if g.shape() != dims.shape() {
        return Err(Error::ShapeMismatch { what, got: g.shape().to_vec(), expected: dims.shape().to_vec() });
    }
    g.as_slice_mut().ok_or(Error::Layout { what })
}

impl TensorBackend for CpuBackend {
    type View<'a, T: symseg_core::Element + 'a> = ArrayView3<'a, T>;
    type ViewMut<'a, T: symseg_core::Element + 'a> = ArrayViewMut3<'a, T>;

    fn name(&self) -> &'static str {
        "cpu"
    }

    /// The loss and gradient. Non-contiguous inputs are copied once; `grad` must be
    /// a contiguous C-order array of the logits' shape. On error the contents of
    /// `grad` are unspecified.
    fn loss_grad(
        &self,
        input: &LossInput<'_, Self>,
        cfg: &LossConfig,
        grad: ArrayViewMut3<'_, f32>,
    ) -> Result<LossReport> {
        self.run(input, cfg, Some(grad))
    }

    fn loss(&self, input: &LossInput<'_, Self>, cfg: &LossConfig) -> Result<LossReport> {
        self.run(input, cfg, None)
    }

    fn sample_stats(&self, input: &LossInput<'_, Self>, pred: &PredictConfig) -> Result<Vec<SampleStats>> {
        self.with_batch(input, |batch| crate::metrics::sample_stats(batch, pred, self.simd))
    }

    fn symmetrise(
        &self,
        x: ArrayView3<'_, f32>,
        mode: SymMode,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let dims = Dims::from_shape("logits", x.shape())?;
        let xs = contiguous(&x);
        let o = output_slice(&mut out, dims, "output")?;
        let parallel = self.parallel(dims.len());
        self.install(parallel, || crate::symmetrise::symmetrise(&xs, dims, mode, o, parallel));
        Ok(())
    }
}
