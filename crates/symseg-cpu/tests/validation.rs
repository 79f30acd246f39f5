//! One test per validation error of SPEC §1, through the CPU backend: each names
//! the offending sample and position, and nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array3, ArrayView3, s};
use symseg_core::{Error, LossConfig, LossInput, Region, Strategy, SymMode, TensorBackend};
use symseg_cpu::CpuBackend;

fn symmetric_labels(b: usize, n: usize) -> Array3<u8> {
    Array3::from_shape_fn((b, n, n), |(s, i, j)| u8::from((i + j + s) % 5 == 0))
}

fn logits(b: usize, n: usize) -> Array3<f32> {
    Array3::from_shape_fn((b, n, n), |(s, i, j)| ((s * 31 + i * 7 + j * 3) % 11) as f32 * 0.4 - 2.0)
}

fn loss_err(
    x: &Array3<f32>,
    y: &Array3<u8>,
    region: Region<'_, ArrayView3<'_, u8>>,
    cfg: &LossConfig,
) -> Error {
    let input = LossInput::new(x.view(), y.view()).region(region);
    let mut g = Array3::<f32>::zeros(x.raw_dim());
    let with_grad = CpuBackend::new().loss_grad(&input, cfg, g.view_mut()).expect_err("must fail");
    let alone = CpuBackend::new().loss(&input, cfg).expect_err("must fail");
    // Compared as text: a NaN value makes the errors unequal under PartialEq.
    assert_eq!(
        format!("{with_grad:?}"),
        format!("{alone:?}"),
        "loss and loss_grad must report the same error"
    );
    with_grad
}

#[test]
fn labels_of_another_shape() {
    let err = loss_err(&logits(2, 5), &symmetric_labels(2, 6), Region::default(), &LossConfig::default());
    assert_eq!(err, Error::ShapeMismatch { what: "labels", got: vec![2, 6, 6], expected: vec![2, 5, 5] });
}

#[test]
fn non_square_maps() {
    let x = Array3::<f32>::zeros((1, 4, 5));
    let y = Array3::<u8>::zeros((1, 4, 5));
    assert!(matches!(loss_err(&x, &y, Region::default(), &LossConfig::default()), Error::NotSquare { .. }));
}

#[test]
fn empty_maps() {
    let x = Array3::<f32>::zeros((1, 0, 0));
    let y = Array3::<u8>::zeros((1, 0, 0));
    assert!(matches!(loss_err(&x, &y, Region::default(), &LossConfig::default()), Error::Empty { .. }));
}

#[test]
fn label_outside_0_1_255() {
    let mut y = symmetric_labels(3, 70);
    y[[2, 66, 3]] = 2;
    y[[2, 3, 66]] = 2;
    let err = loss_err(&logits(3, 70), &y, Region::default(), &LossConfig::default());
    assert_eq!(err, Error::BadLabel { sample: 2, i: 3, j: 66, value: 2 });
}

#[test]
fn asymmetric_labels_rejected_unless_opted_out() {
    let mut y = symmetric_labels(2, 9);
    y[[1, 2, 7]] = 1 - y[[1, 2, 7]];
    let err = loss_err(&logits(2, 9), &y, Region::default(), &LossConfig::default());
    assert!(matches!(err, Error::AsymmetricLabels { sample: 1, i: 2, j: 7, .. }), "{err:?}");
    let opt_out = LossConfig::default().strategy(Strategy::Dual).allow_asymmetric_labels(true);
    let x = logits(2, 9);
    let input = LossInput::new(x.view(), y.view());
    assert!(CpuBackend::new().loss(&input, &opt_out).is_ok());
    let average = LossConfig::default().strategy(Strategy::Average).allow_asymmetric_labels(true);
    assert!(matches!(
        CpuBackend::new().loss(&input, &average),
        Err(Error::InvalidConfig { param: "allow_asymmetric_labels", .. })
    ));
}

#[test]
fn asymmetric_ignore_marks_rejected_even_when_opted_out() {
    let mut y = symmetric_labels(1, 6);
    y[[0, 1, 4]] = 255;
    let cfg = LossConfig::default().allow_asymmetric_labels(true);
    let err = loss_err(&logits(1, 6), &y, Region::default(), &cfg);
    assert!(matches!(err, Error::AsymmetricLabels { sample: 0, i: 1, j: 4, upper: 255, .. }), "{err:?}");
}

#[test]
fn asymmetric_or_misshapen_mask() {
    let (x, y) = (logits(2, 8), symmetric_labels(2, 8));
    let mut m = Array3::<u8>::ones((2, 8, 8));
    m[[1, 6, 2]] = 0;
    let err = loss_err(&x, &y, Region::default().mask(m.view()), &LossConfig::default());
    assert_eq!(err, Error::AsymmetricMask { sample: 1, i: 2, j: 6, upper: 1, lower: 0 });
    let small = Array3::<u8>::ones((2, 7, 7));
    let err = loss_err(&x, &y, Region::default().mask(small.view()), &LossConfig::default());
    assert!(matches!(err, Error::ShapeMismatch { what: "mask", .. }));
}

#[test]
fn bad_lengths() {
    let (x, y) = (logits(2, 8), symmetric_labels(2, 8));
    let err = loss_err(&x, &y, Region::default().lengths(&[8, 9]), &LossConfig::default());
    assert_eq!(err, Error::BadLength { sample: 1, length: 9, n: 8 });
    let err = loss_err(&x, &y, Region::default().lengths(&[0, 3]), &LossConfig::default());
    assert_eq!(err, Error::BadLength { sample: 0, length: 0, n: 8 });
    let err = loss_err(&x, &y, Region::default().lengths(&[8]), &LossConfig::default());
    assert_eq!(err, Error::LengthsSize { got: 1, expected: 2 });
}

#[test]
fn non_finite_logit_reports_the_lowest_index() {
    let (mut x, y) = (logits(3, 130), symmetric_labels(3, 130));
    x[[2, 100, 5]] = f32::INFINITY;
    x[[1, 120, 70]] = f32::NAN;
    x[[1, 120, 71]] = f32::NAN;
    let err = loss_err(&x, &y, Region::default(), &LossConfig::default());
    assert!(matches!(err, Error::NonFiniteLogit { sample: 1, i: 120, j: 70, .. }), "{err:?}");
}

#[test]
fn non_finite_logit_on_a_counted_diagonal_is_reported_by_every_strategy() {
    let (mut x, y) = (logits(2, 150), symmetric_labels(2, 150));
    x[[1, 70, 70]] = f32::NAN; // a diagonal tile's diagonal (tiles are 64 wide)
    x[[1, 140, 100]] = f32::INFINITY;
    for strategy in Strategy::ALL {
        let cfg = LossConfig::default().strategy(strategy);
        let err = loss_err(&x, &y, Region::default().min_sep(0), &cfg);
        assert!(matches!(err, Error::NonFiniteLogit { sample: 1, i: 70, j: 70, .. }), "{strategy}: {err:?}");
    }
}

#[test]
fn non_finite_logit_outside_the_counted_set_is_fine() {
    let (mut x, mut y) = (logits(2, 12), symmetric_labels(2, 12));
    x[[0, 3, 3]] = f32::NAN; // diagonal, dropped by min_sep
    x[[1, 11, 2]] = f32::NAN; // padding of sample 1
    x[[0, 4, 9]] = f32::INFINITY; // ignored pair
    y[[0, 4, 9]] = 255;
    y[[0, 9, 4]] = 255;
    let input = LossInput::new(x.view(), y.view()).region(Region::default().min_sep(1).lengths(&[12, 10]));
    let mut g = Array3::<f32>::from_elem(x.raw_dim(), f32::NAN);
    let r = CpuBackend::new().loss_grad(&input, &LossConfig::default(), g.view_mut()).unwrap();
    assert!(r.loss.is_finite() && r.loss > 0.0);
    assert_eq!((g[[0, 3, 3]], g[[1, 11, 2]], g[[0, 4, 9]]), (0.0, 0.0, 0.0));
}

#[test]
fn invalid_configuration_is_named() {
    let cfg = LossConfig::default().loss(symseg_core::ElementLoss::Focal { alpha: Some(-0.1), gamma: 2.0 });
    let err = loss_err(&logits(1, 4), &symmetric_labels(1, 4), Region::default(), &cfg);
    assert!(matches!(err, Error::InvalidConfig { param: "alpha", .. }));
}

#[test]
fn gradient_buffer_of_wrong_shape_or_layout() {
    let (x, y) = (logits(1, 6), symmetric_labels(1, 6));
    let input = LossInput::new(x.view(), y.view());
    let mut g = Array3::<f32>::zeros((1, 6, 7));
    let err = CpuBackend::new().loss_grad(&input, &LossConfig::default(), g.view_mut()).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { what: "gradient", .. }));
    let mut wide = Array3::<f32>::zeros((1, 6, 12));
    let strided = wide.slice_mut(s![.., .., ..;2]);
    let err = CpuBackend::new().loss_grad(&input, &LossConfig::default(), strided).unwrap_err();
    assert_eq!(err, Error::Layout { what: "gradient" });
}

#[test]
fn non_contiguous_inputs_are_accepted() {
    let x = logits(2, 9);
    let y = symmetric_labels(2, 9);
    // A transposed view of a symmetric-label problem: same loss as the transposed copy.
    let xt = x.view().permuted_axes([0, 2, 1]);
    let owned = xt.to_owned();
    let a = CpuBackend::new().loss(&LossInput::new(xt, y.view()), &LossConfig::default()).unwrap();
    let b = CpuBackend::new().loss(&LossInput::new(owned.view(), y.view()), &LossConfig::default()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn empty_counted_set_gives_zero_loss_and_gradient() {
    let x = logits(2, 10);
    let y = Array3::<u8>::from_elem((2, 10, 10), 255);
    for strategy in Strategy::ALL {
        let cfg = LossConfig::default()
            .strategy(strategy)
            .penalty(Some(symseg_core::Penalty::new(symseg_core::PenaltyKind::L2)))
            .reduction(symseg_core::Reduction::SampleMean);
        let input = LossInput::new(x.view(), y.view());
        let mut g = Array3::<f32>::from_elem(x.raw_dim(), 1.0);
        let r = CpuBackend::new().loss_grad(&input, &cfg, g.view_mut()).unwrap();
        assert_eq!((r.loss, r.counted, r.nonempty_samples), (0.0, 0, 0));
        assert!(g.iter().all(|&v| v == 0.0));
    }
}

#[test]
fn symmetrise_shapes_are_checked() {
    let x = logits(1, 5);
    let mut out = Array3::<f32>::zeros((1, 5, 4));
    let err = CpuBackend::new().symmetrise(x.view(), SymMode::Average, out.view_mut()).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { what: "output", .. }));
}

#[test]
fn non_finite_logit_in_an_off_diagonal_tile_is_found_by_every_strategy() {
    let (mut x, y) = (logits(1, 150), symmetric_labels(1, 150));
    x[[0, 140, 3]] = f32::NAN; // mirror of (3, 140): tile pair (0..64, 128..150)
    x[[0, 100, 10]] = f32::INFINITY;
    for strategy in Strategy::ALL {
        let cfg = LossConfig::default().strategy(strategy);
        let err = loss_err(&x, &y, Region::default(), &cfg);
        assert!(matches!(err, Error::NonFiniteLogit { sample: 0, i: 100, j: 10, .. }), "{strategy}: {err:?}");
    }
}

#[test]
fn upper_and_lower_report_a_non_finite_logit_on_the_side_they_do_not_count() {
    let (x, y) = (logits(1, 150), symmetric_labels(1, 150));
    for (strategy, (i, j)) in
        [(Strategy::Upper, (140, 3)), (Strategy::Lower, (3, 140)), (Strategy::Lower, (7, 9))]
    {
        let mut x = x.clone();
        x[[0, i, j]] = f32::NAN;
        let cfg = LossConfig::default().strategy(strategy);
        let err = loss_err(&x, &y, Region::default(), &cfg);
        assert!(
            matches!(err, Error::NonFiniteLogit { sample: 0, i: ei, j: ej, .. } if (ei, ej) == (i, j)),
            "{strategy}: {err:?}"
        );
    }
}

/// One planted violation anywhere in a larger batch (odd sizes, padding, a mask,
/// a partial last tile, a tile's last column) is found by the vector
/// scan at every SIMD level and named at exactly its position, whichever order
/// the scan meets it in: the vector check only says "look closer", so a flag it
/// drops would let a broken batch through.
#[test]
fn a_single_violation_anywhere_is_found_at_every_simd_level() {
    use symseg_core::rng::Rng;
    use symseg_cpu::SimdLevel;
    let mut rng = Rng::new(0x5eed_5ca9);
    for (b, n) in [(2usize, 64usize), (2, 131), (1, 200)] {
        let lengths: Vec<usize> = (0..b).map(|s| if s == 0 { n } else { n - 7 }).collect();
        let x = logits(b, n);
        for trial in 0..24 {
            let s = rng.below(b);
            let len = lengths[s];
            // A position off the diagonal, half the time in a tile's last column.
            let i = rng.below(len);
            let mut j = if rng.chance(0.5) {
                (rng.below(len.div_ceil(64)) * 64 + 63).min(len - 1)
            } else {
                rng.below(len)
            };
            if j == i {
                j = (i + 1) % len;
            }
            let (lo, hi) = (i.min(j), i.max(j));
            let mut y = symmetric_labels(b, n);
            let mut m = Array3::<u8>::from_shape_fn((b, n, n), |(_, i, j)| u8::from((i * j) % 7 != 3));
            let (cfg, want) = match trial % 4 {
                0 => {
                    y[[s, i, j]] = 7;
                    y[[s, j, i]] = 7;
                    // Both copies are bad; the scan checks (lo, hi) before (hi, lo).
                    (LossConfig::default(), Error::BadLabel { sample: s, i: lo, j: hi, value: 7 })
                }
                1 => {
                    let upper = 1 - y[[s, lo, hi]];
                    y[[s, lo, hi]] = upper;
                    let lower = y[[s, hi, lo]];
                    (LossConfig::default(), Error::AsymmetricLabels { sample: s, i: lo, j: hi, upper, lower })
                }
                2 => {
                    y[[s, i, j]] = 255;
                    let (upper, lower) = (y[[s, lo, hi]], y[[s, hi, lo]]);
                    (
                        LossConfig::default().allow_asymmetric_labels(true),
                        Error::AsymmetricLabels { sample: s, i: lo, j: hi, upper, lower },
                    )
                }
                _ => {
                    m[[s, i, j]] = 1 - m[[s, i, j]];
                    let (upper, lower) = (m[[s, lo, hi]], m[[s, hi, lo]]);
                    (LossConfig::default(), Error::AsymmetricMask { sample: s, i: lo, j: hi, upper, lower })
                }
            };
            let input = LossInput::new(x.view(), y.view())
                .region(Region::default().lengths(&lengths).mask(m.view()).min_sep(trial % 3));
            for level in SimdLevel::available() {
                let backend = CpuBackend::new().with_simd(level).unwrap();
                let err = backend.loss(&input, &cfg).expect_err("a planted violation must be found");
                assert_eq!(err, want, "{level:?}, B={b} N={n}, sample {s} at ({i}, {j})");
            }
            // Outside its sample's length the same change is padding and passes.
            if len < n {
                let mut y2 = symmetric_labels(b, n);
                y2[[s, len + rng.below(n - len), rng.below(n)]] = 9;
                let input = LossInput::new(x.view(), y2.view()).region(Region::default().lengths(&lengths));
                assert!(CpuBackend::new().loss(&input, &LossConfig::default()).is_ok());
            }
        }
    }
}
