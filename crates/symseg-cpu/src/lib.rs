//! # symseg-cpu
//!
//! The CPU backend of symseg: [`CpuBackend`] implements
//! [`symseg_core::TensorBackend`] over `ndarray` views, computing every loss of
//! SPEC.md in one fused pass over tiles, an element and its transposed twin
//! together, parallel with rayon and deterministic.
//!
//! See [`CpuBackend`] for an example.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod batch;
mod loss;
mod metrics;
mod par;
mod simd;
mod symmetrise;
mod tiles;

pub use backend::CpuBackend;
pub use simd::SimdLevel;
pub use tiles::TILE;
