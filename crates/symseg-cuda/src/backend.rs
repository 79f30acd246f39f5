//! [`CudaBackend`]: the [`TensorBackend`] over device memory.

use std::sync::{Arc, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg,
};
use symseg_core::metrics::{Confusion, PredictConfig, SampleStats, decision_bound};
use symseg_core::validate::{Dims, RegionCounts};
use symseg_core::{
    Error, LossConfig, LossInput, LossReport, PenaltyKind, PenaltyOn, Result, Strategy, SymMode,
    TensorBackend,
};

use crate::availability;
use crate::kernels::{self, KernelSource};
use crate::tensor::{DeviceTensor, DeviceTensorMut};

const TILE: usize = 32;
const ROWS: u32 = 8;

fn dev(e: DriverError) -> Error {
    Error::Backend { backend: "cuda", message: e.to_string() }
}

/// The compiled kernels of one context.
#[derive(Debug)]
struct Kernels {
    scan: CudaFunction,
    loss: CudaFunction,
    stats: CudaFunction,
    symmetrise: CudaFunction,
}

/// The CUDA backend: one device, one stream, kernels compiled by NVRTC for the
/// device's compute capability on first use and kept for the backend's life.
///
/// Every operation queues its kernels on the backend's stream; results that
/// return to the host (the loss, counts) wait for them.
///
/// # Examples
/// ```no_run
/// use symseg_core::{LossConfig, LossInput, TensorBackend};
/// use symseg_cuda::{CudaBackend, DeviceTensor, DeviceTensorMut};
///
/// let backend = CudaBackend::new()?; // a clear error without a driver or GPU
/// let stream = backend.stream();
/// let (b, n) = (1, 64);
/// let x = stream.clone_htod(&vec![0.5f32; b * n * n]).unwrap();
/// let y = stream.clone_htod(&vec![0u8; b * n * n]).unwrap();
/// let mut g = stream.alloc_zeros::<f32>(b * n * n).unwrap();
/// let input = LossInput::<CudaBackend>::new(
///     DeviceTensor::new(&x, [b, n, n], &stream)?,
///     DeviceTensor::new(&y, [b, n, n], &stream)?,
/// );
/// let report = backend.loss_grad(&input, &LossConfig::default(), DeviceTensorMut::new(&mut g, [b, n, n], &stream)?)?;
/// assert!(report.loss > 0.0);
/// # Ok::<(), symseg_core::Error>(())
/// ```
#[derive(Debug)]
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: &'static str,
    kernels: OnceLock<std::result::Result<Kernels, String>>,
}

impl CudaBackend {
    /// The backend on device 0.
    ///
    /// # Errors
    /// [`Error::Backend`] when the driver or NVRTC library is missing, there
    /// is no device, or the context cannot be created.
    pub fn new() -> Result<CudaBackend> {
        CudaBackend::on_device(0)
    }

    /// The backend on device `ordinal`.
    ///
    /// # Errors
    /// As [`CudaBackend::new`].
    pub fn on_device(ordinal: usize) -> Result<CudaBackend> {
        // cudarc panics on a missing library: ask first.
        availability::driver()?;
        availability::nvrtc()?;
        let ctx = CudaContext::new(ordinal).map_err(dev)?;
        let (major, minor) = ctx.compute_capability().map_err(dev)?;
        // NVRTC wants a `&'static str`; one short string per backend built.
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        let stream = ctx.default_stream();
        Ok(CudaBackend { ctx, stream, arch, kernels: OnceLock::new() })
    }

    /// The stream every operation runs on (to allocate and copy the buffers
    /// that [`DeviceTensor::new`] views).
    pub fn stream(&self) -> Arc<CudaStream> {
        self.stream.clone()
    }

    /// The context the backend's memory belongs to.
    pub fn context(&self) -> Arc<CudaContext> {
        self.ctx.clone()
    }

    /// The device's name.
    ///
    /// # Errors
    /// A driver error.
    pub fn device_name(&self) -> Result<String> {
        self.ctx.name().map_err(dev)
    }

    fn kernels(&self) -> Result<&Kernels> {
        let k = self.kernels.get_or_init(|| {
            let load = |k: &KernelSource| -> Result<CudaFunction> {
                let ptx = kernels::compile(k, self.arch)?;
                let module = self.ctx.load_module(ptx).map_err(dev)?;
                module.load_function(k.entry).map_err(dev)
            };
            (|| {
                Ok::<_, Error>(Kernels {
                    scan: load(&kernels::SCAN)?,
                    loss: load(&kernels::LOSS)?,
                    stats: load(&kernels::STATS)?,
                    symmetrise: load(&kernels::SYMMETRISE)?,
                })
            })()
            .map_err(|e| e.to_string())
        });
        k.as_ref().map_err(|m| Error::Backend { backend: "cuda", message: m.clone() })
    }

    fn grid(dims: Dims) -> LaunchConfig {
        let nt = dims.n.div_ceil(TILE) as u32;
        LaunchConfig {
            grid_dim: (nt * (nt + 1) / 2, dims.batch as u32, 1),
            block_dim: (TILE as u32, ROWS, 1),
            shared_mem_bytes: 0,
        }
    }

    fn tiles(dims: Dims) -> usize {
        let nt = dims.n.div_ceil(TILE);
        nt * (nt + 1) / 2
    }

    /// Shapes and lengths of an input (SPEC §1).
    fn dims(input: &LossInput<'_, Self>) -> Result<(Dims, Vec<usize>)> {
        let shape = input.logits.shape;
        let dims = symseg_core::validate::check_inputs(
            &shape,
            &input.labels.shape,
            input.region.mask.as_ref().map(|m| &m.shape[..]),
            input.region.lengths,
        )?;
        let lengths = input.region.lengths.map_or_else(|| vec![dims.n; dims.batch], <[usize]>::to_vec);
        if dims.batch > 65_535 {
            return Err(Error::InvalidConfig {
                param: "batch",
                value: dims.batch.to_string(),
                reason: "the CUDA backend takes at most 65535 samples per call",
            });
        }
        Ok((dims, lengths))
    }

    fn read_byte(&self, ptr: u64, k: usize) -> Result<u8> {
        let mut v = [0u8; 1];
        self.stream.synchronize().map_err(dev)?;
        // SAFETY: `k` is inside the validated `[B, N, N]` tensor at `ptr`.
        unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut v, ptr + k as u64) }.map_err(dev)?;
        Ok(v[0])
    }

    fn read_f32(&self, ptr: u64, k: usize) -> Result<f32> {
        let mut v = [0f32; 1];
        self.stream.synchronize().map_err(dev)?;
        // SAFETY: as above, for 4-byte elements.
        unsafe { cudarc::driver::result::memcpy_dtoh_sync(&mut v, ptr + 4 * k as u64) }.map_err(dev)?;
        Ok(v[0])
    }

    /// Validates labels and mask on the device and returns the per-sample
    /// counts; on a violation, reads back the few bytes that name it.
    fn scan(
        &self,
        input: &LossInput<'_, Self>,
        dims: Dims,
        lengths: &CudaSlice<i64>,
        require_symmetric: bool,
    ) -> Result<Vec<RegionCounts>> {
        let k = self.kernels()?;
        let s = &self.stream;
        let counts = s.alloc_zeros::<u64>(2 * dims.batch).map_err(dev)?;
        let violation = s.clone_htod(&[u64::MAX]).map_err(dev)?;
        let (y, m) = (input.labels.ptr, input.region.mask.as_ref().map_or(0, |m| m.ptr));
        let (n, sep, sym) = (dims.n as i64, input.region.min_sep as i64, i32::from(require_symmetric));
        let mut b = s.launch_builder(&k.scan);
        b.arg(&y).arg(&m).arg(lengths).arg(&n).arg(&sep).arg(&sym).arg(&counts).arg(&violation);
        // SAFETY: the arguments match `symseg_scan`'s parameters in order and
        // type; every pointer covers the validated `[B, N, N]` extent.
        unsafe { b.launch(Self::grid(dims)) }.map_err(dev)?;
        let v = s.clone_dtoh(&violation).map_err(dev)?;
        if let Some(&key) = v.first()
            && key != u64::MAX
        {
            return Err(self.violation(input, dims, key as usize, require_symmetric));
        }
        let c = s.clone_dtoh(&counts).map_err(dev)?;
        Ok(c.chunks(2).map(|p| RegionCounts { pairs: p[0], diagonal: p[1] }).collect())
    }

    /// The error for the violation at upper-triangle flat index `key`, checked
    /// in the order the CPU scan checks a position.
    fn violation(
        &self,
        input: &LossInput<'_, Self>,
        dims: Dims,
        key: usize,
        require_symmetric: bool,
    ) -> Error {
        let (n, m) = (dims.n, dims.map_len());
        let (sample, i, j) = (key / m, key % m / n, key % n);
        let (kij, kji) = (sample * m + i * n + j, sample * m + j * n + i);
        let y = input.labels.ptr;
        let read = || -> Result<Error> {
            let (a, b) = (self.read_byte(y, kij)?, self.read_byte(y, kji)?);
            let bad = |v: u8| v > 1 && v != 255;
            if bad(a) {
                return Ok(Error::BadLabel { sample, i, j, value: a });
            }
            if bad(b) {
                return Ok(Error::BadLabel { sample, i: j, j: i, value: b });
            }
            if if require_symmetric { a != b } else { (a == 255) != (b == 255) } {
                return Ok(Error::AsymmetricLabels { sample, i, j, upper: a, lower: b });
            }
            let mask = input.region.mask.as_ref().map_or(0, |t| t.ptr);
            let (ma, mb) = (self.read_byte(mask, kij)?, self.read_byte(mask, kji)?);
            Ok(Error::AsymmetricMask { sample, i, j, upper: ma, lower: mb })
        };
        read().unwrap_or_else(|e| e)
    }

    fn non_finite(&self, x: u64, dims: Dims, k: usize) -> Error {
        let (n, m) = (dims.n, dims.map_len());
        match self.read_f32(x, k) {
            Ok(value) => Error::NonFiniteLogit { sample: k / m, i: k % m / n, j: k % n, value },
            Err(e) => e,
        }
    }

    fn run_loss(
        &self,
        input: &LossInput<'_, Self>,
        cfg: &LossConfig,
        grad: Option<&DeviceTensorMut<'_, f32>>,
    ) -> Result<LossReport> {
        cfg.validate()?;
        let (dims, lens) = Self::dims(input)?;
        if let Some(g) = grad
            && g.shape != dims.shape()
        {
            return Err(Error::ShapeMismatch {
                what: "grad",
                got: g.shape.to_vec(),
                expected: dims.shape().to_vec(),
            });
        }
        let k = self.kernels()?;
        let s = &self.stream;
        let lengths = s.clone_htod(&lens.iter().map(|&l| l as i64).collect::<Vec<_>>()).map_err(dev)?;
        let counts = self.scan(input, dims, &lengths, !cfg.allow_asymmetric_labels)?;
        let terms: Vec<u64> = counts.iter().map(|c| c.terms(cfg.strategy)).collect();
        let r = cfg.reduction.factors(&terms);
        let lambda = cfg.penalty.map_or(0.0, |p| p.weight);
        let rp = cfg.reduction.factors(&counts.iter().map(|c| c.pairs).collect::<Vec<_>>());
        let wp: Vec<f64> = rp.iter().map(|&v| lambda * v).collect();
        let fe = ElemArgs::new(&cfg.loss);
        let (pen_kind, pen_probs, delta) = match cfg.penalty {
            None => (0i32, 0i32, 0f32),
            Some(p) => {
                let (kind, delta) = match p.kind {
                    PenaltyKind::L1 => (1, 0.0),
                    PenaltyKind::L2 => (2, 0.0),
                    PenaltyKind::Huber { delta } => (3, delta as f32),
                };
                (kind, i32::from(p.on == PenaltyOn::Probs), delta)
            }
        };
        let strategy: i32 = match cfg.strategy {
            Strategy::Plain => 0,
            Strategy::Dual => 1,
            Strategy::Average => 2,
            Strategy::Upper => 3,
            Strategy::Lower => 4,
        };
        let r_dev = s.clone_htod(&r).map_err(dev)?;
        let wp_dev = s.clone_htod(&wp).map_err(dev)?;
        let partial = s.alloc_zeros::<f64>(2 * dims.batch * Self::tiles(dims)).map_err(dev)?;
        let bad = s.clone_htod(&[u64::MAX]).map_err(dev)?;
        let (x, y) = (input.logits.ptr, input.labels.ptr);
        let m = input.region.mask.as_ref().map_or(0, |t| t.ptr);
        let g = grad.map_or(0, |t| t.ptr);
        let (n, sep) = (dims.n as i64, input.region.min_sep as i64);
        let mut b = s.launch_builder(&k.loss);
        b.arg(&x).arg(&y).arg(&m).arg(&g).arg(&lengths).arg(&n).arg(&sep);
        b.arg(&strategy).arg(&fe.w_pos).arg(&fe.w_neg).arg(&fe.gamma).arg(&fe.kind);
        b.arg(&pen_kind).arg(&pen_probs).arg(&delta);
        b.arg(&r_dev).arg(&wp_dev).arg(&partial).arg(&bad);
        // SAFETY: the arguments match `symseg_loss`'s parameters in order and
        // type; every pointer covers the validated `[B, N, N]` extent.
        unsafe { b.launch(Self::grid(dims)) }.map_err(dev)?;
        let bad = s.clone_dtoh(&bad).map_err(dev)?;
        if let Some(&k) = bad.first()
            && k != u64::MAX
        {
            return Err(self.non_finite(x, dims, k as usize));
        }
        let parts = s.clone_dtoh(&partial).map_err(dev)?;
        // In block order: the same sum run to run.
        let (mut element_loss, mut penalty) = (0.0, 0.0);
        for p in parts.chunks(2) {
            element_loss += p[0];
            penalty += p[1];
        }
        Ok(RegionCounts::report(&counts, cfg.strategy, element_loss, penalty))
    }
}

/// The element loss as `symseg_loss` takes it.
struct ElemArgs {
    w_pos: f32,
    w_neg: f32,
    gamma: f32,
    kind: i32,
}

impl ElemArgs {
    fn new(loss: &symseg_core::ElementLoss) -> ElemArgs {
        match *loss {
            symseg_core::ElementLoss::Focal { alpha, gamma } => {
                let (a1, a0) = alpha.map_or((1.0, 1.0), |a| (a, 1.0 - a));
                let kind = if gamma == 0.0 {
                    0
                } else if gamma == 1.0 {
                    1
                } else if gamma == 2.0 {
                    2
                } else {
                    3
                };
                ElemArgs { w_pos: a1 as f32, w_neg: a0 as f32, gamma: gamma as f32, kind }
            }
            symseg_core::ElementLoss::Bce { pos_weight } => {
                ElemArgs { w_pos: pos_weight as f32, w_neg: 1.0, gamma: 0.0, kind: 0 }
            }
        }
    }
}

fn mode_code(mode: SymMode) -> i32 {
    match mode {
        SymMode::None => 0,
        SymMode::Average => 1,
        SymMode::Upper => 2,
        SymMode::Lower => 3,
    }
}

impl TensorBackend for CudaBackend {
    type View<'a, T: symseg_core::backend::Element + 'a> = DeviceTensor<'a, T>;
    type ViewMut<'a, T: symseg_core::backend::Element + 'a> = DeviceTensorMut<'a, T>;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn loss_grad(
        &self,
        input: &LossInput<'_, Self>,
        cfg: &LossConfig,
        grad: Self::ViewMut<'_, f32>,
    ) -> Result<LossReport> {
        self.run_loss(input, cfg, Some(&grad))
    }

    fn loss(&self, input: &LossInput<'_, Self>, cfg: &LossConfig) -> Result<LossReport> {
        self.run_loss(input, cfg, None)
    }

    fn sample_stats(&self, input: &LossInput<'_, Self>, pred: &PredictConfig) -> Result<Vec<SampleStats>> {
        pred.validate()?;
        let (dims, lens) = Self::dims(input)?;
        let k = self.kernels()?;
        let s = &self.stream;
        let lengths = s.clone_htod(&lens.iter().map(|&l| l as i64).collect::<Vec<_>>()).map_err(dev)?;
        self.scan(input, dims, &lengths, true)?;
        let confusion = s.alloc_zeros::<u64>(5 * dims.batch).map_err(dev)?;
        let tiles = Self::tiles(dims);
        let asym = s.alloc_zeros::<f64>(dims.batch * tiles).map_err(dev)?;
        let bad = s.clone_htod(&[u64::MAX]).map_err(dev)?;
        let (x, y) = (input.logits.ptr, input.labels.ptr);
        let m = input.region.mask.as_ref().map_or(0, |t| t.ptr);
        // The threshold as the reference's exact bound on the symmetrised logit
        // (as the CPU backend does): no sigmoid per element, and the same counts.
        let (n, sep, mode, z_star) = (
            dims.n as i64,
            input.region.min_sep as i64,
            mode_code(pred.mode),
            decision_bound(pred.threshold),
        );
        let mut b = s.launch_builder(&k.stats);
        b.arg(&x).arg(&y).arg(&m).arg(&lengths).arg(&n).arg(&sep).arg(&mode).arg(&z_star);
        b.arg(&confusion).arg(&asym).arg(&bad);
        // SAFETY: the arguments match `symseg_stats`'s parameters in order and type.
        unsafe { b.launch(Self::grid(dims)) }.map_err(dev)?;
        let bad = s.clone_dtoh(&bad).map_err(dev)?;
        if let Some(&k) = bad.first()
            && k != u64::MAX
        {
            return Err(self.non_finite(x, dims, k as usize));
        }
        let conf = s.clone_dtoh(&confusion).map_err(dev)?;
        let asym = s.clone_dtoh(&asym).map_err(dev)?;
        Ok((0..dims.batch)
            .map(|b| {
                let c = &conf[5 * b..5 * b + 5];
                SampleStats {
                    confusion: Confusion { tp: c[0], fp: c[1], fn_: c[2], tn: c[3] },
                    // Block order within the sample: the same sum run to run.
                    asym_sum: asym[b * tiles..(b + 1) * tiles].iter().sum(),
                    asym_pairs: c[4],
                }
            })
            .collect())
    }

    fn symmetrise(&self, x: Self::View<'_, f32>, mode: SymMode, out: Self::ViewMut<'_, f32>) -> Result<()> {
        let dims = Dims::from_shape("logits", &x.shape)?;
        if out.shape != x.shape {
            return Err(Error::ShapeMismatch {
                what: "out",
                got: out.shape.to_vec(),
                expected: x.shape.to_vec(),
            });
        }
        let k = self.kernels()?;
        let (xp, op, n, mode) = (x.ptr, out.ptr, dims.n as i64, mode_code(mode));
        let mut b = self.stream.launch_builder(&k.symmetrise);
        b.arg(&xp).arg(&n).arg(&mode).arg(&op);
        // SAFETY: the arguments match `symseg_symmetrise`'s parameters in order and type.
        unsafe { b.launch(Self::grid(dims)) }.map_err(dev)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.stream.synchronize().map_err(dev)
    }
}
