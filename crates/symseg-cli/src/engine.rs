//! The backend a command runs on, chosen by `--backend`: the CPU backend, or
//! the CUDA backend where the `cuda` feature is built in (host data is copied
//! to the device and back).

use symseg::metrics::{PredictConfig, SampleStats};
use symseg::{CpuBackend, Error, LossConfig, LossInput, LossReport, TensorBackend};

use crate::args::BackendName;
use crate::cmd::loss::Inputs;
use crate::error::{CliError, CliResult};

/// A constructed backend.
#[derive(Debug)]
pub enum Engine {
    /// The CPU backend.
    Cpu(CpuBackend),
    /// The CUDA backend.
    #[cfg(feature = "cuda")]
    Cuda(Box<symseg::CudaBackend>),
}

impl Engine {
    /// The backend `name` (CPU: with `threads` workers), or the one-line
    /// reason it cannot run here.
    pub fn new(name: BackendName, threads: Option<usize>) -> CliResult<Engine> {
        match name {
            BackendName::Cpu => match threads {
                Some(0) => Err(CliError::Usage("--threads must be >= 1".into())),
                Some(t) => Ok(Engine::Cpu(CpuBackend::with_threads(t)?)),
                None => Ok(Engine::Cpu(CpuBackend::new())),
            },
            #[cfg(feature = "cuda")]
            BackendName::Cuda => Ok(Engine::Cuda(Box::new(symseg::CudaBackend::new()?))),
            #[cfg(not(feature = "cuda"))]
            BackendName::Cuda => Err(Error::Backend {
                backend: "cuda",
                message: "not available: this symseg was built without the `cuda` feature \
                          (cargo build --release --features cuda)"
                    .into(),
            }
            .into()),
        }
    }

    /// The backend's name, as in `--backend`.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Cpu(b) => b.name(),
            #[cfg(feature = "cuda")]
            Engine::Cuda(b) => b.name(),
        }
    }

    /// The loss of `inputs`, and the gradient when `grad` is asked for.
    pub fn loss(
        &self,
        inputs: &Inputs,
        cfg: &LossConfig,
        grad: bool,
    ) -> CliResult<(LossReport, Option<Vec<f32>>)> {
        match self {
            Engine::Cpu(b) => {
                let input =
                    LossInput::new(inputs.logits.view(), inputs.labels.view()).region(inputs.region());
                if grad {
                    let mut g = ndarray::Array3::<f32>::zeros(inputs.logits.raw_dim());
                    let r = b.loss_grad(&input, cfg, g.view_mut())?;
                    Ok((r, Some(g.into_raw_vec_and_offset().0)))
                } else {
                    Ok((b.loss(&input, cfg)?, None))
                }
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(b) => {
                let h = host_input(inputs)?;
                if grad {
                    let (r, g) = b.loss_grad_host(&h, cfg)?;
                    Ok((r, Some(g)))
                } else {
                    Ok((b.loss_host(&h, cfg)?, None))
                }
            }
        }
    }

    /// Per-sample confusion counts and asymmetry of `inputs`.
    pub fn sample_stats(&self, inputs: &Inputs, pred: &PredictConfig) -> CliResult<Vec<SampleStats>> {
        match self {
            Engine::Cpu(b) => {
                let input =
                    LossInput::new(inputs.logits.view(), inputs.labels.view()).region(inputs.region());
                Ok(b.sample_stats(&input, pred)?)
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(b) => Ok(b.sample_stats_host(&host_input(inputs)?, pred)?),
        }
    }
}

#[cfg(feature = "cuda")]
fn host_input(inputs: &Inputs) -> CliResult<symseg::HostInput<'_>> {
    fn slice<'a>(what: &'static str, s: Option<&'a [u8]>) -> Result<&'a [u8], Error> {
        s.ok_or(Error::Layout { what })
    }
    Ok(symseg::HostInput {
        logits: inputs.logits.as_slice().ok_or(Error::Layout { what: "logits" })?,
        labels: slice("labels", inputs.labels.as_slice())?,
        shape: [inputs.logits.shape()[0], inputs.logits.shape()[1], inputs.logits.shape()[2]],
        region: symseg::Region {
            lengths: inputs.lengths.as_deref(),
            min_sep: inputs.min_sep,
            mask: inputs.mask.as_ref().map(|m| slice("mask", m.as_slice())).transpose()?,
        },
    })
}
