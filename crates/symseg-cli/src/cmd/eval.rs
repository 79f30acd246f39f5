//! `symseg eval`: a checkpoint's figures on a data set, with its decoding settings.

use serde::Serialize;
use symseg_train::checkpoint::Checkpoint;
use symseg_train::data::Dataset;
use symseg_train::model::CpuOps;
use symseg_train::train::{Decode, evaluate, predict_all};

use crate::args::EvalArgs;
use crate::error::{CliError, CliResult};
use crate::output;

/// Loads a checkpoint and data that fits it.
pub fn load(
    checkpoint: &std::path::Path,
    data: &str,
    skip_bad: bool,
    labelled: bool,
) -> CliResult<(Checkpoint, Dataset)> {
    let ckpt = Checkpoint::load(checkpoint)?;
    let set =
        if labelled { Dataset::load(data, skip_bad)? } else { Dataset::load_for_prediction(data, skip_bad)? };
    if !set.skipped.is_empty() {
        use std::io::Write;
        let _ =
            writeln!(std::io::stderr().lock(), "warning: skipped {} malformed record(s)", set.skipped.len());
    }
    if set.channels != ckpt.arch.channels {
        return Err(CliError::Data {
            what: "data",
            path: data.into(),
            message: format!("{} input channels, the model expects {}", set.channels, ckpt.arch.channels),
        });
    }
    Ok((ckpt, set))
}

#[derive(Debug, Serialize)]
struct EvalOutput {
    #[serde(flatten)]
    report: symseg::metrics::MetricsReport,
    decode: Decode,
    data: String,
}

/// Runs `symseg eval`.
pub fn run(args: &EvalArgs) -> CliResult<()> {
    let (ckpt, set) = load(&args.checkpoint, &args.data, args.skip_bad, true)?;
    let logits = predict_all(&CpuOps::default(), &ckpt.arch, &ckpt.params, &set)?;
    let report = evaluate(&set, &logits, ckpt.config.min_sep, &ckpt.decode)?;
    if args.json {
        return output::json(&EvalOutput { report, decode: ckpt.decode, data: set.source });
    }
    let f = |v: f64| format!("{v:.4}");
    output::table(&[
        ("data", format!("{} ({} samples)", set.source, set.samples.len())),
        ("tp fp fn tn", format!("{} {} {} {}", report.tp, report.fp, report.fn_, report.tn)),
        ("precision", f(report.precision)),
        ("recall", f(report.recall)),
        ("f1", f(report.f1)),
        ("mcc", f(report.mcc)),
        ("f1_mean", f(report.f1_mean)),
        ("f1_shift", f(report.f1_shift)),
        ("auprc", f(report.auprc)),
        ("asymmetry", f(report.asymmetry)),
        (
            "decoding",
            format!(
                "mode {}, threshold {:.3}, one-partner {}, canonical {}",
                ckpt.decode.mode.as_str(),
                ckpt.decode.threshold,
                ckpt.decode.one_partner,
                ckpt.decode.canonical
            ),
        ),
    ])
}
