//! `cargo xtask gpu-check`: the one command to run on a machine with a GPU.
//! The cross-backend suite (CPU and CUDA against the f64 reference and each
//! other), then a GPU benchmark: the device-to-device copy bandwidth first,
//! then the fused loss + gradient of every strategy at 8 x 2048^2 (and the
//! other benchmark shapes) in GB/s at 9 bytes per element, as a fraction of
//! that copy bandwidth, with the CPU backend's time on the same input for the
//! speed-up. The table comes last. Sized for a few minutes.

use std::time::{Duration, Instant};

use symseg::testing::{Case, CaseSpec, Rng};
use symseg::{
    CpuBackend, CudaBackend, DeviceTensor, DeviceTensorMut, LossConfig, LossInput, Penalty, PenaltyKind,
    Strategy, TensorBackend,
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
}

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

/// Device-to-device copy bandwidth (bytes read + written per second) of a 1 GiB buffer.
fn copy_bandwidth(gpu: &CudaBackend, budget: Duration) -> symseg::Result<f64> {
    let s = gpu.stream();
    let len = 256 << 20; // f32 elements: 1 GiB
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
/// copies and their waits), which the large shapes' times include.
fn call_overhead(gpu: &CudaBackend, budget: Duration) -> symseg::Result<f64> {
    let case = Case::random(&mut Rng::new(3), &CaseSpec::new(1, 32));
    let s = gpu.stream();
    let shape = [1, 32, 32];
    let x = s.clone_htod(&case.logits).map_err(dev)?;
    let y = s.clone_htod(&case.labels).map_err(dev)?;
    let mut g = s.alloc_zeros::<f32>(case.logits.len()).map_err(dev)?;
    let input =
        LossInput::<CudaBackend>::new(DeviceTensor::new(&x, shape, &s)?, DeviceTensor::new(&y, shape, &s)?);
    let cfg = LossConfig::default();
    median_secs(budget, || gpu.loss_grad(&input, &cfg, DeviceTensorMut::new(&mut g, shape, &s)?).map(|_| ()))
}

fn bench(gpu: &CudaBackend, budget: Duration) -> symseg::Result<(f64, Vec<Row>)> {
    let copy = copy_bandwidth(gpu, budget)?;
    let cpu = CpuBackend::new();
    let s = gpu.stream();
    let mut rows = Vec::new();
    for (b, n) in [(8usize, 2048usize), (1, 2048), (32, 256)] {
        let case = Case::random(&mut Rng::new(7), &CaseSpec::new(b, n));
        let shape = [b, n, n];
        let x = s.clone_htod(&case.logits).map_err(dev)?;
        let y = s.clone_htod(&case.labels).map_err(dev)?;
        let mut g = s.alloc_zeros::<f32>(case.logits.len()).map_err(dev)?;
        let xh = ndarray::Array3::from_shape_vec((b, n, n), case.logits.clone()).map_err(dev)?;
        let yh = ndarray::Array3::from_shape_vec((b, n, n), case.labels.clone()).map_err(dev)?;
        let mut gh = ndarray::Array3::<f32>::zeros((b, n, n));
        for strategy in Strategy::ALL {
            for (pname, penalty) in [("none", None), ("l2", Some(Penalty::new(PenaltyKind::L2).weight(0.1)))]
            {
                let cfg = LossConfig::default().strategy(strategy).penalty(penalty);
                let input = LossInput::<CudaBackend>::new(
                    DeviceTensor::new(&x, shape, &s)?,
                    DeviceTensor::new(&y, shape, &s)?,
                );
                let gpu_secs = median_secs(budget, || {
                    gpu.loss_grad(&input, &cfg, DeviceTensorMut::new(&mut g, shape, &s)?).map(|_| ())
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
                "  {:<14} {:>3} registers, {:>5} B shared, spills {}/{} B, {grid} blocks resident",
                k.file, r.registers, r.shared_bytes, r.spill_stores, r.spill_loads
            ),
            Err(e) => println!("  {:<14} resources unknown ({e}), {grid} blocks resident", k.file),
        }
    }
}

pub fn run(args: &Args) -> bool {
    let started = Instant::now();
    println!("== cross-backend suite");
    let suite_ok = test_backends::run(&test_backends::Args::new(args.cases, 1));
    let gpu = match symseg::cuda::unavailable_reason() {
        Some(reason) => {
            println!("== GPU benchmark: skipped: {reason}");
            return false;
        }
        None => match CudaBackend::new() {
            Ok(g) => g,
            Err(e) => {
                println!("== GPU benchmark: FAILED: {e}");
                return false;
            }
        },
    };
    println!("== GPU benchmark (loss + gradient, float32, focal alpha 0.25 gamma 2, median)");
    let (copy, rows) = match bench(&gpu, Duration::from_secs_f64(args.seconds)) {
        Ok(r) => r,
        Err(e) => {
            println!("GPU benchmark FAILED: {e}");
            return false;
        }
    };
    let copy_gbs = copy / 1e9;
    let name = gpu.device_name().unwrap_or_else(|_| "?".into());
    print_kernels(&gpu);
    match call_overhead(&gpu, Duration::from_secs_f64(args.seconds)) {
        Ok(secs) => println!("a call's fixed cost (loss + gradient of 1x32x32): {:.1} us", secs * 1e6),
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
            Some(c) => (format!("{c:.2}"), format!("{:.0}x", c / r.gpu_ms)),
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
    println!(
        "cross-backend suite: {}; gpu-check took {:.0} s",
        if suite_ok { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    suite_ok
}
