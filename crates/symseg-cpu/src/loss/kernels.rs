//! One kernel per symmetry strategy (SPEC §3): what a counted unordered pair
//! `(i, j)`, `i < j`, or a counted diagonal element contributes.
//!
//! Kernels return the pair's loss terms unscaled and the two gradient entries
//! before the reduction factor `r`; the driver scales, adds the penalty and writes.
//! `G = false` skips derivatives for the loss-only path.

use crate::simd::elem::FastElem;

/// `(l, l')`, or `(l, 0)` without derivatives. The same element math as the
/// vector row pass, so `dual` stays exactly twice `plain`.
#[inline(always)]
fn eval<const G: bool>(f: &FastElem, x: f32, pos: bool) -> (f32, f32) {
    let (l, d) = f.eval(x, pos);
    (l, if G { d } else { 0.0 })
}

/// A strategy's per-pair math.
pub(crate) trait StrategyKernel: Sync {
    /// The element loss the kernel evaluates.
    fn elem(&self) -> FastElem;
    /// Loss terms of `(i, j)` and `(j, i)` together, and `(g_ij, g_ji) / r`.
    fn pair<const G: bool>(&self, xij: f32, xji: f32, yij: bool, yji: bool) -> (f64, f32, f32);
    /// Loss term of `(i, i)` and `g_ii / r`.
    fn diag<const G: bool>(&self, x: f32, y: bool) -> (f64, f32);
}

/// `plain`: every element on its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plain(pub FastElem);

impl StrategyKernel for Plain {
    fn elem(&self) -> FastElem {
        self.0
    }
    #[inline(always)]
    fn pair<const G: bool>(&self, xij: f32, xji: f32, yij: bool, yji: bool) -> (f64, f32, f32) {
        let a = eval::<G>(&self.0, xij, yij);
        let b = eval::<G>(&self.0, xji, yji);
        (f64::from(a.0) + f64::from(b.0), a.1, b.1)
    }
    #[inline(always)]
    fn diag<const G: bool>(&self, x: f32, y: bool) -> (f64, f32) {
        let (l, d) = eval::<G>(&self.0, x, y);
        (f64::from(l), d)
    }
}

/// `dual`: `l(x_ij, y_ij) + l(x_ji, y_ij)` at every counted `(i, j)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dual(pub FastElem);

impl StrategyKernel for Dual {
    fn elem(&self) -> FastElem {
        self.0
    }
    #[inline(always)]
    fn pair<const G: bool>(&self, xij: f32, xji: f32, yij: bool, yji: bool) -> (f64, f32, f32) {
        if yij == yji {
            // Symmetric labels: each logit meets the same label twice — exactly 2 x plain.
            let a = eval::<G>(&self.0, xij, yij);
            let b = eval::<G>(&self.0, xji, yij);
            return (2.0 * (f64::from(a.0) + f64::from(b.0)), 2.0 * a.1, 2.0 * b.1);
        }
        let a_own = eval::<G>(&self.0, xij, yij);
        let a_mirror = eval::<G>(&self.0, xij, yji);
        let b_own = eval::<G>(&self.0, xji, yji);
        let b_mirror = eval::<G>(&self.0, xji, yij);
        (
            f64::from(a_own.0) + f64::from(a_mirror.0) + f64::from(b_own.0) + f64::from(b_mirror.0),
            a_own.1 + a_mirror.1,
            b_own.1 + b_mirror.1,
        )
    }
    #[inline(always)]
    fn diag<const G: bool>(&self, x: f32, y: bool) -> (f64, f32) {
        let a = eval::<G>(&self.0, x, y);
        (2.0 * f64::from(a.0), 2.0 * a.1)
    }
}

/// `average`: the loss of `s = (x + x^T) / 2`; labels are symmetric (validated).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Average(pub FastElem);

impl StrategyKernel for Average {
    fn elem(&self) -> FastElem {
        self.0
    }
    #[inline(always)]
    fn pair<const G: bool>(&self, xij: f32, xji: f32, yij: bool, _yji: bool) -> (f64, f32, f32) {
        // (i,j) and (j,i) share one element loss: compute once, weight twice (SPEC §3).
        // Halve before adding so that two large finite logits cannot overflow.
        let a = eval::<G>(&self.0, 0.5 * xij + 0.5 * xji, yij);
        (2.0 * f64::from(a.0), a.1, a.1)
    }
    #[inline(always)]
    fn diag<const G: bool>(&self, x: f32, y: bool) -> (f64, f32) {
        let (l, d) = eval::<G>(&self.0, x, y);
        (f64::from(l), d)
    }
}

/// `upper`: only `i <= j` counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upper(pub FastElem);

impl StrategyKernel for Upper {
    fn elem(&self) -> FastElem {
        self.0
    }
    #[inline(always)]
    fn pair<const G: bool>(&self, xij: f32, _xji: f32, yij: bool, _yji: bool) -> (f64, f32, f32) {
        let a = eval::<G>(&self.0, xij, yij);
        (f64::from(a.0), a.1, 0.0)
    }
    #[inline(always)]
    fn diag<const G: bool>(&self, x: f32, y: bool) -> (f64, f32) {
        let (l, d) = eval::<G>(&self.0, x, y);
        (f64::from(l), d)
    }
}

/// `lower`: only `i >= j` counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lower(pub FastElem);

impl StrategyKernel for Lower {
    fn elem(&self) -> FastElem {
        self.0
    }
    #[inline(always)]
    fn pair<const G: bool>(&self, _xij: f32, xji: f32, _yij: bool, yji: bool) -> (f64, f32, f32) {
        let b = eval::<G>(&self.0, xji, yji);
        (f64::from(b.0), 0.0, b.1)
    }
    #[inline(always)]
    fn diag<const G: bool>(&self, x: f32, y: bool) -> (f64, f32) {
        let (l, d) = eval::<G>(&self.0, x, y);
        (f64::from(l), d)
    }
}
