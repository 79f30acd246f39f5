//! `report.md` of a training run.

use std::fmt::Write as _;
use std::path::Path;

use symseg::metrics::MetricsReport;
use symseg_train::data::Dataset;
use symseg_train::train::{TrainConfig, Trained};

use crate::error::{CliError, CliResult};

/// Writes `out/report.md`: configuration, per-epoch figures and validation metrics.
pub fn write_train_report(
    out: &Path,
    cfg: &TrainConfig,
    trained: &Trained,
    train: &Dataset,
    val: Option<&Dataset>,
    report: Option<&MetricsReport>,
) -> CliResult<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# symseg training run\n");
    let _ = writeln!(md, "- training data: {} ({} samples)", train.source, train.samples.len());
    if let Some(v) = val {
        let _ = writeln!(md, "- validation data: {} ({} samples)", v.source, v.samples.len());
    }
    let _ = writeln!(
        md,
        "- loss: {:?}, strategy `{}`, penalty {:?}, reduction `{}`, min_sep {}",
        cfg.loss.loss, cfg.loss.strategy, cfg.loss.penalty, cfg.loss.reduction, cfg.min_sep
    );
    let _ = writeln!(
        md,
        "- model: width {}, dilations {:?} ({} parameters); AdamW lr {}, {} epochs, batch {}, seed {}",
        cfg.width,
        cfg.dilations,
        trained.arch.num_params(),
        cfg.optim.lr,
        cfg.epochs,
        cfg.batch_size,
        cfg.seed
    );
    let d = &trained.decode;
    let _ = writeln!(
        md,
        "- decoding chosen on validation: mode `{}`, threshold {:.4}, one-partner {}, canonical pairs only {}\n",
        d.mode.as_str(),
        d.threshold,
        d.one_partner,
        d.canonical
    );
    if let Some(r) = report {
        let _ = writeln!(md, "## Validation\n");
        let _ = writeln!(md, "| F1 | MCC | AUPRC | f1_mean | f1_shift | precision | recall | asymmetry |");
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            md,
            "| {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
            r.f1, r.mcc, r.auprc, r.f1_mean, r.f1_shift, r.precision, r.recall, r.asymmetry
        );
    }
    let _ = writeln!(md, "## Plots\n");
    let _ = writeln!(md, "![learning curves](learning_curves.png)\n");
    if report.is_some() {
        let _ = writeln!(md, "![validation precision-recall curve](pr_curve.png)\n");
        let _ = writeln!(md, "![true vs predicted maps of validation samples](maps.png)\n");
    }
    let _ = writeln!(md, "## Learning curve\n");
    let _ = writeln!(md, "| epoch | train loss | val loss | val F1 (average, 0.5) | lr | samples/s |");
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
    for h in &trained.history {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.5}"));
        let _ = writeln!(
            md,
            "| {} | {:.5} | {} | {} | {:.2e} | {:.1} |",
            h.epoch,
            h.train_loss,
            opt(h.val_loss),
            opt(h.val_f1),
            h.lr,
            h.samples_per_s
        );
    }
    let path = out.join("report.md");
    std::fs::write(&path, md).map_err(|e| CliError::Write { path, message: e.to_string() })
}
