//! # symseg
//!
//! Exactly specified losses for sparse, symmetric binary maps — protein contact
//! maps, RNA base-pairing matrices, Hi-C loops, adjacency matrices — with the
//! five ways to put symmetry into the loss (`plain`, `dual`, `average`, `upper`,
//! `lower`), an optional symmetry penalty, masks, padding and ignore labels.
//!
//! Depend on this crate and pick a backend by feature:
//!
//! | feature | backend | default |
//! |---|---|---|
//! | `cpu` | [`CpuBackend`]: fused, tiled, rayon-parallel passes over `ndarray` views | yes |
//! | `cuda` | `CudaBackend`: NVRTC-compiled kernels on device memory (`symseg-cuda`) | no |
//!
//! Everything backend-independent (configuration, validation, the float64
//! reference) is re-exported from `symseg-core`.
//!
//! ```
//! use ndarray::Array3;
//! use symseg::{CpuBackend, LossConfig, LossInput, Region, Strategy, TensorBackend};
//!
//! let (b, n) = (2, 40);
//! let logits = Array3::<f32>::from_shape_fn((b, n, n), |(s, i, j)| ((i * j + s) % 7) as f32 - 3.0);
//! let labels = Array3::<u8>::from_shape_fn((b, n, n), |(_, i, j)| u8::from(i + j == n - 1));
//! let lengths = [40, 31];
//! let input = LossInput::new(logits.view(), labels.view())
//!     .region(Region::default().lengths(&lengths).min_sep(4));
//! let mut grad = Array3::<f32>::zeros((b, n, n));
//! let cfg = LossConfig::default().strategy(Strategy::Average);
//! let report = CpuBackend::new().loss_grad(&input, &cfg, grad.view_mut())?;
//! assert!(report.loss > 0.0);
//! // Padding and pairs closer than min_sep get exactly zero gradient.
//! assert_eq!(grad[[1, 35, 2]], 0.0);
//! assert_eq!(grad[[0, 5, 7]], 0.0);
//! # Ok::<(), symseg::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub use symseg_core::*;

#[cfg(feature = "cpu")]
pub use symseg_cpu::{CpuBackend, SimdLevel};

#[cfg(feature = "cpu")]
pub use ndarray;

#[cfg(feature = "cuda")]
pub use symseg_cuda::{self as cuda, CudaBackend, DeviceTensor, DeviceTensorMut, HostInput};

// The README's Rust example runs as a doctest of this crate.
#[cfg(all(doctest, feature = "cpu"))]
#[doc = include_str!("../../../README.md")]
mod readme {}
