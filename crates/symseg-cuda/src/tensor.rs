//! Views of device memory: what the CUDA backend's operations read and write.

use std::marker::PhantomData;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use symseg_core::{Error, Result};

fn check_len(what: &'static str, len: usize, shape: [usize; 3]) -> Result<()> {
    let want = shape.iter().product::<usize>();
    if len == want {
        Ok(())
    } else {
        Err(Error::ShapeMismatch { what, got: vec![len], expected: vec![want] })
    }
}

/// A read-only `[B, N, N]` tensor in device memory (row-major, contiguous).
///
/// Built from a cudarc slice of the backend's context ([`DeviceTensor::new`]),
/// or from a raw device pointer that another framework owns
/// ([`DeviceTensor::from_raw`]); either way no data leaves the device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceTensor<'a, T> {
    pub(crate) ptr: u64,
    pub(crate) shape: [usize; 3],
    _data: PhantomData<&'a T>,
}

impl<'a, T> DeviceTensor<'a, T> {
    /// A view of `slice` as `shape` (`[1, N, N]` for one map). `stream` is the
    /// stream that last wrote `slice`: the view orders itself after that work.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the slice does not hold `shape`'s elements.
    pub fn new(slice: &'a CudaSlice<T>, shape: [usize; 3], stream: &CudaStream) -> Result<Self> {
        check_len("device tensor", slice.len(), shape)?;
        let (ptr, _sync) = slice.device_ptr(stream);
        Ok(DeviceTensor { ptr, shape, _data: PhantomData })
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
        DeviceTensor { ptr, shape, _data: PhantomData }
    }

    /// The shape `[B, N, N]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }
}

/// A writable `[B, N, N]` tensor in device memory.
#[derive(Debug)]
pub struct DeviceTensorMut<'a, T> {
    pub(crate) ptr: u64,
    pub(crate) shape: [usize; 3],
    _data: PhantomData<&'a mut T>,
}

impl<'a, T> DeviceTensorMut<'a, T> {
    /// A writable view of `slice` as `shape`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the slice does not hold `shape`'s elements.
    pub fn new(slice: &'a mut CudaSlice<T>, shape: [usize; 3], stream: &CudaStream) -> Result<Self> {
        check_len("device tensor", slice.len(), shape)?;
        let (ptr, _sync) = slice.device_ptr_mut(stream);
        Ok(DeviceTensorMut { ptr, shape, _data: PhantomData })
    }

    /// A writable view of `shape` elements at the device address `ptr`.
    ///
    /// # Safety
    /// As [`DeviceTensor::from_raw`], and nobody else reads or writes the
    /// memory for `'a`.
    pub unsafe fn from_raw(ptr: u64, shape: [usize; 3]) -> Self {
        DeviceTensorMut { ptr, shape, _data: PhantomData }
    }

    /// The shape `[B, N, N]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }
}
