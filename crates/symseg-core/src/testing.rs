//! Test support shared by every backend's suite: a seeded generator of random
//! cases covering SPEC §1's corners, and SPEC §4's accuracy check against the
//! float64 [`reference`](crate::reference).

use crate::config::{ElementLoss, LossConfig, Penalty, PenaltyKind, PenaltyOn, Reduction, Strategy};
use crate::reference::{RefBatch, RefOutput};
pub use crate::rng::Rng;
use crate::validate::Dims;

/// A random loss configuration: focal (several gamma and alpha) or BCE, any
/// strategy and reduction, half the time a random penalty. The cross-backend
/// checks draw from this.
pub fn random_config(rng: &mut Rng) -> LossConfig {
    let loss = if rng.chance(0.8) {
        let gamma = [0.0, 0.5, 1.0, 2.0, 5.0][rng.below(5)];
        let alpha = [None, Some(0.25), Some(0.9)][rng.below(3)];
        ElementLoss::Focal { alpha, gamma }
    } else {
        ElementLoss::Bce { pos_weight: 0.5 + 4.0 * rng.uniform() }
    };
    let penalty = rng.chance(0.5).then(|| {
        let kind = [PenaltyKind::L1, PenaltyKind::L2, PenaltyKind::Huber { delta: 0.1 + rng.uniform() }]
            [rng.below(3)];
        let on = if rng.chance(0.5) { PenaltyOn::Logits } else { PenaltyOn::Probs };
        Penalty::new(kind).on(on).weight(rng.uniform())
    });
    LossConfig::default()
        .loss(loss)
        .strategy(Strategy::ALL[rng.below(5)])
        .reduction(Reduction::ALL[rng.below(3)])
        .penalty(penalty)
}

/// The `seed`-th draw of the cross-backend checks: a [`random_case`] and a
/// [`random_config`] from one generator, so a seed names a failure on every
/// backend; one in ten made confident (see [`CaseSpec::confident`]).
pub fn random_draw(seed: u64) -> (Case, LossConfig) {
    let mut rng = Rng::new(seed);
    let mut case = random_case(&mut rng);
    let mut cfg = random_config(&mut rng);
    // One draw in ten: confident, correct logits, BCE and a penalty on
    // probabilities, where probabilities round to 1 and the penalty must not
    // subtract them (BCE, as focal terms there fall below f32's range).
    if rng.chance(0.1) {
        case.make_confident(&mut rng);
        let kind = [PenaltyKind::L1, PenaltyKind::L2, PenaltyKind::Huber { delta: 0.5 }][rng.below(3)];
        cfg = cfg
            .loss(ElementLoss::Bce { pos_weight: 1.0 })
            .penalty(Some(Penalty::new(kind).on(PenaltyOn::Probs).weight(1.0)));
    }
    (case, cfg)
}

/// A random case for the cross-backend checks: sizes around tile and vector
/// widths (1 to 129), lengths, `min_sep`, masks (sometimes empty), ignore
/// labels and extreme logits.
pub fn random_case(rng: &mut Rng) -> Case {
    let sizes = [1, 2, 3, 7, 8, 9, 31, 63, 64, 65, 100, 129];
    let spec = CaseSpec {
        lengths: rng.chance(0.5),
        min_sep: if rng.chance(0.5) { rng.below(6) } else { 0 },
        mask: rng.chance(0.3),
        empty_mask: rng.chance(0.02),
        ignore: if rng.chance(0.5) { 0.1 } else { 0.0 },
        extreme: if rng.chance(0.3) { 0.05 } else { 0.0 },
        positive: 0.02 + 0.2 * rng.uniform(),
        ..CaseSpec::new(1 + rng.below(3), sizes[rng.below(sizes.len())])
    };
    Case::random(rng, &spec)
}

/// What a random case looks like.
#[derive(Debug, Clone)]
pub struct CaseSpec {
    /// `B`.
    pub batch: usize,
    /// `N`.
    pub n: usize,
    /// Draw per-sample lengths in `1..=N` (the first sample keeps `N`).
    pub lengths: bool,
    /// `min_sep`.
    pub min_sep: usize,
    /// Draw a random symmetric mask.
    pub mask: bool,
    /// Make the mask all zeros (an empty counted set).
    pub empty_mask: bool,
    /// Fraction of unordered pairs marked 255.
    pub ignore: f64,
    /// Fraction of positive pairs.
    pub positive: f64,
    /// Standard deviation of the logits.
    pub scale: f64,
    /// Fraction of logits set to ±80.
    pub extreme: f64,
    /// Draw 0/1 labels independently for `(i, j)` and `(j, i)` (ignore marks stay mirrored).
    pub asymmetric_labels: bool,
    /// Replace the logits by confident, correct ones: `|x|` in 15–75 with the
    /// sign of the label (random under 255). Probabilities then round to 0 or 1
    /// and the element loss is tiny, so what a penalty on probabilities does
    /// near 1 decides the result.
    pub confident: bool,
}

impl CaseSpec {
    /// A dense case of `batch` maps of size `n` with 5% positives and unit-scale logits.
    pub fn new(batch: usize, n: usize) -> Self {
        CaseSpec {
            batch,
            n,
            lengths: false,
            min_sep: 0,
            mask: false,
            empty_mask: false,
            ignore: 0.0,
            positive: 0.05,
            scale: 3.0,
            extreme: 0.0,
            asymmetric_labels: false,
            confident: false,
        }
    }
}

/// One random input: C-order `[B, N, N]` buffers.
#[derive(Debug, Clone)]
pub struct Case {
    /// Shape.
    pub dims: Dims,
    /// Logits.
    pub logits: Vec<f32>,
    /// Labels in {0, 1, 255}.
    pub labels: Vec<u8>,
    /// Optional symmetric mask.
    pub mask: Option<Vec<u8>>,
    /// Optional lengths.
    pub lengths: Option<Vec<usize>>,
    /// `min_sep`.
    pub min_sep: usize,
}

impl Case {
    /// Draws a case.
    pub fn random(rng: &mut Rng, spec: &CaseSpec) -> Case {
        let (b, n) = (spec.batch, spec.n);
        let dims = Dims { batch: b, n };
        let mut logits = Vec::with_capacity(dims.len());
        for _ in 0..dims.len() {
            let x = if rng.chance(spec.extreme) {
                if rng.chance(0.5) { 80.0 } else { -80.0 }
            } else {
                rng.normal() * spec.scale
            };
            logits.push(x as f32);
        }
        let mut labels = vec![0u8; dims.len()];
        let mut mask = spec.mask.then(|| vec![0u8; dims.len()]);
        for s in 0..b {
            for i in 0..n {
                for j in i..n {
                    let (a, t) = ((s * n + i) * n + j, (s * n + j) * n + i);
                    if rng.chance(spec.ignore) {
                        labels[a] = 255;
                        labels[t] = 255;
                    } else {
                        labels[a] = u8::from(rng.chance(spec.positive));
                        labels[t] = if spec.asymmetric_labels {
                            u8::from(rng.chance(spec.positive))
                        } else {
                            labels[a]
                        };
                    }
                    if let Some(m) = mask.as_mut() {
                        let v = if spec.empty_mask { 0 } else { u8::from(rng.chance(0.7)) };
                        m[a] = v;
                        m[t] = v;
                    }
                }
            }
        }
        let lengths =
            spec.lengths.then(|| (0..b).map(|s| if s == 0 { n } else { 1 + rng.below(n) }).collect());
        let mut case = Case { dims, logits, labels, mask, lengths, min_sep: spec.min_sep };
        if spec.confident {
            case.make_confident(rng);
        }
        case
    }

    /// Replaces the logits by confident, correct ones (see [`CaseSpec::confident`]).
    pub fn make_confident(&mut self, rng: &mut Rng) {
        for (x, &y) in self.logits.iter_mut().zip(&self.labels) {
            let positive = if y == 255 { rng.chance(0.5) } else { y == 1 };
            let magnitude = (15.0 + 60.0 * rng.uniform()) as f32;
            *x = if positive { magnitude } else { -magnitude };
        }
    }

    /// The logits widened to f64, for the reference.
    pub fn logits_f64(&self) -> Vec<f64> {
        self.logits.iter().map(|&v| f64::from(v)).collect()
    }

    /// This case as a reference batch over `logits` (from [`Case::logits_f64`]).
    pub fn ref_batch<'a>(&'a self, logits: &'a [f64]) -> RefBatch<'a> {
        RefBatch {
            logits,
            labels: &self.labels,
            mask: self.mask.as_deref(),
            lengths: self.lengths.as_deref(),
            batch: self.dims.batch,
            n: self.dims.n,
            min_sep: self.min_sep,
        }
    }
}

/// Checks a backend's loss and gradient against the reference to SPEC §4's accuracy:
/// loss relative error `<= 1e-5`, gradient relative L2 error `<= 1e-5`, every
/// element within `1e-4 * max|g_ref|`, and exactly zero where the reference is
/// outside the counted set.
///
/// # Errors
/// A message saying which bound failed and by how much.
pub fn check_against_reference(
    loss: f64,
    grad: Option<&[f32]>,
    reference: &RefOutput,
    batch: &RefBatch<'_>,
) -> Result<(), String> {
    let rl = reference.loss;
    if !loss.is_finite() || (loss - rl).abs() > 1e-5 * rl.abs() + 1e-300 {
        return Err(format!(
            "loss {loss:e} vs reference {rl:e} (rel err {:e})",
            (loss - rl).abs() / rl.abs()
        ));
    }
    let Some(grad) = grad else { return Ok(()) };
    if grad.len() != reference.grad.len() {
        return Err(format!("gradient has {} elements, reference {}", grad.len(), reference.grad.len()));
    }
    let gmax = reference.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let (mut err2, mut ref2) = (0.0f64, 0.0f64);
    let n = batch.n;
    for (k, (&g, &r)) in grad.iter().zip(&reference.grad).enumerate() {
        let (b, i, j) = (k / (n * n), (k / n) % n, k % n);
        if !batch.in_set(b, i, j) && g != 0.0 {
            return Err(format!("gradient {g:e} at ({b},{i},{j}) outside the counted set"));
        }
        let d = f64::from(g) - r;
        if !g.is_finite() || d.abs() > 1e-4 * gmax {
            return Err(format!("gradient at ({b},{i},{j}): {g:e} vs {r:e} (max |g_ref| {gmax:e})"));
        }
        err2 += d * d;
        ref2 += r * r;
    }
    if err2.sqrt() > 1e-5 * ref2.sqrt() {
        return Err(format!("gradient relative L2 error {:e}", (err2 / ref2).sqrt()));
    }
    Ok(())
}
