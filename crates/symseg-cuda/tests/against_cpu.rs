//! The CUDA backend against the float64 reference and the CPU backend, on the
//! shared random cases (odd sizes, padding, min_sep, ignore labels, masks,
//! extreme logits), plus errors, metric counts and symmetrise.
//!
//! On a GPU machine these run on the GPU. Where there is no CUDA driver
//! library (CI), they run on the CPU driver (`symseg_cuda::cpu_driver`): the
//! backend's host code as it is, with the kernels emulated on the CPU. Where
//! neither can be had, every test prints `skipped: <reason>` and passes.
#![allow(clippy::print_stdout, clippy::expect_used)] // tests report `skipped: <reason>`

use ndarray::Array3;
use symseg_core::metrics::PredictConfig;
use symseg_core::testing::{
    Case, CaseSpec, Rng, check_against_reference, random_case, random_config, random_draw,
};
use symseg_core::{Error, LossConfig, LossInput, Reduction, Region, Strategy, SymMode, TensorBackend};
use symseg_cpu::CpuBackend;
use symseg_cuda::cpu_driver::{self, Driver};
use symseg_cuda::{CudaBackend, DeviceTensor, DeviceTensorMut, HostInput, LossPaths, Validation};

/// The backend on device 0 and the driver under it, or `None` after saying why not.
fn backend_on() -> Option<(CudaBackend, Driver)> {
    let driver = match cpu_driver::install() {
        Ok(d) => d,
        Err(reason) => {
            // CI sets this: there the CPU driver must run, not skip.
            assert!(
                std::env::var("SYMSEG_REQUIRE_EMULATOR").is_err(),
                "SYMSEG_REQUIRE_EMULATOR is set but the CPU driver cannot be had: {reason}"
            );
            println!("skipped: {reason}");
            return None;
        }
    };
    if let Some(reason) = symseg_cuda::unavailable_reason() {
        // Without NVRTC (a fresh machine: `.ci/run` installs it) the CPU driver
        // has nothing to run; CI requires it, a developer's `cargo test` skips.
        assert!(
            driver != Driver::Cpu || std::env::var("SYMSEG_REQUIRE_EMULATOR").is_err(),
            "SYMSEG_REQUIRE_EMULATOR is set but the CPU driver is unusable: {reason}"
        );
        println!("skipped: {reason}");
        return None;
    }
    match CudaBackend::new() {
        Ok(b) => {
            println!("running on {}", b.device_name().unwrap_or_else(|e| e.to_string()));
            Some((b, driver))
        }
        Err(e) => panic!("a device is present but the backend failed: {e}"),
    }
}

fn backend() -> Option<CudaBackend> {
    backend_on().map(|(b, _)| b)
}

fn host(case: &Case) -> HostInput<'_> {
    HostInput::from(case)
}

fn arrays(case: &Case) -> (Array3<f32>, Array3<u8>, Option<Array3<u8>>) {
    let [b, n, _] = case.dims.shape();
    let a = |v: Vec<u8>| Array3::from_shape_vec((b, n, n), v).expect("case dims");
    (
        Array3::from_shape_vec((b, n, n), case.logits.clone()).expect("case dims"),
        a(case.labels.clone()),
        case.mask.clone().map(a),
    )
}

fn cpu_loss_grad(case: &Case, cfg: &LossConfig) -> symseg_core::Result<(f64, Vec<f32>)> {
    let (x, y, m) = arrays(case);
    let region = Region {
        lengths: case.lengths.as_deref(),
        min_sep: case.min_sep,
        mask: m.as_ref().map(|m| m.view()),
    };
    let mut g = Array3::<f32>::zeros(x.raw_dim());
    let r =
        CpuBackend::new().loss_grad(&LossInput::new(x.view(), y.view()).region(region), cfg, g.view_mut())?;
    Ok((r.loss, g.into_raw_vec_and_offset().0))
}

/// `gpu`'s loss and gradient of `case` (and its loss alone: two calls)
/// against the float64 reference and the CPU backend.
fn check_against_both(gpu: &CudaBackend, case: &Case, cfg: &LossConfig, what: &str) {
    let x64 = case.logits_f64();
    let rb = case.ref_batch(&x64);
    let reference = symseg_core::reference::loss_grad(&rb, cfg);
    let (report, grad) = gpu.loss_grad_host(&host(case), cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
    check_against_reference(report.loss, Some(&grad), &reference, &rb)
        .unwrap_or_else(|m| panic!("{what}: {m} ({cfg:?})"));
    let loss_only = gpu.loss_host(&host(case), cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(loss_only.loss.to_bits(), report.loss.to_bits(), "{what}: loss-only differs");
    let (cpu_loss, cpu_grad) = cpu_loss_grad(case, cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        (report.loss - cpu_loss).abs() <= 2e-5 * cpu_loss.abs() + 1e-300,
        "{what}: {} vs cpu {cpu_loss}",
        report.loss
    );
    let gmax = cpu_grad.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (k, (a, b)) in grad.iter().zip(&cpu_grad).enumerate() {
        assert!((a - b).abs() <= 2e-4 * gmax, "{what}: grad[{k}] {a} vs cpu {b}");
        // The same zeros (the reference check above has them exact
        // outside the counted set), up to an underflow inside it.
        assert!(
            (*a == 0.0) == (*b == 0.0) || (a - b).abs() <= 1e-6 * gmax,
            "{what}: zero pattern at {k}: {a} vs cpu {b}"
        );
    }
}

#[test]
fn random_cases_match_the_reference_and_the_cpu() {
    let Some(gpu) = backend() else { return };
    for seed in 1..=400u64 {
        let (case, cfg) = random_draw(seed);
        check_against_both(&gpu, &case, &cfg, &format!("seed {seed}"));
    }
}

/// Calls without a mask are one checked pass (the row kernel's where it
/// serves the call, the tile kernel's otherwise); ignore marks under a sum
/// keep it, under a mean it is redone after a scan and the next calls skip
/// it, and invalid labels are redone to name their error. Counted by
/// `loss_paths`, with every result checked.
#[test]
fn calls_without_a_mask_check_their_labels_in_the_loss_pass() {
    let Some(gpu) = backend() else { return };
    if CudaBackend::validation() != Validation::Auto {
        println!("skipped: SYMSEG_CUDA_SCAN chooses a scan for every call");
        return;
    }
    let mut rng = Rng::new(4242);
    let mut want = LossPaths::default();
    for round in 0..30 {
        let spec = CaseSpec {
            lengths: rng.chance(0.5),
            min_sep: [0, 1, 3, 200][rng.below(4)],
            extreme: if rng.chance(0.3) { 0.05 } else { 0.0 },
            positive: 0.02 + 0.2 * rng.uniform(),
            ..CaseSpec::new(1 + rng.below(3), [1, 7, 33, 64, 100, 129][round % 6])
        };
        let case = Case::random(&mut rng, &spec);
        // Every strategy, half the time with a penalty (the tile kernel's).
        let cfg = random_config(&mut rng).strategy(Strategy::ALL[round % 5]);
        check_against_both(&gpu, &case, &cfg, &format!("round {round}"));
        want.checked += 2;
        assert_eq!(gpu.loss_paths(), want, "round {round}");
    }
    let marked =
        Case::random(&mut rng, &CaseSpec { ignore: 0.1, lengths: true, min_sep: 2, ..CaseSpec::new(2, 65) });
    for strategy in [Strategy::Plain, Strategy::Average] {
        let cfg = LossConfig::default().strategy(strategy).reduction(Reduction::Sum);
        check_against_both(&gpu, &marked, &cfg, &format!("marks, sum, {strategy:?}"));
        want.checked += 2;
    }
    assert_eq!(gpu.loss_paths(), want, "ignore marks under a sum");
    // Under a mean: redone, and the loss-only call after it skips the pass.
    check_against_both(&gpu, &marked, &LossConfig::default(), "marks, mean");
    want.redone += 1;
    want.scanned += 2;
    assert_eq!(gpu.loss_paths(), want, "ignore marks under a mean");
    // Fifteen more calls skip it, whatever their labels; then it is tried again.
    let clean = Case::random(&mut rng, &CaseSpec::new(1, 40));
    for _ in 0..15 {
        gpu.loss_host(&host(&clean), &LossConfig::default()).expect("valid labels");
    }
    want.scanned += 15;
    assert_eq!(gpu.loss_paths(), want, "skipped after ignore marks");
    check_against_both(&gpu, &clean, &LossConfig::default(), "tried again");
    want.checked += 2;
    assert_eq!(gpu.loss_paths(), want, "tried again");
    // Invalid labels: the pass is redone after a scan, which names the error.
    let mut bad = clean.clone();
    bad.labels[5 * 40 + 30] = 9;
    let e = gpu.loss_host(&host(&bad), &LossConfig::default()).expect_err("a bad label");
    assert_eq!(e, cpu_loss_grad(&bad, &LossConfig::default()).expect_err("a bad label"));
    want.redone += 1;
    want.scanned += 1;
    assert_eq!(gpu.loss_paths(), want, "a bad label");
}

#[test]
fn results_are_the_same_run_to_run() {
    let Some(gpu) = backend() else { return };
    let mut rng = Rng::new(99);
    let case = Case::random(&mut rng, &symseg_core::testing::CaseSpec::new(3, 300));
    let cfg = LossConfig::default().strategy(Strategy::Average);
    let (a, ga) = gpu.loss_grad_host(&host(&case), &cfg).expect("valid case");
    let (b, gb) = gpu.loss_grad_host(&host(&case), &cfg).expect("valid case");
    assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    assert_eq!(ga, gb);
}

#[test]
fn errors_match_the_cpu_backend() {
    let Some(gpu) = backend() else { return };
    let mut rng = Rng::new(5);
    let base = Case::random(&mut rng, &symseg_core::testing::CaseSpec::new(2, 70));
    let n = 70;
    let cfg = LossConfig::default();
    let mut bad_label = base.clone();
    bad_label.labels[n * n + 3 * n + 40] = 7;
    let mut asym = base.clone();
    let k = n * n + 10 * n + 50;
    asym.labels[k] = u8::from(asym.labels[k] == 0);
    // Below the diagonal only: a 1 over an upper 0 (which no mirror test of
    // the row scan sees; its count of non-zero labels does), and a one-sided
    // ignore mark.
    let mut lower_only = base.clone();
    lower_only.labels[n * n + 20 * n + 60] = 0;
    lower_only.labels[n * n + 60 * n + 20] = 1;
    let mut ignore_below = base.clone();
    ignore_below.labels[33 * n + 2] = 255;
    ignore_below.labels[2 * n + 33] = 0;
    let mut nan = base.clone();
    nan.logits[5 * n + 9] = f32::NAN;
    nan.logits[9 * n + 5] = f32::INFINITY;
    for case in [bad_label, asym, lower_only, ignore_below, nan] {
        let g = gpu.loss_grad_host(&host(&case), &cfg).expect_err("invalid input");
        let c = cpu_loss_grad(&case, &cfg).expect_err("invalid input");
        match (&g, &c) {
            (
                Error::NonFiniteLogit { sample: s1, i: i1, j: j1, .. },
                Error::NonFiniteLogit { sample: s2, i: i2, j: j2, .. },
            ) => {
                assert_eq!((s1, i1, j1), (s2, i2, j2));
            }
            _ => assert_eq!(g, c),
        }
    }
}

#[test]
fn metric_counts_and_symmetrise_match_the_cpu() {
    let Some(gpu) = backend() else { return };
    for seed in 1..=60u64 {
        let mut rng = Rng::new(seed);
        let mut case = random_case(&mut rng);
        // Metrics need finite logits on the counted set.
        for v in &mut case.logits {
            if !v.is_finite() {
                *v = 3.0;
            }
        }
        let (x, y, m) = arrays(&case);
        let region = Region {
            lengths: case.lengths.as_deref(),
            min_sep: case.min_sep,
            mask: m.as_ref().map(|m| m.view()),
        };
        let input = LossInput::new(x.view(), y.view()).region(region);
        for mode in [SymMode::None, SymMode::Average, SymMode::Upper, SymMode::Lower] {
            let pred = PredictConfig::default().mode(mode).threshold(0.3 + 0.4 * rng.uniform());
            let cpu = CpuBackend::new().sample_stats(&input, &pred).expect("valid case");
            let gpu_stats = gpu.sample_stats_host(&host(&case), &pred).expect("valid case");
            for (a, b) in gpu_stats.iter().zip(&cpu) {
                assert_eq!(a.confusion, b.confusion, "seed {seed} {mode:?}");
                assert_eq!(a.asym_pairs, b.asym_pairs);
                assert!((a.asym_sum - b.asym_sum).abs() <= 1e-9 * b.asym_sum.abs().max(1.0));
            }
            let mut out = Array3::<f32>::zeros(x.raw_dim());
            CpuBackend::new().symmetrise(x.view(), mode, out.view_mut()).expect("valid");
            let z = gpu.symmetrise_host(&case.logits, case.dims.shape(), mode).expect("valid");
            assert_eq!(z, out.into_raw_vec_and_offset().0, "seed {seed} {mode:?}");
        }
    }
}

/// Device copies of a case's tensors, each `offset` elements into its
/// allocation (1 makes every row start unaligned), and a zeroed gradient.
struct Placed {
    x: cudarc::driver::CudaSlice<f32>,
    y: cudarc::driver::CudaSlice<u8>,
    m: Option<cudarc::driver::CudaSlice<u8>>,
    g: cudarc::driver::CudaSlice<f32>,
    offset: usize,
}

impl Placed {
    fn new(case: &Case, stream: &std::sync::Arc<cudarc::driver::CudaStream>, offset: usize) -> Placed {
        fn pad<T: Copy + Default>(v: &[T], offset: usize) -> Vec<T> {
            std::iter::repeat_n(T::default(), offset).chain(v.iter().copied()).collect()
        }
        let up_u8 = |v: &[u8]| stream.clone_htod(&pad(v, offset)).expect("upload");
        Placed {
            x: stream.clone_htod(&pad(&case.logits, offset)).expect("upload"),
            y: up_u8(&case.labels),
            m: case.mask.as_deref().map(up_u8),
            g: stream.alloc_zeros::<f32>(case.logits.len() + offset).expect("alloc"),
            offset,
        }
    }

    /// The loss and gradient through raw-pointer views (as another
    /// framework's buffers would come), on `gpu`'s stream.
    fn loss_grad(&mut self, gpu: &CudaBackend, case: &Case, cfg: &LossConfig) -> (f64, Vec<f32>) {
        use cudarc::driver::DevicePtr;
        let s = gpu.stream();
        let shape = case.dims.shape();
        let at = |p: u64, size: usize| p + (self.offset * size) as u64;
        let (x, y) = (at(self.x.device_ptr(&s).0, 4), at(self.y.device_ptr(&s).0, 1));
        let m = self.m.as_ref().map(|m| at(m.device_ptr(&s).0, 1));
        let g = at(self.g.device_ptr(&s).0, 4);
        // SAFETY: each address is `shape`'s elements inside a live allocation
        // of `gpu`'s context, written only by the kernels below, on one stream.
        let report = unsafe {
            let region = Region {
                lengths: case.lengths.as_deref(),
                min_sep: case.min_sep,
                mask: m.map(|m| symseg_cuda::DeviceTensor::from_raw(m, shape)),
            };
            let input = LossInput::<CudaBackend>::new(
                symseg_cuda::DeviceTensor::from_raw(x, shape),
                symseg_cuda::DeviceTensor::from_raw(y, shape),
            )
            .region(region);
            gpu.loss_grad(&input, cfg, symseg_cuda::DeviceTensorMut::from_raw(g, shape))
        }
        .expect("valid case");
        gpu.sync().expect("sync");
        let grad = s.clone_dtoh(&self.g).expect("download");
        (report.loss, grad[self.offset..].to_vec())
    }
}

/// Tensors written on another stream of the backend's context, and the
/// gradient and the symmetrised map read there afterwards. The backend
/// orders its kernels after the writes and the readers after its kernels
/// (cudarc's events, on once a context has a second stream). On the CPU
/// driver the other stream runs late, so a missing wait reads a buffer
/// before it is written, or downloads an output before it is.
#[test]
fn tensors_written_on_another_stream_are_waited_for() {
    let Some(gpu) = backend() else { return };
    let other = gpu.context().new_stream().expect("a second stream");
    for seed in [5u64, 21, 33, 48] {
        let (case, cfg) = random_draw(seed);
        let shape = case.dims.shape();
        let finite: Vec<f32> = case.logits.iter().map(|v| if v.is_finite() { *v } else { 1.0 }).collect();
        // First, so that the backend's scratch words already fit this case:
        // growing them would free memory, and a free waits for the device.
        let (want, want_grad) = gpu.loss_grad_host(&host(&case), &cfg).expect("valid case");
        let want_z = gpu.symmetrise_host(&finite, shape, SymMode::Average).expect("valid");
        // Uploads from the host wait for themselves (cudarc synchronises a
        // pageable copy), so each tensor is staged, then written by a
        // device-to-device copy that runs on `other` in its own time. The
        // staged copies live to the end: freeing one would wait for the device.
        let staged = (
            other.clone_htod(&case.logits).expect("upload"),
            other.clone_htod(&case.labels).expect("upload"),
            case.mask.as_ref().map(|m| other.clone_htod(m).expect("upload")),
            other.clone_htod(&finite).expect("upload"),
        );
        // The outputs first: waiting for them must not imply the inputs.
        let mut g = other.alloc_zeros::<f32>(case.logits.len()).expect("alloc");
        let mut z = other.alloc_zeros::<f32>(finite.len()).expect("alloc");
        let x = other.clone_dtod(&staged.0).expect("copy");
        let y = other.clone_dtod(&staged.1).expect("copy");
        let m = staged.2.as_ref().map(|m| other.clone_dtod(m).expect("copy"));
        let region = Region {
            lengths: case.lengths.as_deref(),
            min_sep: case.min_sep,
            mask: m.as_ref().map(|m| DeviceTensor::new(m, shape).expect("shape")),
        };
        let input = LossInput::new(
            DeviceTensor::new(&x, shape).expect("shape"),
            DeviceTensor::new(&y, shape).expect("shape"),
        )
        .region(region);
        let out = DeviceTensorMut::new(&mut g, shape).expect("shape");
        let report = gpu.loss_grad(&input, &cfg, out).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let grad = other.clone_dtoh(&g).expect("download");
        assert_eq!(report.loss.to_bits(), want.loss.to_bits(), "seed {seed}");
        assert_eq!(grad, want_grad, "seed {seed}");

        // symmetrise returns before its kernel is done: the reader must wait.
        let xs = other.clone_dtod(&staged.3).expect("copy");
        gpu.symmetrise(
            DeviceTensor::new(&xs, shape).expect("shape"),
            SymMode::Average,
            DeviceTensorMut::new(&mut z, shape).expect("shape"),
        )
        .expect("valid");
        let got = other.clone_dtoh(&z).expect("download");
        assert_eq!(got, want_z, "seed {seed}: symmetrise");
    }
}

#[test]
fn raw_pointers_on_another_frameworks_stream_match_the_host_entry_points() {
    let Some(gpu) = backend() else { return };
    // A stream of its own stands in for another framework's.
    let theirs = gpu.context().new_stream().expect("a stream");
    // SAFETY: `theirs` is a stream of device 0's primary context (the one
    // `gpu` uses) and outlives `on_theirs`.
    let on_theirs = unsafe { CudaBackend::on_raw_stream(0, theirs.cu_stream()) }.expect("the backend");
    for seed in [3u64, 17, 40] {
        let (case, cfg) = random_draw(seed);
        let (want, want_grad) = gpu.loss_grad_host(&host(&case), &cfg).expect("valid case");
        let mut placed = Placed::new(&case, &on_theirs.stream(), 0);
        let (loss, grad) = placed.loss_grad(&on_theirs, &case, &cfg);
        assert_eq!(loss.to_bits(), want.loss.to_bits(), "seed {seed}");
        assert_eq!(grad, want_grad, "seed {seed}");
    }
}

#[test]
fn unaligned_buffers_give_the_bits_of_aligned_ones() {
    let Some(gpu) = backend() else { return };
    // N a multiple of 4: aligned buffers take 16-byte row accesses, buffers
    // one element in take the element-wise path; the arithmetic is the same.
    let spec = symseg_core::testing::CaseSpec {
        lengths: true,
        mask: true,
        min_sep: 2,
        ignore: 0.1,
        ..symseg_core::testing::CaseSpec::new(2, 96)
    };
    let case = Case::random(&mut Rng::new(31), &spec);
    for strategy in Strategy::ALL {
        let cfg = LossConfig::default()
            .strategy(strategy)
            .penalty(Some(symseg_core::Penalty::new(symseg_core::PenaltyKind::L2)));
        let s = gpu.stream();
        let aligned = Placed::new(&case, &s, 0).loss_grad(&gpu, &case, &cfg);
        let shifted = Placed::new(&case, &s, 1).loss_grad(&gpu, &case, &cfg);
        assert_eq!(aligned.0.to_bits(), shifted.0.to_bits(), "{strategy:?}");
        assert_eq!(aligned.1, shifted.1, "{strategy:?}");
        let (cpu_loss, cpu_grad) = cpu_loss_grad(&case, &cfg).expect("valid case");
        assert!((aligned.0 - cpu_loss).abs() <= 2e-5 * cpu_loss.abs(), "{strategy:?}");
        let gmax = cpu_grad.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(aligned.1.iter().zip(&cpu_grad).all(|(a, b)| (a - b).abs() <= 2e-4 * gmax), "{strategy:?}");
    }
}

#[test]
fn a_batch_of_many_small_maps_strides_over_every_sample() {
    let Some((gpu, driver)) = backend_on() else { return };
    // On a GPU, more samples than a grid's y extent could hold (65535). The
    // CPU driver's grid is 2 blocks, so fewer samples make each block stride
    // over many of them too, at an emulation cost CI can pay.
    let samples = if driver == Driver::Cpu { 2_000 } else { 70_000 };
    let case = Case::random(&mut Rng::new(8), &symseg_core::testing::CaseSpec::new(samples, 3));
    let cfg = LossConfig::default().strategy(Strategy::Average);
    let (report, grad) = gpu.loss_grad_host(&host(&case), &cfg).expect("valid case");
    let (cpu_loss, cpu_grad) = cpu_loss_grad(&case, &cfg).expect("valid case");
    assert!((report.loss - cpu_loss).abs() <= 2e-5 * cpu_loss.abs(), "{} vs {cpu_loss}", report.loss);
    let gmax = cpu_grad.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(grad.iter().zip(&cpu_grad).all(|(a, b)| (a - b).abs() <= 2e-4 * gmax));
    let pred = PredictConfig::default().mode(SymMode::Average);
    let (x, y, _) = arrays(&case);
    let cpu = CpuBackend::new().sample_stats(&LossInput::new(x.view(), y.view()), &pred).expect("valid");
    let got = gpu.sample_stats_host(&host(&case), &pred).expect("valid");
    assert_eq!(got.len(), cpu.len());
    assert!(got.iter().zip(&cpu).all(|(a, b)| a.confusion == b.confusion && a.asym_pairs == b.asym_pairs));
}
