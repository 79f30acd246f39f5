//! [`CudaBackend`]: the [`TensorBackend`] over device memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, DriverError, LaunchConfig, PushKernelArg};
use symseg_core::metrics::{PredictConfig, SampleStats, decision_bound};
use symseg_core::validate::{Dims, RegionCounts};
use symseg_core::{Error, LossConfig, LossInput, LossReport, Reduction, Result, SymMode, TensorBackend};

use crate::availability;
use crate::kernels::{self, KernelSource};
use crate::launch_args::{self, LossArgs, LossWords, ScanWords, StatsWords, THREADS, mode_code};
use crate::scratch::{Scratch, Words};
use crate::tensor::{Bound, DeviceTensor, DeviceTensorMut};

fn dev(e: DriverError) -> Error {
    Error::Backend { backend: "cuda", message: e.to_string() }
}

/// One compiled kernel and how many of its blocks the device keeps resident
/// at once (the grid it is launched with, at most).
#[derive(Debug)]
struct Kernel {
    function: CudaFunction,
    resident: u32,
    /// The side of the tile pairs its grid counts work in.
    tile: usize,
}

impl Kernel {
    /// The launch over `dims`: a grid the kernel strides over (see `launch_args::blocks`).
    fn config(&self, dims: Dims) -> LaunchConfig {
        LaunchConfig { grid_dim: (self.blocks(dims), 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
    }

    fn blocks(&self, dims: Dims) -> u32 {
        launch_args::blocks(dims.batch, dims.n, self.tile, self.resident)
    }
}

/// Which loss kernel a call launches (each compiled per strategy and
/// element-loss kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LossVariant {
    /// `loss.cu`, over tile pairs, after a scan.
    Tiles,
    /// `loss_rows.cu`, along rows, after a scan.
    Rows,
    /// `loss.cu` checking the labels itself.
    TilesChecked,
    /// `loss_rows.cu` checking the labels itself.
    RowsChecked,
}

impl LossVariant {
    /// The source compiled for strategy code `code` (`None`: no such build).
    fn source(self, code: i32) -> Option<&'static KernelSource> {
        let i = usize::try_from(code).ok().filter(|&i| i < kernels::LOSS_BY_STRATEGY.len())?;
        match self {
            LossVariant::Tiles => Some(&kernels::LOSS_BY_STRATEGY[i]),
            LossVariant::Rows => kernels::LOSS_ROWS_BY_STRATEGY[i].as_ref(),
            LossVariant::TilesChecked => Some(&kernels::LOSS_CHECKED_BY_STRATEGY[i]),
            LossVariant::RowsChecked => kernels::LOSS_ROWS_CHECKED_BY_STRATEGY[i].as_ref(),
        }
    }

    /// Whether it strides over a row's octets rather than tile pairs.
    fn rows(self) -> bool {
        matches!(self, LossVariant::Rows | LossVariant::RowsChecked)
    }
}

/// A loss kernel as a call launches it.
struct LossKernel {
    kernel: Arc<Kernel>,
    rows: bool,
}

impl LossKernel {
    fn blocks(&self, dims: Dims) -> u32 {
        if self.rows {
            launch_args::row_blocks(dims.batch, dims.n, self.kernel.resident)
        } else {
            self.kernel.blocks(dims)
        }
    }

    fn config(&self, dims: Dims) -> LaunchConfig {
        LaunchConfig { grid_dim: (self.blocks(dims), 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
    }
}

/// Which kernel validates a call's labels and counts its counted set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// `scan.cu`, over transposed tile pairs: any call, and the one that
    /// names the lowest violation.
    Tiles,
    /// `scan_rows.cu`, along rows: calls without a mask.
    Rows,
}

/// How loss calls validate their labels: `SYMSEG_CUDA_SCAN` (read once by
/// [`CudaBackend::validation`]) picks one, to compare them on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The default. A loss call without a mask is one kernel that checks
    /// the labels as it goes (`symseg_loss_rows_checked` where the row
    /// kernel serves the call: `plain`, `upper`, `lower`, `dual` on
    /// symmetric labels, no penalty; `symseg_loss_checked` otherwise);
    /// where that pass cannot stand (invalid labels, or ignore marks under a
    /// mean) the call runs the row scan and the loss after it. Calls with a
    /// mask, and the metrics, take a scan first (the tile scan with a mask).
    Auto,
    /// `SYMSEG_CUDA_SCAN=rows`: a scan before every loss pass, the row scan
    /// wherever there is no mask.
    RowScan,
    /// `SYMSEG_CUDA_SCAN=tiles`: the tile scan before every loss pass.
    TileScan,
}

/// How many loss calls took each way of validating their labels, since the
/// backend was made ([`CudaBackend::loss_paths`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossPaths {
    /// Calls that the checked row kernel finished alone: no scan, no
    /// reduction-factor kernel, one launch.
    pub checked: u64,
    /// Checked passes whose result was dropped: invalid labels, or ignore
    /// marks in the counted set under a mean (whose factors the pass could
    /// not know). Each call then ran a scan and the loss again.
    pub redone: u64,
    /// Calls whose loss pass followed a scan (the redone ones included).
    pub scanned: u64,
}

/// [`LossPaths`]' counters, as indices of `CudaBackend::paths`.
#[derive(Debug, Clone, Copy)]
enum Path {
    Checked = 0,
    Redone = 1,
    Scanned = 2,
}

/// Calls that skip the checked pass after one had to be redone because of
/// ignore marks: labels that carry them usually carry them every batch, and
/// a redone call costs two loss passes.
const CHECKED_RETRY_AFTER: u32 = 16;

/// One operation's inputs, bound on the backend's stream until its last launch.
struct Operands<'a> {
    x: Bound<'a>,
    y: Bound<'a>,
    m: Option<Bound<'a>>,
    min_sep: usize,
}

impl Operands<'_> {
    /// The mask's address, 0 (the kernels' "no mask") without one.
    fn m(&self) -> u64 {
        self.m.as_ref().map_or(0, |b| b.ptr)
    }
}

/// A loss kernel's build: variant, strategy code, element-loss kind.
type LossBuild = (LossVariant, i32, i32);

/// The compiled kernels of one context.
#[derive(Debug)]
struct Kernels {
    scan: Kernel,
    scan_rows: Kernel,
    factors: Kernel,
    /// The loss kernels, each compiled for one strategy and element-loss
    /// kind on its first use (a call compiles only what it runs), or why
    /// one did not compile.
    loss: Mutex<HashMap<LossBuild, std::result::Result<Arc<Kernel>, String>>>,
    stats: Kernel,
    symmetrise: Kernel,
}

/// The CUDA backend: one device, one stream, kernels compiled by NVRTC for the
/// device's compute capability on first use and cached per context, so every
/// backend on one context (one per stream, say) shares them.
///
/// Every operation queues its kernels on the backend's stream; results that
/// return to the host (the loss, counts) wait for them. Tensors made from
/// cudarc slices may be written and read on other streams of the context:
/// each operation waits on its stream for their last writer, and records its
/// own reads and writes after its kernels, for whoever comes next (cudarc's
/// event tracking, on once the context has a second stream).
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
///     DeviceTensor::new(&x, [b, n, n])?,
///     DeviceTensor::new(&y, [b, n, n])?,
/// );
/// let report = backend.loss_grad(&input, &LossConfig::default(), DeviceTensorMut::new(&mut g, [b, n, n])?)?;
/// assert!(report.loss > 0.0);
/// # Ok::<(), symseg_core::Error>(())
/// ```
#[derive(Debug)]
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: &'static str,
    kernels: OnceLock<std::result::Result<Arc<Kernels>, String>>,
    scratch: Scratch,
    /// Calls left that skip the checked pass (see [`CHECKED_RETRY_AFTER`]).
    checked_skip: AtomicU32,
    /// [`LossPaths`]' counters.
    paths: [AtomicU64; 3],
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
        let ctx = CudaBackend::primary_context(ordinal)?;
        let stream = ctx.default_stream();
        CudaBackend::with_stream(stream)
    }

    /// The backend on `stream`, a cudarc stream the caller already queues its
    /// own work on: every operation is queued there, after that work, so the
    /// caller's buffers need no synchronisation either way.
    ///
    /// # Errors
    /// [`Error::Backend`] when NVRTC is missing or the device cannot be queried.
    pub fn with_stream(stream: Arc<CudaStream>) -> Result<CudaBackend> {
        availability::nvrtc()?;
        let ctx = stream.context().clone();
        let (major, minor) = ctx.compute_capability().map_err(dev)?;
        // NVRTC wants a `&'static str`; one short string per backend built.
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        Ok(CudaBackend {
            ctx,
            stream,
            arch,
            kernels: OnceLock::new(),
            scratch: Scratch::default(),
            checked_skip: AtomicU32::new(0),
            paths: Default::default(),
        })
    }

    /// The backend on another framework's CUDA stream, e.g. PyTorch's
    /// `torch.cuda.current_stream().cuda_stream` (cast with `as _`), in device
    /// `ordinal`'s primary context: the one the CUDA runtime, and so PyTorch,
    /// uses. With [`DeviceTensor::from_raw`] views of that framework's
    /// buffers, a loss is computed in its stream order, with no copy and no
    /// synchronisation.
    ///
    /// # Errors
    /// As [`CudaBackend::new`].
    ///
    /// # Safety
    /// `stream` must be a valid stream of that context (or null, the legacy
    /// default stream), and stay valid for the backend's life.
    ///
    /// # Examples
    /// ```no_run
    /// use symseg_core::{LossConfig, LossInput, TensorBackend};
    /// use symseg_cuda::{CudaBackend, DeviceTensor, DeviceTensorMut};
    ///
    /// // What another framework hands over: its stream and three buffers of device 0.
    /// let (stream, x_ptr, y_ptr, g_ptr): (u64, u64, u64, u64) = (0, 0, 0, 0);
    /// let shape = [8, 2048, 2048];
    /// // SAFETY: in real use, the framework's live stream and tensors of `shape`.
    /// let report = unsafe {
    ///     let gpu = CudaBackend::on_raw_stream(0, stream as _)?;
    ///     let input = LossInput::<CudaBackend>::new(
    ///         DeviceTensor::from_raw(x_ptr, shape),
    ///         DeviceTensor::from_raw(y_ptr, shape),
    ///     );
    ///     gpu.loss_grad(&input, &LossConfig::default(), DeviceTensorMut::from_raw(g_ptr, shape))?
    /// };
    /// # let _ = report;
    /// # Ok::<(), symseg_core::Error>(())
    /// ```
    pub unsafe fn on_raw_stream(
        ordinal: usize,
        stream: cudarc::driver::sys::CUstream,
    ) -> Result<CudaBackend> {
        let ctx = CudaBackend::primary_context(ordinal)?;
        // SAFETY: the caller promises a valid stream of this context that
        // outlives the backend; ordering with its owner's work is the stream's.
        let stream = unsafe { ctx.wrap_borrowed_stream(stream) };
        CudaBackend::with_stream(stream)
    }

    /// Device `ordinal`'s primary context, after checking that the driver and
    /// NVRTC load (cudarc panics on a missing library).
    fn primary_context(ordinal: usize) -> Result<Arc<CudaContext>> {
        availability::driver()?;
        availability::nvrtc()?;
        CudaContext::new(ordinal).map_err(dev)
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

    /// Each kernel's entry point and the most blocks of it the device keeps
    /// resident at once, which is the grid it is launched with on a large
    /// input (compiling the kernels if that has not happened yet).
    ///
    /// # Errors
    /// As the first operation: NVRTC or driver errors.
    pub fn resident_blocks(&self) -> Result<Vec<(&'static str, u32)>> {
        let k = self.kernels()?;
        Ok(vec![
            (kernels::SCAN.entry, k.scan.resident),
            (kernels::SCAN_ROWS.entry, k.scan_rows.resident),
            (kernels::FACTORS.entry, k.factors.resident),
            (kernels::LOSS.entry, self.loss_build(k, (LossVariant::Tiles, 0, 0))?.resident),
            (kernels::LOSS_ROWS.entry, self.loss_build(k, (LossVariant::Rows, 0, 0))?.resident),
            (kernels::LOSS_CHECKED.entry, self.loss_build(k, (LossVariant::TilesChecked, 0, 0))?.resident),
            (
                kernels::LOSS_ROWS_CHECKED.entry,
                self.loss_build(k, (LossVariant::RowsChecked, 0, 0))?.resident,
            ),
            (kernels::STATS.entry, k.stats.resident),
            (kernels::SYMMETRISE.entry, k.symmetrise.resident),
        ])
    }

    /// The compute capability the kernels are compiled for, e.g. `"compute_90"`.
    pub fn arch(&self) -> &'static str {
        self.arch
    }

    fn kernels(&self) -> Result<&Kernels> {
        let k = self.kernels.get_or_init(|| self.context_kernels().map_err(|e| e.to_string()));
        k.as_deref().map_err(|m| Error::Backend { backend: "cuda", message: m.clone() })
    }

    /// The kernels of this backend's context: compiled and loaded by the
    /// first backend on it, shared by every later one (a backend per stream
    /// costs no compilation).
    fn context_kernels(&self) -> Result<Arc<Kernels>> {
        // Keyed by the driver's context handle; each entry keeps its context
        // alive (through its module), so a key is never reused while listed.
        static LOADED: Mutex<Vec<(usize, Arc<Kernels>)>> = Mutex::new(Vec::new());
        let key = self.ctx.cu_ctx() as usize;
        let mut loaded = LOADED.lock().map_err(|_| Error::Backend {
            backend: "cuda",
            message: "an earlier kernel compilation panicked".into(),
        })?;
        if let Some((_, k)) = loaded.iter().find(|(c, _)| *c == key) {
            return Ok(k.clone());
        }
        let k = Arc::new(self.load_kernels()?);
        loaded.push((key, k.clone()));
        Ok(k)
    }

    fn load_kernels(&self) -> Result<Kernels> {
        Ok(Kernels {
            scan: self.load_kernel(&kernels::SCAN)?,
            scan_rows: self.load_kernel(&kernels::SCAN_ROWS)?,
            factors: self.load_kernel(&kernels::FACTORS)?,
            loss: Mutex::default(),
            stats: self.load_kernel(&kernels::STATS)?,
            symmetrise: self.load_kernel(&kernels::SYMMETRISE)?,
        })
    }

    /// Compiles `k` for this device, loads it into the context and asks the
    /// driver how many of its blocks the device keeps resident.
    fn load_kernel(&self, k: &KernelSource) -> Result<Kernel> {
        self.load_ptx(k, kernels::compile(k, self.arch)?)
    }

    fn load_ptx(&self, k: &KernelSource, ptx: cudarc::nvrtc::Ptx) -> Result<Kernel> {
        let sms =
            self.ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).map_err(dev)?;
        let sms = u32::try_from(sms).unwrap_or(1).max(1);
        let module = self.ctx.load_module(ptx).map_err(dev)?;
        let function = module.load_function(k.entry).map_err(dev)?;
        let per_sm =
            function.occupancy_max_active_blocks_per_multiprocessor(THREADS, 0, None).map_err(dev)?;
        Ok(Kernel {
            function,
            resident: sms.saturating_mul(per_sm.max(1)),
            tile: kernels::tile_side(k.entry),
        })
    }

    /// The loss kernel `build`, compiled and loaded on its first use.
    fn loss_build(&self, k: &Kernels, build: LossBuild) -> Result<Arc<Kernel>> {
        let (variant, code, kind) = build;
        let backend_error = |message: String| Error::Backend { backend: "cuda", message };
        let source = variant
            .source(code)
            .ok_or_else(|| backend_error(format!("no {variant:?} loss kernel for strategy code {code}")))?;
        let mut built =
            k.loss.lock().map_err(|_| backend_error("an earlier kernel compilation panicked".into()))?;
        let entry = built.entry(build).or_insert_with(|| {
            kernels::compile_for_kind(source, self.arch, kind)
                .and_then(|ptx| self.load_ptx(source, ptx))
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        entry.clone().map_err(backend_error)
    }

    /// The loss kernel for `args` after a scan: the row kernel where it
    /// applies (`kernels::rows_apply`), else the tile kernel; `checked`, its
    /// twin that checks the labels itself.
    fn loss_kernel(
        &self,
        k: &Kernels,
        args: &LossArgs,
        require_symmetric: bool,
        checked: bool,
    ) -> Result<LossKernel> {
        let rows = kernels::rows_apply(args.strategy, args.pen_kind, require_symmetric);
        let variant = match (rows, checked) {
            (true, false) => LossVariant::Rows,
            (false, false) => LossVariant::Tiles,
            (true, true) => LossVariant::RowsChecked,
            (false, true) => LossVariant::TilesChecked,
        };
        let kernel = self.loss_build(k, (variant, args.strategy, args.elem.kind))?;
        Ok(LossKernel { kernel, rows: variant.rows() })
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
        launch_args::check_width(dims.n)?;
        let lengths = input.region.lengths.map_or_else(|| vec![dims.n; dims.batch], <[usize]>::to_vec);
        Ok((dims, lengths))
    }

    /// The addresses of `input`'s tensors for one operation on the
    /// backend's stream, ordered after their writers.
    fn operands<'a>(&'a self, input: &'a LossInput<'_, Self>) -> Operands<'a> {
        Operands {
            x: input.logits.bind(&self.stream),
            y: input.labels.bind(&self.stream),
            m: input.region.mask.as_ref().map(|t| t.bind(&self.stream)),
            min_sep: input.region.min_sep,
        }
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

    /// The words a call uploads before its scan: the lengths, zeroed counts
    /// and a clear violation flag (`ScanWords`), then `tail`.
    fn scan_upload(lengths: &[usize], at: &ScanWords, tail: usize) -> Vec<u64> {
        let mut up: Vec<u64> = lengths.iter().map(|&l| l as u64).collect();
        up.resize(at.violation, 0);
        up.push(u64::MAX);
        up.resize(at.end + tail, 0);
        up
    }

    /// How loss calls validate their labels: [`Validation::Auto`] unless
    /// `SYMSEG_CUDA_SCAN` is `rows` or `tiles` (read once; for comparing the
    /// ways on a GPU).
    pub fn validation() -> Validation {
        static CHOSEN: OnceLock<Validation> = OnceLock::new();
        *CHOSEN.get_or_init(|| match std::env::var("SYMSEG_CUDA_SCAN").as_deref() {
            Ok("tiles") => Validation::TileScan,
            Ok("rows") => Validation::RowScan,
            _ => Validation::Auto,
        })
    }

    /// How many loss calls of this backend took each way of validating
    /// their labels (to see whether calls take the one-kernel path; see
    /// [`Validation::Auto`]).
    pub fn loss_paths(&self) -> LossPaths {
        let [checked, redone, scanned] = &self.paths;
        LossPaths {
            checked: checked.load(Ordering::Relaxed),
            redone: redone.load(Ordering::Relaxed),
            scanned: scanned.load(Ordering::Relaxed),
        }
    }

    fn count_path(&self, path: Path) {
        self.paths[path as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The scan for `ops`: along rows where there is no mask (the row scan
    /// reads no mask), unless `SYMSEG_CUDA_SCAN=tiles`.
    fn scan_for(ops: &Operands<'_>) -> Scan {
        if ops.m.is_none() && Self::validation() != Validation::TileScan { Scan::Rows } else { Scan::Tiles }
    }

    /// Whether a loss call on `ops` takes a checked loss kernel first: every
    /// call without a mask, unless `SYMSEG_CUDA_SCAN` chose a scan or a
    /// call with ignore marks recently had to be redone.
    fn takes_checked(&self, ops: &Operands<'_>) -> bool {
        if ops.m.is_some() || Self::validation() != Validation::Auto {
            return false;
        }
        // One call fewer to skip, where some are left.
        self.checked_skip.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err()
    }

    /// A loss call as one launch of a checked loss kernel (the row kernel's
    /// where it serves the call), with reduction factors from the lengths
    /// alone (`RegionCounts::unmasked`): its report, or `None` where the
    /// pass cannot stand and the caller must scan and run the loss again
    /// (invalid labels, whose error the scan names, or ignore marks in the
    /// counted set under a mean).
    #[allow(clippy::too_many_arguments)]
    fn run_checked(
        &self,
        ops: &Operands<'_>,
        dims: Dims,
        lens: &[usize],
        cfg: &LossConfig,
        args: &LossArgs,
        require_symmetric: bool,
        g: u64,
    ) -> Result<Option<LossReport>> {
        let kernel = self.loss_kernel(self.kernels()?, args, require_symmetric, true)?;
        let rows = kernel.rows;
        let unmasked: Vec<RegionCounts> =
            lens.iter().map(|&l| RegionCounts::unmasked(l, ops.min_sep)).collect();
        let (r, wp) = launch_args::host_factors(cfg, &unmasked);
        let blocks = kernel.blocks(dims);
        let scan = ScanWords::new(dims.batch);
        let at = LossWords::new(scan.end, dims.batch, blocks as usize);
        let mut w = self.scratch.words(&self.stream, at.partial.end)?;
        // The scan's words (its counts zeroed, for the ignore marks), the
        // factors, the non-finite flag.
        let mut up = Self::scan_upload(lens, &scan, at.bad + 1 - scan.end);
        for (word, f) in up[at.r.start..at.wp.end].iter_mut().zip(r.iter().chain(&wp)) {
            *word = f.to_bits();
        }
        up[at.bad] = u64::MAX;
        w.upload(0, &up)?;

        let fe = args.elem;
        let (lengths, ignored, violation, tally) = (
            w.ptr(scan.lengths.start),
            w.ptr(scan.counts.start),
            w.ptr(scan.violation),
            w.ptr(scan.tally.start),
        );
        let (r_dev, wp_dev, partial, bad) =
            (w.ptr(at.r.start), w.ptr(at.wp.start), w.ptr(at.partial.start), w.ptr(at.bad));
        let (x, y) = (ops.x.ptr, ops.y.ptr);
        let (batch, n, sep) = (dims.batch as i64, dims.n as i64, ops.min_sep as i64);
        let (wide, sym) = (i32::from(launch_args::wide(dims.n, &[x, g], &[y])), i32::from(require_symmetric));
        let mut b = self.stream.launch_builder(&kernel.kernel.function);
        b.arg(&x).arg(&y).arg(&g).arg(&lengths).arg(&batch).arg(&n).arg(&sep).arg(&wide);
        b.arg(&args.strategy).arg(&fe.w_pos).arg(&fe.w_neg).arg(&fe.gamma).arg(&fe.kind);
        if rows {
            b.arg(&sym).arg(&r_dev).arg(&ignored).arg(&violation).arg(&tally);
        } else {
            b.arg(&args.pen_kind).arg(&args.pen_probs).arg(&args.delta).arg(&sym).arg(&r_dev).arg(&wp_dev);
            b.arg(&ignored).arg(&violation);
        }
        b.arg(&partial).arg(&bad);
        let launch = kernel.config(dims);
        // SAFETY: the arguments match `symseg_loss_rows_checked`'s parameters
        // (`rows`) or `symseg_loss_checked`'s in order and type; every pointer
        // covers the validated `[B, N, N]` extent (or is 0, the gradient of a
        // loss-only call), and the scratch words the layout above, with the
        // ignore counts and the tally zeroed.
        unsafe { b.launch(launch) }.map_err(dev)?;

        let down = w.download(scan.counts.start, at.partial.end - scan.counts.start)?;
        drop(w);
        let word = |at: usize| down.get(at - scan.counts.start).copied();
        if word(scan.violation) != Some(u64::MAX) {
            self.count_path(Path::Redone);
            return Ok(None);
        }
        let ignored = launch_args::region_counts(down.get(..scan.counts.len()).unwrap_or_default());
        if cfg.reduction != Reduction::Sum && ignored.iter().any(|c| *c != RegionCounts::default()) {
            self.checked_skip.store(CHECKED_RETRY_AFTER, Ordering::Relaxed);
            self.count_path(Path::Redone);
            return Ok(None);
        }
        if let Some(k) = word(at.bad).filter(|&k| k != u64::MAX) {
            return Err(self.non_finite(x, dims, k as usize));
        }
        let counts = unmasked
            .iter()
            .zip(&ignored)
            .map(|(u, i)| {
                Some(RegionCounts {
                    pairs: u.pairs.checked_sub(i.pairs)?,
                    diagonal: u.diagonal.checked_sub(i.diagonal)?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .filter(|c| c.len() == dims.batch)
            .ok_or_else(|| Error::Backend {
                backend: "cuda",
                message: "the checked loss pass counted more ignore marks than the set holds".into(),
            })?;
        let partial: Vec<f64> = down
            .get(at.partial.start - scan.counts.start..)
            .unwrap_or_default()
            .iter()
            .map(|&v| f64::from_bits(v))
            .collect();
        let (element_loss, penalty) = launch_args::sum_partials(&partial);
        self.count_path(Path::Checked);
        Ok(Some(RegionCounts::report(&counts, cfg.strategy, element_loss, penalty)))
    }

    /// Queues `scan` (SPEC §1's validation and each sample's counts) over
    /// `w`'s [`ScanWords`], which must hold what [`Self::scan_upload`] gives.
    fn launch_scan(
        &self,
        ops: &Operands<'_>,
        dims: Dims,
        w: &Words<'_>,
        require_symmetric: bool,
        scan: Scan,
    ) -> Result<()> {
        let k = self.kernels()?;
        let at = ScanWords::new(dims.batch);
        let (y, m) = (ops.y.ptr, ops.m());
        let (batch, n, sep) = (dims.batch as i64, dims.n as i64, ops.min_sep as i64);
        let (wide, sym) = (i32::from(launch_args::wide(dims.n, &[], &[y, m])), i32::from(require_symmetric));
        let (lens, counts, violation) =
            (w.ptr(at.lengths.start), w.ptr(at.counts.start), w.ptr(at.violation));
        match scan {
            Scan::Tiles => {
                let mut b = self.stream.launch_builder(&k.scan.function);
                b.arg(&y).arg(&m).arg(&lens).arg(&batch).arg(&n).arg(&sep).arg(&wide).arg(&sym);
                b.arg(&counts).arg(&violation);
                // SAFETY: the arguments match `symseg_scan`'s parameters in order and
                // type; every pointer covers the validated `[B, N, N]` extent, and the
                // scratch words the scan's layout.
                unsafe { b.launch(k.scan.config(dims)) }.map_err(dev)?;
            }
            Scan::Rows => {
                let band = launch_args::scan_band(dims.n);
                let tally = w.ptr(at.tally.start);
                let grid = launch_args::scan_row_blocks(dims.batch, dims.n, band, k.scan_rows.resident);
                let mut b = self.stream.launch_builder(&k.scan_rows.function);
                b.arg(&y).arg(&lens).arg(&batch).arg(&n).arg(&sep).arg(&wide).arg(&sym).arg(&band);
                b.arg(&counts).arg(&violation).arg(&tally);
                let cfg =
                    LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
                // SAFETY: the arguments match `symseg_scan_rows`'s parameters in
                // order and type; the labels and lengths cover the validated
                // extent, and the scratch words (tally zeroed) the scan's layout.
                unsafe { b.launch(cfg) }.map_err(dev)?;
            }
        }
        Ok(())
    }

    /// The scan's counts from its downloaded words (`down` starts at its
    /// counts), or the error that names its violation: the row scan says
    /// only that there is one, so the tile scan then runs to find the lowest.
    fn scan_outcome(
        &self,
        ops: &Operands<'_>,
        dims: Dims,
        lens: &[usize],
        down: &[u64],
        require_symmetric: bool,
        scan: Scan,
    ) -> Result<Vec<RegionCounts>> {
        let at = ScanWords::new(dims.batch);
        let counts = down.get(..at.counts.len()).unwrap_or_default();
        match down.get(at.violation - at.counts.start) {
            Some(&key) if key != u64::MAX => {
                let key = match scan {
                    Scan::Tiles => key,
                    Scan::Rows => self.lowest_violation(ops, dims, lens, require_symmetric)?,
                };
                Err(self.violation(ops, dims, key as usize, require_symmetric))
            }
            Some(_) => Ok(launch_args::region_counts(counts)),
            None => {
                Err(Error::Backend { backend: "cuda", message: "the scan's words were not read back".into() })
            }
        }
    }

    /// The tile scan's lowest violation of labels the row scan found invalid.
    fn lowest_violation(
        &self,
        ops: &Operands<'_>,
        dims: Dims,
        lens: &[usize],
        require_symmetric: bool,
    ) -> Result<u64> {
        let at = ScanWords::new(dims.batch);
        let mut w = self.scratch.words(&self.stream, at.end)?;
        w.upload(0, &Self::scan_upload(lens, &at, 0))?;
        self.launch_scan(ops, dims, &w, require_symmetric, Scan::Tiles)?;
        let key = w.download(at.violation, 1)?.first().copied().unwrap_or(u64::MAX);
        if key == u64::MAX {
            return Err(Error::Backend {
                backend: "cuda",
                message: "the row scan found invalid labels that the tile scan did not".into(),
            });
        }
        Ok(key)
    }

    /// The error for the violation at upper-triangle flat index `key`, checked
    /// in the order the CPU scan checks a position.
    fn violation(&self, ops: &Operands<'_>, dims: Dims, key: usize, require_symmetric: bool) -> Error {
        let (n, m) = (dims.n, dims.map_len());
        let (sample, i, j) = (key / m, key % m / n, key % n);
        let (kij, kji) = (sample * m + i * n + j, sample * m + j * n + i);
        let y = ops.y.ptr;
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
            let mask = ops.m();
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
        grad: Option<&mut DeviceTensorMut<'_, f32>>,
    ) -> Result<LossReport> {
        cfg.validate()?;
        let (dims, lens) = Self::dims(input)?;
        if let Some(g) = &grad
            && g.shape != dims.shape()
        {
            return Err(Error::ShapeMismatch {
                what: "grad",
                got: g.shape.to_vec(),
                expected: dims.shape().to_vec(),
            });
        }
        let ops = self.operands(input);
        let grad = grad.map(|g| g.bind(&self.stream));
        let k = self.kernels()?;
        let args = LossArgs::new(cfg);
        let require_symmetric = !cfg.allow_asymmetric_labels;
        if self.takes_checked(&ops) {
            let g = grad.as_ref().map_or(0, |t| t.ptr);
            if let Some(report) = self.run_checked(&ops, dims, &lens, cfg, &args, require_symmetric, g)? {
                return Ok(report);
            }
        }
        self.count_path(Path::Scanned);
        let loss_kernel = self.loss_kernel(k, &args, require_symmetric, false)?;
        let scan = ScanWords::new(dims.batch);
        let at = LossWords::new(scan.end, dims.batch, loss_kernel.blocks(dims) as usize);
        let mut w = self.scratch.words(&self.stream, at.partial.end)?;
        let mut up = Self::scan_upload(&lens, &scan, at.bad + 1 - scan.end);
        if let Some(flag) = up.get_mut(at.bad) {
            *flag = u64::MAX;
        }
        w.upload(0, &up)?;
        let scan_kind = Self::scan_for(&ops);
        self.launch_scan(&ops, dims, &w, require_symmetric, scan_kind)?;

        // The reduction factors from the counts, on the device: the loss
        // kernel follows without a wait for the host.
        let (counts, r_dev, wp_dev) = (w.ptr(scan.counts.start), w.ptr(at.r.start), w.ptr(at.wp.start));
        let batch = dims.batch as i64;
        let mut b = self.stream.launch_builder(&k.factors.function);
        b.arg(&counts).arg(&batch).arg(&args.triangle).arg(&args.reduction).arg(&args.lambda);
        b.arg(&r_dev).arg(&wp_dev);
        let one_block = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: the arguments match `symseg_factors`'s parameters in order
        // and type; the scratch words hold the loss's layout.
        unsafe { b.launch(one_block) }.map_err(dev)?;

        let fe = args.elem;
        let (lengths, violation) = (w.ptr(scan.lengths.start), w.ptr(scan.violation));
        let (partial, bad) = (w.ptr(at.partial.start), w.ptr(at.bad));
        let (x, y, m) = (ops.x.ptr, ops.y.ptr, ops.m());
        let g = grad.as_ref().map_or(0, |t| t.ptr);
        let (n, sep) = (dims.n as i64, ops.min_sep as i64);
        let wide = i32::from(launch_args::wide(dims.n, &[x, g], &[y, m]));
        let mut b = self.stream.launch_builder(&loss_kernel.kernel.function);
        b.arg(&x).arg(&y).arg(&m).arg(&g).arg(&lengths).arg(&batch).arg(&n).arg(&sep).arg(&wide);
        b.arg(&args.strategy).arg(&fe.w_pos).arg(&fe.w_neg).arg(&fe.gamma).arg(&fe.kind);
        b.arg(&args.pen_kind).arg(&args.pen_probs).arg(&args.delta);
        b.arg(&r_dev).arg(&wp_dev).arg(&violation).arg(&partial).arg(&bad);
        // SAFETY: the arguments match `symseg_loss`'s parameters (and
        // `symseg_loss_rows`'s, the same list) in order and
        // type; every pointer covers the validated `[B, N, N]` extent, and the
        // scratch words the loss's layout.
        unsafe { b.launch(loss_kernel.config(dims)) }.map_err(dev)?;

        // The one wait of the call: counts, flags and partial sums together.
        let down = w.download(scan.counts.start, at.partial.end - scan.counts.start)?;
        drop(w);
        let counts = self.scan_outcome(&ops, dims, &lens, &down, require_symmetric, scan_kind)?;
        let tail = down.get(at.bad - scan.counts.start..).unwrap_or_default();
        if let Some(&k) = tail.first()
            && k != u64::MAX
        {
            return Err(self.non_finite(x, dims, k as usize));
        }
        let partial: Vec<f64> = tail.iter().skip(1).map(|&v| f64::from_bits(v)).collect();
        let (element_loss, penalty) = launch_args::sum_partials(&partial);
        Ok(RegionCounts::report(&counts, cfg.strategy, element_loss, penalty))
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
        mut grad: Self::ViewMut<'_, f32>,
    ) -> Result<LossReport> {
        self.run_loss(input, cfg, Some(&mut grad))
    }

    fn loss(&self, input: &LossInput<'_, Self>, cfg: &LossConfig) -> Result<LossReport> {
        self.run_loss(input, cfg, None)
    }

    fn sample_stats(&self, input: &LossInput<'_, Self>, pred: &PredictConfig) -> Result<Vec<SampleStats>> {
        pred.validate()?;
        let (dims, lens) = Self::dims(input)?;
        let k = self.kernels()?;
        let blocks = k.stats.blocks(dims) as usize;
        let scan = ScanWords::new(dims.batch);
        let at = StatsWords::new(scan.end, dims.batch, blocks);
        let mut w = self.scratch.words(&self.stream, at.asym.end)?;
        // The scan's words, then zeros (the counts, and the asymmetry slots a
        // block without a sample's tile pairs leaves) but the non-finite flag.
        let mut up = Self::scan_upload(&lens, &scan, at.asym.end - scan.end);
        if let Some(flag) = up.get_mut(at.bad) {
            *flag = u64::MAX;
        }
        w.upload(0, &up)?;
        let ops = self.operands(input);
        let scan_kind = Self::scan_for(&ops);
        self.launch_scan(&ops, dims, &w, true, scan_kind)?;
        let (lengths, violation) = (w.ptr(scan.lengths.start), w.ptr(scan.violation));
        let (confusion, bad, asym) = (w.ptr(at.confusion.start), w.ptr(at.bad), w.ptr(at.asym.start));
        let (x, y, m) = (ops.x.ptr, ops.y.ptr, ops.m());
        // The threshold as the reference's exact bound on the symmetrised logit
        // (as the CPU backend does): no sigmoid per element, and the same counts.
        let (batch, n, sep) = (dims.batch as i64, dims.n as i64, ops.min_sep as i64);
        let wide = i32::from(launch_args::wide(dims.n, &[x], &[y, m]));
        let (mode, z_star) = (mode_code(pred.mode), decision_bound(pred.threshold));
        let mut b = self.stream.launch_builder(&k.stats.function);
        b.arg(&x).arg(&y).arg(&m).arg(&lengths).arg(&batch).arg(&n).arg(&sep).arg(&wide).arg(&mode);
        b.arg(&z_star).arg(&violation).arg(&confusion).arg(&asym).arg(&bad);
        // SAFETY: the arguments match `symseg_stats`'s parameters in order and
        // type, and the scratch words the stats' layout.
        unsafe { b.launch(k.stats.config(dims)) }.map_err(dev)?;
        let down = w.download(scan.counts.start, at.asym.end - scan.counts.start)?;
        drop(w);
        self.scan_outcome(&ops, dims, &lens, &down, true, scan_kind)?;
        let rest = down.get(at.confusion.start - scan.counts.start..).unwrap_or_default();
        let (conf, rest) = rest.split_at(at.confusion.len().min(rest.len()));
        if let Some(&k) = rest.first()
            && k != u64::MAX
        {
            return Err(self.non_finite(x, dims, k as usize));
        }
        let asym: Vec<f64> = rest.iter().skip(1).map(|&v| f64::from_bits(v)).collect();
        Ok(launch_args::sample_stats(conf, &asym, blocks))
    }

    fn symmetrise(
        &self,
        x: Self::View<'_, f32>,
        mode: SymMode,
        mut out: Self::ViewMut<'_, f32>,
    ) -> Result<()> {
        let dims = Dims::from_shape("logits", &x.shape)?;
        launch_args::check_width(dims.n)?;
        if out.shape != x.shape {
            return Err(Error::ShapeMismatch {
                what: "out",
                got: out.shape.to_vec(),
                expected: x.shape.to_vec(),
            });
        }
        let k = self.kernels()?;
        let (xb, ob) = (x.bind(&self.stream), out.bind(&self.stream));
        let (xp, op, batch, n) = (xb.ptr, ob.ptr, dims.batch as i64, dims.n as i64);
        let (wide, mode) = (i32::from(launch_args::wide(dims.n, &[xp, op], &[])), mode_code(mode));
        let mut b = self.stream.launch_builder(&k.symmetrise.function);
        b.arg(&xp).arg(&batch).arg(&n).arg(&wide).arg(&mode).arg(&op);
        // SAFETY: the arguments match `symseg_symmetrise`'s parameters in order and type.
        unsafe { b.launch(k.symmetrise.config(dims)) }.map_err(dev)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.stream.synchronize().map_err(dev)
    }
}
