//! The `symseg` command line. See `symseg --help` and SPEC §7.

mod args;
mod cmd;
mod engine;
mod error;
mod io;
mod output;
mod plot;
mod report;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print to stdout and exit with 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            output::usage_error(&e.to_string());
            return ExitCode::from(2);
        }
    };
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
