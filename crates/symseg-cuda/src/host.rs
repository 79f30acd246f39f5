//! Host-memory entry points: copy the inputs in, run the device op, copy the
//! result out. For callers whose data is on the host (the command line, the
//! cross-backend checks); code that already holds device memory uses the
//! [`TensorBackend`] methods on views instead.

use cudarc::driver::{CudaSlice, DriverError};
use symseg_core::metrics::{PredictConfig, SampleStats};
use symseg_core::{Error, LossConfig, LossInput, LossReport, Region, Result, SymMode, TensorBackend};

use crate::backend::CudaBackend;
use crate::tensor::{DeviceTensor, DeviceTensorMut};

fn dev(e: DriverError) -> Error {
    Error::Backend { backend: "cuda", message: e.to_string() }
}

/// Logits, labels and region in host memory, `[B, N, N]` row-major.
#[derive(Debug, Clone, Copy)]
pub struct HostInput<'a> {
    /// Logits.
    pub logits: &'a [f32],
    /// Labels in {0, 1, 255}.
    pub labels: &'a [u8],
    /// `[B, N, N]`.
    pub shape: [usize; 3],
    /// Lengths, `min_sep` and mask.
    pub region: Region<'a, &'a [u8]>,
}

impl<'a> From<&'a symseg_core::testing::Case> for HostInput<'a> {
    /// A random test case as host input (the cross-backend checks).
    fn from(case: &'a symseg_core::testing::Case) -> Self {
        HostInput {
            logits: &case.logits,
            labels: &case.labels,
            shape: case.dims.shape(),
            region: Region {
                lengths: case.lengths.as_deref(),
                min_sep: case.min_sep,
                mask: case.mask.as_deref(),
            },
        }
    }
}

fn check(what: &'static str, len: usize, shape: [usize; 3]) -> Result<()> {
    let want = shape.iter().product::<usize>();
    if len == want {
        Ok(())
    } else {
        Err(Error::ShapeMismatch { what, got: vec![len], expected: shape.to_vec() })
    }
}

/// The inputs copied to the device.
struct Uploaded {
    x: CudaSlice<f32>,
    y: CudaSlice<u8>,
    m: Option<CudaSlice<u8>>,
}

impl CudaBackend {
    fn upload(&self, h: &HostInput<'_>) -> Result<Uploaded> {
        check("logits", h.logits.len(), h.shape)?;
        check("labels", h.labels.len(), h.shape)?;
        if let Some(m) = h.region.mask {
            check("mask", m.len(), h.shape)?;
        }
        let s = self.stream();
        Ok(Uploaded {
            x: s.clone_htod(h.logits).map_err(dev)?,
            y: s.clone_htod(h.labels).map_err(dev)?,
            m: h.region.mask.map(|m| s.clone_htod(m)).transpose().map_err(dev)?,
        })
    }

    fn views<'a>(u: &'a Uploaded, h: &HostInput<'a>) -> Result<LossInput<'a, CudaBackend>> {
        let region = Region {
            lengths: h.region.lengths,
            min_sep: h.region.min_sep,
            mask: u.m.as_ref().map(|m| DeviceTensor::new(m, h.shape)).transpose()?,
        };
        Ok(LossInput::new(DeviceTensor::new(&u.x, h.shape)?, DeviceTensor::new(&u.y, h.shape)?)
            .region(region))
    }

    /// [`TensorBackend::loss_grad`] on host data: the report and the gradient.
    ///
    /// # Errors
    /// As [`TensorBackend::loss_grad`], and device errors.
    pub fn loss_grad_host(&self, h: &HostInput<'_>, cfg: &LossConfig) -> Result<(LossReport, Vec<f32>)> {
        let u = self.upload(h)?;
        let input = Self::views(&u, h)?;
        let s = self.stream();
        let mut g = s.alloc_zeros::<f32>(h.logits.len()).map_err(dev)?;
        let report = self.loss_grad(&input, cfg, DeviceTensorMut::new(&mut g, h.shape)?)?;
        let grad = s.clone_dtoh(&g).map_err(dev)?;
        Ok((report, grad))
    }

    /// [`TensorBackend::loss`] on host data.
    ///
    /// # Errors
    /// As [`TensorBackend::loss`], and device errors.
    pub fn loss_host(&self, h: &HostInput<'_>, cfg: &LossConfig) -> Result<LossReport> {
        let u = self.upload(h)?;
        self.loss(&Self::views(&u, h)?, cfg)
    }

    /// [`TensorBackend::sample_stats`] on host data.
    ///
    /// # Errors
    /// As [`TensorBackend::sample_stats`], and device errors.
    pub fn sample_stats_host(&self, h: &HostInput<'_>, pred: &PredictConfig) -> Result<Vec<SampleStats>> {
        let u = self.upload(h)?;
        self.sample_stats(&Self::views(&u, h)?, pred)
    }

    /// [`TensorBackend::symmetrise`] on host data.
    ///
    /// # Errors
    /// As [`TensorBackend::symmetrise`], and device errors.
    pub fn symmetrise_host(&self, x: &[f32], shape: [usize; 3], mode: SymMode) -> Result<Vec<f32>> {
        check("logits", x.len(), shape)?;
        let s = self.stream();
        let xd = s.clone_htod(x).map_err(dev)?;
        let mut out = s.alloc_zeros::<f32>(x.len()).map_err(dev)?;
        self.symmetrise(DeviceTensor::new(&xd, shape)?, mode, DeviceTensorMut::new(&mut out, shape)?)?;
        s.clone_dtoh(&out).map_err(dev)
    }
}
