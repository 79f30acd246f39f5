//! # symseg-core
//!
//! The numerical contract of symseg (SPEC.md): losses for sparse, symmetric
//! binary maps — protein contact maps, RNA base-pairing matrices, Hi-C loops —
//! and everything a backend needs to compute them identically.
//!
//! This crate holds **what** is computed, not **how fast**:
//! - [`config`]: the element loss, symmetry strategy, penalty and reduction, with
//!   SPEC §7's defaults;
//! - [`validate`]: SPEC §1's input checks, shared by every backend;
//! - [`TensorBackend`]: the narrow trait a backend implements (see `symseg-cpu`);
//! - [`elem`]: the per-element math every backend evaluates;
//! - [`metrics`] and [`postprocess`]: SPEC §5–6's figures and decoding steps;
//! - [`reference`](mod@reference): a float64 oracle written for clarity, used by all test suites;
//! - [`testing`]: random cases and SPEC §4's accuracy check.
//!
//! It has no heavy dependencies (no ndarray, rayon or CUDA).
//!
//! ```
//! use symseg_core::{LossConfig, Strategy, reference::{RefBatch, loss_grad}};
//! // A 2x2 map with one symmetric positive pair, plain vs dual.
//! let x = [0.5, 2.0, 1.0, -1.0];
//! let y = [0u8, 1, 1, 0];
//! let b = RefBatch { logits: &x, labels: &y, mask: None, lengths: None, batch: 1, n: 2, min_sep: 0 };
//! let plain = loss_grad(&b, &LossConfig::default());
//! let dual = loss_grad(&b, &LossConfig::default().strategy(Strategy::Dual));
//! assert!((dual.loss - 2.0 * plain.loss).abs() < 1e-15);
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod backend;
pub mod config;
pub mod elem;
pub mod error;
pub mod metrics;
pub mod postprocess;
pub mod reference;
pub mod rng;
pub mod testing;
pub mod validate;

pub use backend::{Element, LossInput, LossReport, Region, TensorBackend};
pub use config::{
    ElementLoss, IGNORE_LABEL, LossConfig, Penalty, PenaltyKind, PenaltyOn, Reduction, Strategy, SymMode,
};
pub use error::{Error, Result};
pub use validate::{Dims, RegionCounts};
