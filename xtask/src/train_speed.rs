//! `cargo xtask train-speed`: training throughput (forward + loss + backward +
//! AdamW step, samples/s) of the default network at fixed sequence lengths, with
//! the default direct convolutions and with the im2col + GEMM reference.
//! `benches/pytorch/train_step.py` measures the same step in PyTorch.

use std::time::Instant;

use symseg_train::data::{Dataset, synthetic_rna};
use symseg_train::model::{CpuOps, Im2colOps, ModelOps};
use symseg_train::train::{TrainConfig, train};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sequence lengths to measure.
    #[arg(long, value_delimiter = ',', default_values_t = vec![80usize, 150])]
    n: Vec<usize>,
    /// Samples per measurement (one epoch).
    #[arg(long, default_value_t = 64)]
    samples: usize,
    /// Hidden width (the `symseg train` default is 16).
    #[arg(long, default_value_t = 16)]
    width: usize,
    /// Skip the im2col + GEMM reference.
    #[arg(long)]
    direct_only: bool,
}

/// Samples/s of one epoch over `data` after a short warm-up, or `None` on error.
fn measure<O: ModelOps>(ops: &O, cfg: &TrainConfig, data: &Dataset) -> Option<f64> {
    let warm = Dataset { samples: data.samples[..8.min(data.samples.len())].to_vec(), ..data.clone() };
    train(ops, cfg, &warm, None, &mut |_| {}).ok()?;
    let t = Instant::now();
    train(ops, cfg, data, None, &mut |_| {}).ok()?;
    Some(data.samples.len() as f64 / t.elapsed().as_secs_f64())
}

pub fn run(args: &Args) -> bool {
    println!(
        "training throughput, {} threads, width {}, batch 8 (forward + loss + backward + AdamW)",
        rayon::current_num_threads(),
        args.width
    );
    println!("{:>6} {:>10} {:>12} {:>16}", "N", "samples/s", "ms/sample", "im2col samples/s");
    for &n in &args.n {
        let records = synthetic_rna(args.samples, 1, n, n);
        let Ok(data) = Dataset::from_records("synthetic", &records) else { return false };
        let cfg = TrainConfig { epochs: 1, width: args.width, ..TrainConfig::default() };
        let Some(direct) = measure(&CpuOps::default(), &cfg, &data) else { return false };
        let reference = if args.direct_only {
            "-".to_string()
        } else {
            let Some(r) = measure(&Im2colOps, &cfg, &data) else { return false };
            format!("{r:.1}")
        };
        println!("{n:>6} {direct:>10.1} {:>12.2} {reference:>16}", 1e3 / direct);
    }
    true
}
