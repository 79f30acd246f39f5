//! One file per subcommand.

pub mod compare;
pub mod eval;
pub mod loss;
pub mod metrics;
pub mod predict;
pub mod synth;
pub mod train;

use crate::args::{Cli, Command};
use crate::error::CliResult;

/// Runs the parsed command.
pub fn run(cli: Cli) -> CliResult<()> {
    match cli.command {
        Command::Loss(a) => loss::run(&a),
        Command::Metrics(a) => metrics::run(&a),
        Command::Train(a) => train::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Predict(a) => predict::run(&a),
        Command::Compare(a) => compare::run(&a),
        Command::Synth(a) => synth::run(&a),
    }
}
