//! Cross-backend check: the same random cases on every backend this build has,
//! each compared with the float64 reference and with the CPU backend.
//! `--cpu-driver` runs the CUDA backend on the CPU driver where the machine
//! has no CUDA driver (`symseg::cuda::cpu_driver`): its host code as it ships,
//! its kernels emulated, so the check can be had without a GPU.

use ndarray::Array3;
use symseg::testing::{Case, check_against_reference, random_draw};
use symseg::{CpuBackend, LossConfig, LossInput, Region, TensorBackend};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Random cases per backend.
    #[arg(long, default_value_t = 2000)]
    cases: usize,
    /// Seed of the first case.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Without a CUDA driver, run the CUDA backend on the CPU driver (slow:
    /// for checking the backend's host code and kernels without a GPU).
    #[arg(long)]
    cpu_driver: bool,
}

impl Args {
    /// `cases` random cases from seed `seed`, on the CPU driver where there is
    /// no CUDA driver and `cpu_driver` is set.
    pub fn new(cases: usize, seed: u64, cpu_driver: bool) -> Args {
        Args { cases, seed, cpu_driver }
    }
}

/// The CUDA backend and the name it is reported under, `Ok(None)` after
/// saying why there is none, `Err` when a device is there but fails.
pub fn start_cuda(cpu_driver: bool) -> Result<Option<(symseg::CudaBackend, &'static str)>, String> {
    let mut name = "cuda";
    if cpu_driver {
        match symseg::cuda::cpu_driver::install() {
            Ok(symseg::cuda::cpu_driver::Driver::System) => {}
            Ok(symseg::cuda::cpu_driver::Driver::Cpu) => name = "cuda-on-cpu",
            Err(e) => return Err(format!("the CPU driver: {e}")),
        }
    }
    if let Some(reason) = symseg::cuda::unavailable_reason() {
        if name == "cuda-on-cpu" {
            return Err(format!("the CPU driver is loaded but unusable: {reason}"));
        }
        println!("cuda: skipped: {reason}");
        return Ok(None);
    }
    symseg::CudaBackend::new().map(|b| Some((b, name))).map_err(|e| e.to_string())
}

/// Loss and gradient of `case` on the CPU backend.
fn cpu(case: &Case, cfg: &LossConfig) -> symseg::Result<(f64, Vec<f32>)> {
    let [b, n, _] = case.dims.shape();
    let x = Array3::from_shape_vec((b, n, n), case.logits.clone()).expect("case dims");
    let y = Array3::from_shape_vec((b, n, n), case.labels.clone()).expect("case dims");
    let m = case.mask.as_ref().map(|m| Array3::from_shape_vec((b, n, n), m.clone()).expect("case dims"));
    let region = Region {
        lengths: case.lengths.as_deref(),
        min_sep: case.min_sep,
        mask: m.as_ref().map(|m| m.view()),
    };
    let mut g = Array3::<f32>::zeros((b, n, n));
    let r =
        CpuBackend::new().loss_grad(&LossInput::new(x.view(), y.view()).region(region), cfg, g.view_mut())?;
    Ok((r.loss, g.into_raw_vec_and_offset().0))
}

/// Loss and gradient of `case` on the CUDA backend.
fn cuda(gpu: &symseg::CudaBackend, case: &Case, cfg: &LossConfig) -> symseg::Result<(f64, Vec<f32>)> {
    let h = symseg::HostInput::from(case);
    let (r, g) = gpu.loss_grad_host(&h, cfg)?;
    Ok((r.loss, g))
}

/// Runs one case on a backend: `(loss, gradient)`.
type RunCase<'a> = Box<dyn Fn(&Case, &LossConfig) -> symseg::Result<(f64, Vec<f32>)> + 'a>;

/// Runs the cross-backend check; `false` when any case fails.
pub fn run(args: &Args) -> bool {
    println!("cross-backend check: {} random cases per backend, seeds {}..", args.cases, args.seed);
    let gpu = match start_cuda(args.cpu_driver) {
        Ok(g) => g,
        Err(e) => {
            println!("cuda: FAILED to start: {e}");
            return false;
        }
    };
    let mut backends: Vec<(&str, RunCase<'_>)> = vec![("cpu", Box::new(cpu))];
    if let Some((g, name)) = &gpu {
        backends.push((name, Box::new(move |c: &Case, cfg: &LossConfig| cuda(g, c, cfg))));
    }
    println!("{:<11} {:>7} {:>7} {:>14}", "backend", "cases", "failed", "max loss err");
    let mut ok = true;
    for (name, run_backend) in &backends {
        let (mut failed, mut worst) = (0usize, 0.0f64);
        for k in 0..args.cases {
            let seed = args.seed + k as u64;
            let (case, cfg) = random_draw(seed);
            let x64 = case.logits_f64();
            let rb = case.ref_batch(&x64);
            let reference = symseg::reference::loss_grad(&rb, &cfg);
            let verdict = run_backend(&case, &cfg).map_err(|e| e.to_string()).and_then(|(loss, grad)| {
                worst = worst.max((loss - reference.loss).abs() / reference.loss.abs().max(1e-300));
                check_against_reference(loss, Some(&grad), &reference, &rb)?;
                if *name == "cpu" {
                    return Ok(());
                }
                // And against the CPU backend, element by element.
                let (cpu_loss, cpu_grad) = cpu(&case, &cfg).map_err(|e| e.to_string())?;
                let gmax = cpu_grad.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                if (loss - cpu_loss).abs() > 2e-5 * cpu_loss.abs() + 1e-300 {
                    return Err(format!("loss {loss:e} vs cpu {cpu_loss:e}"));
                }
                match grad.iter().zip(&cpu_grad).position(|(a, b)| (a - b).abs() > 2e-4 * gmax) {
                    Some(k) => Err(format!("grad[{k}] {} vs cpu {}", grad[k], cpu_grad[k])),
                    None => Ok(()),
                }
            });
            if let Err(msg) = verdict {
                failed += 1;
                if failed <= 5 {
                    eprintln!("{name}: seed {seed}: {msg} ({cfg:?})");
                }
            }
        }
        println!("{name:<11} {:>7} {failed:>7} {worst:>14.3e}", args.cases);
        ok &= failed == 0;
    }
    println!("{}", if ok { "all backends agree with the reference" } else { "FAILED" });
    ok
}
