//! `model.ckpt`: weights, training configuration and the decoding settings chosen
//! on validation, as one JSON document.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DataKind;
use crate::error::{TrainError, TrainResult};
use crate::model::Arch;
use crate::train::{Decode, TrainConfig, Trained};

/// The format tag written into every checkpoint.
pub const FORMAT: &str = "symseg-checkpoint/1";

/// A saved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`FORMAT`].
    pub format: String,
    /// Architecture.
    pub arch: Arch,
    /// Parameters.
    pub params: Vec<f32>,
    /// How it was trained.
    pub config: TrainConfig,
    /// Decoding chosen on validation.
    pub decode: Decode,
    /// RNA or generic inputs.
    pub kind: DataKind,
}

impl Checkpoint {
    /// A checkpoint of a trained model.
    pub fn new(trained: &Trained, config: &TrainConfig, kind: DataKind) -> Self {
        Checkpoint {
            format: FORMAT.to_string(),
            arch: trained.arch.clone(),
            params: trained.params.clone(),
            config: config.clone(),
            decode: trained.decode,
            kind,
        }
    }

    /// Writes the checkpoint.
    ///
    /// # Errors
    /// [`TrainError::Io`].
    pub fn save(&self, path: &Path) -> TrainResult<()> {
        let text = serde_json::to_string(self)
            .map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), message: e.to_string() })?;
        std::fs::write(path, text).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })
    }

    /// Reads and checks a checkpoint.
    ///
    /// # Errors
    /// [`TrainError::Io`] or [`TrainError::Checkpoint`] (not a checkpoint, wrong format, parameter count).
    pub fn load(path: &Path) -> TrainResult<Checkpoint> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
        let bad = |message: String| TrainError::Checkpoint { path: path.to_path_buf(), message };
        let c: Checkpoint =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a symseg checkpoint ({e})")))?;
        if c.format != FORMAT {
            return Err(bad(format!("format '{}', expected '{FORMAT}'", c.format)));
        }
        if c.params.len() != c.arch.num_params() {
            return Err(bad(format!(
                "{} parameters for an architecture of {}",
                c.params.len(),
                c.arch.num_params()
            )));
        }
        Ok(c)
    }
}
