//! The command line's errors and their exit codes: 2 for usage, 1 for data.

use std::path::PathBuf;

/// Anything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Flags that contradict each other or a value out of its domain.
    #[error("{0}")]
    Usage(String),
    /// A file that cannot be opened or read.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        /// Which input (`logits`, `labels`, ...).
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file that is read but holds something unusable (malformed, wrong dtype or values).
    #[error("{what} file {path}: {message}")]
    Data {
        /// Which input.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An output that cannot be written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The path given.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A data, checkpoint or training error from the trainer.
    #[error(transparent)]
    Train(#[from] symseg_train::error::TrainError),
    /// A validation or backend error from the library.
    #[error(transparent)]
    Core(#[from] symseg::Error),
}

impl CliError {
    /// The process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Core(e) if e.is_config_error() => 2,
            CliError::Train(symseg_train::error::TrainError::Config { .. }) => 2,
            CliError::Train(symseg_train::error::TrainError::Symseg(e)) if e.is_config_error() => 2,
            _ => 1,
        }
    }
}

/// Result alias of the command line.
pub type CliResult<T> = Result<T, CliError>;
