//! `cargo xtask train-speed`: training throughput (forward + loss + backward +
//! AdamW step, samples/s) of the default network at fixed sequence lengths.

use std::time::Instant;

use symseg_train::data::{Dataset, synthetic_rna};
use symseg_train::model::CpuOps;
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
}

pub fn run(args: &Args) -> bool {
    println!(
        "training throughput, {} threads, width {}, batch 8 (forward + loss + backward + AdamW)",
        rayon::current_num_threads(),
        args.width
    );
    println!("{:>6} {:>10} {:>12}", "N", "samples/s", "ms/sample");
    for &n in &args.n {
        let records = synthetic_rna(args.samples, 1, n, n);
        let Ok(data) = Dataset::from_records("synthetic", &records) else { return false };
        let cfg = TrainConfig { epochs: 1, width: args.width, ..TrainConfig::default() };
        // One warm-up epoch on a few samples, then the measured epoch.
        let warm = Dataset { samples: data.samples[..8.min(data.samples.len())].to_vec(), ..data.clone() };
        if train(&CpuOps, &cfg, &warm, None, &mut |_| {}).is_err() {
            return false;
        }
        let t = Instant::now();
        if train(&CpuOps, &cfg, &data, None, &mut |_| {}).is_err() {
            return false;
        }
        let secs = t.elapsed().as_secs_f64();
        println!("{n:>6} {:>10.1} {:>12.2}", args.samples as f64 / secs, 1e3 * secs / args.samples as f64);
    }
    true
}
