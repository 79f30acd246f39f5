//! One file per subcommand.

pub mod loss;
pub mod synth;

use crate::args::{Cli, Command};
use crate::error::CliResult;

/// Runs the parsed command.
pub fn run(cli: Cli) -> CliResult<()> {
    match cli.command {
        Command::Loss(a) => loss::run(&a),
        Command::Synth(a) => synth::run(&a),
    }
}
