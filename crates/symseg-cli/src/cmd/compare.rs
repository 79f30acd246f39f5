//! `symseg compare`: the same model, data, seeds and budget under each symmetry
//! strategy, each evaluated with each post-processing; a table with mean ± sd
//! over seeds, and a note where differences are within the seeds' spread.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use symseg::metrics::MetricsReport;
use symseg::{LossConfig, Penalty, PenaltyKind, Strategy, SymMode, postprocess};
use symseg_train::data::DataKind;
use symseg_train::model::CpuOps;
use symseg_train::train::{Decode, TrainConfig, evaluate, predict_all, train};

use crate::args::CompareArgs;
use crate::error::{CliError, CliResult};
use crate::output;

/// The strategies compared: `(name, strategy, with l1 penalty)`.
const VARIANTS: [(&str, Strategy, bool); 6] = [
    ("plain", Strategy::Plain, false),
    ("dual", Strategy::Dual, false),
    ("average", Strategy::Average, false),
    ("upper", Strategy::Upper, false),
    ("plain + l1", Strategy::Plain, true),
    ("average + l1", Strategy::Average, true),
];

/// The post-processings every model is evaluated with (threshold 0.5 throughout).
const POSTS: [&str; 4] = ["none", "average", "best-half", "one-partner"];

/// One (variant, post-processing) row: figures per seed.
#[derive(Debug, Clone, Serialize)]
struct Row {
    strategy: String,
    post: String,
    f1: Vec<f64>,
    f1_shift: Vec<f64>,
    mcc: Vec<f64>,
    auprc: Vec<f64>,
    asymmetry: Vec<f64>,
    train_seconds: Vec<f64>,
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

fn fmt(v: &[f64]) -> String {
    let (m, s) = mean_sd(v);
    if v.len() > 1 { format!("{m:.4} ± {s:.4}") } else { format!("{m:.4}") }
}

#[derive(Debug, Serialize)]
struct CompareOutput<'a> {
    out: String,
    seeds: Vec<u64>,
    epochs: usize,
    rows: &'a [Row],
}

/// Runs `symseg compare`.
pub fn run(args: &CompareArgs) -> CliResult<()> {
    if args.seeds == 0 {
        return Err(CliError::Usage("--seeds must be >= 1".into()));
    }
    if args.data.is_some() && args.val.is_none() {
        return Err(CliError::Usage(
            "compare needs --val with --data: strategies are judged on held-out data".into(),
        ));
    }
    let element = args.element.element_loss(None)?;
    crate::output::warnings(&args.element.ignored());
    let (train_set, val_set) =
        super::train::load_data(args.data.as_deref(), args.val.as_deref(), args.skip_bad, args.max_len)?;
    let val_set = val_set.ok_or_else(|| CliError::Usage("compare needs validation data".into()))?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/compare-{}", stamp())));
    std::fs::create_dir_all(&out)
        .map_err(|e| CliError::Write { path: out.clone(), message: e.to_string() })?;

    let seeds: Vec<u64> = (0..args.seeds as u64).map(|k| args.seed + k).collect();
    let bar = ProgressBar::new((VARIANTS.len() * seeds.len() * args.epochs) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} epochs, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut rows: Vec<Row> = Vec::new();
    for (name, strategy, l1) in VARIANTS {
        let penalty = l1.then(|| Penalty::new(PenaltyKind::L1).weight(args.penalty_weight));
        let loss = LossConfig::default().loss(element).strategy(strategy).penalty(penalty);
        let mut per_post: Vec<Row> = POSTS
            .iter()
            .map(|p| Row {
                strategy: name.to_string(),
                post: p.to_string(),
                f1: vec![],
                f1_shift: vec![],
                mcc: vec![],
                auprc: vec![],
                asymmetry: vec![],
                train_seconds: vec![],
            })
            .collect();
        for &seed in &seeds {
            bar.set_message(format!("{name}, seed {seed}"));
            let cfg = TrainConfig {
                loss,
                min_sep: args.min_sep,
                epochs: args.epochs,
                batch_size: args.batch_size,
                seed,
                optim: symseg_train::optim::AdamWConfig { lr: args.lr, ..Default::default() },
                width: args.width,
                ..TrainConfig::default()
            };
            let started = Instant::now();
            let trained = train(&CpuOps::default(), &cfg, &train_set, None, &mut |ev| {
                if let symseg_train::train::Event::Epoch(_) = ev {
                    bar.inc(1);
                }
            })?;
            let seconds = started.elapsed().as_secs_f64();
            let logits = predict_all(&CpuOps::default(), &trained.arch, &trained.params, &val_set)?;
            let at = |mode: SymMode, one_partner: bool, canonical: bool| -> CliResult<MetricsReport> {
                let d = Decode { mode, threshold: 0.5, one_partner, canonical };
                Ok(evaluate(&val_set, &logits, args.min_sep, &d)?)
            };
            let upper = at(SymMode::Upper, false, false)?;
            let lower = at(SymMode::Lower, false, false)?;
            let half =
                if postprocess::best_half(upper.f1, lower.f1) == SymMode::Upper { upper } else { lower };
            let reports = [
                at(SymMode::None, false, false)?,
                at(SymMode::Average, false, false)?,
                half,
                at(SymMode::Average, true, val_set.kind == DataKind::Rna)?,
            ];
            for (row, r) in per_post.iter_mut().zip(reports) {
                row.f1.push(r.f1);
                row.f1_shift.push(r.f1_shift);
                row.mcc.push(r.mcc);
                row.auprc.push(r.auprc);
                row.asymmetry.push(r.asymmetry);
                row.train_seconds.push(seconds);
            }
        }
        rows.extend(per_post);
    }
    bar.finish_and_clear();
    write_report(
        &out,
        args,
        &seeds,
        &rows,
        &train_set.source,
        &val_set.source,
        val_set.kind == DataKind::Rna,
    )?;
    let names: Vec<String> = VARIANTS.iter().map(|v| v.0.to_string()).collect();
    let series: Vec<(String, Vec<(f64, f64)>)> = POSTS
        .iter()
        .map(|post| {
            (post.to_string(), rows.iter().filter(|r| r.post == *post).map(|r| mean_sd(&r.f1)).collect())
        })
        .collect();
    crate::plot::compare(&out.join("compare.png"), &names, &series)?;
    let json_path = out.join("compare.json");
    let record = CompareOutput {
        out: out.display().to_string(),
        seeds: seeds.clone(),
        epochs: args.epochs,
        rows: &rows,
    };
    let text = serde_json::to_string_pretty(&record).unwrap_or_default();
    std::fs::write(&json_path, text)
        .map_err(|e| CliError::Write { path: json_path.clone(), message: e.to_string() })?;
    if args.json {
        return output::json(&record);
    }
    let mut table: Vec<(&str, String)> = Vec::new();
    let labels: Vec<String> = rows.iter().map(|r| format!("{} / {}", r.strategy, r.post)).collect();
    for (r, label) in rows.iter().zip(&labels) {
        table.push((
            label.as_str(),
            format!("F1 {}  MCC {}  asym {}", fmt(&r.f1), fmt(&r.mcc), fmt(&r.asymmetry)),
        ));
    }
    table.push(("report", out.join("report.md").display().to_string()));
    output::table(&table)
}

fn stamp() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn write_report(
    out: &std::path::Path,
    args: &CompareArgs,
    seeds: &[u64],
    rows: &[Row],
    train: &str,
    val: &str,
    rna: bool,
) -> CliResult<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# symseg compare: which symmetry strategy wins?\n");
    let _ = writeln!(
        md,
        "Same network (width {}), data, seeds {seeds:?} and budget ({} epochs, lr {}, batch {}) for every strategy; \
         trained on {train}, evaluated on {val} with min_sep {} and threshold 0.5. Figures are mean ± sd over seeds.\n",
        args.width, args.epochs, args.lr, args.batch_size, args.min_sep
    );
    let _ = writeln!(md, "![validation F1 by strategy](compare.png)\n");
    let _ =
        writeln!(md, "| strategy | post-processing | F1 | f1_shift | MCC | AUPRC | asymmetry | training s |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            r.strategy,
            r.post,
            fmt(&r.f1),
            fmt(&r.f1_shift),
            fmt(&r.mcc),
            fmt(&r.auprc),
            fmt(&r.asymmetry),
            mean_sd(&r.train_seconds).0
        );
    }
    let _ = writeln!(md, "\n## Reading the table\n");
    let _ = writeln!(
        md,
        "- `dual` equals exactly twice `plain` on symmetric labels. Adam cancels a constant gradient factor, so \
         `dual` trains almost exactly like `plain` (only Adam's epsilon and gradient clipping see the factor); \
         differences between them are optimisation noise, not a symmetry effect."
    );
    let _ = writeln!(
        md,
        "- `none` scores the raw (possibly asymmetric) map; `average` and `best-half` symmetrise it; `one-partner` \
         averages, then keeps at most one partner per index{}.",
        if rna { " and only canonical (AU, CG, GU) pairs" } else { "" }
    );
    for post in POSTS {
        let group: Vec<&Row> = rows.iter().filter(|r| r.post == post).collect();
        let Some(best) = group.iter().max_by(|a, b| mean_sd(&a.f1).0.total_cmp(&mean_sd(&b.f1).0)) else {
            continue;
        };
        let (bm, bs) = mean_sd(&best.f1);
        if seeds.len() < 2 {
            let _ = writeln!(
                md,
                "- With `{post}`, `{}` has the highest F1 ({bm:.4}); with a single seed there is no estimate of the \
                 spread, and single-seed differences can be noise: rerun with `--seeds 3` or more.",
                best.strategy
            );
            continue;
        }
        let close: Vec<&str> = group
            .iter()
            .filter(|r| r.strategy != best.strategy)
            .filter(|r| {
                let (m, s) = mean_sd(&r.f1);
                bm - m <= bs + s
            })
            .map(|r| r.strategy.as_str())
            .collect();
        if close.is_empty() {
            let _ = writeln!(
                md,
                "- With `{post}`, `{}` wins (F1 {bm:.4} ± {bs:.4}), beyond the seeds' spread.",
                best.strategy
            );
        } else {
            let _ = writeln!(
                md,
                "- With `{post}`, `{}` has the highest mean F1 ({bm:.4} ± {bs:.4}), but {} {} within the seeds' spread: \
                 the difference can be noise.",
                best.strategy,
                close.join(", "),
                if close.len() == 1 { "is" } else { "are" }
            );
        }
    }
    let path = out.join("report.md");
    std::fs::write(&path, md).map_err(|e| CliError::Write { path, message: e.to_string() })
}
