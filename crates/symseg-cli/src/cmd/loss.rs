//! `symseg loss`: the loss and gradient of SPEC §2–4 from `.npy` files.

use ndarray::{Array3, ArrayView3};
use serde::Serialize;
use symseg::validate::check_inputs;
use symseg::{Error, LossConfig, Region};

use crate::args::{LossArgs, RegionArgs};
use crate::engine::Engine;
use crate::error::{CliError, CliResult};
use crate::io::{self, Loaded};
use crate::output;

/// The inputs of a loss or metrics command, read and shape-checked.
#[derive(Debug)]
pub struct Inputs {
    /// The logits' shape as stored (`[N, N]` or `[B, N, N]`).
    pub shape: Vec<usize>,
    /// Logits as `[B, N, N]`.
    pub logits: Array3<f32>,
    /// Labels as `[B, N, N]`.
    pub labels: Array3<u8>,
    /// Mask as `[B, N, N]`.
    pub mask: Option<Array3<u8>>,
    /// Lengths.
    pub lengths: Option<Vec<usize>>,
    /// `min_sep`.
    pub min_sep: usize,
}

impl Inputs {
    /// Reads logits, labels and the region files, checking shapes before anything else.
    pub fn read(
        logits: &std::path::Path,
        labels: &std::path::Path,
        region: &RegionArgs,
    ) -> CliResult<Inputs> {
        let x = io::read_logits(logits)?;
        let y = io::read_labels(labels)?;
        let mask = region.mask.as_deref().map(io::read_mask).transpose()?;
        check_inputs(&x.shape, &y.shape, mask.as_ref().map(|m| m.shape.as_slice()), None)?;
        let dims = symseg::Dims::from_shape("logits", &x.shape)?;
        let lengths = match region.lengths.as_deref() {
            None => None,
            Some(p) => {
                let raw = io::read_lengths(p)?;
                if raw.len() != dims.batch {
                    return Err(Error::LengthsSize { got: raw.len(), expected: dims.batch }.into());
                }
                let mut out = Vec::with_capacity(raw.len());
                for (sample, &len) in raw.iter().enumerate() {
                    match usize::try_from(len) {
                        Ok(l) if (1..=dims.n).contains(&l) => out.push(l),
                        _ => return Err(Error::BadLength { sample, length: len, n: dims.n }.into()),
                    }
                }
                Some(out)
            }
        };
        let to3 = |l: Loaded<u8>| Array3::from_shape_vec((dims.batch, dims.n, dims.n), l.data);
        let shape_err = |e: ndarray::ShapeError| CliError::Usage(format!("internal shape error: {e}"));
        Ok(Inputs {
            shape: x.shape.clone(),
            logits: Array3::from_shape_vec((dims.batch, dims.n, dims.n), x.data).map_err(shape_err)?,
            labels: to3(y).map_err(shape_err)?,
            mask: mask.map(to3).transpose().map_err(shape_err)?,
            lengths,
            min_sep: region.min_sep,
        })
    }

    /// The region as the library takes it.
    pub fn region(&self) -> Region<'_, ArrayView3<'_, u8>> {
        Region {
            lengths: self.lengths.as_deref(),
            min_sep: self.min_sep,
            mask: self.mask.as_ref().map(|m| m.view()),
        }
    }
}

/// The JSON record of `symseg loss` (SPEC §7 field names first).
#[derive(Debug, Serialize)]
struct LossOutput<'a> {
    loss: f64,
    counted: u64,
    backend: &'static str,
    element_loss: f64,
    penalty: f64,
    pairs: u64,
    nonempty_samples: usize,
    shape: &'a [usize],
    config: &'a LossConfig,
    min_sep: usize,
    grad_out: Option<String>,
}

/// Runs `symseg loss`.
pub fn run(args: &LossArgs) -> CliResult<()> {
    let cfg = args.flags.config()?;
    output::warnings(&args.flags.ignored());
    let backend = Engine::new(args.backend, args.threads)?;
    let inputs = Inputs::read(&args.logits, &args.labels, &args.region)?;
    let (report, grad) = backend.loss(&inputs, &cfg, args.grad_out.is_some())?;
    if let (Some(path), Some(grad)) = (&args.grad_out, grad) {
        io::write_f32(path, &inputs.shape, grad)?;
    }
    let out = LossOutput {
        loss: report.loss,
        counted: report.counted,
        backend: backend.name(),
        element_loss: report.element_loss,
        penalty: report.penalty,
        pairs: report.pairs,
        nonempty_samples: report.nonempty_samples,
        shape: &inputs.shape,
        config: &cfg,
        min_sep: inputs.min_sep,
        grad_out: args.grad_out.as_ref().map(|p| p.display().to_string()),
    };
    if args.json {
        return output::json(&out);
    }
    let mut rows = vec![
        ("loss", format!("{:.9e}", out.loss)),
        ("element loss", format!("{:.9e}", out.element_loss)),
        ("penalty", format!("{:.9e}", out.penalty)),
        ("counted", out.counted.to_string()),
        ("pairs (i<j)", out.pairs.to_string()),
        ("strategy", cfg.strategy.to_string()),
        ("reduction", cfg.reduction.to_string()),
        ("backend", out.backend.to_string()),
    ];
    if let Some(p) = &out.grad_out {
        rows.push(("gradient", p.clone()));
    }
    output::table(&rows)
}
