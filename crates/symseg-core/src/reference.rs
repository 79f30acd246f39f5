//! A float64 implementation of SPEC §1–5 written for clarity, not speed: the
//! oracle every backend's tests compare against.
//!
//! It shares nothing with the backends' code paths: element losses are SPEC §2's
//! formulas written out, the counted set is tested element by element, and every
//! gradient entry is the formula of SPEC §3's table (no pair tricks). Inputs are
//! assumed valid (validation has its own tests).

use crate::config::{ElementLoss, LossConfig, PenaltyKind, PenaltyOn, Reduction, Strategy, SymMode};

/// A batch for the reference: C-order `[batch, n, n]` slices.
#[derive(Debug, Clone, Copy)]
pub struct RefBatch<'a> {
    /// Logits (f64 so that finite differences are meaningful).
    pub logits: &'a [f64],
    /// Labels in {0, 1, 255}.
    pub labels: &'a [u8],
    /// Optional mask (0 excludes).
    pub mask: Option<&'a [u8]>,
    /// Optional per-sample lengths.
    pub lengths: Option<&'a [usize]>,
    /// `B`.
    pub batch: usize,
    /// `N`.
    pub n: usize,
    /// `min_sep`.
    pub min_sep: usize,
}

/// The reference's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RefOutput {
    /// Total loss.
    pub loss: f64,
    /// Reduced strategy loss.
    pub element_loss: f64,
    /// Penalty term.
    pub penalty: f64,
    /// `|S|`.
    pub counted: u64,
    /// Gradient, same layout as the logits.
    pub grad: Vec<f64>,
}

impl RefBatch<'_> {
    fn idx(&self, b: usize, i: usize, j: usize) -> usize {
        (b * self.n + i) * self.n + j
    }

    fn len(&self, b: usize) -> usize {
        self.lengths.map_or(self.n, |l| l[b])
    }

    /// `(i, j) in S_b` (SPEC §1).
    pub fn in_set(&self, b: usize, i: usize, j: usize) -> bool {
        let k = self.idx(b, i, j);
        i < self.len(b)
            && j < self.len(b)
            && i.abs_diff(j) >= self.min_sep
            && self.labels[k] != 255
            && self.mask.is_none_or(|m| m[k] != 0)
    }

    fn x(&self, b: usize, i: usize, j: usize) -> f64 {
        self.logits[self.idx(b, i, j)]
    }

    fn y(&self, b: usize, i: usize, j: usize) -> bool {
        self.labels[self.idx(b, i, j)] == 1
    }
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) }
}

/// SPEC §2: `(l(x, y), l'(x, y))`.
pub fn element(loss: &ElementLoss, x: f64, y: bool) -> (f64, f64) {
    let p = sigmoid(x);
    let q = sigmoid(-x);
    let log_p = -softplus(-x);
    let log_q = -softplus(x);
    match *loss {
        ElementLoss::Focal { alpha, gamma } => {
            let a1 = alpha.unwrap_or(1.0);
            let a0 = alpha.map_or(1.0, |a| 1.0 - a);
            if y {
                (-a1 * q.powf(gamma) * log_p, a1 * q.powf(gamma) * (gamma * p * log_p - q))
            } else {
                (-a0 * p.powf(gamma) * log_q, a0 * p.powf(gamma) * (p - gamma * q * log_q))
            }
        }
        ElementLoss::Bce { pos_weight: w } => {
            if y {
                (-w * log_p, -w * q)
            } else {
                (-log_q, p)
            }
        }
    }
}

fn rho(kind: PenaltyKind, d: f64) -> (f64, f64) {
    match kind {
        PenaltyKind::L1 => (d.abs(), if d == 0.0 { 0.0 } else { d.signum() }),
        PenaltyKind::L2 => (d * d, 2.0 * d),
        PenaltyKind::Huber { delta } => {
            if d.abs() <= delta {
                (d * d / 2.0, d)
            } else {
                (delta * (d.abs() - delta / 2.0), delta * d.signum())
            }
        }
    }
}

/// Per-sample reduction factors from per-sample term counts (SPEC §4).
fn factors(reduction: Reduction, counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    let nonempty = counts.iter().filter(|&&c| c > 0).count();
    counts
        .iter()
        .map(|&c| match reduction {
            Reduction::Sum => 1.0,
            Reduction::Mean if total > 0 => 1.0 / total as f64,
            Reduction::SampleMean if c > 0 => 1.0 / (c as f64 * nonempty as f64),
            _ => 0.0,
        })
        .collect()
}

/// Loss and gradient of SPEC §2–4, in f64.
pub fn loss_grad(bt: &RefBatch<'_>, cfg: &LossConfig) -> RefOutput {
    let (nb, n) = (bt.batch, bt.n);
    let mut grad = vec![0.0; nb * n * n];
    let l = |x: f64, y: bool| element(&cfg.loss, x, y);

    // Which elements carry a loss term for this strategy.
    let term = |b: usize, i: usize, j: usize| {
        bt.in_set(b, i, j)
            && match cfg.strategy {
                Strategy::Upper => i <= j,
                Strategy::Lower => i >= j,
                _ => true,
            }
    };
    let counts: Vec<u64> = (0..nb)
        .map(|b| {
            (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).filter(|&(i, j)| term(b, i, j)).count() as u64
        })
        .collect();
    let r = factors(cfg.reduction, &counts);

    let mut element_loss = 0.0;
    for b in 0..nb {
        for i in 0..n {
            for j in 0..n {
                if !term(b, i, j) {
                    continue;
                }
                let (xij, xji) = (bt.x(b, i, j), bt.x(b, j, i));
                let (yij, yji) = (bt.y(b, i, j), bt.y(b, j, i));
                let (value, g) = match cfg.strategy {
                    Strategy::Plain | Strategy::Upper | Strategy::Lower => l(xij, yij),
                    Strategy::Dual => (l(xij, yij).0 + l(xji, yij).0, l(xij, yij).1 + l(xij, yji).1),
                    Strategy::Average => {
                        let s = (xij + xji) / 2.0;
                        (l(s, yij).0, (l(s, yij).1 + l(s, yji).1) / 2.0)
                    }
                };
                element_loss += r[b] * value;
                grad[bt.idx(b, i, j)] = r[b] * g;
            }
        }
    }

    let mut penalty = 0.0;
    if let Some(p) = cfg.penalty {
        let pair_counts: Vec<u64> = (0..nb)
            .map(|b| {
                (0..n)
                    .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
                    .filter(|&(i, j)| bt.in_set(b, i, j))
                    .count() as u64
            })
            .collect();
        let rp = factors(cfg.reduction, &pair_counts);
        // SPEC's `t(x_ij) - t(x_ji)` and `t'`. On probabilities through
        // `sigmoid(x) = (1 + tanh(x/2)) / 2`, so the gap is
        // `sinh((a - b)/2) / (2 cosh(a/2) cosh(b/2))` and the slope `1 / (4 cosh^2(x/2))`:
        // subtracting rounded probabilities near 1 would give 0 for
        // `sigmoid(40) - sigmoid(39)` even in f64 (and `a - b` is exact for f32 logits).
        let gap = |a: f64, b: f64| match p.on {
            PenaltyOn::Logits => (a - b, 1.0, 1.0),
            PenaltyOn::Probs => {
                // Beyond ±600 the probabilities equal those at ±600 to 1e-260,
                // and sinh / cosh^2 would overflow to inf / inf.
                let (a, b) = (a.clamp(-600.0, 600.0), b.clamp(-600.0, 600.0));
                let (ca, cb) = ((a / 2.0).cosh(), (b / 2.0).cosh());
                (((a - b) / 2.0).sinh() / (2.0 * ca * cb), 1.0 / (4.0 * ca * ca), 1.0 / (4.0 * cb * cb))
            }
        };
        for b in 0..nb {
            for i in 0..n {
                for j in i + 1..n {
                    if !bt.in_set(b, i, j) {
                        continue;
                    }
                    let (d, dti, dtj) = gap(bt.x(b, i, j), bt.x(b, j, i));
                    let (v, dv) = rho(p.kind, d);
                    let w = p.weight * rp[b];
                    penalty += w * v;
                    grad[bt.idx(b, i, j)] += w * dv * dti;
                    grad[bt.idx(b, j, i)] -= w * dv * dtj;
                }
            }
        }
    }

    let counted = (0..nb)
        .map(|b| {
            (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).filter(|&(i, j)| bt.in_set(b, i, j)).count()
                as u64
        })
        .sum();
    RefOutput { loss: element_loss + penalty, element_loss, penalty, counted, grad }
}

/// SPEC §5's symmetrised prediction `z` of `x` (`[batch, n, n]`).
pub fn symmetrise(x: &[f64], batch: usize, n: usize, mode: SymMode) -> Vec<f64> {
    let at = |b: usize, i: usize, j: usize| x[(b * n + i) * n + j];
    let mut z = vec![0.0; batch * n * n];
    for b in 0..batch {
        for i in 0..n {
            for j in 0..n {
                z[(b * n + i) * n + j] = match mode {
                    SymMode::None => at(b, i, j),
                    SymMode::Average => (at(b, i, j) + at(b, j, i)) / 2.0,
                    SymMode::Upper => at(b, i.min(j), i.max(j)),
                    SymMode::Lower => at(b, i.max(j), i.min(j)),
                };
            }
        }
    }
    z
}
