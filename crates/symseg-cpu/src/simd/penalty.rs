//! The symmetry penalty of SPEC §3, branch-free for the vector kernels.

use symseg_core::{Penalty, PenaltyKind, PenaltyOn};

use super::fastmath::{exp_nonpos, fma};

/// No penalty (the tile kernels' `P` parameter).
pub(crate) const PEN_NONE: u8 = 0;
/// A penalty on logits.
pub(crate) const PEN_LOGITS: u8 = 1;
/// A penalty on probabilities.
pub(crate) const PEN_PROBS: u8 = 2;

/// [`FastPenalty::kind`]: l1.
pub(crate) const KIND_L1: u8 = 0;
/// [`FastPenalty::kind`]: l2.
pub(crate) const KIND_L2: u8 = 1;
/// [`FastPenalty::kind`]: Huber.
pub(crate) const KIND_HUBER: u8 = 2;

/// A penalty resolved for the vector kernels (before `lambda * r_P`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FastPenalty {
    probs: bool,
    /// [`KIND_L1`], [`KIND_L2`] or [`KIND_HUBER`].
    kind: u8,
    delta: f32,
}

impl FastPenalty {
    pub fn new(p: &Penalty) -> FastPenalty {
        let (kind, delta) = match p.kind {
            PenaltyKind::L1 => (KIND_L1, 0.0),
            PenaltyKind::L2 => (KIND_L2, 0.0),
            PenaltyKind::Huber { delta } => (KIND_HUBER, delta as f32),
        };
        FastPenalty { probs: p.on == PenaltyOn::Probs, kind, delta }
    }

    /// [`PEN_LOGITS`] or [`PEN_PROBS`]: what this penalty compares.
    pub fn on(&self) -> u8 {
        if self.probs { PEN_PROBS } else { PEN_LOGITS }
    }

    /// [`KIND_L1`], [`KIND_L2`] or [`KIND_HUBER`].
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// Huber's `delta` (0 for the other kinds).
    #[cfg(target_arch = "x86_64")]
    pub fn delta(&self) -> f32 {
        self.delta
    }

    /// `(rho(d), d rho / d x_a, d rho / d x_b)` with `d = t(x_a) - t(x_b)`.
    /// `ON` is [`FastPenalty::on`] and `KIND` is [`FastPenalty::kind`], as
    /// constants: as run-time values they were if-converted, every kind and
    /// the sigmoids evaluated in every lane, and LLVM's cost model then left
    /// some lane loops scalar (NEON, SSE2).
    #[inline(always)]
    pub fn value_grad<const F: bool, const ON: u8, const KIND: u8>(
        &self,
        xa: f32,
        xb: f32,
    ) -> (f32, f32, f32) {
        debug_assert_eq!(KIND, self.kind);
        // The gap and slopes as `symseg_core::elem::sigmoid_gap` (no cancellation
        // near p = 1), with the fast `exp`.
        let (d, dta, dtb) = if ON == PEN_PROBS {
            let (ea, eb) = (exp_nonpos::<F>(-xa.abs()), exp_nonpos::<F>(-xb.abs()));
            let (ia, ib) = (1.0 / (1.0 + ea), 1.0 / (1.0 + eb));
            let num = match (xa >= 0.0, xb >= 0.0) {
                (true, true) => eb - ea,
                (false, false) => ea - eb,
                (true, false) => fma::<F>(-ea, eb, 1.0),
                (false, true) => fma::<F>(ea, eb, -1.0),
            };
            (num * (ia * ib), ea * ia * ia, eb * ib * ib)
        } else {
            (xa - xb, 1.0, 1.0)
        };
        let ad = d.abs();
        // t is increasing, so sign(d) = sign(xa - xb) even where rounded probabilities tie.
        let sign = if xa > xb {
            1.0
        } else if xa < xb {
            -1.0
        } else {
            0.0
        };
        let (rho, drho) = match KIND {
            KIND_L1 => (ad, sign),
            KIND_L2 => (d * d, 2.0 * d),
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
