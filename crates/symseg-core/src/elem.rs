//! Per-element math of SPEC §2–3, in one place for every backend.
//!
//! Everything is evaluated from logits in a stable form (`log p = -softplus(-x)`,
//! `log q = -softplus(x)`), with one `exp` and one `ln_1p` per element, and the
//! closed-form focal derivatives that stay finite for `0 < gamma < 1`.

use crate::config::{ElementLoss, Penalty, PenaltyKind, PenaltyOn};

/// The floating-point operations the element math needs; implemented for `f32`
/// (backends) and `f64` (tests).
pub trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + Send
    + Sync
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Conversion (rounding for `f32`).
    fn from_f64(v: f64) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// `ln(1 + self)`, accurate near 0.
    fn ln_1p(self) -> Self;
    /// `self^e`.
    fn powf(self, e: Self) -> Self;
    /// `|self|`.
    fn abs(self) -> Self;
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

/// `sigmoid(x)`, `sigmoid(-x)`, `softplus(x)` and `softplus(-x)` from one `exp`.
#[derive(Debug, Clone, Copy)]
pub struct Logistic<T> {
    /// `p = sigmoid(x)`.
    pub p: T,
    /// `q = 1 - p = sigmoid(-x)`, computed without cancellation.
    pub q: T,
    /// `softplus(x) = -log q`.
    pub sp_pos: T,
    /// `softplus(-x) = -log p`.
    pub sp_neg: T,
}

impl<T: Real> Logistic<T> {
    /// Evaluates all four from `x` (one `exp`, one `ln_1p`).
    #[inline(always)]
    pub fn new(x: T) -> Self {
        let ax = x.abs();
        let e = (-ax).exp();
        let l = e.ln_1p();
        let inv = T::ONE / (T::ONE + e);
        if x >= T::ZERO {
            Logistic { p: inv, q: e * inv, sp_pos: x + l, sp_neg: l }
        } else {
            Logistic { p: e * inv, q: inv, sp_pos: l, sp_neg: l - x }
        }
    }
}

/// `sigmoid(x)`, stable for any `x`.
#[inline(always)]
pub fn sigmoid<T: Real>(x: T) -> T {
    Logistic::new(x).p
}

/// `(sigmoid(a) - sigmoid(b), p_a q_a, p_b q_b)`: the gap of two probabilities
/// and the slopes of both sigmoids, without cancellation.
///
/// Subtracting two rounded probabilities near 1 (or forming `1 - p` there)
/// loses every digit once `x` is a few dozen: in f32, `sigmoid(34) - sigmoid(33)`
/// and `sigmoid'(34)` both come out 0 where they are about 1e-15. Over the
/// common denominator `(1 + e_a)(1 + e_b)`, `e = exp(-|x|)`, the gap's
/// numerator is `e_b - e_a` (both non-negative), `e_a - e_b` (both negative)
/// or `±(1 - e_a e_b)` (signs differ), and the slope is `e / (1 + e)^2`; each
/// is as accurate as `e` itself.
///
/// ```
/// use symseg_core::elem::sigmoid_gap;
/// let (d, sa, sb) = sigmoid_gap(34.0f32, 33.0f32);
/// let want = (-33.0f64).exp() - (-34.0f64).exp(); // to 1e-14 relative
/// assert!((f64::from(d) - want).abs() < 1e-6 * want);
/// assert!((f64::from(sa) - (-34.0f64).exp()).abs() < 1e-6 * (-34.0f64).exp());
/// assert!(sb > sa);
/// ```
#[inline(always)]
pub fn sigmoid_gap<T: Real>(a: T, b: T) -> (T, T, T) {
    let (ea, eb) = ((-a.abs()).exp(), (-b.abs()).exp());
    let (ia, ib) = (T::ONE / (T::ONE + ea), T::ONE / (T::ONE + eb));
    let num = match (a >= T::ZERO, b >= T::ZERO) {
        (true, true) => eb - ea,
        (false, false) => ea - eb,
        (true, false) => T::ONE - ea * eb,
        (false, true) => ea * eb - T::ONE,
    };
    (num * (ia * ib), ea * ia * ia, eb * ib * ib)
}

/// `base^gamma` with exact shortcuts for the common integer exponents.
#[inline(always)]
fn pow_gamma<T: Real>(base: T, gamma: T, kind: GammaKind) -> T {
    match kind {
        GammaKind::Zero => T::ONE,
        GammaKind::One => base,
        GammaKind::Two => base * base,
        GammaKind::General => base.powf(gamma),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GammaKind {
    Zero,
    One,
    Two,
    General,
}

/// An [`ElementLoss`] with its parameters resolved for fast evaluation in `T`.
///
/// ```
/// use symseg_core::{ElementLoss, elem::ElemFn};
/// let f = ElemFn::<f64>::new(&ElementLoss::Bce { pos_weight: 1.0 });
/// let (l, g) = f.value_grad(0.0, true);
/// assert!((l - std::f64::consts::LN_2).abs() < 1e-15 && (g + 0.5).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ElemFn<T> {
    focal: bool,
    /// Weight of the positive term (`a1`, or `pos_weight` for BCE).
    w_pos: T,
    /// Weight of the negative term (`a0`; 1 for BCE).
    w_neg: T,
    gamma: T,
    gamma_kind: GammaKind,
}

impl<T: Real> ElemFn<T> {
    /// Resolves `loss` (assumed validated) for evaluation in `T`.
    pub fn new(loss: &ElementLoss) -> Self {
        match *loss {
            ElementLoss::Focal { alpha, gamma } => {
                let (a1, a0) = alpha.map_or((1.0, 1.0), |a| (a, 1.0 - a));
                let gamma_kind = if gamma == 0.0 {
                    GammaKind::Zero
                } else if gamma == 1.0 {
                    GammaKind::One
                } else if gamma == 2.0 {
                    GammaKind::Two
                } else {
                    GammaKind::General
                };
                ElemFn {
                    focal: true,
                    w_pos: T::from_f64(a1),
                    w_neg: T::from_f64(a0),
                    gamma: T::from_f64(gamma),
                    gamma_kind,
                }
            }
            ElementLoss::Bce { pos_weight } => ElemFn {
                focal: false,
                w_pos: T::from_f64(pos_weight),
                w_neg: T::ONE,
                gamma: T::ZERO,
                gamma_kind: GammaKind::Zero,
            },
        }
    }

    /// `(l(x, y), dl/dx)` for a positive (`pos = true`) or negative label (SPEC §2).
    #[inline(always)]
    pub fn value_grad(&self, x: T, pos: bool) -> (T, T) {
        let s = Logistic::new(x);
        if !self.focal {
            return if pos {
                (self.w_pos * s.sp_neg, -(self.w_pos * s.q))
            } else {
                (self.w_neg * s.sp_pos, self.w_neg * s.p)
            };
        }
        if pos {
            // l = -a1 q^g log p, dl/dx = a1 q^g (g p log p - q); both terms <= 0.
            let w = self.w_pos * pow_gamma(s.q, self.gamma, self.gamma_kind);
            (w * s.sp_neg, -(w * (self.gamma * s.p * s.sp_neg + s.q)))
        } else {
            // l = -a0 p^g log q, dl/dx = a0 p^g (p - g q log q); both terms >= 0.
            let w = self.w_neg * pow_gamma(s.p, self.gamma, self.gamma_kind);
            (w * s.sp_pos, w * (s.p + self.gamma * s.q * s.sp_pos))
        }
    }

    /// `l(x, y)` alone.
    #[inline(always)]
    pub fn value(&self, x: T, pos: bool) -> T {
        let s = Logistic::new(x);
        match (self.focal, pos) {
            (false, true) => self.w_pos * s.sp_neg,
            (false, false) => self.w_neg * s.sp_pos,
            (true, true) => self.w_pos * pow_gamma(s.q, self.gamma, self.gamma_kind) * s.sp_neg,
            (true, false) => self.w_neg * pow_gamma(s.p, self.gamma, self.gamma_kind) * s.sp_pos,
        }
    }
}

/// A [`Penalty`] resolved for evaluation in `T` (SPEC §3): `rho(t(a) - t(b))`
/// and its derivatives with respect to `a` and `b`, before `lambda * r_P`.
#[derive(Debug, Clone, Copy)]
pub struct PenaltyFn<T> {
    kind: PenaltyKind,
    on: PenaltyOn,
    delta: T,
}

impl<T: Real> PenaltyFn<T> {
    /// Resolves `penalty` (assumed validated).
    pub fn new(penalty: &Penalty) -> Self {
        let delta = match penalty.kind {
            PenaltyKind::Huber { delta } => T::from_f64(delta),
            _ => T::ZERO,
        };
        PenaltyFn { kind: penalty.kind, on: penalty.on, delta }
    }

    /// `(rho(d), d rho/d x_a, d rho/d x_b)` with `d = t(x_a) - t(x_b)`.
    #[inline(always)]
    pub fn value_grad(&self, xa: T, xb: T) -> (T, T, T) {
        let (d, dta, dtb) = match self.on {
            PenaltyOn::Logits => (xa - xb, T::ONE, T::ONE),
            PenaltyOn::Probs => sigmoid_gap(xa, xb),
        };
        let (rho, drho) = match self.kind {
            PenaltyKind::L1 => {
                // t is strictly increasing, so sign(d) = sign(xa - xb) exactly, even
                // where rounded probabilities of two nearby logits compare equal.
                let sign = if xa > xb {
                    T::ONE
                } else if xa < xb {
                    -T::ONE
                } else {
                    T::ZERO
                };
                (d.abs(), sign)
            }
            PenaltyKind::L2 => (d * d, (T::ONE + T::ONE) * d),
            PenaltyKind::Huber { .. } => {
                let half = T::from_f64(0.5);
                if d.abs() <= self.delta {
                    (half * d * d, d)
                } else {
                    let sign = if d > T::ZERO { T::ONE } else { -T::ONE };
                    (self.delta * (d.abs() - half * self.delta), self.delta * sign)
                }
            }
        };
        (rho, drho * dta, -(drho * dtb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal_focal(x: f64, y: bool, alpha: Option<f64>, gamma: f64) -> f64 {
        // SPEC §2 written literally, valid where p and q do not round to 0 or 1.
        let p = 1.0 / (1.0 + (-x).exp());
        let q = 1.0 - p;
        let (a1, a0) = alpha.map_or((1.0, 1.0), |a| (a, 1.0 - a));
        if y { -a1 * q.powf(gamma) * p.ln() } else { -a0 * p.powf(gamma) * q.ln() }
    }

    const GAMMAS: [f64; 6] = [0.0, 0.5, 1.0, 2.0, 2.5, 5.0];
    const ALPHAS: [Option<f64>; 3] = [None, Some(0.25), Some(0.9)];

    #[test]
    fn focal_value_matches_literal_formula_at_moderate_logits() {
        for &gamma in &GAMMAS {
            for &alpha in &ALPHAS {
                let f = ElemFn::<f64>::new(&ElementLoss::Focal { alpha, gamma });
                for k in -60..=60 {
                    let x = k as f64 * 0.13;
                    for y in [false, true] {
                        let want = literal_focal(x, y, alpha, gamma);
                        let (got, _) = f.value_grad(x, y);
                        assert!(
                            (got - want).abs() <= 1e-12 * want.abs().max(1e-300) + 1e-15,
                            "x={x} y={y} a={alpha:?} g={gamma}: {got} vs {want}"
                        );
                        assert_eq!(got, f.value(x, y));
                    }
                }
            }
        }
    }

    #[test]
    fn derivatives_match_central_differences() {
        let losses = GAMMAS
            .iter()
            .flat_map(|&gamma| ALPHAS.iter().map(move |&alpha| ElementLoss::Focal { alpha, gamma }))
            .chain([ElementLoss::Bce { pos_weight: 1.0 }, ElementLoss::Bce { pos_weight: 7.5 }]);
        for loss in losses {
            let f = ElemFn::<f64>::new(&loss);
            for k in -40..=40 {
                let x = k as f64 * 0.37 + 0.011;
                let h = 1e-5 * x.abs().max(1.0);
                for y in [false, true] {
                    let fd = (f.value(x + h, y) - f.value(x - h, y)) / (2.0 * h);
                    let (_, g) = f.value_grad(x, y);
                    assert!((fd - g).abs() <= 1e-7 * g.abs().max(1e-3), "{loss:?} x={x} y={y}: {g} vs {fd}");
                }
            }
        }
    }

    #[test]
    fn extreme_logits_stay_finite_and_f32_tracks_f64() {
        for &gamma in &GAMMAS {
            let loss = ElementLoss::Focal { alpha: Some(0.25), gamma };
            let f64fn = ElemFn::<f64>::new(&loss);
            let f32fn = ElemFn::<f32>::new(&loss);
            for x in [-100.0f32, -80.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 80.0, 100.0] {
                for y in [false, true] {
                    let (l, g) = f32fn.value_grad(x, y);
                    assert!(l.is_finite() && g.is_finite(), "x={x} gamma={gamma}");
                    let (lr, gr) = f64fn.value_grad(x as f64, y);
                    assert!(
                        (l as f64 - lr).abs() <= 2e-6 * lr.abs() + 1e-30,
                        "loss x={x} y={y} g={gamma}: {l} vs {lr}"
                    );
                    assert!(
                        (g as f64 - gr).abs() <= 2e-6 * gr.abs() + 1e-30,
                        "grad x={x} y={y} g={gamma}: {g} vs {gr}"
                    );
                }
            }
        }
    }

    #[test]
    fn penalty_derivatives_match_differences() {
        let kinds = [PenaltyKind::L1, PenaltyKind::L2, PenaltyKind::Huber { delta: 0.7 }];
        for kind in kinds {
            for on in [PenaltyOn::Logits, PenaltyOn::Probs] {
                let p = PenaltyFn::<f64>::new(&Penalty::new(kind).on(on));
                for (a, b) in [(0.3, -1.2), (2.0, 1.9), (-3.0, 4.0), (0.1, 0.5)] {
                    let (_, da, db) = p.value_grad(a, b);
                    let h = 1e-6;
                    let fa = (p.value_grad(a + h, b).0 - p.value_grad(a - h, b).0) / (2.0 * h);
                    let fb = (p.value_grad(a, b + h).0 - p.value_grad(a, b - h).0) / (2.0 * h);
                    assert!((fa - da).abs() < 1e-6 && (fb - db).abs() < 1e-6, "{kind:?} {on:?} ({a},{b})");
                }
            }
        }
        let l1 = PenaltyFn::<f64>::new(&Penalty::new(PenaltyKind::L1));
        assert_eq!(l1.value_grad(0.5, 0.5), (0.0, 0.0, 0.0));
    }
}
