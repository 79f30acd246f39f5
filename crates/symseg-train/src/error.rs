//! Errors of the trainer: data problems name the file and line.

use std::path::PathBuf;

/// Anything training, evaluation or data loading can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A file or directory that cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A malformed record.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when the problem is the file as a whole).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A data set that cannot be used as a whole (empty, mixed kinds, channel counts differ).
    #[error("data set {path}: {message}")]
    Dataset {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint that cannot be read or does not fit.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An input or parameter vector that does not fit the model.
    #[error("model input: {0}")]
    Shape(String),
    /// An invalid training setting.
    #[error("invalid {param} = {value}: {reason}")]
    Config {
        /// The setting.
        param: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A loss or metrics error from symseg.
    #[error(transparent)]
    Symseg(#[from] symseg::Error),
}

/// Result alias of the trainer.
pub type TrainResult<T> = Result<T, TrainError>;
