//! `cargo xtask …`: project tasks that are programs rather than tests.
//!
//! - `test-backends`: random cases on every available backend against the f64
//!   reference (SPEC §4's accuracy) and against each other;
//! - `bench`: loss/gradient throughput of every strategy beside the machine's
//!   measured copy bandwidth;
//! - `train-speed`: training samples/s of the default network at N = 80 and 150.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

mod bench;
mod gpu_check;
mod test_backends;
mod train_speed;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run random cases on every available backend against the f64 reference.
    TestBackends(test_backends::Args),
    /// Measure loss and gradient throughput (ms, G elements/s, GB/s vs copy bandwidth).
    Bench(bench::Args),
    /// Measure training throughput (samples/s) at fixed sequence lengths.
    TrainSpeed(train_speed::Args),
    /// On a GPU machine: the cross-backend suite, then the GPU benchmark table.
    GpuCheck(gpu_check::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli.task {
        Task::TestBackends(a) => test_backends::run(&a),
        Task::Bench(a) => bench::run(&a),
        Task::TrainSpeed(a) => train_speed::run(&a),
        Task::GpuCheck(a) => gpu_check::run(&a),
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
