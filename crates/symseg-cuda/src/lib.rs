//! # symseg-cuda
//!
//! The CUDA backend of symseg: every loss, strategy, penalty, mask, reduction,
//! the symmetrised prediction and the metric counts of SPEC.md as CUDA C
//! kernels (`src/kernels/*.cu`), compiled by NVRTC for the device's compute
//! capability on first use and cached per CUDA context (every backend on a
//! context, one per stream say, shares them).
//!
//! It builds everywhere: cudarc loads the driver and NVRTC at run time, and
//! [`CudaBackend::new`] returns a clear error where either (or a device) is
//! missing, instead of panicking. [`unavailable_reason`] says why, for tests
//! and benchmarks that skip themselves.
//!
//! Device memory comes in as [`DeviceTensor`] / [`DeviceTensorMut`] views:
//! from cudarc slices, or from a raw device pointer another framework owns.
//! No tensor goes through the host.
#![warn(missing_docs)]

mod availability;
mod backend;
pub mod cpu_driver;
#[cfg(test)]
mod emulated;
#[path = "../emulator/find_cxx.rs"]
mod find_cxx;
mod host;
pub mod kernels;
mod launch_args;
mod scratch;
mod tensor;

pub use availability::unavailable_reason;
pub use backend::{CudaBackend, LossPaths, Validation};
pub use host::HostInput;
pub use tensor::{DeviceTensor, DeviceTensorMut};
