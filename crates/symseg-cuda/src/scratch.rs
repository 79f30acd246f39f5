//! The backend's per-call device words: every call's small buffers (lengths,
//! counts, flags, reduction factors, partial sums) in one device allocation
//! that the backend keeps and grows. A call then allocates nothing and makes
//! one small copy to the device before its kernels and one back after them
//! (`launch_args::ScanWords` and its kin say where each buffer lies).

use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DriverError};
use symseg_core::{Error, Result};

fn dev(e: DriverError) -> Error {
    Error::Backend { backend: "cuda", message: e.to_string() }
}

/// The kept allocation (none until the first call).
#[derive(Debug, Default)]
pub(crate) struct Scratch(Mutex<Option<CudaSlice<u64>>>);

/// One call's words, held for the call: calls on one backend take turns.
#[derive(Debug)]
pub(crate) struct Words<'a> {
    buf: MutexGuard<'a, Option<CudaSlice<u64>>>,
    stream: &'a Arc<CudaStream>,
    base: u64,
}

impl Scratch {
    /// At least `len` words on `stream`'s device, for one call.
    ///
    /// # Errors
    /// A driver error when growing fails, or [`Error::Backend`] when an
    /// earlier call panicked while it held the words.
    pub fn words<'a>(&'a self, stream: &'a Arc<CudaStream>, len: usize) -> Result<Words<'a>> {
        let mut buf = self.0.lock().map_err(|_| Error::Backend {
            backend: "cuda",
            message: "an earlier call on this backend panicked while it held its scratch memory".into(),
        })?;
        if buf.as_ref().is_none_or(|b| b.len() < len) {
            *buf = None; // free the old one before allocating its successor
            *buf = Some(stream.alloc_zeros::<u64>(len.next_power_of_two().max(256)).map_err(dev)?);
        }
        let base = buf.as_ref().map_or(0, |b| b.device_ptr(stream).0);
        Ok(Words { buf, stream, base })
    }
}

impl Words<'_> {
    /// The device address of word `at`, for a kernel's pointer argument.
    pub fn ptr(&self, at: usize) -> u64 {
        self.base + 8 * at as u64
    }

    fn buf(&mut self) -> Result<&mut CudaSlice<u64>> {
        self.buf.as_mut().ok_or_else(|| Error::Backend {
            backend: "cuda",
            message: "scratch memory missing after allocation".into(),
        })
    }

    /// Queues the copy of `v` to words `at..at + v.len()`.
    pub fn upload(&mut self, at: usize, v: &[u64]) -> Result<()> {
        let stream = self.stream;
        let buf = self.buf()?;
        if at + v.len() > buf.len() {
            return Err(out_of_range(at + v.len(), buf.len()));
        }
        stream.memcpy_htod(v, &mut buf.slice_mut(at..at + v.len())).map_err(dev)
    }

    /// Words `at..at + len`, once the stream's work before this is done.
    pub fn download(&mut self, at: usize, len: usize) -> Result<Vec<u64>> {
        let stream = self.stream;
        let buf = self.buf()?;
        if at + len > buf.len() {
            return Err(out_of_range(at + len, buf.len()));
        }
        let v = stream.clone_dtoh(&buf.slice(at..at + len)).map_err(dev)?;
        // A copy to pageable memory returns when done; the sync says so in
        // the code too (and costs nothing on an idle stream).
        stream.synchronize().map_err(dev)?;
        Ok(v)
    }
}

fn out_of_range(end: usize, len: usize) -> Error {
    Error::Backend { backend: "cuda", message: format!("scratch words up to {end} asked of {len}") }
}
