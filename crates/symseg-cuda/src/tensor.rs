//! Views of device memory: what the CUDA backend's operations read and write.
//!
//! A view of a cudarc slice keeps the slice, not its address: the backend
//! takes the address for each operation on its own stream ([`Bound`]), so
//! that cudarc's event tracking (on once a context has more than one stream)
//! orders the operation after the slice's last writer, and records the
//! operation's read or write after its kernels, where the next user on
//! another stream must wait for it.

use std::marker::PhantomData;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, SyncOnDrop};
use symseg_core::{Error, Result};

fn check_len(what: &'static str, len: usize, shape: [usize; 3]) -> Result<()> {
    let want = shape.iter().product::<usize>();
    if len == want {
        Ok(())
    } else {
        Err(Error::ShapeMismatch { what, got: vec![len], expected: vec![want] })
    }
}

/// A view's address for one operation, ordered on the operation's stream.
/// Dropped after the operation's last launch, it records that access on the
/// stream (for a cudarc slice in a context that tracks events).
pub(crate) struct Bound<'a> {
    pub(crate) ptr: u64,
    _access: Option<SyncOnDrop<'a>>,
}

impl Bound<'_> {
    /// A raw address: ordering it is its owner's business.
    fn raw(ptr: u64) -> Self {
        Bound { ptr, _access: None }
    }
}

#[derive(Debug, Clone, Copy)]
enum Source<'a, T> {
    Slice(&'a CudaSlice<T>),
    Raw(u64),
}

/// A read-only `[B, N, N]` tensor in device memory (row-major, contiguous).
///
/// Built from a cudarc slice of the backend's context ([`DeviceTensor::new`]),
/// or from a raw device pointer that another framework owns
/// ([`DeviceTensor::from_raw`]); either way no data leaves the device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceTensor<'a, T> {
    source: Source<'a, T>,
    pub(crate) shape: [usize; 3],
}

impl<'a, T> DeviceTensor<'a, T> {
    /// A view of `slice` as `shape` (`[1, N, N]` for one map). The slice may
    /// have been written on any stream of the backend's context: where
    /// cudarc tracks events (a context with more than one stream), each
    /// operation waits for that write on the backend's stream, and a later
    /// writer on another stream waits for the operation.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the slice does not hold `shape`'s elements.
    pub fn new(slice: &'a CudaSlice<T>, shape: [usize; 3]) -> Result<Self> {
        check_len("device tensor", slice.len(), shape)?;
        Ok(DeviceTensor { source: Source::Slice(slice), shape })
    }

    /// A view of `shape` elements at the device address `ptr` (e.g. a
    /// PyTorch tensor's `data_ptr()`), in the backend's CUDA context.
    ///
    /// # Safety
    /// `ptr` must point to `shape`'s elements of `T`, contiguous, in device
    /// memory of the backend's context, valid and not written by anyone else
    /// for `'a`, with any producer's work finished or ordered before the
    /// backend's stream.
    pub unsafe fn from_raw(ptr: u64, shape: [usize; 3]) -> Self {
        DeviceTensor { source: Source::Raw(ptr), shape }
    }

    /// The shape `[B, N, N]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The address for an operation that reads the tensor on `stream`.
    pub(crate) fn bind<'s>(&'s self, stream: &'s CudaStream) -> Bound<'s> {
        match self.source {
            Source::Slice(slice) => {
                let (ptr, access) = slice.device_ptr(stream);
                Bound { ptr, _access: Some(access) }
            }
            Source::Raw(ptr) => Bound::raw(ptr),
        }
    }
}

#[derive(Debug)]
enum SourceMut<'a, T> {
    Slice(&'a mut CudaSlice<T>),
    Raw(u64),
}

/// A writable `[B, N, N]` tensor in device memory.
#[derive(Debug)]
pub struct DeviceTensorMut<'a, T> {
    source: SourceMut<'a, T>,
    pub(crate) shape: [usize; 3],
    _data: PhantomData<&'a mut T>,
}

impl<'a, T> DeviceTensorMut<'a, T> {
    /// A writable view of `slice` as `shape`, ordered as
    /// [`DeviceTensor::new`]'s, after the slice's readers as well as its writer.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the slice does not hold `shape`'s elements.
    pub fn new(slice: &'a mut CudaSlice<T>, shape: [usize; 3]) -> Result<Self> {
        check_len("device tensor", slice.len(), shape)?;
        Ok(DeviceTensorMut { source: SourceMut::Slice(slice), shape, _data: PhantomData })
    }

    /// A writable view of `shape` elements at the device address `ptr`.
    ///
    /// # Safety
    /// As [`DeviceTensor::from_raw`], and nobody else reads or writes the
    /// memory for `'a`.
    pub unsafe fn from_raw(ptr: u64, shape: [usize; 3]) -> Self {
        DeviceTensorMut { source: SourceMut::Raw(ptr), shape, _data: PhantomData }
    }

    /// The shape `[B, N, N]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The address for an operation that writes the tensor on `stream`.
    pub(crate) fn bind<'s>(&'s mut self, stream: &'s CudaStream) -> Bound<'s> {
        match &mut self.source {
            SourceMut::Slice(slice) => {
                let (ptr, access) = slice.device_ptr_mut(stream);
                Bound { ptr, _access: Some(access) }
            }
            SourceMut::Raw(ptr) => Bound::raw(*ptr),
        }
    }
}
