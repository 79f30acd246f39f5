//! SPEC §5–6 metrics: the CPU pass and the host accumulator against an
//! independent f64 implementation written here, plus hand-computed cases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_range_loop)]

use ndarray::Array3;
use symseg_core::metrics::{HostBatch, MetricsAccumulator, MetricsReport, PredictConfig, SampleStats};
use symseg_core::testing::{Case, CaseSpec, Rng};
use symseg_core::{Dims, Error, LossInput, Region, SymMode, TensorBackend};
use symseg_cpu::{CpuBackend, SimdLevel};

/// The independent implementation: literal SPEC §5–6, naive loops, explicit sorts.
struct Independent {
    tp: u64,
    fp: u64,
    fn_: u64,
    tn: u64,
    f1_mean: f64,
    f1_shift: f64,
    auprc: f64,
    top: [[f64; 3]; 4],
    asymmetry: f64,
}

fn sig(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn f1_of(tp: u64, fp: u64, fn_: u64) -> f64 {
    if tp + fp + fn_ == 0 { 1.0 } else { 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64 }
}

fn independent(case: &Case, pred: PredictConfig) -> Independent {
    let (nb, n) = (case.dims.batch, case.dims.n);
    let x = |b: usize, i: usize, j: usize| f64::from(case.logits[(b * n + i) * n + j]);
    let z = |b: usize, i: usize, j: usize, mode: SymMode| match mode {
        SymMode::None => x(b, i, j),
        SymMode::Average => (x(b, i, j) + x(b, j, i)) / 2.0,
        SymMode::Upper => x(b, i.min(j), i.max(j)),
        SymMode::Lower => x(b, i.max(j), i.min(j)),
    };
    let x64 = case.logits_f64();
    let rb = case.ref_batch(&x64);
    let y = |b: usize, i: usize, j: usize| case.labels[(b * n + i) * n + j] == 1;
    let len = |b: usize| case.lengths.as_ref().map_or(n, |l| l[b]);
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    let mut f1s = Vec::new();
    let (mut stp, mut spred, mut sref) = (0u64, 0u64, 0u64);
    let mut scored: Vec<(f64, bool)> = Vec::new();
    let mut top_sum = [[0.0; 3]; 4];
    let mut top_cnt = [0u64; 4];
    let (mut asum, mut apairs) = (0.0, 0u64);
    let ranges = [(6, 11), (12, 23), (24, usize::MAX), (1, usize::MAX)];
    for b in 0..nb {
        let (mut t, mut f, mut g) = (0, 0, 0);
        let mut p_set = Vec::new();
        let mut r_set = Vec::new();
        for i in 0..n {
            for j in 0..n {
                if !rb.in_set(b, i, j) {
                    continue;
                }
                let p = sig(z(b, i, j, pred.mode)) >= pred.threshold;
                let a = y(b, i, j);
                match (p, a) {
                    (true, true) => t += 1,
                    (true, false) => f += 1,
                    (false, true) => g += 1,
                    (false, false) => tn += 1,
                }
                if p {
                    p_set.push((i, j));
                }
                if a {
                    r_set.push((i, j));
                }
                scored.push((sig(z(b, i, j, pred.mode)), a));
                if i < j {
                    asum += (sig(x(b, i, j)) - sig(x(b, j, i))).abs();
                    apairs += 1;
                }
            }
        }
        tp += t;
        fp += f;
        fn_ += g;
        f1s.push(f1_of(t, f, g));
        // Shift matching: exact first, then (i-1,j), (i+1,j), (i,j-1), (i,j+1) in row-major order.
        let mut used = vec![false; r_set.len()];
        let mut matched = vec![false; p_set.len()];
        for (pi, p) in p_set.iter().enumerate() {
            if let Some(ri) = r_set.iter().position(|r| r == p) {
                used[ri] = true;
                matched[pi] = true;
                stp += 1;
            }
        }
        for (pi, &(i, j)) in p_set.iter().enumerate() {
            if matched[pi] {
                continue;
            }
            let cands = [
                (i as i64 - 1, j as i64),
                (i as i64 + 1, j as i64),
                (i as i64, j as i64 - 1),
                (i as i64, j as i64 + 1),
            ];
            for (a, c) in cands {
                if let Some(ri) = r_set.iter().position(|&(ri, rj)| (ri as i64, rj as i64) == (a, c))
                    && !used[ri]
                {
                    used[ri] = true;
                    stp += 1;
                    break;
                }
            }
        }
        spred += p_set.len() as u64;
        sref += r_set.len() as u64;
        // Top-k.
        for (r, &(lo, hi)) in ranges.iter().enumerate() {
            let mut c: Vec<(f64, bool, usize, usize)> = Vec::new();
            for i in 0..n {
                for j in i + 1..n {
                    let sep = j - i;
                    if rb.in_set(b, i, j) && sep >= lo && sep <= hi && sep >= case.min_sep {
                        let rank_mode = if pred.mode == SymMode::None { SymMode::Average } else { pred.mode };
                        c.push((z(b, i, j, rank_mode), y(b, i, j), i, j));
                    }
                }
            }
            if c.is_empty() {
                continue;
            }
            c.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then((a.2, a.3).cmp(&(b.2, b.3))));
            top_cnt[r] += 1;
            for (d, div) in [1usize, 2, 5].into_iter().enumerate() {
                let k = len(b).div_ceil(div).min(c.len());
                top_sum[r][d] += c[..k].iter().filter(|e| e.1).count() as f64 / k as f64;
            }
        }
    }
    // AUPRC exactly as scikit-learn: distinct thresholds, highest first.
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
    let total_pos = scored.iter().filter(|s| s.1).count() as f64;
    let mut auprc = 0.0;
    if total_pos > 0.0 {
        let (mut ctp, mut cfp, mut prev_r) = (0.0, 0.0, 0.0);
        let mut k = 0;
        while k < scored.len() {
            let s = scored[k].0;
            while k < scored.len() && scored[k].0 == s {
                if scored[k].1 {
                    ctp += 1.0
                } else {
                    cfp += 1.0
                }
                k += 1;
            }
            let r = ctp / total_pos;
            auprc += (r - prev_r) * ctp / (ctp + cfp);
            prev_r = r;
        }
    }
    let mut top = [[0.0; 3]; 4];
    for r in 0..4 {
        for d in 0..3 {
            top[r][d] = if top_cnt[r] == 0 { 0.0 } else { top_sum[r][d] / top_cnt[r] as f64 };
        }
    }
    Independent {
        tp,
        fp,
        fn_,
        tn,
        f1_mean: f1s.iter().sum::<f64>() / nb as f64,
        f1_shift: f1_of(stp, spred - stp, sref - stp),
        auprc,
        top,
        asymmetry: if apairs == 0 { 0.0 } else { asum / apairs as f64 },
    }
}

fn arrays(case: &Case) -> (Array3<f32>, Array3<u8>, Option<Array3<u8>>) {
    let [b, n, _] = case.dims.shape();
    (
        Array3::from_shape_vec((b, n, n), case.logits.clone()).unwrap(),
        Array3::from_shape_vec((b, n, n), case.labels.clone()).unwrap(),
        case.mask.as_ref().map(|m| Array3::from_shape_vec((b, n, n), m.clone()).unwrap()),
    )
}

fn host(case: &Case) -> HostBatch<'_> {
    HostBatch {
        dims: case.dims,
        logits: &case.logits,
        labels: &case.labels,
        mask: case.mask.as_deref(),
        pair_mask: None,
        lengths: case.lengths.as_deref(),
        min_sep: case.min_sep,
    }
}

fn cpu_stats(case: &Case, pred: &PredictConfig) -> symseg_core::Result<Vec<SampleStats>> {
    let (x, y, m) = arrays(case);
    let region = Region {
        lengths: case.lengths.as_deref(),
        min_sep: case.min_sep,
        mask: m.as_ref().map(|m| m.view()),
    };
    CpuBackend::new().sample_stats(&LossInput::new(x.view(), y.view()).region(region), pred)
}

/// Metrics of `case` via the backend's counts and via the host alone; both must agree.
fn metrics(case: &Case, pred: PredictConfig) -> MetricsReport {
    let stats = cpu_stats(case, &pred).unwrap();
    let mut with_backend = MetricsAccumulator::new(pred, false);
    with_backend.add(&host(case), Some(&stats)).unwrap();
    let mut host_only = MetricsAccumulator::new(pred, false);
    host_only.add(&host(case), None).unwrap();
    let (a, b) = (with_backend.finish(), host_only.finish());
    assert_eq!((a.tp, a.fp, a.fn_, a.tn), (b.tp, b.fp, b.fn_, b.tn), "backend counts vs host counts");
    assert!((a.asymmetry - b.asymmetry).abs() <= 1e-12 * b.asymmetry.max(1e-300));
    a
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12
}

#[test]
fn random_cases_match_the_independent_implementation() {
    let seed = 0x3E7_0001;
    let mut rng = Rng::new(seed);
    for case_no in 0..150 {
        let n = [1, 2, 5, 9, 17, 30, 41, 70][rng.below(8)];
        let spec = CaseSpec {
            lengths: rng.chance(0.5),
            min_sep: rng.below(4),
            mask: rng.chance(0.3),
            ignore: if rng.chance(0.5) { 0.1 } else { 0.0 },
            positive: 0.05 + 0.2 * rng.uniform(),
            // Coarse logits make ties common, exercising AUPRC's tie grouping.
            scale: if rng.chance(0.3) { 0.0 } else { 3.0 },
            ..CaseSpec::new(1 + rng.below(3), n)
        };
        let mut case = Case::random(&mut rng, &spec);
        if spec.scale == 0.0 {
            case.logits.iter_mut().for_each(|v| *v = (rng.below(5) as f32) - 2.0);
        }
        let pred = PredictConfig::default()
            .mode(SymMode::ALL[rng.below(4)])
            .threshold([0.5, 0.3, 0.8][rng.below(3)]);
        let got = metrics(&case, pred);
        let want = independent(&case, pred);
        let what = format!("seed {seed:#x} case {case_no} n={n} {pred:?}");
        assert_eq!((got.tp, got.fp, got.fn_, got.tn), (want.tp, want.fp, want.fn_, want.tn), "{what}");
        assert!(close(got.f1_mean, want.f1_mean), "{what}: f1_mean {} vs {}", got.f1_mean, want.f1_mean);
        assert!(close(got.f1_shift, want.f1_shift), "{what}: f1_shift {} vs {}", got.f1_shift, want.f1_shift);
        assert!(close(got.auprc, want.auprc), "{what}: auprc {} vs {}", got.auprc, want.auprc);
        assert!(close(got.asymmetry, want.asymmetry), "{what}: asymmetry");
        let top = [got.top.short, got.top.medium, got.top.long, got.top.all];
        for r in 0..4 {
            let g = [top[r].l1, top[r].l2, top[r].l5];
            for d in 0..3 {
                assert!(close(g[d], want.top[r][d]), "{what}: top[{r}][{d}] {} vs {}", g[d], want.top[r][d]);
            }
        }
    }
}

fn single(n: usize, logits: impl Fn(usize, usize) -> f32, labels: impl Fn(usize, usize) -> u8) -> Case {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        for j in 0..n {
            x.push(logits(i, j));
            y.push(labels(i, j));
        }
    }
    Case { dims: Dims { batch: 1, n }, logits: x, labels: y, mask: None, lengths: None, min_sep: 0 }
}

#[test]
fn a_perfect_prediction_scores_one_everywhere() {
    // Enough positives in every range for top-L to be all hits.
    let positive = |i: usize, j: usize| matches!(i.abs_diff(j), 6 | 7 | 12 | 13 | 24 | 25);
    let case = single(60, |i, j| if positive(i, j) { 6.0 } else { -6.0 }, |i, j| u8::from(positive(i, j)));
    let r = metrics(&case, PredictConfig::default());
    for (name, v) in
        [("precision", r.precision), ("recall", r.recall), ("f1", r.f1), ("mcc", r.mcc), ("iou", r.iou)]
    {
        assert_eq!(v, 1.0, "{name}");
    }
    assert_eq!((r.f1_mean, r.f1_shift, r.auprc, r.asymmetry), (1.0, 1.0, 1.0, 0.0));
    for t in [r.top.short, r.top.medium, r.top.long, r.top.all] {
        assert_eq!((t.l1, t.l2, t.l5), (1.0, 1.0, 1.0));
    }
}

#[test]
fn empty_prediction_and_empty_reference() {
    let case = single(12, |_, _| -10.0, |_, _| 0);
    let r = metrics(&case, PredictConfig::default());
    assert_eq!((r.tp, r.fp, r.fn_, r.tn), (0, 0, 0, 144));
    assert_eq!((r.f1, r.iou, r.f1_mean, r.f1_shift), (1.0, 1.0, 1.0, 1.0));
    assert_eq!((r.precision, r.recall, r.mcc, r.auprc), (0.0, 0.0, 0.0, 0.0));
    // A reference pair the prediction misses: F1 drops to 0.
    let case = single(12, |_, _| -10.0, |i, j| u8::from(i.min(j) == 2 && i.max(j) == 9));
    let r = metrics(&case, PredictConfig::default());
    assert_eq!((r.tp, r.fn_, r.f1, r.iou, r.recall), (0, 2, 0.0, 0.0, 0.0));
}

#[test]
fn hand_computed_counts_and_ties() {
    // 4 x 4, min_sep 1: pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); positives (0,3), (1,2).
    // Symmetric logits: (0,3)=2, (1,2)=-1, (0,1)=2, others -3 -> predicted (0,3), (0,1).
    let v = |i: usize, j: usize| match (i.min(j), i.max(j)) {
        (0, 3) | (0, 1) => 2.0,
        (1, 2) => -1.0,
        _ => -3.0,
    };
    let mut case = single(4, v, |i, j| u8::from(matches!((i.min(j), i.max(j)), (0, 3) | (1, 2))));
    case.min_sep = 1;
    let r = metrics(&case, PredictConfig::default());
    assert_eq!((r.tp, r.fp, r.fn_, r.tn), (2, 2, 2, 6));
    assert!((r.f1 - 0.5).abs() < 1e-15);
    assert!((r.iou - 1.0 / 3.0).abs() < 1e-15);
    assert!((r.mcc - (2.0 * 6.0 - 4.0) / (4.0f64 * 4.0 * 8.0 * 8.0).sqrt()).abs() < 1e-15);
    // Scores by ordered pair: two ties at sigmoid(2) (one positive each side: 2 pos, 2 neg),
    // then sigmoid(-1) (2 pos), then sigmoid(-3) (4 neg):
    // thresholds: P=2/4 R=2/4; P=4/6 R=1 -> AP = 0.5*0.5 + 0.5*(2/3).
    assert!((r.auprc - (0.25 + 1.0 / 3.0)).abs() < 1e-15, "{}", r.auprc);
    // Shift: predicted (0,1) is next to reference (0,2)? No: (0,2) is not a reference pair;
    // (1,1)/(0,0)/(0,2) hold none, so shift adds nothing here.
    assert!((r.f1_shift - 0.5).abs() < 1e-15);
}

#[test]
fn top_k_with_fewer_candidates_than_k() {
    // N = 8: the short range (6..=11) has 3 pairs: (0,6), (1,7), (0,7); k = 8 > 3.
    let case = single(8, |i, j| -((i + j) as f32), |i, j| u8::from(i.min(j) == 1 && i.max(j) == 7));
    let r = metrics(&case, PredictConfig::default());
    assert!((r.top.short.l1 - 1.0 / 3.0).abs() < 1e-15);
    assert!((r.top.short.l2 - 1.0 / 3.0).abs() < 1e-15);
    // k = ceil(8/5) = 2: the two best are (0,6) and (0,7) by z = -6, -7 -> no hit.
    assert_eq!(r.top.short.l5, 0.0);
    // No sample has medium or long candidates: those ranges report 0.
    assert_eq!((r.top.medium.l1, r.top.long.l1), (0.0, 0.0));
}

#[test]
fn invariant_under_a_permutation_of_rows_and_columns() {
    let mut rng = Rng::new(0x3E7_0002);
    for _ in 0..20 {
        let case = Case::random(
            &mut rng,
            &CaseSpec { positive: 0.15, ignore: 0.05, mask: true, ..CaseSpec::new(2, 23) },
        );
        let n = 23;
        let mut perm: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            perm.swap(k, rng.below(k + 1));
        }
        let mut p = case.clone();
        for b in 0..2 {
            for i in 0..n {
                for j in 0..n {
                    let (to, from) = ((b * n + i) * n + j, (b * n + perm[i]) * n + perm[j]);
                    p.logits[to] = case.logits[from];
                    p.labels[to] = case.labels[from];
                    p.mask.as_mut().unwrap()[to] = case.mask.as_ref().unwrap()[from];
                }
            }
        }
        for mode in [SymMode::None, SymMode::Average] {
            let a = metrics(&case, PredictConfig::default().mode(mode));
            let b = metrics(&p, PredictConfig::default().mode(mode));
            assert_eq!((a.tp, a.fp, a.fn_, a.tn), (b.tp, b.fp, b.fn_, b.tn));
            for (x, y) in [
                (a.f1, b.f1),
                (a.mcc, b.mcc),
                (a.iou, b.iou),
                (a.auprc, b.auprc),
                (a.f1_mean, b.f1_mean),
                (a.asymmetry, b.asymmetry),
            ] {
                assert!(close(x, y), "{x} vs {y}");
            }
        }
    }
}

#[test]
fn streaming_batches_equals_one_batch() {
    let mut rng = Rng::new(0x3E7_0003);
    let case = Case::random(&mut rng, &CaseSpec { lengths: true, positive: 0.1, ..CaseSpec::new(4, 19) });
    let pred = PredictConfig::default();
    let whole = metrics(&case, pred);
    let mut acc = MetricsAccumulator::new(pred, false);
    let m = case.dims.map_len();
    for b in 0..4 {
        let part = Case {
            dims: Dims { batch: 1, n: 19 },
            logits: case.logits[b * m..(b + 1) * m].to_vec(),
            labels: case.labels[b * m..(b + 1) * m].to_vec(),
            mask: None,
            lengths: case.lengths.as_ref().map(|l| vec![l[b]]),
            min_sep: 0,
        };
        let mut one = MetricsAccumulator::new(pred, false);
        one.add(&host(&part), None).unwrap();
        acc.merge(&one);
    }
    assert_eq!(acc.finish(), whole);
}

#[test]
fn one_partner_and_pair_masks_decode_predictions() {
    // Index 0 is predicted with both 5 and 6; one-partner keeps the stronger (0, 6).
    let v = |i: usize, j: usize| match (i.min(j), i.max(j)) {
        (0, 6) => 4.0,
        (0, 5) => 3.0,
        (1, 5) => 2.0,
        _ => -5.0,
    };
    let case = single(8, v, |i, j| u8::from(matches!((i.min(j), i.max(j)), (0, 6) | (1, 5))));
    let mut plain = MetricsAccumulator::new(PredictConfig::default(), false);
    plain.add(&host(&case), None).unwrap();
    assert_eq!(plain.finish().fp, 2);
    let mut decoded = MetricsAccumulator::new(PredictConfig::default(), true);
    decoded.add(&host(&case), None).unwrap();
    let r = decoded.finish();
    assert_eq!((r.tp, r.fp, r.fn_), (4, 0, 0));
    // A pair-type mask that forbids (1, 5) removes that prediction.
    let mut pm = vec![1u8; 64];
    pm[8 + 5] = 0;
    pm[5 * 8 + 1] = 0;
    let mut masked = MetricsAccumulator::new(PredictConfig::default(), false);
    masked.add(&HostBatch { pair_mask: Some(&pm), ..host(&case) }, None).unwrap();
    let r = masked.finish();
    assert_eq!((r.tp, r.fp, r.fn_), (2, 2, 2));
}

#[test]
fn bad_input_is_rejected_with_clear_errors() {
    let mut case = single(6, |_, _| 0.0, |_, _| 0);
    case.labels[6 + 4] = 1;
    let err = cpu_stats(&case, &PredictConfig::default()).unwrap_err();
    assert!(matches!(err, Error::AsymmetricLabels { sample: 0, i: 1, j: 4, .. }), "{err:?}");
    let mut acc = MetricsAccumulator::new(PredictConfig::default(), false);
    assert!(matches!(acc.add(&host(&case), None), Err(Error::AsymmetricLabels { .. })));
    case.labels[6 + 4] = 0;
    case.logits[3 * 6 + 2] = f32::NAN;
    assert!(matches!(
        cpu_stats(&case, &PredictConfig::default()),
        Err(Error::NonFiniteLogit { sample: 0, i: 3, j: 2, .. })
    ));
    assert!(matches!(acc.add(&host(&case), None), Err(Error::NonFiniteLogit { .. })));
    case.logits[3 * 6 + 2] = 0.0;
    let bad = PredictConfig::default().threshold(1.5);
    assert!(matches!(cpu_stats(&case, &bad), Err(Error::InvalidConfig { param: "threshold", .. })));
    let short = HostBatch { logits: &case.logits[..30], ..host(&case) };
    assert!(matches!(acc.add(&short, None), Err(Error::ShapeMismatch { .. })));
}

/// Literal SPEC §5–6 per-sample counts and asymmetry: every ordered pair of the
/// counted set, scores in f64 by `std`'s `exp`.
fn naive_stats(case: &Case, pred: &PredictConfig) -> Vec<SampleStats> {
    let (nb, n) = (case.dims.batch, case.dims.n);
    let x64 = case.logits_f64();
    let rb = case.ref_batch(&x64);
    let x = |b: usize, i: usize, j: usize| f64::from(case.logits[(b * n + i) * n + j]);
    (0..nb)
        .map(|b| {
            let mut s = SampleStats::default();
            for i in 0..n {
                for j in 0..n {
                    if !rb.in_set(b, i, j) {
                        continue;
                    }
                    let z = match pred.mode {
                        SymMode::None => x(b, i, j),
                        SymMode::Average => (x(b, i, j) + x(b, j, i)) / 2.0,
                        SymMode::Upper => x(b, i.min(j), i.max(j)),
                        SymMode::Lower => x(b, i.max(j), i.min(j)),
                    };
                    s.confusion.record(sig(z) >= pred.threshold, case.labels[(b * n + i) * n + j] == 1);
                    if i < j {
                        s.asym_sum += (sig(x(b, i, j)) - sig(x(b, j, i))).abs();
                        s.asym_pairs += 1;
                    }
                }
            }
            s
        })
        .collect()
}

#[test]
fn vector_tiles_count_exactly_at_every_simd_level() {
    let seed = 0x3E7_0005;
    let mut rng = Rng::new(seed);
    for case_no in 0..24 {
        let n = [64, 97, 130, 200, 33, 129][rng.below(6)];
        let spec = CaseSpec {
            lengths: rng.chance(0.5),
            min_sep: [0, 1, 3, 40][rng.below(4)],
            mask: rng.chance(0.4),
            empty_mask: rng.chance(0.1),
            ignore: if rng.chance(0.5) { 0.1 } else { 0.0 },
            positive: 0.05 + 0.2 * rng.uniform(),
            extreme: if rng.chance(0.5) { 0.05 } else { 0.0 },
            ..CaseSpec::new(1 + rng.below(2), n)
        };
        let case = Case::random(&mut rng, &spec);
        let pred = PredictConfig::default()
            .mode(SymMode::ALL[rng.below(4)])
            .threshold([0.5, 0.3, 0.9, 0.0, 1.0, 1e-3][rng.below(6)]);
        let want = naive_stats(&case, &pred);
        for level in SimdLevel::available() {
            let (x, y, m) = arrays(&case);
            let region = Region {
                lengths: case.lengths.as_deref(),
                min_sep: case.min_sep,
                mask: m.as_ref().map(|m| m.view()),
            };
            let got = CpuBackend::new()
                .with_simd(level)
                .unwrap()
                .sample_stats(&LossInput::new(x.view(), y.view()).region(region), &pred)
                .unwrap();
            for (b, (g, w)) in got.iter().zip(&want).enumerate() {
                let what = format!("seed {seed:#x} case {case_no} n={n} {pred:?} {level:?} sample {b}");
                assert_eq!(g.confusion, w.confusion, "{what}");
                assert_eq!(g.asym_pairs, w.asym_pairs, "{what}");
                assert!(
                    (g.asym_sum - w.asym_sum).abs() <= 1e-12 * w.asym_sum + 1e-300,
                    "{what}: asym {} vs {}",
                    g.asym_sum,
                    w.asym_sum
                );
            }
        }
    }
}

#[test]
fn a_non_finite_logit_deep_in_a_large_map_is_named() {
    let mut rng = Rng::new(0x3E7_0006);
    let case = Case::random(&mut rng, &CaseSpec::new(2, 150));
    for (b, i, j, v) in [(1, 77, 140, f32::NAN), (0, 3, 130, f32::INFINITY), (1, 149, 20, f32::NEG_INFINITY)]
    {
        let mut bad = case.clone();
        bad.logits[(b * 150 + i) * 150 + j] = v;
        for level in SimdLevel::available() {
            let (x, y, _) = arrays(&bad);
            let err = CpuBackend::new()
                .with_simd(level)
                .unwrap()
                .sample_stats(&LossInput::new(x.view(), y.view()), &PredictConfig::default())
                .unwrap_err();
            assert!(
                matches!(err, Error::NonFiniteLogit { sample, i: ei, j: ej, .. } if (sample, ei, ej) == (b, i, j)),
                "{level:?}: {err:?}"
            );
        }
    }
}

#[test]
fn stats_are_independent_of_thread_count() {
    let mut rng = Rng::new(0x3E7_0007);
    let case = Case::random(&mut rng, &CaseSpec { lengths: true, ignore: 0.1, ..CaseSpec::new(3, 200) });
    let (x, y, _) = arrays(&case);
    let input = LossInput::new(x.view(), y.view());
    for mode in SymMode::ALL {
        let pred = PredictConfig::default().mode(mode);
        let one = CpuBackend::with_threads(1).unwrap().sample_stats(&input, &pred).unwrap();
        let three = CpuBackend::with_threads(3).unwrap().sample_stats(&input, &pred).unwrap();
        let caller = CpuBackend::new().sequential_below(usize::MAX).sample_stats(&input, &pred).unwrap();
        for ((a, b), c) in one.iter().zip(&three).zip(&caller) {
            assert_eq!(a.confusion, b.confusion, "{mode:?}");
            assert_eq!(a.asym_sum.to_bits(), b.asym_sum.to_bits(), "{mode:?}");
            assert_eq!(a.confusion, c.confusion, "{mode:?} on the caller");
            assert_eq!(a.asym_sum.to_bits(), c.asym_sum.to_bits(), "{mode:?} on the caller");
        }
    }
}
