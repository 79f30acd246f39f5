//! `symseg train`: one model, one strategy; checkpoint, per-epoch log and report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use symseg_train::checkpoint::Checkpoint;
use symseg_train::data::Dataset;
use symseg_train::model::CpuOps;
use symseg_train::train::{Decode, Event, TrainConfig, evaluate, pr_curve, predict_all, train};

use crate::args::TrainArgs;
use crate::error::{CliError, CliResult};
use crate::output;

/// Loads training and validation data as `train` documents them, without
/// the samples longer than `max_len`.
pub fn load_data(
    data: Option<&str>,
    val: Option<&str>,
    skip_bad: bool,
    max_len: Option<usize>,
) -> CliResult<(Dataset, Option<Dataset>)> {
    let mut train = match data {
        Some(spec) => Dataset::load(spec, skip_bad)?,
        None => Dataset::embedded(false)?,
    };
    let mut val = match (data, val) {
        (_, Some(spec)) => Some(Dataset::load(spec, skip_bad)?),
        (None, None) => Some(Dataset::embedded(true)?),
        (Some(_), None) => None,
    };
    if let Some(max) = max_len {
        for d in std::iter::once(&mut train).chain(val.iter_mut()) {
            let (left_out, longest) = d.retain_max_len(max)?;
            if left_out > 0 {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "note: {} left out {left_out} sample(s) longer than --max-len {max} (the longest {longest})",
                    d.source
                );
            }
        }
    }
    for d in std::iter::once(&train).chain(val.iter()) {
        if !d.skipped.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "warning: {} skipped {} malformed record(s):", d.source, d.skipped.len());
            for m in d.skipped.iter().take(5) {
                let _ = writeln!(err, "  {m}");
            }
        }
    }
    Ok((train, val))
}

/// A fresh folder under `runs/`.
fn new_run_dir() -> PathBuf {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut k = 0;
    loop {
        let p = PathBuf::from(format!(
            "runs/run-{stamp}{}",
            if k == 0 { String::new() } else { format!("-{k}") }
        ));
        if !p.exists() {
            return p;
        }
        k += 1;
    }
}

fn write_err(path: &Path, e: impl ToString) -> CliError {
    CliError::Write { path: path.to_path_buf(), message: e.to_string() }
}

#[derive(Debug, Serialize)]
struct Summary {
    out: String,
    checkpoint: String,
    train_samples: usize,
    val_samples: Option<usize>,
    epochs: usize,
    seconds: f64,
    samples_per_s: f64,
    decode: symseg_train::train::Decode,
    val: Option<symseg::metrics::MetricsReport>,
}

/// Runs `symseg train`.
pub fn run(args: &TrainArgs) -> CliResult<()> {
    if let Some(t) = args.threads {
        if t == 0 {
            return Err(CliError::Usage("--threads must be >= 1".into()));
        }
        // The first configuration of the global pool wins; later calls are no-ops.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t).build_global();
    }
    let loss = args.flags.config_with_alpha(None)?;
    crate::output::warnings(&args.flags.ignored());
    let cfg = TrainConfig {
        loss,
        min_sep: args.min_sep,
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        optim: symseg_train::optim::AdamWConfig { lr: args.lr, ..Default::default() },
        width: args.width,
        ..TrainConfig::default()
    };
    cfg.validate()?;
    let (train_set, val_set) =
        load_data(args.data.as_deref(), args.val.as_deref(), args.skip_bad, args.max_len)?;
    let out = args.out.clone().unwrap_or_else(new_run_dir);
    std::fs::create_dir_all(&out).map_err(|e| write_err(&out, e))?;
    let log_path = out.join("log.jsonl");
    let mut log = std::fs::File::create(&log_path).map_err(|e| write_err(&log_path, e))?;

    let n = train_set.samples.len();
    let bar = ProgressBar::new((n * cfg.epochs) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {msg} [{bar:30}] {pos}/{len} samples, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    let mut last_f1 = String::from("-");
    let mut log_error = None;
    let trained = train(&CpuOps::default(), &cfg, &train_set, val_set.as_ref(), &mut |ev| match ev {
        Event::Step { epoch, done, loss, .. } => {
            bar.set_position(((epoch - 1) * n + done) as u64);
            bar.set_message(format!("{epoch}/{} loss {loss:.4} val F1 {last_f1}", cfg.epochs));
        }
        Event::Epoch(e) => {
            if let Some(f1) = e.val_f1 {
                last_f1 = format!("{f1:.3}");
            }
            let line = serde_json::to_string(&e).unwrap_or_default();
            if let Err(err) = writeln!(log, "{line}") {
                log_error = Some(err);
            }
        }
    })?;
    bar.finish_and_clear();
    if let Some(e) = log_error {
        return Err(write_err(&log_path, e));
    }
    let seconds = started.elapsed().as_secs_f64();
    let ckpt_path = out.join("model.ckpt");
    Checkpoint::new(&trained, &cfg, train_set.kind).save(&ckpt_path)?;
    let val_logits = match &val_set {
        Some(v) => Some(predict_all(&CpuOps::default(), &trained.arch, &trained.params, v)?),
        None => None,
    };
    let val_report = match (&val_set, &val_logits) {
        (Some(v), Some(l)) => Some(evaluate(v, l, cfg.min_sep, &trained.decode)?),
        _ => None,
    };
    crate::plot::learning_curves(&out.join("learning_curves.png"), &trained.history)?;
    if let (Some(v), Some(l)) = (&val_set, &val_logits) {
        let curve = pr_curve(v, l, cfg.min_sep, trained.decode.mode)?;
        crate::plot::pr_curve(&out.join("pr_curve.png"), &curve, "validation precision-recall")?;
        crate::plot::maps(&out.join("maps.png"), &example_maps(v, l, &trained.decode))?;
    }
    let train_s: f64 = trained.history.iter().map(|h| h.seconds).sum();
    let summary = Summary {
        out: out.display().to_string(),
        checkpoint: ckpt_path.display().to_string(),
        train_samples: n,
        val_samples: val_set.as_ref().map(|v| v.samples.len()),
        epochs: cfg.epochs,
        seconds,
        samples_per_s: (n * cfg.epochs) as f64 / train_s.max(1e-9),
        decode: trained.decode,
        val: val_report.clone(),
    };
    crate::report::write_train_report(
        &out,
        &cfg,
        &trained,
        &train_set,
        val_set.as_ref(),
        val_report.as_ref(),
    )?;
    if args.json {
        return output::json(&summary);
    }
    let mut rows = vec![
        ("trained on", format!("{} ({n} samples, {} epochs, {seconds:.0} s)", train_set.source, cfg.epochs)),
        ("throughput", format!("{:.1} samples/s", summary.samples_per_s)),
        (
            "strategy",
            format!("{} (loss {:?}, penalty {:?})", cfg.loss.strategy, cfg.loss.loss, cfg.loss.penalty),
        ),
        (
            "decoding",
            format!(
                "mode {}, threshold {:.3}, one-partner {}, canonical {}",
                trained.decode.mode.as_str(),
                trained.decode.threshold,
                trained.decode.one_partner,
                trained.decode.canonical
            ),
        ),
    ];
    if let (Some(v), Some(r)) = (&val_set, &val_report) {
        rows.push(("validated on", format!("{} ({} samples)", v.source, v.samples.len())));
        rows.push(("val F1 / MCC / AUPRC", format!("{:.4} / {:.4} / {:.4}", r.f1, r.mcc, r.auprc)));
        rows.push(("val f1_mean / f1_shift", format!("{:.4} / {:.4}", r.f1_mean, r.f1_shift)));
        rows.push(("val asymmetry", format!("{:.4}", r.asymmetry)));
    }
    rows.push(("model", summary.checkpoint.clone()));
    rows.push(("report", out.join("report.md").display().to_string()));
    output::table(&rows)
}

/// Up to three validation samples with pairs: id, true map, predicted probabilities.
pub fn example_maps(
    v: &Dataset,
    logits: &[ndarray::Array2<f32>],
    decode: &Decode,
) -> Vec<(String, ndarray::Array2<u8>, ndarray::Array2<f32>)> {
    v.samples
        .iter()
        .zip(logits)
        .filter(|(s, _)| s.labels.iter().filter(|&&y| y == 1).count() >= 8)
        .take(3)
        .map(|(s, l)| {
            let n = s.len();
            let probs = ndarray::Array2::from_shape_fn((n, n), |(i, j)| {
                let (a, b) = (i.min(j), i.max(j));
                let (zab, zba) = symseg::metrics::sym_pair(decode.mode, l[[a, b]], l[[b, a]]);
                symseg::metrics::score(if i <= j { zab } else { zba }) as f32
            });
            (s.id.clone(), s.labels.clone(), probs)
        })
        .collect()
}
