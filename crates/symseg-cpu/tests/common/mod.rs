//! Helpers shared by the CPU backend's integration tests.
#![allow(dead_code)]

use ndarray::{Array3, ArrayView3};
use symseg_core::testing::{Case, check_against_reference};
use symseg_core::{
    ElementLoss, LossConfig, LossInput, LossReport, Penalty, PenaltyKind, PenaltyOn, Region, Result,
    TensorBackend,
};
use symseg_cpu::CpuBackend;

pub fn view<T>(case: &Case, data: &[T]) -> Array3<T>
where
    T: Clone,
{
    let [b, n, _] = case.dims.shape();
    Array3::from_shape_vec((b, n, n), data.to_vec()).expect("case buffers match their dims")
}

/// Runs the CPU backend on a case: loss with gradient, and loss alone.
pub fn run_cpu(
    backend: &CpuBackend,
    case: &Case,
    cfg: &LossConfig,
) -> Result<(LossReport, Vec<f32>, LossReport)> {
    let x = view(case, &case.logits);
    let y = view(case, &case.labels);
    let mask = case.mask.as_ref().map(|m| view(case, m));
    let mut region: Region<'_, ArrayView3<'_, u8>> = Region::default().min_sep(case.min_sep);
    if let Some(l) = case.lengths.as_deref() {
        region = region.lengths(l);
    }
    if let Some(m) = mask.as_ref() {
        region = region.mask(m.view());
    }
    let input = LossInput::new(x.view(), y.view()).region(region);
    let mut g = Array3::<f32>::from_elem(x.raw_dim(), f32::NAN);
    let with_grad = backend.loss_grad(&input, cfg, g.view_mut())?;
    let alone = backend.loss(&input, cfg)?;
    Ok((with_grad, g.into_raw_vec_and_offset().0, alone))
}

/// Checks the CPU backend against the f64 reference on `case`.
pub fn check(backend: &CpuBackend, case: &Case, cfg: &LossConfig, what: &str) {
    let (report, grad, alone) = run_cpu(backend, case, cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
    let x64 = case.logits_f64();
    let rb = case.ref_batch(&x64);
    let reference = symseg_core::reference::loss_grad(&rb, cfg);
    if let Err(msg) = check_against_reference(report.loss, Some(&grad), &reference, &rb) {
        panic!("{what}: {msg}\n  cfg = {cfg:?}");
    }
    if let Err(msg) = check_against_reference(alone.loss, None, &reference, &rb) {
        panic!("{what} (loss only): {msg}\n  cfg = {cfg:?}");
    }
    assert_eq!(report.counted, reference.counted, "{what}: counted");
    let pen_tol = 1e-5 * reference.penalty.abs() + 1e-300;
    assert!(
        (report.penalty - reference.penalty).abs() <= pen_tol,
        "{what}: penalty {} vs {}",
        report.penalty,
        reference.penalty
    );
}

pub fn element_losses() -> Vec<ElementLoss> {
    vec![
        ElementLoss::Focal { alpha: Some(0.25), gamma: 2.0 },
        ElementLoss::Focal { alpha: None, gamma: 0.5 },
        ElementLoss::Focal { alpha: Some(0.9), gamma: 5.0 },
        ElementLoss::Bce { pos_weight: 1.0 },
        ElementLoss::Bce { pos_weight: 3.5 },
    ]
}

pub fn penalties() -> Vec<Option<Penalty>> {
    let mut out = vec![None];
    for kind in [PenaltyKind::L1, PenaltyKind::L2, PenaltyKind::Huber { delta: 0.8 }] {
        for on in [PenaltyOn::Logits, PenaltyOn::Probs] {
            out.push(Some(Penalty::new(kind).on(on).weight(0.3)));
        }
    }
    out
}
