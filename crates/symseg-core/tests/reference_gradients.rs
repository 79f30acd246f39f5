//! Finite-difference checks of the float64 reference's analytic gradients, over
//! every strategy, penalty and reduction with lengths, min_sep, masks and ignores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use symseg_core::reference::loss_grad;
use symseg_core::testing::{Case, CaseSpec, Rng};
use symseg_core::{ElementLoss, LossConfig, Penalty, PenaltyKind, PenaltyOn, Reduction, Strategy};

fn penalties() -> Vec<Option<Penalty>> {
    let mut out = vec![None];
    for kind in [PenaltyKind::L1, PenaltyKind::L2, PenaltyKind::Huber { delta: 0.6 }] {
        for on in [PenaltyOn::Logits, PenaltyOn::Probs] {
            out.push(Some(Penalty::new(kind).on(on).weight(0.7)));
        }
    }
    out
}

#[test]
fn reference_gradients_match_central_differences() {
    let seed = 0xFD_0001;
    let mut rng = Rng::new(seed);
    let losses = [
        ElementLoss::Focal { alpha: Some(0.25), gamma: 2.0 },
        ElementLoss::Focal { alpha: None, gamma: 0.5 },
        ElementLoss::Focal { alpha: Some(0.9), gamma: 5.0 },
        ElementLoss::Bce { pos_weight: 2.5 },
    ];
    let mut checked = 0usize;
    for loss in losses {
        for strategy in Strategy::ALL {
            for penalty in penalties() {
                for reduction in Reduction::ALL {
                    let spec = CaseSpec {
                        lengths: true,
                        min_sep: rng.below(3),
                        mask: rng.chance(0.5),
                        ignore: 0.15,
                        positive: 0.3,
                        ..CaseSpec::new(2, 2 + rng.below(5))
                    };
                    let case = Case::random(&mut rng, &spec);
                    let cfg =
                        LossConfig { loss, strategy, penalty, reduction, allow_asymmetric_labels: false };
                    let mut x = case.logits_f64();
                    let analytic = loss_grad(&case.ref_batch(&x), &cfg).grad;
                    let gmax = analytic.iter().fold(0.0f64, |m, g| m.max(g.abs()));
                    for k in 0..x.len() {
                        let x0 = x[k];
                        let h = 1e-5 * x0.abs().max(1.0);
                        x[k] = x0 + h;
                        let up = loss_grad(&case.ref_batch(&x), &cfg).loss;
                        x[k] = x0 - h;
                        let down = loss_grad(&case.ref_batch(&x), &cfg).loss;
                        x[k] = x0;
                        let fd = (up - down) / (2.0 * h);
                        assert!(
                            (fd - analytic[k]).abs() <= 1e-6 * gmax.max(1e-3),
                            "seed {seed:#x} {cfg:?} element {k}: analytic {} vs fd {fd}",
                            analytic[k]
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 5000, "only {checked} elements checked");
}

#[test]
fn asymmetric_label_gradients_match_central_differences() {
    let mut rng = Rng::new(0xFD_0002);
    for strategy in [Strategy::Plain, Strategy::Dual] {
        let case = Case::random(
            &mut rng,
            &CaseSpec { asymmetric_labels: true, positive: 0.4, ..CaseSpec::new(1, 6) },
        );
        let cfg = LossConfig::default().strategy(strategy).allow_asymmetric_labels(true);
        let mut x = case.logits_f64();
        let analytic = loss_grad(&case.ref_batch(&x), &cfg).grad;
        for k in 0..x.len() {
            let x0 = x[k];
            let h = 1e-5 * x0.abs().max(1.0);
            x[k] = x0 + h;
            let up = loss_grad(&case.ref_batch(&x), &cfg).loss;
            x[k] = x0 - h;
            let down = loss_grad(&case.ref_batch(&x), &cfg).loss;
            x[k] = x0;
            assert!(((up - down) / (2.0 * h) - analytic[k]).abs() < 1e-8, "{strategy} element {k}");
        }
    }
}
