//! The element loss of SPEC §2 in one branch-free form for the vector kernels.
//!
//! With `z = x` for a negative label and `z = -x` for a positive one, focal and
//! BCE are `l = w * s^gamma * softplus(z)` with `s = sigmoid(z)`, and
//! `|dl/dx| = w * s^gamma * (gamma * (1 - s) * softplus(z) + s)`, negative for
//! positives (BCE is `gamma = 0` with `w = pos_weight` or 1).

use symseg_core::ElementLoss;

use super::fastmath::{exp_nonpos, fma, ln_1p_unit};

/// How `base^gamma` is evaluated: `GAMMA_0`, `GAMMA_1`, `GAMMA_2` by
/// multiplication, anything else as `exp(-gamma * -ln(base))`.
pub(crate) const GAMMA_0: u8 = 0;
pub(crate) const GAMMA_1: u8 = 1;
pub(crate) const GAMMA_2: u8 = 2;
pub(crate) const GAMMA_ANY: u8 = 3;

/// An element loss resolved for the vector kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastElem {
    pub w_pos: f32,
    pub w_neg: f32,
    pub gamma: f32,
    /// One of the `GAMMA_*` constants.
    pub kind: u8,
    /// Whether the kernels evaluating it use fused multiply-adds (every SIMD
    /// level but the portable one); the scalar paths follow it so that all
    /// paths of one call round identically.
    pub fused: bool,
}

impl FastElem {
    pub fn new(loss: &ElementLoss, fused: bool) -> FastElem {
        match *loss {
            ElementLoss::Focal { alpha, gamma } => {
                let (a1, a0) = alpha.map_or((1.0, 1.0), |a| (a, 1.0 - a));
                let kind = if gamma == 0.0 {
                    GAMMA_0
                } else if gamma == 1.0 {
                    GAMMA_1
                } else if gamma == 2.0 {
                    GAMMA_2
                } else {
                    GAMMA_ANY
                };
                FastElem { w_pos: a1 as f32, w_neg: a0 as f32, gamma: gamma as f32, kind, fused }
            }
            ElementLoss::Bce { pos_weight } => {
                FastElem { w_pos: pos_weight as f32, w_neg: 1.0, gamma: 0.0, kind: GAMMA_0, fused }
            }
        }
    }

    /// [`FastElem::value_grad`] with the exponent kind chosen at run time (the
    /// scalar tile-pair kernels; identical values, so every strategy agrees bit
    /// for bit with the vector row pass).
    #[inline(always)]
    pub fn eval(&self, x: f32, pos: bool) -> (f32, f32) {
        if self.fused { self.eval_as::<true>(x, pos) } else { self.eval_as::<false>(x, pos) }
    }

    #[inline(always)]
    fn eval_as<const F: bool>(&self, x: f32, pos: bool) -> (f32, f32) {
        match self.kind {
            GAMMA_0 => self.value_grad::<GAMMA_0, F>(x, pos),
            GAMMA_1 => self.value_grad::<GAMMA_1, F>(x, pos),
            GAMMA_2 => self.value_grad::<GAMMA_2, F>(x, pos),
            _ => self.value_grad::<GAMMA_ANY, F>(x, pos),
        }
    }

    /// `(l(x, y), dl/dx)`, branch-free (finite `x`), with fused multiply-adds if `F`.
    ///
    /// With `z = x` for a negative label and `z = -x` for a positive one, both
    /// cases are one: `l = w s^gamma softplus(z)` and
    /// `dl/dz = w s^gamma (gamma (1 - s) softplus(z) + s)` with `s = sigmoid(z)`,
    /// and `dl/dx = +-dl/dz`. That leaves two selects on the sign of `z`.
    #[inline(always)]
    pub fn value_grad<const K: u8, const F: bool>(&self, x: f32, pos: bool) -> (f32, f32) {
        let z = if pos { -x } else { x };
        let e = exp_nonpos::<F>(-x.abs());
        let inv = 1.0 / (1.0 + e);
        let l = ln_1p_unit::<F>(e);
        let ei = e * inv;
        let nonneg = z >= 0.0;
        // s = sigmoid(z), t = sigmoid(-z) = 1 - s, each from the side that
        // does not cancel.
        let s = if nonneg { inv } else { ei };
        let t = if nonneg { ei } else { inv };
        let sp = z.max(0.0) + l;
        let w = if pos { self.w_pos } else { self.w_neg };
        let pw = match K {
            GAMMA_0 => 1.0,
            GAMMA_1 => s,
            GAMMA_2 => s * s,
            // s^gamma = exp(-gamma * softplus(-z)).
            _ => exp_nonpos::<F>(-self.gamma * ((-z).max(0.0) + l)),
        };
        let wp = w * pw;
        // gamma * t for the integer exponents without a multiply (the same
        // bits: 2t is t + t exactly), and for gamma 0 no term at all: on Zen 4
        // the multiply pipes are what the lane loop is bound by.
        let mag = match K {
            GAMMA_0 => wp * s,
            GAMMA_1 => wp * fma::<F>(t, sp, s),
            GAMMA_2 => wp * fma::<F>(t + t, sp, s),
            _ => wp * fma::<F>(self.gamma * t, sp, s),
        };
        (wp * sp, if pos { -mag } else { mag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symseg_core::elem::ElemFn;

    #[test]
    fn matches_the_core_element_math() {
        let losses = [
            ElementLoss::Focal { alpha: Some(0.25), gamma: 2.0 },
            ElementLoss::Focal { alpha: None, gamma: 0.5 },
            ElementLoss::Focal { alpha: Some(0.9), gamma: 1.0 },
            ElementLoss::Focal { alpha: None, gamma: 0.0 },
            ElementLoss::Focal { alpha: Some(0.5), gamma: 5.0 },
            ElementLoss::Bce { pos_weight: 3.0 },
        ];
        for (loss, fused) in losses.into_iter().flat_map(|l| [(l, false), (l, true)]) {
            let fast = FastElem::new(&loss, fused);
            let exact = ElemFn::<f64>::new(&loss);
            let mut x = -90.0f32;
            while x <= 90.0 {
                for pos in [false, true] {
                    let (l, g) = fast.eval(x, pos);
                    let (lr, gr) = exact.value_grad(f64::from(x), pos);
                    // A general gamma evaluates base^gamma as exp(-gamma * softplus): the
                    // exponent's rounding scales with gamma * |x| (where the value is tiny).
                    let rel = 2e-6 * (1.0 + f64::from(fast.gamma) * f64::from(x.abs()) / 10.0);
                    assert!(
                        (f64::from(l) - lr).abs() <= rel * lr.abs() + 1e-37,
                        "{loss:?} x={x} y={pos}: {l} vs {lr}"
                    );
                    assert!(
                        (f64::from(g) - gr).abs() <= rel * gr.abs() + 1e-37,
                        "{loss:?} x={x} y={pos}: {g} vs {gr}"
                    );
                }
                x += 0.0731;
            }
        }
    }
}
