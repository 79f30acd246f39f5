//! The backend's per-call words: every call's small buffers (lengths,
//! counts, flags, reduction factors, partial sums) in one device allocation
//! that the backend keeps and grows, with a page-locked host copy of the
//! same size. A call then allocates nothing and makes one small copy to the
//! device before its kernels and one back after them
//! (`launch_args::ScanWords` and its kin say where each buffer lies), both
//! asynchronous DMA from and to page-locked memory, which pageable memory's
//! staging (a copy more, and a device-to-host copy that blocks) would slow.

use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DriverError, PinnedHostSlice, result};
use symseg_core::{Error, Result};

fn dev(e: DriverError) -> Error {
    Error::Backend { backend: "cuda", message: e.to_string() }
}

/// The kept buffers.
#[derive(Debug)]
struct Buffers {
    device: CudaSlice<u64>,
    /// The host side of every copy, as long as `device`.
    host: PinnedHostSlice<u64>,
    /// Whether a copy from `host` may still be queued: its words must not
    /// change, nor be freed, until `stream` has passed it.
    uploading: bool,
    stream: Arc<CudaStream>,
}

impl Drop for Buffers {
    fn drop(&mut self) {
        if self.uploading {
            // A queued copy may still read the host words: let it run first.
            // (Nothing to report from a drop; a failed wait leaves them as cudarc would.)
            self.stream.synchronize().ok();
        }
    }
}

/// The kept allocation (none until the first call).
#[derive(Debug, Default)]
pub(crate) struct Scratch(Mutex<Option<Buffers>>);

/// One call's words, held for the call: calls on one backend take turns.
#[derive(Debug)]
pub(crate) struct Words<'a> {
    buf: MutexGuard<'a, Option<Buffers>>,
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
        if buf.as_ref().is_none_or(|b| b.device.len() < len) {
            *buf = None; // free the old ones (after their copies) before allocating their successors
            let len = len.next_power_of_two().max(256);
            let device = stream.alloc_zeros::<u64>(len).map_err(dev)?;
            // SAFETY: the words are written before any is read (`upload`,
            // `download`); flags 0, not write-combined: the host reads them.
            let host = unsafe { stream.context().alloc_pinned_with_flags::<u64>(len, 0) }.map_err(dev)?;
            *buf = Some(Buffers { device, host, uploading: false, stream: stream.clone() });
        }
        let base = buf.as_ref().map_or(0, |b| b.device.device_ptr(stream).0);
        Ok(Words { buf, stream, base })
    }
}

impl Words<'_> {
    /// The device address of word `at`, for a kernel's pointer argument.
    pub fn ptr(&self, at: usize) -> u64 {
        self.base + 8 * at as u64
    }

    fn buffers(&mut self) -> Result<&mut Buffers> {
        self.buf.as_mut().ok_or_else(|| Error::Backend {
            backend: "cuda",
            message: "scratch memory missing after allocation".into(),
        })
    }

    /// Queues the copy of `v` to words `at..at + v.len()`.
    pub fn upload(&mut self, at: usize, v: &[u64]) -> Result<()> {
        let (stream, base) = (self.stream, self.base);
        let b = self.buffers()?;
        let end = at + v.len();
        if end > b.device.len() {
            return Err(out_of_range(end, b.device.len()));
        }
        if b.uploading {
            // An earlier call's copy may not have run yet (it returned before
            // its download, on an error): wait before changing its words.
            stream.synchronize().map_err(dev)?;
        }
        let host = &mut b.host.as_mut_slice().map_err(dev)?[at..end];
        host.copy_from_slice(v);
        // SAFETY: the destination is words `at..end` of the device buffer,
        // checked above; the source stays unchanged until the stream has
        // passed the copy (`uploading`, cleared by a wait).
        unsafe { result::memcpy_htod_async(base + 8 * at as u64, host, stream.cu_stream()) }.map_err(dev)?;
        b.uploading = true;
        Ok(())
    }

    /// Words `at..at + len`, once the stream's work before this is done.
    pub fn download(&mut self, at: usize, len: usize) -> Result<Vec<u64>> {
        let (stream, base) = (self.stream, self.base);
        let b = self.buffers()?;
        let end = at + len;
        if end > b.device.len() {
            return Err(out_of_range(end, b.device.len()));
        }
        let host = &mut b.host.as_mut_slice().map_err(dev)?[at..end];
        // SAFETY: words `at..end` of both buffers, checked above; the host
        // words are read only after the wait below.
        unsafe { result::memcpy_dtoh_async(host, base + 8 * at as u64, stream.cu_stream()) }.map_err(dev)?;
        stream.synchronize().map_err(dev)?;
        b.uploading = false;
        Ok(host.to_vec())
    }
}

fn out_of_range(end: usize, len: usize) -> Error {
    Error::Backend { backend: "cuda", message: format!("scratch words up to {end} asked of {len}") }
}
