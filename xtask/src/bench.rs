//! `cargo xtask bench`: throughput of every strategy (with and without a
//! penalty, with and without the gradient) beside the copy bandwidth this
//! command measures first on the same threads.

use std::time::{Duration, Instant};

use ndarray::Array3;
use rayon::prelude::*;
use serde::Serialize;
use symseg::metrics::PredictConfig;
use symseg::testing::{Case, CaseSpec, Rng};
use symseg::{
    CpuBackend, LossConfig, LossInput, Penalty, PenaltyKind, PenaltyOn, Strategy, SymMode, TensorBackend,
};

/// Bytes moved per element by a loss + gradient call: f32 logits read, u8 label
/// read, f32 gradient written.
const BYTES_PER_ELEMENT: f64 = 9.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON array of records instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds spent measuring each case (after warm-up).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Only shapes with this N (e.g. 2048).
    #[arg(long)]
    n: Option<usize>,
    /// Force a SIMD level (scalar, avx2, avx512) [default: the best this CPU has].
    #[arg(long)]
    simd: Option<String>,
    /// Only this strategy (for `stats`: this prediction mode).
    #[arg(long)]
    strategy: Option<String>,
    /// Only this penalty (none, l2; or l2-probs, the l2 penalty on
    /// probabilities, measured only when named here).
    #[arg(long)]
    penalty: Option<String>,
    /// Measure this shape (`BxN`, e.g. `1x256`) instead of the standard three; repeatable.
    #[arg(long)]
    shape: Vec<String>,
    /// Only this op (loss_grad, loss, stats).
    #[arg(long)]
    op: Option<String>,
}

#[derive(Debug, Serialize)]
struct Record {
    op: &'static str,
    strategy: &'static str,
    penalty: &'static str,
    shape: [usize; 3],
    ms: f64,
    gelem_s: f64,
    gbs: f64,
    copy_gbs: f64,
}

impl Record {
    /// The record of one case over `[b, n, n]` that took `secs` and moves
    /// `bytes` per element.
    fn new(
        op: &'static str,
        strategy: &'static str,
        penalty: &'static str,
        (b, n): (usize, usize),
        secs: f64,
        bytes: f64,
        copy_gbs: f64,
    ) -> Record {
        let elems = (b * n * n) as f64;
        Record {
            op,
            strategy,
            penalty,
            shape: [b, n, n],
            ms: secs * 1e3,
            gelem_s: elems / secs / 1e9,
            gbs: elems * bytes / secs / 1e9,
            copy_gbs,
        }
    }
}

/// Median seconds of `f` over repeated runs for about `budget`, after one warm-up run.
fn median_secs(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 5 || (start.elapsed() < budget && times.len() < 1000) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Copy bandwidth (bytes read + bytes written per second) of a parallel memcpy
/// of a buffer far larger than the caches.
fn copy_bandwidth(budget: Duration) -> f64 {
    let len = 64 << 20; // 256 MiB of f32
    let src = vec![1.0f32; len];
    let mut dst = vec![0.0f32; len];
    let chunk = 1 << 16;
    let secs = median_secs(budget, || {
        dst.par_chunks_mut(chunk).zip(src.par_chunks(chunk)).for_each(|(d, s)| d.copy_from_slice(s));
    });
    std::hint::black_box(&dst);
    2.0 * (len * 4) as f64 / secs
}

fn print_record(rec: &Record, copy_gbs: f64) {
    let [b, n, _] = rec.shape;
    println!(
        "{:<10} {:<8} {:<8} {:<14} {:>9.3} {:>9.3} {:>8.2} {:>6.1}%",
        rec.op,
        rec.strategy,
        rec.penalty,
        format!("{b}x{n}x{n}"),
        rec.ms,
        rec.gelem_s,
        rec.gbs,
        100.0 * rec.gbs / copy_gbs
    );
}

pub fn run(args: &Args) -> bool {
    let budget = Duration::from_secs_f64(args.seconds);
    let threads = rayon::current_num_threads();
    let mut backend = CpuBackend::new();
    if let Some(name) = &args.simd {
        let level = symseg::SimdLevel::available().into_iter().find(|l| l.as_str() == name);
        match level.map(|l| backend.clone().with_simd(l)) {
            Some(Ok(b)) => backend = b,
            _ => {
                eprintln!("SIMD level '{name}' is not available on this CPU");
                return false;
            }
        }
    }
    let copy = copy_bandwidth(budget);
    let copy_gbs = copy / 1e9;
    if !args.json {
        println!(
            "CPU backend, {threads} threads, SIMD {}; copy bandwidth {copy_gbs:.1} GB/s (read + write)",
            backend.simd_level().as_str()
        );
        println!(
            "{:<10} {:<8} {:<8} {:<14} {:>9} {:>9} {:>8} {:>7}",
            "op", "strategy", "penalty", "shape", "ms", "Gelem/s", "GB/s", "of copy"
        );
    }
    let mut shapes = vec![(8usize, 512usize), (1, 2048), (32, 256)];
    if !args.shape.is_empty() {
        shapes.clear();
        for spec in &args.shape {
            let parsed = spec.split_once('x').and_then(|(b, n)| Some((b.parse().ok()?, n.parse().ok()?)));
            match parsed {
                Some((b, n)) if b > 0 && n > 0 => shapes.push((b, n)),
                _ => {
                    eprintln!("--shape takes BxN with B, N >= 1 (e.g. 1x256), not '{spec}'");
                    return false;
                }
            }
        }
    }
    let mut records = Vec::new();
    let mut emit = |rec: Record| {
        if !args.json {
            print_record(&rec, copy_gbs);
        }
        records.push(rec);
    };
    for (b, n) in shapes.into_iter().filter(|&(_, n)| args.n.is_none_or(|m| m == n)) {
        let case = Case::random(&mut Rng::new(7), &CaseSpec::new(b, n));
        let x = Array3::from_shape_vec((b, n, n), case.logits).expect("case dims");
        let y = Array3::from_shape_vec((b, n, n), case.labels).expect("case dims");
        let mut g = Array3::<f32>::zeros((b, n, n));
        let input = LossInput::new(x.view(), y.view());
        for op in ["loss_grad", "loss"].into_iter().filter(|o| args.op.as_deref().is_none_or(|w| w == *o)) {
            for strategy in
                Strategy::ALL.into_iter().filter(|s| args.strategy.as_deref().is_none_or(|w| w == s.as_str()))
            {
                let l2 = Penalty::new(PenaltyKind::L2).weight(0.1);
                // (name, penalty, measured without `--penalty`)
                let penalties = [
                    ("none", None, true),
                    ("l2", Some(l2), true),
                    ("l2-probs", Some(l2.on(PenaltyOn::Probs)), false),
                ];
                for (pname, penalty, _) in penalties
                    .into_iter()
                    .filter(|&(p, _, by_default)| args.penalty.as_deref().map_or(by_default, |w| w == p))
                {
                    let cfg = LossConfig::default().strategy(strategy).penalty(penalty);
                    let secs = median_secs(budget, || {
                        let r = if op == "loss" {
                            backend.loss(&input, &cfg)
                        } else {
                            backend.loss_grad(&input, &cfg, g.view_mut())
                        };
                        std::hint::black_box(r.expect("bench input is valid"));
                    });
                    let bytes = if op == "loss" { 5.0 } else { BYTES_PER_ELEMENT };
                    emit(Record::new(op, strategy.as_str(), pname, (b, n), secs, bytes, copy_gbs));
                }
            }
        }
        if args.op.as_deref().is_none_or(|o| o == "stats") {
            for mode in
                SymMode::ALL.into_iter().filter(|m| args.strategy.as_deref().is_none_or(|w| w == m.as_str()))
            {
                let pred = PredictConfig::default().mode(mode);
                let secs = median_secs(budget, || {
                    std::hint::black_box(backend.sample_stats(&input, &pred).expect("bench input is valid"));
                });
                emit(Record::new("stats", mode.as_str(), "none", (b, n), secs, 5.0, copy_gbs));
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&records).expect("records serialise"));
    } else {
        println!(
            "GB/s counts 9 bytes/element with the gradient (x read, y read, g written), 5 without \
             (and for `stats`, the metric counts of `symseg metrics` by prediction mode)."
        );
    }
    true
}
