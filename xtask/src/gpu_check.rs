//! `cargo xtask gpu-check`: the one command to run on a machine with a GPU.
//! The cross-backend suite (CPU and CUDA against the f64 reference and each
//! other), then a GPU benchmark: the device-to-device copy bandwidth first,
//! then the fused loss + gradient of every strategy at 8 x 2048^2 (and the
//! other benchmark shapes) in GB/s at 9 bytes per element, as a fraction of
//! that copy bandwidth, with the CPU backend's time on the same input for the
//! speed-up. The table comes last. Sized for a few minutes.
//!
//! `--cpu-driver` is the dry run for a machine without a GPU: the same steps
//! on the CPU driver (`symseg::cuda::cpu_driver`) with small shapes and a
//! small copy, so that the one GPU run is not spent finding a broken step.
//! Its figures are the CPU's and say nothing about a GPU.

use std::time::{Duration, Instant};

use symseg::cuda::Validation;
use symseg::testing::{Case, CaseSpec, Rng};
use symseg::{
    CpuBackend, CudaBackend, DeviceTensor, DeviceTensorMut, LossConfig, LossInput, Penalty, PenaltyKind,
    Region, Strategy, TensorBackend,
};

use crate::test_backends;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Random cases per backend in the cross-backend check.
    #[arg(long, default_value_t = 500)]
    cases: usize,
    /// Seconds spent timing each benchmark case.
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
    /// Without a CUDA driver, a dry run on the CPU driver: every step, small
    /// shapes, figures that are the CPU's and not a GPU's.
    #[arg(long)]
    cpu_driver: bool,
    /// Benchmark only this strategy (repeatable; every strategy by default),
    /// e.g. to profile one under Nsight Compute (`.gpu/run.sh` with
    /// `SYMSEG_PROFILE=1`).
    #[arg(long = "only", value_name = "STRATEGY")]
    only: Vec<Strategy>,
    /// Benchmark only this shape, `BxN` (repeatable; by default 8x2048,
    /// 1x2048 and 32x256, or the dry run's small shapes).
    #[arg(long = "shape", value_name = "BxN", value_parser = parse_shape)]
    shapes: Vec<(usize, usize)>,
}

impl Args {
    /// Every step, with `cases` random cases and `seconds` a benchmark case.
    #[cfg(test)]
    fn new(cases: usize, seconds: f64, cpu_driver: bool) -> Args {
        Args { cases, seconds, cpu_driver, only: Vec::new(), shapes: Vec::new() }
    }
}

/// `8x2048` as `(8, 2048)`.
fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (b, n) = s.split_once('x').ok_or_else(|| format!("expected BxN, e.g. 8x2048, not {s:?}"))?;
    let dim = |v: &str| v.trim().parse::<usize>().ok().filter(|&d| d > 0);
    match (dim(b), dim(n)) {
        (Some(b), Some(n)) => Ok((b, n)),
        _ => Err(format!("expected BxN with positive B and N, e.g. 8x2048, not {s:?}")),
    }
}

/// The benchmark's `(batch, n)` shapes and copy size (f32 elements) on a GPU.
const GPU_SHAPES: [(usize, usize); 3] = [(8, 2048), (1, 2048), (32, 256)];
const GPU_COPY_LEN: usize = 256 << 20; // 1 GiB
/// The same on the CPU driver: as many shapes, of sizes it runs in seconds.
const DRY_RUN_SHAPES: [(usize, usize); 3] = [(2, 96), (1, 160), (8, 32)];
const DRY_RUN_COPY_LEN: usize = 4 << 20; // 16 MiB

/// Median seconds of `f` over repeated runs for about `budget`, after a warm-up.
fn median_secs(budget: Duration, mut f: impl FnMut() -> symseg::Result<()>) -> symseg::Result<f64> {
    f()?;
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 5 || (start.elapsed() < budget && times.len() < 500) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn dev(e: impl std::fmt::Display) -> symseg::Error {
    symseg::Error::Backend { backend: "cuda", message: e.to_string() }
}

/// Device-to-device copy bandwidth (bytes read + written per second) of a
/// buffer of `len` f32 elements.
fn copy_bandwidth(gpu: &CudaBackend, budget: Duration, len: usize) -> symseg::Result<f64> {
    let s = gpu.stream();
    let src = s.alloc_zeros::<f32>(len).map_err(dev)?;
    let mut dst = s.alloc_zeros::<f32>(len).map_err(dev)?;
    let secs = median_secs(budget, || {
        s.memcpy_dtod(&src, &mut dst).map_err(dev)?;
        s.synchronize().map_err(dev)
    })?;
    Ok(2.0 * (len * 4) as f64 / secs)
}

struct Row {
    strategy: &'static str,
    penalty: &'static str,
    shape: [usize; 3],
    gpu_ms: f64,
    gbs: f64,
    cpu_ms: Option<f64>,
}

/// Seconds of one loss + gradient call on a 1 x 32^2 map: next to nothing
/// for the kernels, so this is a call's fixed cost (launches, the small
/// copies and their waits), which the large shapes' times include. Without
/// a mask (one launch where the labels are checked in the loss pass), and
/// with one of all ones (a scan, the factors and the loss: three launches).
fn call_overhead(gpu: &CudaBackend, budget: Duration) -> symseg::Result<(f64, f64)> {
    let case = Case::random(&mut Rng::new(3), &CaseSpec::new(1, 32));
    let s = gpu.stream();
    let shape = [1, 32, 32];
    let x = s.clone_htod(&case.logits).map_err(dev)?;
    let y = s.clone_htod(&case.labels).map_err(dev)?;
    let m = s.clone_htod(&vec![1u8; case.labels.len()]).map_err(dev)?;
    let mut g = s.alloc_zeros::<f32>(case.logits.len()).map_err(dev)?;
    let input = LossInput::<CudaBackend>::new(DeviceTensor::new(&x, shape)?, DeviceTensor::new(&y, shape)?);
    let cfg = LossConfig::default();
    let plain = median_secs(budget, || {
        gpu.loss_grad(&input, &cfg, DeviceTensorMut::new(&mut g, shape)?).map(|_| ())
    })?;
    let masked_input =
        LossInput::<CudaBackend>::new(DeviceTensor::new(&x, shape)?, DeviceTensor::new(&y, shape)?)
            .region(Region::default().mask(DeviceTensor::new(&m, shape)?));
    let masked = median_secs(budget, || {
        gpu.loss_grad(&masked_input, &cfg, DeviceTensorMut::new(&mut g, shape)?).map(|_| ())
    })?;
    Ok((plain, masked))
}

fn bench(
    gpu: &CudaBackend,
    budget: Duration,
    shapes: &[(usize, usize)],
    strategies: &[Strategy],
    copy_len: usize,
) -> symseg::Result<(f64, Vec<Row>)> {
    let copy = copy_bandwidth(gpu, budget, copy_len)?;
    let cpu = CpuBackend::new();
    let s = gpu.stream();
    let mut rows = Vec::new();
    for &(b, n) in shapes {
        let case = Case::random(&mut Rng::new(7), &CaseSpec::new(b, n));
        let shape = [b, n, n];
        let x = s.clone_htod(&case.logits).map_err(dev)?;
        let y = s.clone_htod(&case.labels).map_err(dev)?;
        let mut g = s.alloc_zeros::<f32>(case.logits.len()).map_err(dev)?;
        let xh = ndarray::Array3::from_shape_vec((b, n, n), case.logits.clone()).map_err(dev)?;
        let yh = ndarray::Array3::from_shape_vec((b, n, n), case.labels.clone()).map_err(dev)?;
        let mut gh = ndarray::Array3::<f32>::zeros((b, n, n));
        for &strategy in strategies {
            for (pname, penalty) in [("none", None), ("l2", Some(Penalty::new(PenaltyKind::L2).weight(0.1)))]
            {
                let cfg = LossConfig::default().strategy(strategy).penalty(penalty);
                let input = LossInput::<CudaBackend>::new(
                    DeviceTensor::new(&x, shape)?,
                    DeviceTensor::new(&y, shape)?,
                );
                let gpu_secs = median_secs(budget, || {
                    gpu.loss_grad(&input, &cfg, DeviceTensorMut::new(&mut g, shape)?).map(|_| ())
                })?;
                // The CPU on the same input (penalty-free cases only, to keep this short).
                let cpu_ms = if penalty.is_none() {
                    let input = LossInput::new(xh.view(), yh.view());
                    Some(
                        1e3 * median_secs(budget, || cpu.loss_grad(&input, &cfg, gh.view_mut()).map(|_| ()))?,
                    )
                } else {
                    None
                };
                let elems = (b * n * n) as f64;
                rows.push(Row {
                    strategy: strategy.as_str(),
                    penalty: pname,
                    shape,
                    gpu_ms: gpu_secs * 1e3,
                    gbs: 9.0 * elems / gpu_secs / 1e9,
                    cpu_ms,
                });
            }
        }
    }
    Ok((copy, rows))
}

/// Per kernel: the assembler's registers and spills for this device, and
/// the grid the device keeps resident (the launch on a large input).
fn print_kernels(gpu: &CudaBackend) {
    let sm = gpu.arch().replace("compute_", "sm_");
    let resident = gpu.resident_blocks().unwrap_or_default();
    println!("\nkernels for {sm} (256 threads a block):");
    for k in symseg::cuda::kernels::ALL {
        let grid = resident.iter().find(|(e, _)| *e == k.entry).map_or(0, |(_, r)| *r);
        match symseg::cuda::kernels::resources(&k, &sm) {
            Ok(r) => println!(
                "  {:<22} {:>3} registers, {:>5} B shared, spills {}/{} B, {grid} blocks resident",
                k.file, r.registers, r.shared_bytes, r.spill_stores, r.spill_loads
            ),
            Err(e) => println!("  {:<22} resources unknown ({e}), {grid} blocks resident", k.file),
        }
    }
}

/// `12x`, or `0.35x` where the GPU is not the faster (a dry run, or tiny shapes).
fn speed_up(ratio: f64) -> String {
    if ratio >= 10.0 { format!("{ratio:.0}x") } else { format!("{ratio:.2}x") }
}

pub fn run(args: &Args) -> bool {
    let started = Instant::now();
    println!("== cross-backend suite");
    let suite_ok = test_backends::run(&test_backends::Args::new(args.cases, 1, args.cpu_driver));
    let (gpu, dry_run) = match test_backends::start_cuda(args.cpu_driver) {
        Ok(Some((g, name))) => (g, name == "cuda-on-cpu"),
        Ok(None) => {
            println!("== GPU benchmark: skipped (no GPU; `--cpu-driver` makes a dry run of it)");
            return false;
        }
        Err(e) => {
            println!("== GPU benchmark: FAILED: {e}");
            return false;
        }
    };
    let (default_shapes, copy_len) =
        if dry_run { (DRY_RUN_SHAPES, DRY_RUN_COPY_LEN) } else { (GPU_SHAPES, GPU_COPY_LEN) };
    let shapes = if args.shapes.is_empty() { default_shapes.to_vec() } else { args.shapes.clone() };
    let strategies = if args.only.is_empty() { Strategy::ALL.to_vec() } else { args.only.clone() };
    if dry_run {
        println!("== DRY RUN on the CPU driver: small shapes; every time below is the CPU's, not a GPU's");
    }
    println!("== GPU benchmark (loss + gradient, float32, focal alpha 0.25 gamma 2, median)");
    // Calls without a mask (these) check their labels in the loss pass itself,
    // unless SYMSEG_CUDA_SCAN asks for a scan first.
    println!(
        "labels checked by: {}",
        match CudaBackend::validation() {
            Validation::Auto => "the loss pass itself (calls without a mask)",
            Validation::RowScan => "the row scan (SYMSEG_CUDA_SCAN=rows)",
            Validation::TileScan => "the tile scan (SYMSEG_CUDA_SCAN=tiles)",
        }
    );
    let (copy, rows) =
        match bench(&gpu, Duration::from_secs_f64(args.seconds), &shapes, &strategies, copy_len) {
            Ok(r) => r,
            Err(e) => {
                println!("GPU benchmark FAILED: {e}");
                return false;
            }
        };
    let paths = gpu.loss_paths();
    println!(
        "loss calls: {} checked in the loss pass alone, {} redone after it, {} after a scan",
        paths.checked, paths.redone, paths.scanned
    );
    let copy_gbs = copy / 1e9;
    let name = gpu.device_name().unwrap_or_else(|_| "?".into());
    print_kernels(&gpu);
    match call_overhead(&gpu, Duration::from_secs_f64(args.seconds)) {
        Ok((plain, masked)) => println!(
            "a call's fixed cost (loss + gradient of 1x32x32): {:.1} us without a mask ({}), \
             {:.1} us with one (three launches)",
            plain * 1e6,
            if CudaBackend::validation() == Validation::Auto { "one launch" } else { "three launches" },
            masked * 1e6
        ),
        Err(e) => println!("a call's fixed cost: FAILED: {e}"),
    }
    println!(
        "\n{name}; device-to-device copy {copy_gbs:.0} GB/s (read + write); CPU backend with {} threads",
        rayon::current_num_threads()
    );
    println!(
        "{:<8} {:<7} {:<13} {:>9} {:>8} {:>7} {:>9} {:>8}",
        "strategy", "penalty", "shape", "gpu ms", "GB/s", "of copy", "cpu ms", "speed-up"
    );
    for r in &rows {
        let shape = format!("{}x{}x{}", r.shape[0], r.shape[1], r.shape[2]);
        let (cpu, up) = match r.cpu_ms {
            Some(c) => (format!("{c:.2}"), speed_up(c / r.gpu_ms)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<8} {:<7} {:<13} {:>9.3} {:>8.0} {:>6.0}% {:>9} {:>8}",
            r.strategy,
            r.penalty,
            shape,
            r.gpu_ms,
            r.gbs,
            100.0 * r.gbs / copy_gbs,
            cpu,
            up
        );
    }
    if dry_run {
        println!("(a dry run on the CPU driver: these are not GPU figures)");
    }
    println!(
        "cross-backend suite: {}; gpu-check took {:.0} s",
        if suite_ok { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    suite_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole of `gpu-check`, as a dry run on the CPU driver, so that a
    /// broken step shows here and not on the GPU machine.
    #[test]
    #[allow(clippy::print_stdout)] // reports `skipped: <reason>`
    fn the_dry_run_completes_every_step() {
        match symseg::cuda::cpu_driver::install() {
            Ok(symseg::cuda::cpu_driver::Driver::Cpu) => {}
            Ok(symseg::cuda::cpu_driver::Driver::System) => {
                println!("skipped: a CUDA driver is present; run `cargo xtask gpu-check` itself");
                return;
            }
            Err(e) => {
                assert!(
                    std::env::var("SYMSEG_REQUIRE_EMULATOR").is_err(),
                    "SYMSEG_REQUIRE_EMULATOR is set but the CPU driver cannot be had: {e}"
                );
                println!("skipped: {e}");
                return;
            }
        }
        if let Some(reason) = symseg::cuda::unavailable_reason() {
            // No NVRTC (a fresh machine; `.ci/run` installs it): nothing to compile the kernels.
            assert!(
                std::env::var("SYMSEG_REQUIRE_EMULATOR").is_err(),
                "SYMSEG_REQUIRE_EMULATOR is set but the CPU driver is unusable: {reason}"
            );
            println!("skipped: {reason}");
            return;
        }
        assert!(run(&Args::new(40, 0.01, true)));
    }

    #[test]
    fn shapes_are_read_as_b_by_n() {
        assert_eq!(parse_shape("8x2048"), Ok((8, 2048)));
        assert!(parse_shape("8x0").is_err());
        assert!(parse_shape("2048").is_err());
        assert!(parse_shape("ax3").is_err());
    }

    #[test]
    fn speed_ups_keep_two_figures() {
        assert_eq!(speed_up(37.4), "37x");
        assert_eq!(speed_up(0.347), "0.35x");
        assert_eq!(speed_up(2.0), "2.00x");
    }
}
