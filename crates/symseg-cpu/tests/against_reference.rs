//! The CPU backend against the float64 reference (SPEC §4's accuracy) on fresh
//! random inputs, over every loss x strategy x penalty x reduction and region.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{check, element_losses, penalties};
use symseg_core::testing::{Case, CaseSpec, Rng};
use symseg_core::{ElementLoss, LossConfig, Penalty, PenaltyKind, PenaltyOn, Reduction, Strategy};
use symseg_cpu::CpuBackend;

/// Region variants: (name, spec tweak).
fn regions(n: usize) -> Vec<(&'static str, CaseSpec)> {
    let base = CaseSpec::new(3, n);
    let k = (n / 4).max(1);
    vec![
        ("full", base.clone()),
        ("lengths", CaseSpec { lengths: true, ..base.clone() }),
        ("min_sep", CaseSpec { min_sep: k, ..base.clone() }),
        ("mask", CaseSpec { mask: true, ..base.clone() }),
        ("ignore", CaseSpec { ignore: 0.2, ..base.clone() }),
        ("empty_mask", CaseSpec { mask: true, empty_mask: true, ..base.clone() }),
        (
            "everything",
            CaseSpec { lengths: true, min_sep: 1, mask: true, ignore: 0.1, extreme: 0.05, ..base.clone() },
        ),
    ]
}

#[test]
fn every_combination_matches_reference() {
    let backend = CpuBackend::new();
    let seed = 0x5EED_0001;
    let mut rng = Rng::new(seed);
    let sizes = [1usize, 2, 7, 9, 17, 33, 66];
    let mut cases = 0;
    for loss in element_losses() {
        for strategy in Strategy::ALL {
            for penalty in penalties() {
                for reduction in Reduction::ALL {
                    let n = sizes[rng.below(sizes.len())];
                    for (name, spec) in regions(n) {
                        let case = Case::random(&mut rng, &spec);
                        let cfg =
                            LossConfig { loss, strategy, penalty, reduction, allow_asymmetric_labels: false };
                        check(
                            &backend,
                            &case,
                            &cfg,
                            &format!("seed {seed:#x} case {cases} n={n} region={name}"),
                        );
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 5 * 5 * 7 * 3 * 7);
}

#[test]
fn sizes_straddling_tiles_and_padding() {
    let backend = CpuBackend::new();
    let seed = 0x5EED_0002;
    let mut rng = Rng::new(seed);
    let penalties = penalties();
    for n in [1usize, 2, 7, 8, 9, 63, 64, 65, 127, 129, 257] {
        for strategy in Strategy::ALL {
            let spec = CaseSpec {
                batch: if n > 100 { 2 } else { 3 },
                lengths: true,
                min_sep: rng.below(4),
                mask: rng.chance(0.5),
                ignore: 0.05,
                extreme: 0.02,
                ..CaseSpec::new(1, n)
            };
            let case = Case::random(&mut rng, &spec);
            let reduction = Reduction::ALL[rng.below(3)];
            let penalty = penalties[rng.below(penalties.len())];
            let cfg = LossConfig::default().strategy(strategy).reduction(reduction).penalty(penalty);
            check(&backend, &case, &cfg, &format!("seed {seed:#x} n={n} {strategy}"));
        }
    }
}

#[test]
fn gamma_and_alpha_sweep_with_extreme_logits() {
    let backend = CpuBackend::new();
    let seed = 0x5EED_0003;
    let mut rng = Rng::new(seed);
    for gamma in [0.0, 0.5, 1.0, 2.0, 5.0] {
        for alpha in [None, Some(0.25), Some(0.9)] {
            for strategy in Strategy::ALL {
                let spec = CaseSpec { extreme: 0.3, scale: 20.0, positive: 0.3, ..CaseSpec::new(2, 23) };
                let case = Case::random(&mut rng, &spec);
                let cfg = LossConfig::default().loss(ElementLoss::Focal { alpha, gamma }).strategy(strategy);
                check(
                    &backend,
                    &case,
                    &cfg,
                    &format!("seed {seed:#x} gamma={gamma} alpha={alpha:?} {strategy}"),
                );
            }
        }
    }
}

/// A penalty on probabilities where the logits are large: the probabilities of
/// a pair round to the same f32 (or to 1), so the gap and the slopes `p q`
/// must not be formed from them. Confident, correct logits of both signs: the
/// element loss is tiny, so the penalty's gradient is what the check sees.
#[test]
fn probability_penalty_with_confident_logits() {
    let backend = CpuBackend::new();
    let seed = 0x5EED_000B;
    let mut rng = Rng::new(seed);
    for n in [17, 40] {
        for kind in [PenaltyKind::L1, PenaltyKind::L2, PenaltyKind::Huber { delta: 0.5 }] {
            for strategy in Strategy::ALL {
                let spec = CaseSpec { positive: 0.5, confident: true, ..CaseSpec::new(2, n) };
                let case = Case::random(&mut rng, &spec);
                let penalty = Penalty::new(kind).on(PenaltyOn::Probs).weight(2.0);
                let cfg = LossConfig::default()
                    .loss(ElementLoss::Bce { pos_weight: 1.0 })
                    .strategy(strategy)
                    .reduction(Reduction::Sum)
                    .penalty(Some(penalty));
                check(&backend, &case, &cfg, &format!("seed {seed:#x} n={n} {kind:?} {strategy}"));
            }
        }
    }
}

#[test]
fn asymmetric_labels_for_plain_and_dual() {
    let backend = CpuBackend::new();
    let seed = 0x5EED_0004;
    let mut rng = Rng::new(seed);
    for strategy in [Strategy::Plain, Strategy::Dual] {
        for reduction in Reduction::ALL {
            for penalty in penalties() {
                let spec = CaseSpec {
                    asymmetric_labels: true,
                    positive: 0.3,
                    ignore: 0.1,
                    lengths: true,
                    ..CaseSpec::new(2, 19)
                };
                let case = Case::random(&mut rng, &spec);
                let cfg = LossConfig::default()
                    .strategy(strategy)
                    .reduction(reduction)
                    .penalty(penalty)
                    .allow_asymmetric_labels(true);
                check(&backend, &case, &cfg, &format!("seed {seed:#x} asymmetric {strategy}"));
            }
        }
    }
}

#[test]
fn result_is_independent_of_thread_count_and_of_running_on_the_caller() {
    let seed = 0x5EED_0005;
    let mut rng = Rng::new(seed);
    // 3x200^2 runs on rayon by default, 2x61^2 on the calling thread.
    let cases = [
        Case::random(&mut rng, &CaseSpec { lengths: true, ignore: 0.1, ..CaseSpec::new(3, 200) }),
        Case::random(&mut rng, &CaseSpec { lengths: true, ignore: 0.1, min_sep: 2, ..CaseSpec::new(2, 61) }),
    ];
    let backends = [
        ("1 thread", CpuBackend::with_threads(1).unwrap()),
        ("3 threads", CpuBackend::with_threads(3).unwrap()),
        ("3 threads, always parallel", CpuBackend::with_threads(3).unwrap().sequential_below(0)),
        ("on the caller", CpuBackend::new().sequential_below(usize::MAX)),
    ];
    for case in &cases {
        for strategy in Strategy::ALL {
            for penalty in [None, common::penalties()[3]] {
                let cfg = LossConfig::default().strategy(strategy).penalty(penalty);
                let want = common::run_cpu(&backends[0].1, case, &cfg).unwrap();
                for (name, backend) in &backends[1..] {
                    let got = common::run_cpu(backend, case, &cfg).unwrap();
                    let what = format!("n={} {strategy} {penalty:?} {name}", case.dims.n);
                    assert_eq!(want.0.loss.to_bits(), got.0.loss.to_bits(), "{what}");
                    assert_eq!(want.2.loss.to_bits(), got.2.loss.to_bits(), "{what} loss only");
                    assert!(
                        want.1.iter().zip(&got.1).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{what} gradient"
                    );
                }
            }
        }
    }
}

#[test]
fn every_simd_level_matches_reference() {
    let seed = 0x5EED_0006;
    let mut rng = Rng::new(seed);
    let losses = [
        ElementLoss::Focal { alpha: Some(0.25), gamma: 2.0 },
        ElementLoss::Focal { alpha: None, gamma: 0.5 },
        ElementLoss::Focal { alpha: Some(0.9), gamma: 1.0 },
        ElementLoss::Focal { alpha: None, gamma: 0.0 },
        ElementLoss::Focal { alpha: Some(0.3), gamma: 5.0 },
        ElementLoss::Bce { pos_weight: 2.5 },
    ];
    for level in symseg_cpu::SimdLevel::available() {
        let backend = CpuBackend::new().with_simd(level).unwrap();
        for loss in losses {
            for reduction in Reduction::ALL {
                // Sizes straddle the 16 lanes and the 8-row blocks.
                for n in [1usize, 2, 15, 16, 17, 33, 100] {
                    for (name, spec) in regions(n) {
                        let spec = CaseSpec { extreme: 0.05, ..spec };
                        let case = Case::random(&mut rng, &spec);
                        let cfg = LossConfig::default().loss(loss).reduction(reduction);
                        check(
                            &backend,
                            &case,
                            &cfg,
                            &format!("seed {seed:#x} {level:?} n={n} region={name} {loss:?}"),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn simd_levels_agree_bit_for_bit_across_thread_counts() {
    let mut rng = Rng::new(0x5EED_0007);
    let case =
        Case::random(&mut rng, &CaseSpec { lengths: true, ignore: 0.1, mask: true, ..CaseSpec::new(3, 77) });
    for level in symseg_cpu::SimdLevel::available() {
        let one = CpuBackend::with_threads(1).unwrap().with_simd(level).unwrap();
        let three = CpuBackend::with_threads(3).unwrap().with_simd(level).unwrap();
        let cfg = LossConfig::default();
        let a = common::run_cpu(&one, &case, &cfg).unwrap();
        let b = common::run_cpu(&three, &case, &cfg).unwrap();
        assert_eq!(a.0.loss.to_bits(), b.0.loss.to_bits(), "{level:?}");
        assert_eq!(a.2.loss.to_bits(), b.2.loss.to_bits(), "{level:?} loss only");
        assert!(a.1.iter().zip(&b.1).all(|(x, y)| x.to_bits() == y.to_bits()), "{level:?} gradient");
    }
}

#[test]
fn every_simd_level_runs_every_strategy_and_penalty_on_multi_tile_maps() {
    let seed = 0x5EED_0008;
    let mut rng = Rng::new(seed);
    for level in symseg_cpu::SimdLevel::available() {
        let backend = CpuBackend::new().with_simd(level).unwrap();
        for strategy in Strategy::ALL {
            for penalty in penalties() {
                // 130 = two full tiles and a 2-wide tail: off-diagonal tile pairs of every shape.
                let spec = CaseSpec {
                    lengths: true,
                    min_sep: rng.below(5),
                    mask: rng.chance(0.5),
                    ignore: 0.05,
                    extreme: 0.02,
                    ..CaseSpec::new(2, 130)
                };
                let case = Case::random(&mut rng, &spec);
                let loss = element_losses()[rng.below(5)];
                let cfg = LossConfig::default()
                    .loss(loss)
                    .strategy(strategy)
                    .penalty(penalty)
                    .reduction(Reduction::ALL[rng.below(3)]);
                check(&backend, &case, &cfg, &format!("seed {seed:#x} {level:?} {strategy} {penalty:?}"));
            }
        }
        // Asymmetric labels take dual's four-term kernel.
        let case = Case::random(
            &mut rng,
            &CaseSpec { asymmetric_labels: true, positive: 0.3, ..CaseSpec::new(1, 100) },
        );
        let cfg = LossConfig::default().strategy(Strategy::Dual).allow_asymmetric_labels(true);
        check(&backend, &case, &cfg, &format!("{level:?} dual asymmetric"));
    }
}

/// The FMA levels (AVX2 and AVX-512) round every operation identically and sum
/// in the same lane order, so they must agree bit for bit: this pins the
/// AVX-512 kernels to the portable lane code they must compute.
#[test]
fn fma_levels_agree_bit_for_bit_on_every_strategy_and_penalty() {
    let levels = symseg_cpu::SimdLevel::available();
    let (avx2, avx512) = (symseg_cpu::SimdLevel::Avx2, symseg_cpu::SimdLevel::Avx512);
    if !levels.contains(&avx512) {
        eprintln!("skipped: this CPU has no AVX-512");
        return;
    }
    let seed = 0x5EED_0009;
    let mut rng = Rng::new(seed);
    let a = CpuBackend::new().with_simd(avx2).unwrap();
    let b = CpuBackend::new().with_simd(avx512).unwrap();
    for strategy in Strategy::ALL {
        for penalty in penalties() {
            for loss in element_losses().into_iter().chain([ElementLoss::Focal { alpha: None, gamma: 1.0 }]) {
                // 143: two full tiles and a 15-wide tail, so chunks of 16 and 32 lanes both end early.
                let spec = CaseSpec {
                    lengths: rng.chance(0.5),
                    min_sep: rng.below(4),
                    mask: rng.chance(0.5),
                    ignore: 0.05,
                    extreme: 0.02,
                    asymmetric_labels: strategy == Strategy::Dual && rng.chance(0.5),
                    ..CaseSpec::new(2, 143)
                };
                let case = Case::random(&mut rng, &spec);
                let cfg = LossConfig::default()
                    .loss(loss)
                    .strategy(strategy)
                    .penalty(penalty)
                    .reduction(Reduction::ALL[rng.below(3)])
                    .allow_asymmetric_labels(spec.asymmetric_labels);
                let what = format!("seed {seed:#x} {strategy} {penalty:?} {loss:?}");
                let x = common::run_cpu(&a, &case, &cfg).unwrap();
                let y = common::run_cpu(&b, &case, &cfg).unwrap();
                assert_eq!(x.0.loss.to_bits(), y.0.loss.to_bits(), "{what}: {} vs {}", x.0.loss, y.0.loss);
                assert_eq!(x.0.penalty.to_bits(), y.0.penalty.to_bits(), "{what}: penalty");
                assert_eq!(x.2.loss.to_bits(), y.2.loss.to_bits(), "{what}: loss only");
                if let Some(k) = (0..x.1.len()).find(|&k| x.1[k].to_bits() != y.1[k].to_bits()) {
                    panic!("{what}: gradient element {k}: {} vs {}", x.1[k], y.1[k]);
                }
            }
        }
    }
}
