//! `symseg metrics`: SPEC §6's figures of a prediction, with optional decoding
//! and with the threshold or triangle chosen on a validation set.

use std::path::Path;

use serde::Serialize;
use symseg::metrics::{HostBatch, MetricsAccumulator, MetricsReport, PredictConfig};
use symseg::{SymMode, postprocess};
use symseg_train::data::rna;

use super::loss::Inputs;
use crate::args::{MetricsArgs, ModeName, RegionArgs, ThresholdArg};
use crate::engine::Engine;
use crate::error::{CliError, CliResult};
use crate::{io, output};

#[derive(Debug, Serialize)]
struct MetricsOutput<'a> {
    #[serde(flatten)]
    report: &'a MetricsReport,
    mode: SymMode,
    threshold: f64,
    one_partner: bool,
    pair_mask: bool,
    backend: &'static str,
}

/// Scores `inputs` with `pred`, using the backend's counts when predictions are
/// only thresholded.
fn score(
    engine: &Engine,
    inputs: &Inputs,
    pred: PredictConfig,
    one_partner: bool,
    pair_mask: Option<&[u8]>,
) -> CliResult<MetricsAccumulator> {
    let logits = inputs.logits.as_slice().ok_or(symseg::Error::Layout { what: "logits" })?;
    let labels = inputs.labels.as_slice().ok_or(symseg::Error::Layout { what: "labels" })?;
    let batch = HostBatch {
        dims: symseg::Dims::from_shape("logits", inputs.logits.shape())?,
        logits,
        labels,
        mask: inputs.mask.as_ref().and_then(|m| m.as_slice()),
        pair_mask,
        lengths: inputs.lengths.as_deref(),
        min_sep: inputs.min_sep,
    };
    let mut acc = MetricsAccumulator::new(pred, one_partner);
    let stats = if acc.decodes(&batch) { None } else { Some(engine.sample_stats(inputs, &pred)?) };
    acc.add(&batch, stats.as_deref())?;
    Ok(acc)
}

/// Reads sequences (FASTA or dot-bracket FASTA, one record per sample) into a
/// `[B, N, N]` canonical-pair mask.
fn sequence_mask(path: &Path, batch: usize, n: usize) -> CliResult<Vec<u8>> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        what: "sequences",
        path: path.to_path_buf(),
        source,
    })?;
    let data_err = |message: String| CliError::Data { what: "sequences", path: path.to_path_buf(), message };
    // The trainer's parser: wrapped records, `#` comments, RNAfold energies and
    // bpRNA's letter brackets read the same here as in `symseg train`.
    let seqs: Vec<String> =
        rna::parse_records(&text, path, false, false)?.records.into_iter().map(|r| r.sequence).collect();
    if seqs.len() != batch {
        return Err(data_err(format!("{} sequences for a batch of {batch} samples", seqs.len())));
    }
    let mut out = Vec::with_capacity(batch * n * n);
    for (b, s) in seqs.iter().enumerate() {
        let m = postprocess::canonical_mask(s.as_bytes(), n)
            .map_err(|_| data_err(format!("sequence {b} has length {} > N = {n}", s.len())))?;
        out.extend(m);
    }
    Ok(out)
}

/// Runs `symseg metrics`.
pub fn run(args: &MetricsArgs) -> CliResult<()> {
    let cpu = Engine::new(args.backend, args.threads)?;
    let needs_val = args.mode == ModeName::BestHalf || args.threshold == Some(ThresholdArg::Best);
    if needs_val && args.val_logits.is_none() {
        return Err(CliError::Usage(
            "--mode best-half and --threshold best need --val-logits and --val-labels".into(),
        ));
    }
    let inputs = Inputs::read(&args.logits, &args.labels, &args.region)?;
    let val = match (&args.val_logits, &args.val_labels) {
        (Some(x), Some(y)) => {
            let region = RegionArgs {
                lengths: args.val_lengths.clone(),
                mask: args.val_mask.clone(),
                min_sep: args.region.min_sep,
            };
            Some(Inputs::read(x, y, &region)?)
        }
        _ => None,
    };
    let fixed = match args.threshold {
        Some(ThresholdArg::Fixed(t)) => t,
        _ => 0.5,
    };
    let tune = matches!(args.threshold, Some(ThresholdArg::Best));
    // A mode's validation F1 at the threshold used with it: the given one, or
    // with `--threshold best` its own best, so `best-half` compares each half
    // at its best threshold rather than both at 0.5.
    let judge = |mode: SymMode| -> CliResult<(f64, f64)> {
        let val = val.as_ref().ok_or_else(|| {
            CliError::Usage("--mode best-half and --threshold best need validation data".into())
        })?;
        let acc = score(&cpu, val, PredictConfig::default().mode(mode).threshold(fixed), false, None)?;
        Ok(if tune { acc.scores().best_f1_threshold() } else { (fixed, acc.finish().f1) })
    };
    // A named mode keeps the given threshold, or with `--threshold best` its own best.
    let fixed_mode = |mode: SymMode| -> CliResult<(SymMode, f64)> {
        Ok((mode, if tune { judge(mode)?.0 } else { fixed }))
    };
    let (mode, threshold) = match args.mode {
        ModeName::BestHalf => {
            let (upper, lower) = (judge(SymMode::Upper)?, judge(SymMode::Lower)?);
            match postprocess::best_half(upper.1, lower.1) {
                SymMode::Lower => (SymMode::Lower, lower.0),
                _ => (SymMode::Upper, upper.0),
            }
        }
        ModeName::None => fixed_mode(SymMode::None)?,
        ModeName::Average => fixed_mode(SymMode::Average)?,
        ModeName::Upper => fixed_mode(SymMode::Upper)?,
        ModeName::Lower => fixed_mode(SymMode::Lower)?,
    };
    let dims = symseg::Dims::from_shape("logits", inputs.logits.shape())?;
    let pair_mask = match (&args.pair_mask, &args.sequences) {
        (Some(p), _) => {
            let m = io::read_mask(p)?;
            if m.shape != inputs.shape {
                return Err(symseg::Error::ShapeMismatch {
                    what: "pair mask",
                    got: m.shape,
                    expected: inputs.shape.clone(),
                }
                .into());
            }
            Some(m.data)
        }
        (None, Some(p)) => Some(sequence_mask(p, dims.batch, dims.n)?),
        (None, None) => None,
    };
    let pred = PredictConfig::default().mode(mode).threshold(threshold);
    let report = score(&cpu, &inputs, pred, args.one_partner, pair_mask.as_deref())?.finish();
    let out = MetricsOutput {
        report: &report,
        mode,
        threshold,
        one_partner: args.one_partner,
        pair_mask: pair_mask.is_some(),
        backend: cpu.name(),
    };
    if args.json {
        return output::json(&out);
    }
    let f = |v: f64| format!("{v:.4}");
    let top = |t: symseg::metrics::TopKRange| format!("{:.4} / {:.4} / {:.4}", t.l1, t.l2, t.l5);
    output::table(&[
        ("tp fp fn tn", format!("{} {} {} {}", report.tp, report.fp, report.fn_, report.tn)),
        ("precision", f(report.precision)),
        ("recall", f(report.recall)),
        ("f1", f(report.f1)),
        ("mcc", f(report.mcc)),
        ("iou", f(report.iou)),
        ("f1_mean", f(report.f1_mean)),
        ("f1_shift", f(report.f1_shift)),
        ("auprc", f(report.auprc)),
        ("top short L, L/2, L/5", top(report.top.short)),
        ("top medium", top(report.top.medium)),
        ("top long", top(report.top.long)),
        ("top all", top(report.top.all)),
        ("asymmetry", f(report.asymmetry)),
        ("mode, threshold", format!("{} {threshold}", mode.as_str())),
    ])
}
