//! The symmetry penalty of SPEC §3, branch-free for the vector kernels.

use symseg_core::{Penalty, PenaltyKind, PenaltyOn};

use super::fastmath::exp_nonpos;

/// No penalty (the tile kernels' `P` parameter).
pub(crate) const PEN_NONE: u8 = 0;
/// A penalty on logits.
pub(crate) const PEN_LOGITS: u8 = 1;
/// A penalty on probabilities.
pub(crate) const PEN_PROBS: u8 = 2;

/// A penalty resolved for the vector kernels (before `lambda * r_P`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastPenalty {
    probs: bool,
    /// 0 = l1, 1 = l2, 2 = huber.
    kind: u8,
    delta: f32,
}

impl FastPenalty {
    pub fn new(p: &Penalty) -> FastPenalty {
        let (kind, delta) = match p.kind {
            PenaltyKind::L1 => (0, 0.0),
            PenaltyKind::L2 => (1, 0.0),
            PenaltyKind::Huber { delta } => (2, delta as f32),
        };
        FastPenalty { probs: p.on == PenaltyOn::Probs, kind, delta }
    }

    /// [`PEN_LOGITS`] or [`PEN_PROBS`]: what this penalty compares.
    pub fn on(&self) -> u8 {
        if self.probs { PEN_PROBS } else { PEN_LOGITS }
    }

    /// 0 = l1, 1 = l2, 2 = huber.
    #[cfg(target_arch = "x86_64")]
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// Huber's `delta` (0 for the other kinds).
    #[cfg(target_arch = "x86_64")]
    pub fn delta(&self) -> f32 {
        self.delta
    }

    /// `(rho(d), d rho / d x_a, d rho / d x_b)` with `d = t(x_a) - t(x_b)`.
    /// `ON` is [`FastPenalty::on`] as a constant: as a run-time flag the
    /// sigmoids were if-converted and evaluated for penalties on logits too.
    #[inline(always)]
    pub fn value_grad<const F: bool, const ON: u8>(&self, xa: f32, xb: f32) -> (f32, f32, f32) {
        let sig = |x: f32| {
            let e = exp_nonpos::<F>(-x.abs());
            let inv = 1.0 / (1.0 + e);
            if x >= 0.0 { inv } else { e * inv }
        };
        let (ta, tb, dta, dtb) = if ON == PEN_PROBS {
            let (pa, pb) = (sig(xa), sig(xb));
            (pa, pb, pa * (1.0 - pa), pb * (1.0 - pb))
        } else {
            (xa, xb, 1.0, 1.0)
        };
        let d = ta - tb;
        let ad = d.abs();
        // t is increasing, so sign(d) = sign(xa - xb) even where rounded probabilities tie.
        let sign = if xa > xb {
            1.0
        } else if xa < xb {
            -1.0
        } else {
            0.0
        };
        let (rho, drho) = match self.kind {
            0 => (ad, sign),
            1 => (d * d, 2.0 * d),
            _ => {
                let inner = ad <= self.delta;
                (
                    if inner { 0.5 * d * d } else { self.delta * (ad - 0.5 * self.delta) },
                    if inner { d } else { self.delta * sign },
                )
            }
        };
        (rho, drho * dta, -(drho * dtb))
    }
}
