//! The `symseg` binary end to end: write `.npy` files, run it, read the JSON and
//! the gradient back, and compare with the library and the f64 reference.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{Array1, Array2, Array3, ArrayD};
use ndarray_npy::{read_npy, write_npy};
use symseg::reference::{RefBatch, loss_grad};
use symseg::testing::Rng;
use symseg::{
    CpuBackend, ElementLoss, LossConfig, LossInput, Penalty, PenaltyKind, PenaltyOn, Reduction, Region,
    Strategy, TensorBackend,
};

fn symseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_symseg")).args(args).output().expect("the symseg binary runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// Runs a command that must fail: one `error:` line on stderr, no panic, the exit code.
fn failure(args: &[&str]) -> (i32, String) {
    let out = symseg(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: stderr is not one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout should be empty on error");
    (out.status.code().unwrap_or(-1), stderr)
}

struct Data {
    dir: tempfile::TempDir,
    x: Array3<f32>,
    y: Array3<u8>,
    lengths: Vec<usize>,
    mask: Array3<u8>,
}

impl Data {
    fn new(b: usize, n: usize, seed: u64) -> Data {
        let mut rng = Rng::new(seed);
        let x = Array3::from_shape_fn((b, n, n), |_| (rng.normal() * 3.0) as f32);
        let mut y = Array3::<u8>::zeros((b, n, n));
        let mut mask = Array3::<u8>::ones((b, n, n));
        for s in 0..b {
            for i in 0..n {
                for j in i..n {
                    let v = if rng.chance(0.05) { 255 } else { u8::from(rng.chance(0.08)) };
                    let m = u8::from(rng.chance(0.9));
                    for (p, q) in [(i, j), (j, i)] {
                        y[[s, p, q]] = v;
                        mask[[s, p, q]] = m;
                    }
                }
            }
        }
        let lengths = (0..b).map(|s| if s == 0 { n } else { 1 + rng.below(n) }).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let d = Data { dir, x, y, lengths, mask };
        write_npy(d.path("x.npy"), &d.x).unwrap();
        write_npy(d.path("y.npy"), &d.y).unwrap();
        write_npy(d.path("mask.npy"), &d.mask).unwrap();
        let l: Array1<i64> = d.lengths.iter().map(|&v| v as i64).collect();
        write_npy(d.path("lengths.npy"), &l).unwrap();
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn read_grad(path: &Path) -> ArrayD<f32> {
    read_npy(path).expect("gradient is a float32 .npy")
}

#[test]
fn every_strategy_and_penalty_from_the_command_line() {
    let d = Data::new(3, 37, 11);
    let penalties: [(&[&str], Option<Penalty>); 3] = [
        (&[], None),
        (&["--penalty", "l1", "--penalty-weight", "0.2"], Some(Penalty::new(PenaltyKind::L1).weight(0.2))),
        (
            &["--penalty", "huber", "--huber-delta", "0.5", "--penalty-on", "probs"],
            Some(Penalty::new(PenaltyKind::Huber { delta: 0.5 }).on(PenaltyOn::Probs)),
        ),
    ];
    let x64: Vec<f64> = d.x.iter().map(|&v| f64::from(v)).collect();
    for strategy in Strategy::ALL {
        for reduction in Reduction::ALL {
            for (flags, penalty) in &penalties {
                let g = d.path("g.npy");
                let mut args = vec![
                    "loss",
                    "--logits",
                    &d.p("x.npy"),
                    "--labels",
                    &d.p("y.npy"),
                    "--lengths",
                    &d.p("lengths.npy"),
                    "--mask",
                    &d.p("mask.npy"),
                    "--min-sep",
                    "2",
                    "--symmetry",
                    strategy.as_str(),
                    "--reduction",
                    reduction.as_str(),
                    "--json",
                ]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
                args.extend(["--grad-out".to_string(), g.display().to_string()]);
                args.extend(flags.iter().map(|s| s.to_string()));
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let v = json(&symseg(&argv));

                let cfg = LossConfig::default().strategy(strategy).reduction(reduction).penalty(*penalty);
                let region = Region::default().lengths(&d.lengths).min_sep(2).mask(d.mask.view());
                let input = LossInput::new(d.x.view(), d.y.view()).region(region);
                let mut lib_g = Array3::<f32>::zeros(d.x.raw_dim());
                let lib = CpuBackend::new().loss_grad(&input, &cfg, lib_g.view_mut()).unwrap();
                assert_eq!(v["loss"].as_f64().unwrap(), lib.loss, "{strategy} {reduction} {flags:?}");
                assert_eq!(v["counted"].as_u64().unwrap(), lib.counted);
                assert_eq!(v["backend"], "cpu");
                let cli_g = read_grad(&g);
                assert_eq!(cli_g.shape(), &[3, 37, 37]);
                assert_eq!(cli_g.as_slice().unwrap(), lib_g.as_slice().unwrap());

                let rb = RefBatch {
                    logits: &x64,
                    labels: d.y.as_slice().unwrap(),
                    mask: d.mask.as_slice(),
                    lengths: Some(&d.lengths),
                    batch: 3,
                    n: 37,
                    min_sep: 2,
                };
                let reference = loss_grad(&rb, &cfg);
                let rel = (lib.loss - reference.loss).abs() / reference.loss.abs().max(1e-300);
                assert!(rel <= 1e-5, "{strategy} {reduction}: {} vs reference {}", lib.loss, reference.loss);
            }
        }
    }
}

#[test]
fn a_single_map_keeps_its_shape_and_other_dtypes_give_the_same_loss() {
    let mut rng = Rng::new(5);
    let n = 21;
    let x = Array2::from_shape_fn((n, n), |_| rng.normal() * 2.0); // float64 logits
    let mut y = Array2::<u8>::zeros((n, n));
    for i in 0..n {
        for j in i + 3..n {
            if rng.chance(0.1) {
                y[[i, j]] = 1;
                y[[j, i]] = 1;
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).display().to_string();
    write_npy(p("x64.npy"), &x).unwrap();
    write_npy(p("x32.npy"), &x.mapv(|v| v as f32)).unwrap();
    write_npy(p("y_u8.npy"), &y).unwrap();
    write_npy(p("y_bool.npy"), &y.mapv(|v| v == 1)).unwrap();
    write_npy(p("y_i64.npy"), &y.mapv(i64::from)).unwrap();
    write_npy(p("y_f64.npy"), &y.mapv(f64::from)).unwrap();
    let base = json(&symseg(&[
        "loss",
        "--logits",
        &p("x32.npy"),
        "--labels",
        &p("y_u8.npy"),
        "--symmetry",
        "average",
        "--json",
        "--grad-out",
        &p("g.npy"),
    ]));
    assert_eq!(read_grad(Path::new(&p("g.npy"))).shape(), &[n, n]);
    for (xs, ys) in [
        ("x64.npy", "y_u8.npy"),
        ("x32.npy", "y_bool.npy"),
        ("x32.npy", "y_i64.npy"),
        ("x32.npy", "y_f64.npy"),
    ] {
        let v = json(&symseg(&[
            "loss",
            "--logits",
            &p(xs),
            "--labels",
            &p(ys),
            "--symmetry",
            "average",
            "--json",
        ]));
        assert_eq!(v["loss"], base["loss"], "{xs} {ys}");
    }
    // The human table names the loss too.
    let out = symseg(&[
        "loss",
        "--logits",
        &p("x32.npy"),
        "--labels",
        &p("y_u8.npy"),
        "--loss",
        "bce",
        "--pos-weight",
        "3",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("loss ")), "{text}");
    let cfg = LossConfig::default().loss(ElementLoss::Bce { pos_weight: 3.0 });
    let x32 = x.mapv(|v| v as f32).insert_axis(ndarray::Axis(0));
    let y3 = y.clone().insert_axis(ndarray::Axis(0));
    let lib = CpuBackend::new().loss(&LossInput::new(x32.view(), y3.view()), &cfg).unwrap();
    let shown: f64 = text.lines().find(|l| l.starts_with("loss ")).unwrap()[4..].trim().parse().unwrap();
    assert!((shown - lib.loss).abs() <= 1e-8 * lib.loss);
}

#[test]
fn synth_writes_files_that_loss_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = symseg(&[
        "synth",
        "--out",
        &dir.path().display().to_string(),
        "--n",
        "30",
        "--batch",
        "3",
        "--seed",
        "4",
    ]);
    assert!(out.status.success());
    let p = |s: &str| dir.path().join(s).display().to_string();
    let y: Array3<u8> = read_npy(p("labels.npy")).unwrap();
    assert_eq!(y, y.clone().permuted_axes([0, 2, 1]), "synthetic labels are symmetric");
    assert!(y.iter().any(|&v| v == 1));
    for row in y.outer_iter() {
        for r in row.outer_iter() {
            assert!(r.iter().filter(|&&v| v == 1).count() <= 1, "one partner per base");
        }
    }
    let v = json(&symseg(&[
        "loss",
        "--logits",
        &p("logits.npy"),
        "--labels",
        &p("labels.npy"),
        "--lengths",
        &p("lengths.npy"),
        "--mask",
        &p("mask.npy"),
        "--json",
    ]));
    assert!(v["loss"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_gets_one_line_and_the_right_exit_code() {
    let d = Data::new(2, 9, 3);
    let (x, y) = (d.p("x.npy"), d.p("y.npy"));
    // Data errors: exit 1.
    write_npy(d.path("y_bad.npy"), &d.y.mapv(|v| if v == 255 { 2u8 } else { v })).unwrap();
    let mut asym = d.y.clone();
    asym[[1, 0, 5]] = 1;
    asym[[1, 5, 0]] = 0;
    write_npy(d.path("y_asym.npy"), &asym).unwrap();
    write_npy(d.path("y_half.npy"), &d.y.mapv(|v| if v == 1 { 0.5f32 } else { f32::from(v) })).unwrap();
    write_npy(d.path("y_small.npy"), &Array3::<u8>::zeros((2, 8, 8))).unwrap();
    write_npy(d.path("x_int.npy"), &Array3::<i32>::zeros((2, 9, 9))).unwrap();
    write_npy(d.path("x_rect.npy"), &Array3::<f32>::zeros((2, 9, 8))).unwrap();
    let mut nan = d.x.clone();
    nan[[1, 4, 6]] = f32::NAN;
    write_npy(d.path("x_nan.npy"), &nan).unwrap();
    write_npy(d.path("len_bad.npy"), &Array1::from(vec![9i64, 10])).unwrap();
    write_npy(d.path("len_neg.npy"), &Array1::from(vec![-1i32, 3])).unwrap();
    write_npy(d.path("len_short.npy"), &Array1::from(vec![9u8])).unwrap();
    std::fs::write(d.path("garbage.npy"), b"not numpy").unwrap();
    let data_errors: [(&[&str], &str); 12] = [
        (&["--logits", &d.p("missing.npy"), "--labels", &y], "cannot read logits"),
        (&["--logits", &d.p("garbage.npy"), "--labels", &y], "not a valid .npy"),
        (&["--logits", &d.p("x_int.npy"), "--labels", &y], "dtype"),
        (&["--logits", &d.p("x_rect.npy"), "--labels", &y], "square"),
        (&["--logits", &x, "--labels", &d.p("y_small.npy")], "shape mismatch"),
        (&["--logits", &x, "--labels", &d.p("y_bad.npy")], "is not 0, 1 or 255"),
        (&["--logits", &x, "--labels", &d.p("y_half.npy")], "0.5"),
        (&["--logits", &x, "--labels", &d.p("y_asym.npy")], "not symmetric at sample 1"),
        (
            &["--logits", &d.p("x_nan.npy"), "--labels", &y, "--grad-out", &d.p("g.npy")],
            "non-finite logit NaN at sample 1, position (4, 6)",
        ),
        (&["--logits", &x, "--labels", &y, "--lengths", &d.p("len_bad.npy")], "length 10 of sample 1"),
        (&["--logits", &x, "--labels", &y, "--lengths", &d.p("len_neg.npy")], "length -1 of sample 0"),
        (&["--logits", &x, "--labels", &y, "--lengths", &d.p("len_short.npy")], "lengths has 1 entries"),
    ];
    for (args, needle) in data_errors {
        let argv: Vec<&str> = ["loss"].into_iter().chain(args.iter().copied()).collect();
        let (code, msg) = failure(&argv);
        assert_eq!(code, 1, "{argv:?}: {msg}");
        assert!(msg.contains(needle), "{argv:?}: '{msg}' lacks '{needle}'");
    }
    // Without the `cuda` feature, or without a driver and GPU: a one-line reason.
    let (code, msg) = failure(&["loss", "--logits", &x, "--labels", &y, "--backend", "cuda"]);
    assert_eq!(code, 1);
    assert!(msg.contains("cuda"), "{msg}");
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");

    // Usage errors: exit 2.
    // A negative number is read as the flag's value and named, not taken for a flag.
    let usage: [(&[&str], &str); 9] = [
        (&["loss", "--labels", &y], "--logits"),
        (&["loss", "--logits", &x, "--labels", &y, "--symmetry", "diagonal"], "diagonal"),
        (
            &["loss", "--logits", &x, "--labels", &y, "--alpha", "1.5"],
            "'--alpha <A|none>': 1.5 is outside [0, 1]",
        ),
        (&["loss", "--logits", &x, "--labels", &y, "--alpha", "-0.5"], "'--alpha <A|none>': -0.5 is outside"),
        (
            &["loss", "--logits", &x, "--labels", &y, "--gamma", "-1"],
            "'--gamma <G>': -1 must be finite and >= 0",
        ),
        (
            &["loss", "--logits", &x, "--labels", &y, "--pos-weight", "0", "--loss", "bce"],
            "0 must be finite and > 0",
        ),
        (
            &["loss", "--logits", &x, "--labels", &y, "--pos-weight", "-2", "--loss", "bce"],
            "-2 must be finite and > 0",
        ),
        (
            &["loss", "--logits", &x, "--labels", &y, "--symmetry", "average", "--allow-asymmetric-labels"],
            "average",
        ),
        (&["loss", "--logits", &x, "--labels", &y, "--min-sep", "-3"], "'--min-sep <K>'"),
    ];
    for (argv, needle) in usage {
        let (code, msg) = failure(argv);
        assert_eq!(code, 2, "{argv:?}: {msg}");
        assert!(msg.contains(needle), "{argv:?}: '{msg}' lacks '{needle}'");
    }
}

#[test]
fn npz_archives_are_read_by_role_or_by_name() {
    let d = Data::new(3, 23, 41);
    let l: Array1<i64> = d.lengths.iter().map(|&v| v as i64).collect();
    type Npz = ndarray_npy::NpzWriter<std::fs::File>;
    let npz = |name: &str, compressed: bool, add: &dyn Fn(&mut Npz)| {
        let file = std::fs::File::create(d.path(name)).unwrap();
        let mut w = if compressed { Npz::new_compressed(file) } else { Npz::new(file) };
        add(&mut w);
        w.finish().unwrap();
    };
    // As np.savez(f, logits=x, labels=y, mask=m, lengths=l), np.savez_compressed(f, x=x, y=y),
    // np.savez(f, x) and np.savez(f, a=x, b=y).
    npz("all.npz", false, &|w| {
        w.add_array("logits", &d.x).unwrap();
        w.add_array("labels", &d.y).unwrap();
        w.add_array("mask", &d.mask).unwrap();
        w.add_array("lengths", &l).unwrap();
    });
    npz("xy.npz", true, &|w| {
        w.add_array("x", &d.x).unwrap();
        w.add_array("y", &d.y).unwrap();
    });
    npz("one.npz", false, &|w| w.add_array("arr_0", &d.x).unwrap());
    npz("ab.npz", false, &|w| {
        w.add_array("a", &d.x).unwrap();
        w.add_array("b", &d.y).unwrap();
    });

    let (x, y, m, len) = (d.p("x.npy"), d.p("y.npy"), d.p("mask.npy"), d.p("lengths.npy"));
    let want =
        json(&symseg(&["loss", "--logits", &x, "--labels", &y, "--mask", &m, "--lengths", &len, "--json"]));
    let all = d.p("all.npz");
    let got = json(&symseg(&[
        "loss",
        "--logits",
        &all,
        "--labels",
        &all,
        "--mask",
        &all,
        "--lengths",
        &all,
        "--json",
    ]));
    assert_eq!(got["loss"], want["loss"]);
    assert_eq!(got["counted"], want["counted"]);
    let plain = json(&symseg(&["loss", "--logits", &x, "--labels", &y, "--json"]));
    for (logits, labels) in [
        (d.p("xy.npz"), d.p("xy.npz")),
        (d.p("one.npz"), y.clone()),
        (format!("{}:a", d.p("ab.npz")), format!("{}:b", d.p("ab.npz"))),
        (format!("{all}:logits"), format!("{all}:labels")),
    ] {
        let got = json(&symseg(&["loss", "--logits", &logits, "--labels", &labels, "--json"]));
        assert_eq!(got["loss"], plain["loss"], "{logits} {labels}");
    }
    let v = json(&symseg(&["metrics", "--logits", &all, "--labels", &all, "--json"]));
    assert_eq!(v["tp"], json(&symseg(&["metrics", "--logits", &x, "--labels", &y, "--json"]))["tp"]);

    for (args, needle) in [
        (vec!["--logits", &d.p("ab.npz"), "--labels", &y], "holds 2 arrays (a, b); name one as"),
        (
            vec!["--logits", &format!("{}:c", d.p("ab.npz")), "--labels", &y],
            "has no array 'c' (it holds: a, b)",
        ),
        (vec!["--logits", &format!("{x}:logits"), "--labels", &y], "is not an .npz archive"),
        (vec!["--logits", &format!("{all}:labels"), "--labels", &y], "dtype '|u1' is not accepted"),
    ] {
        let argv: Vec<&str> = ["loss"].into_iter().chain(args.iter().map(|s| s.as_ref())).collect();
        let (code, msg) = failure(&argv);
        assert_eq!(code, 1, "{argv:?}: {msg}");
        assert!(msg.contains(needle), "{argv:?}: '{msg}' lacks '{needle}'");
    }
}

/// A sweep script may pass every flag to every run: flags the chosen loss or
/// penalty does not use are named on stderr and change nothing.
#[test]
fn inapplicable_flags_warn_and_change_nothing() {
    let d = Data::new(2, 19, 5);
    let (x, y) = (d.p("x.npy"), d.p("y.npy"));
    let cases: [(&[&str], &[&str], &str); 4] = [
        (&["--loss", "bce", "--pos-weight", "2"], &["--alpha", "0.5", "--gamma", "3"], "--alpha and --gamma"),
        (&["--gamma", "1.5"], &["--pos-weight", "4"], "--pos-weight"),
        (&["--penalty", "none"], &["--penalty-weight", "0.3", "--penalty-on", "probs"], "--penalty-weight"),
        (&["--penalty", "l2", "--penalty-weight", "0.7"], &["--huber-delta", "0.25"], "--huber-delta"),
    ];
    for (base, extra, needle) in cases {
        let plain: Vec<&str> = ["loss", "--json", "--logits", &x, "--labels", &y]
            .iter()
            .copied()
            .chain(base.iter().copied())
            .collect();
        let with: Vec<&str> = plain.iter().copied().chain(extra.iter().copied()).collect();
        let (a, b) = (symseg(&plain), symseg(&with));
        assert!(String::from_utf8_lossy(&a.stderr).is_empty(), "{plain:?}");
        let warned = String::from_utf8_lossy(&b.stderr).to_string();
        assert!(
            warned.starts_with("warning: ") && warned.contains(needle) && warned.contains("ignored"),
            "{with:?}: {warned}"
        );
        let (va, vb) = (json(&a), json(&b));
        assert!(va["loss"].as_f64().unwrap() > 0.0);
        assert_eq!(va["loss"], vb["loss"], "{with:?}");
    }
}

#[test]
fn help_lists_every_spec_flag() {
    let out = symseg(&["loss", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--logits",
        "--labels",
        "--lengths",
        "--mask",
        "--min-sep",
        "--loss",
        "--alpha",
        "--gamma",
        "--pos-weight",
        "--symmetry",
        "--penalty",
        "--penalty-weight",
        "--penalty-on",
        "--huber-delta",
        "--reduction",
        "--grad-out",
        "--backend",
        "--json",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn shipped_example_data_is_what_synth_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = symseg(&[
        "synth",
        "--out",
        &dir.path().display().to_string(),
        "--n",
        "48",
        "--batch",
        "2",
        "--seed",
        "1",
    ]);
    assert!(out.status.success());
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data");
    for name in ["logits.npy", "labels.npy", "lengths.npy", "mask.npy"] {
        let a = std::fs::read(dir.path().join(name)).unwrap();
        let b = std::fs::read(shipped.join(name)).unwrap();
        assert!(a == b, "examples/data/{name} differs from `symseg synth --n 48 --batch 2 --seed 1`");
    }
}

#[test]
fn metrics_prints_spec_fields_that_match_the_library() {
    let d = Data::new(3, 33, 21);
    let v = json(&symseg(&[
        "metrics",
        "--logits",
        &d.p("x.npy"),
        "--labels",
        &d.p("y.npy"),
        "--lengths",
        &d.p("lengths.npy"),
        "--mask",
        &d.p("mask.npy"),
        "--min-sep",
        "2",
        "--mode",
        "upper",
        "--threshold",
        "0.3",
        "--json",
    ]));
    for key in [
        "tp",
        "fp",
        "fn",
        "tn",
        "precision",
        "recall",
        "f1",
        "mcc",
        "iou",
        "f1_mean",
        "f1_shift",
        "auprc",
        "asymmetry",
    ] {
        assert!(v[key].is_number(), "missing {key}: {v}");
    }
    for range in ["short", "medium", "long", "all"] {
        for k in ["L", "L/2", "L/5"] {
            assert!(v["top"][range][k].is_number(), "missing top.{range}.{k}");
        }
    }
    let mut acc = symseg::metrics::MetricsAccumulator::new(
        symseg::metrics::PredictConfig::default().mode(symseg::SymMode::Upper).threshold(0.3),
        false,
    );
    let batch = symseg::metrics::HostBatch {
        dims: symseg::Dims { batch: 3, n: 33 },
        logits: d.x.as_slice().unwrap(),
        labels: d.y.as_slice().unwrap(),
        mask: d.mask.as_slice(),
        pair_mask: None,
        lengths: Some(&d.lengths),
        min_sep: 2,
    };
    acc.add(&batch, None).unwrap();
    let r = acc.finish();
    assert_eq!(v["tp"].as_u64().unwrap(), r.tp);
    assert_eq!(v["fn"].as_u64().unwrap(), r.fn_);
    assert_eq!(v["f1"].as_f64().unwrap(), r.f1);
    assert_eq!(v["auprc"].as_f64().unwrap(), r.auprc);
    // The command's backend evaluates the scores with its own vectorised f64
    // `exp` (within 5e-16 of `std`'s), the host accumulator with `std`'s.
    let asym = v["asymmetry"].as_f64().unwrap();
    assert!((asym - r.asymmetry).abs() <= 1e-12 * r.asymmetry, "{asym} vs {}", r.asymmetry);
    assert_eq!(v["top"]["all"]["L/5"].as_f64().unwrap(), r.top.all.l5);
}

#[test]
fn metrics_decoding_and_validation_choices() {
    let d = Data::new(2, 20, 8);
    let (x, y) = (d.p("x.npy"), d.p("y.npy"));
    // One-partner: no index is predicted in two pairs, so tp + fp <= 2 * (n / 2) per sample.
    let v = json(&symseg(&[
        "metrics",
        "--logits",
        &x,
        "--labels",
        &y,
        "--one-partner",
        "--min-sep",
        "1",
        "--json",
    ]));
    assert!(v["tp"].as_u64().unwrap() + v["fp"].as_u64().unwrap() <= 2 * 20);
    assert_eq!(v["one_partner"], true);
    // Sequences: a canonical-pair mask from FASTA restricts predictions.
    let seqs = ">a\nGGGGGCCCCCAAAAAUUUUU\n((((....))))........\n>b\nACGUACGUACGUACGUACGU\n";
    std::fs::write(d.path("s.fa"), seqs).unwrap();
    let masked =
        json(&symseg(&["metrics", "--logits", &x, "--labels", &y, "--sequences", &d.p("s.fa"), "--json"]));
    let plain = json(&symseg(&["metrics", "--logits", &x, "--labels", &y, "--json"]));
    assert!(masked["fp"].as_u64().unwrap() < plain["fp"].as_u64().unwrap());
    assert_eq!(masked["pair_mask"], true);
    // The same sequences wrapped, under a comment, with RNAfold's energy: the same mask.
    let wrapped = "# RNAfold output\n>a\nGGGGGCCCCC\nAAAAAUUUUU\n((((....))))........ (-3.10)\n\
                   >b\nACGUACGUAC\nGUACGUACGU\n";
    std::fs::write(d.path("w.fa"), wrapped).unwrap();
    let again =
        json(&symseg(&["metrics", "--logits", &x, "--labels", &y, "--sequences", &d.p("w.fa"), "--json"]));
    assert_eq!((&again["tp"], &again["fp"], &again["f1"]), (&masked["tp"], &masked["fp"], &masked["f1"]));
    // Bare sequences, one per line.
    std::fs::write(d.path("bare.txt"), "GGGGGCCCCCAAAAAUUUUU\nACGUACGUACGUACGUACGU\n").unwrap();
    let bare = json(&symseg(&[
        "metrics",
        "--logits",
        &x,
        "--labels",
        &y,
        "--sequences",
        &d.p("bare.txt"),
        "--json",
    ]));
    assert_eq!((&bare["tp"], &bare["fp"]), (&masked["tp"], &masked["fp"]));
    // best-half and the best threshold are chosen on validation data and reported.
    let v = json(&symseg(&[
        "metrics",
        "--logits",
        &x,
        "--labels",
        &y,
        "--mode",
        "best-half",
        "--threshold",
        "best",
        "--val-logits",
        &x,
        "--val-labels",
        &y,
        "--json",
    ]));
    assert!(v["mode"] == "upper" || v["mode"] == "lower", "{v}");
    let t = v["threshold"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&t));
    // Usage and data errors.
    let (code, _) = failure(&["metrics", "--logits", &x, "--labels", &y, "--mode", "best-half"]);
    assert_eq!(code, 2);
    let (code, _) = failure(&["metrics", "--logits", &x, "--labels", &y, "--threshold", "2"]);
    assert_eq!(code, 2);
    std::fs::write(d.path("one.fa"), ">a\nACGU\n").unwrap();
    let (code, msg) = failure(&["metrics", "--logits", &x, "--labels", &y, "--sequences", &d.p("one.fa")]);
    assert_eq!(code, 1);
    assert!(msg.contains("1 sequences for a batch of 2"), "{msg}");
    let mut asym = d.y.clone();
    asym[[0, 1, 2]] = 1;
    asym[[0, 2, 1]] = 0;
    write_npy(d.path("ya.npy"), &asym).unwrap();
    let (code, msg) = failure(&["metrics", "--logits", &x, "--labels", &d.p("ya.npy")]);
    assert_eq!(code, 1);
    assert!(msg.contains("not symmetric"), "{msg}");
}

#[test]
fn train_predict_eval_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).display().to_string();
    std::fs::write(
        p("tr.dbn"),
        ">a\nGGGGAAACCCCAAAGGGAAAUCCC\n((((...))))...(((....)))\n>b\nGCGCUUUUGCGCAAAAAAGGAAACC\n((((....))))......((...))\n",
    )
    .unwrap();
    std::fs::write(p("va.dbn"), ">c\nGGGCGAAAGCCCAAUUUU\n((((....))))......\n").unwrap();
    let out = symseg(&[
        "train",
        "--data",
        &p("tr.dbn"),
        "--val",
        &p("va.dbn"),
        "--epochs",
        "1",
        "--width",
        "4",
        "--out",
        &p("run"),
        "--strategy",
        "average",
        "--penalty",
        "l1",
        "--penalty-weight",
        "0.1",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["train_samples"], 2);
    for f in ["model.ckpt", "log.jsonl", "report.md", "learning_curves.png", "pr_curve.png", "maps.png"] {
        assert!(dir.path().join("run").join(f).exists(), "{f} missing");
    }
    let log = std::fs::read_to_string(dir.path().join("run/log.jsonl")).unwrap();
    let epoch: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(epoch["train_loss"].as_f64().unwrap().is_finite());
    let report = std::fs::read_to_string(dir.path().join("run/report.md")).unwrap();
    assert!(report.contains("strategy `average`"), "{report}");

    let ckpt = p("run/model.ckpt");
    let out = symseg(&["predict", "--checkpoint", &ckpt, "--data", &p("va.dbn"), "--out", &p("pred.dbn")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pred = std::fs::read_to_string(p("pred.dbn")).unwrap();
    let lines: Vec<&str> = pred.lines().collect();
    assert_eq!(lines[0], ">c");
    assert_eq!(lines[1].len(), lines[2].len());
    assert!(lines[2].chars().all(|c| ".()[]{}<>".contains(c)));

    // Plain FASTA (sequences without structures) is accepted for prediction.
    std::fs::write(p("seqs.fa"), ">s1\nGGGAAACCCAAGGAAACC\n>s2\nACGUACGU\n").unwrap();
    let out = symseg(&["predict", "--checkpoint", &ckpt, "--data", &p("seqs.fa"), "--out", &p("seqs.dbn")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pred = std::fs::read_to_string(p("seqs.dbn")).unwrap();
    assert_eq!(pred.lines().count(), 6);
    assert_eq!(pred.lines().nth(5).unwrap().len(), 8);

    let v = json(&symseg(&["eval", "--checkpoint", &ckpt, "--data", &p("va.dbn"), "--json"]));
    for key in ["f1", "mcc", "auprc", "f1_shift", "asymmetry"] {
        assert!(v[key].is_number(), "{key}");
    }

    // Errors: a malformed record names file and line; a bad checkpoint is a data error.
    std::fs::write(p("bad.dbn"), ">x\nGGGAAACCC\n(((...))\n").unwrap();
    let (code, msg) = failure(&["train", "--data", &p("bad.dbn"), "--epochs", "1"]);
    assert_eq!(code, 1);
    assert!(msg.contains("bad.dbn:3:"), "{msg}");
    std::fs::write(p("junk.ckpt"), "{}").unwrap();
    let (code, msg) = failure(&["eval", "--checkpoint", &p("junk.ckpt"), "--data", &p("va.dbn")]);
    assert_eq!(code, 1);
    assert!(msg.contains("checkpoint"), "{msg}");
    let (code, _) = failure(&["train", "--data", &p("tr.dbn"), "--epochs", "0"]);
    assert_eq!(code, 2);

    // --max-len leaves out the 25-nt record, says so, and refuses to leave nothing.
    let args =
        ["train", "--data", &p("tr.dbn"), "--epochs", "1", "--width", "4", "--out", &p("short"), "--json"];
    let out = symseg(&[&args[..], &["--max-len", "24"]].concat());
    assert_eq!(json(&out)["train_samples"], 1);
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("left out 1 sample(s) longer than --max-len 24 (the longest 25)"), "{note}");
    let (code, msg) = failure(&[&args[..], &["--max-len", "10"]].concat());
    assert_eq!(code, 1);
    assert!(msg.contains("no sample is at most 10 long"), "{msg}");
}

#[test]
fn compare_smoke_writes_the_table_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmp");
    let v = json(&symseg(&[
        "compare",
        "--data",
        "synthetic:6:1",
        "--val",
        "synthetic:4:2",
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--width",
        "4",
        "--out",
        &out.display().to_string(),
        "--json",
    ]));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6 * 4, "six strategies x four post-processings");
    let strategies: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r["strategy"].as_str().unwrap()).collect();
    for s in ["plain", "dual", "average", "upper", "plain + l1", "average + l1"] {
        assert!(strategies.contains(s), "{s} missing");
    }
    assert!(rows.iter().all(|r| r["f1"].as_array().unwrap().len() == 2), "one F1 per seed");
    for f in ["report.md", "compare.png", "compare.json"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| strategy | post-processing | F1 |"));
    assert!(report.contains("seeds' spread") || report.contains("beyond the seeds' spread"), "{report}");
    let (code, _) = failure(&["compare", "--data", "synthetic:4", "--epochs", "1"]);
    assert_eq!(code, 2, "compare with --data needs --val");
}

/// With `--threshold best`, `best-half` compares each half at its own best
/// threshold: here the lower half ranks every pair perfectly but below 0.5
/// (F1 0 at 0.5, 1 at its best threshold), while the upper half is right at
/// 0.5 only in part (F1 between 0 and 1 at any threshold).
#[test]
fn best_half_judges_each_half_at_its_best_threshold() {
    let n = 14;
    let y = Array2::from_shape_fn((n, n), |(i, j)| u8::from(i != j && (i + j) % 3 == 0));
    let x = Array2::from_shape_fn((n, n), |(i, j)| {
        let positive = y[[i, j]] == 1;
        if i > j {
            if positive { -1.0f32 } else { -3.0 }
        } else if positive || (i + j) % 2 == 0 {
            1.0
        } else {
            -3.0
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (xp, yp) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    write_npy(&xp, &x).unwrap();
    write_npy(&yp, &y).unwrap();
    let (xs, ys) = (xp.display().to_string(), yp.display().to_string());
    let base = ["metrics", "--logits", &xs, "--labels", &ys, "--val-logits", &xs, "--val-labels", &ys];
    let run = |extra: &[&str]| json(&symseg(&[&base[..], extra, &["--json", "--min-sep", "1"]].concat()));
    let at_half = run(&["--mode", "best-half"]);
    assert_eq!(at_half["mode"], "upper", "{at_half}");
    let f1_upper = at_half["f1"].as_f64().unwrap();
    assert!(f1_upper > 0.0 && f1_upper < 1.0, "{at_half}");
    let tuned = run(&["--mode", "best-half", "--threshold", "best"]);
    assert_eq!(tuned["mode"], "lower", "{tuned}");
    assert_eq!(tuned["f1"], 1.0, "{tuned}");
    let t = tuned["threshold"].as_f64().unwrap();
    assert!(t > 1.0 / (1.0 + 3f64.exp()) && t <= 1.0 / (1.0 + 1f64.exp()), "{t}");
}
