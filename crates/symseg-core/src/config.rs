//! Configuration of a loss call (SPEC §2–4) and of a symmetrised prediction (SPEC §5).
//!
//! Every parameter is set by name — struct fields or builder methods — so `alpha`
//! and `gamma` can never be swapped by position. Defaults are those of SPEC §7.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The label value that marks a pair as ignored (SPEC §1).
pub const IGNORE_LABEL: u8 = 255;

/// The element loss `l(x, y)` (SPEC §2).
///
/// ```
/// use symseg_core::ElementLoss;
/// let focal = ElementLoss::Focal { alpha: Some(0.25), gamma: 2.0 };
/// assert_eq!(focal, ElementLoss::default());
/// let bce = ElementLoss::Bce { pos_weight: 3.0 };
/// assert!(bce.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ElementLoss {
    /// Focal loss, torchvision's convention: `alpha` weighs positives (`1 - alpha`
    /// negatives), `None` weighs both by 1; `gamma >= 0` is the focusing exponent.
    Focal {
        /// Weight of positives in `[0, 1]`, or `None` for no class weighting.
        alpha: Option<f64>,
        /// Focusing exponent, `>= 0` (0 gives alpha-weighted BCE).
        gamma: f64,
    },
    /// Binary cross-entropy with a weight `pos_weight > 0` on positives.
    Bce {
        /// Weight of the positive term.
        pos_weight: f64,
    },
}

impl Default for ElementLoss {
    fn default() -> Self {
        ElementLoss::Focal { alpha: Some(0.25), gamma: 2.0 }
    }
}

impl ElementLoss {
    /// Focal loss with SPEC §7's defaults (`alpha = 0.25`, `gamma = 2`).
    pub fn focal() -> Self {
        Self::default()
    }

    /// BCE with `pos_weight = 1`.
    pub fn bce() -> Self {
        ElementLoss::Bce { pos_weight: 1.0 }
    }

    /// The same loss with `alpha` replaced (focal only; BCE is returned unchanged).
    pub fn with_alpha(self, alpha: Option<f64>) -> Self {
        match self {
            ElementLoss::Focal { gamma, .. } => ElementLoss::Focal { alpha, gamma },
            other => other,
        }
    }

    /// The same loss with `gamma` replaced (focal only; BCE is returned unchanged).
    pub fn with_gamma(self, gamma: f64) -> Self {
        match self {
            ElementLoss::Focal { alpha, .. } => ElementLoss::Focal { alpha, gamma },
            other => other,
        }
    }

    /// Checks every parameter against its domain.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        match *self {
            ElementLoss::Focal { alpha, gamma } => {
                if let Some(a) = alpha
                    && !(0.0..=1.0).contains(&a)
                {
                    return Err(invalid("alpha", a, "must lie in [0, 1] (or be none)"));
                }
                if !(gamma.is_finite() && gamma >= 0.0) {
                    return Err(invalid("gamma", gamma, "must be finite and >= 0"));
                }
            }
            ElementLoss::Bce { pos_weight } => {
                if !(pos_weight.is_finite() && pos_weight > 0.0) {
                    return Err(invalid("pos_weight", pos_weight, "must be finite and > 0"));
                }
            }
        }
        Ok(())
    }
}

/// How the symmetry of the target enters the loss (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Every counted pair on its own: `sum_S l(x_ij, y_ij)`.
    #[default]
    Plain,
    /// `l(x_ij, y_ij) + l(x_ji, y_ij)`: with symmetric labels exactly twice `plain`.
    Dual,
    /// The loss of the symmetrised logits `s = (x + x^T) / 2`.
    Average,
    /// Only the upper triangle `i <= j` counts.
    Upper,
    /// Only the lower triangle `i >= j` counts.
    Lower,
}

impl Strategy {
    /// All strategies, in SPEC order.
    pub const ALL: [Strategy; 5] =
        [Strategy::Plain, Strategy::Dual, Strategy::Average, Strategy::Upper, Strategy::Lower];

    /// The name used by the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Plain => "plain",
            Strategy::Dual => "dual",
            Strategy::Average => "average",
            Strategy::Upper => "upper",
            Strategy::Lower => "lower",
        }
    }

    /// Whether the strategy is defined for asymmetric labels (only `plain` and `dual`).
    pub fn accepts_asymmetric_labels(self) -> bool {
        matches!(self, Strategy::Plain | Strategy::Dual)
    }
}

/// The penalty function `rho(d)` of the symmetry penalty (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PenaltyKind {
    /// `|d|`, with `rho'(0) = 0`.
    L1,
    /// `d^2`.
    L2,
    /// `d^2 / 2` for `|d| <= delta`, else `delta (|d| - delta / 2)`.
    Huber {
        /// Threshold between the quadratic and the linear part, `> 0`.
        delta: f64,
    },
}

/// What the symmetry penalty compares: `t(x) = x` or `t(x) = sigmoid(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyOn {
    /// Compare raw logits.
    #[default]
    Logits,
    /// Compare probabilities.
    Probs,
}

/// The optional symmetry penalty `P = weight * r_P * sum_{i<j} rho(t(x_ij) - t(x_ji))`.
///
/// ```
/// use symseg_core::{Penalty, PenaltyKind, PenaltyOn};
/// let p = Penalty::new(PenaltyKind::Huber { delta: 0.5 }).weight(0.1).on(PenaltyOn::Probs);
/// assert!(p.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Penalty {
    /// `rho`.
    pub kind: PenaltyKind,
    /// `t`.
    pub on: PenaltyOn,
    /// `lambda >= 0`.
    pub weight: f64,
}

impl Penalty {
    /// A penalty of the given kind on logits with weight 1.
    pub fn new(kind: PenaltyKind) -> Self {
        Penalty { kind, on: PenaltyOn::Logits, weight: 1.0 }
    }

    /// Sets `lambda`.
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    /// Sets what is compared.
    pub fn on(mut self, on: PenaltyOn) -> Self {
        self.on = on;
        self
    }

    /// Checks `weight >= 0` and `delta > 0`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(invalid("penalty_weight", self.weight, "must be finite and >= 0"));
        }
        if let PenaltyKind::Huber { delta } = self.kind
            && !(delta.is_finite() && delta > 0.0)
        {
            return Err(invalid("huber_delta", delta, "must be finite and > 0"));
        }
        Ok(())
    }
}

/// How element losses are combined (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// One mean over the whole counted set of the batch.
    #[default]
    Mean,
    /// Each sample's mean, then the mean over non-empty samples.
    SampleMean,
    /// The plain sum.
    Sum,
}

impl Reduction {
    /// All reductions.
    pub const ALL: [Reduction; 3] = [Reduction::Mean, Reduction::SampleMean, Reduction::Sum];

    /// The per-sample factors `r_b` (SPEC §4) from each sample's term count;
    /// every backend scales its per-sample sums by these.
    pub fn factors(self, counts: &[u64]) -> Vec<f64> {
        let total: u64 = counts.iter().sum();
        let nonempty = counts.iter().filter(|&&c| c > 0).count();
        counts
            .iter()
            .map(|&c| match self {
                Reduction::Sum => 1.0,
                Reduction::Mean if total > 0 => 1.0 / total as f64,
                Reduction::SampleMean if c > 0 => 1.0 / (c as f64 * nonempty as f64),
                _ => 0.0,
            })
            .collect()
    }

    /// The name used by the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::SampleMean => "sample-mean",
            Reduction::Sum => "sum",
        }
    }
}

/// Everything that defines a loss call except the data.
///
/// ```
/// use symseg_core::{ElementLoss, LossConfig, Reduction, Strategy};
/// let cfg = LossConfig::default()
///     .loss(ElementLoss::Focal { alpha: None, gamma: 1.5 })
///     .strategy(Strategy::Average)
///     .reduction(Reduction::SampleMean);
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossConfig {
    /// The element loss.
    pub loss: ElementLoss,
    /// The symmetry strategy.
    pub strategy: Strategy,
    /// The optional symmetry penalty.
    pub penalty: Option<Penalty>,
    /// The reduction.
    pub reduction: Reduction,
    /// Accept labels with `y[i,j] != y[j,i]` (values 0/1 only: ignore marks must
    /// still be mirrored so that the counted set stays symmetric). Only `plain`
    /// and `dual` are defined for such labels.
    pub allow_asymmetric_labels: bool,
}

impl LossConfig {
    /// Sets the element loss.
    pub fn loss(mut self, loss: ElementLoss) -> Self {
        self.loss = loss;
        self
    }

    /// Sets the symmetry strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets (or with `None` removes) the symmetry penalty.
    pub fn penalty(mut self, penalty: Option<Penalty>) -> Self {
        self.penalty = penalty;
        self
    }

    /// Sets the reduction.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// Opts out of the label symmetry check (`plain` and `dual` only).
    pub fn allow_asymmetric_labels(mut self, allow: bool) -> Self {
        self.allow_asymmetric_labels = allow;
        self
    }

    /// Checks every parameter and their combination.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the offending parameter.
    pub fn validate(&self) -> Result<()> {
        self.loss.validate()?;
        if let Some(p) = &self.penalty {
            p.validate()?;
        }
        if self.allow_asymmetric_labels && !self.strategy.accepts_asymmetric_labels() {
            return Err(Error::InvalidConfig {
                param: "allow_asymmetric_labels",
                value: self.strategy.as_str().to_string(),
                reason: "only the plain and dual strategies are defined for asymmetric labels",
            });
        }
        Ok(())
    }
}

/// How a prediction is made symmetric before thresholding (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymMode {
    /// `z = x`.
    None,
    /// `z = (x + x^T) / 2`.
    #[default]
    Average,
    /// `z_ij = x_{min(i,j), max(i,j)}`.
    Upper,
    /// `z_ij = x_{max(i,j), min(i,j)}`.
    Lower,
}

impl SymMode {
    /// All modes.
    pub const ALL: [SymMode; 4] = [SymMode::None, SymMode::Average, SymMode::Upper, SymMode::Lower];

    /// The name used by the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SymMode::None => "none",
            SymMode::Average => "average",
            SymMode::Upper => "upper",
            SymMode::Lower => "lower",
        }
    }
}

macro_rules! name_enum {
    ($ty:ty, $what:literal, [$($name:literal => $val:expr),+ $(,)?]) => {
        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($name => Ok($val),)+
                    other => Err(Error::InvalidConfig {
                        param: $what,
                        value: other.to_string(),
                        reason: concat!("expected one of: ", $($name, " "),+),
                    }),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

name_enum!(Strategy, "symmetry", [
    "plain" => Strategy::Plain, "dual" => Strategy::Dual, "average" => Strategy::Average,
    "upper" => Strategy::Upper, "lower" => Strategy::Lower,
]);
name_enum!(Reduction, "reduction", [
    "mean" => Reduction::Mean, "sample-mean" => Reduction::SampleMean, "sum" => Reduction::Sum,
]);
name_enum!(SymMode, "mode", [
    "none" => SymMode::None, "average" => SymMode::Average,
    "upper" => SymMode::Upper, "lower" => SymMode::Lower,
]);

fn invalid(param: &'static str, value: f64, reason: &'static str) -> Error {
    Error::InvalidConfig { param, value: value.to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_spec_section_7() {
        let c = LossConfig::default();
        assert_eq!(c.loss, ElementLoss::Focal { alpha: Some(0.25), gamma: 2.0 });
        assert_eq!(c.strategy, Strategy::Plain);
        assert_eq!(c.penalty, None);
        assert_eq!(c.reduction, Reduction::Mean);
        assert_eq!(SymMode::default(), SymMode::Average);
    }

    #[test]
    fn setters_touch_only_their_parameter() {
        let l = ElementLoss::focal().with_alpha(None).with_gamma(0.5);
        assert_eq!(l, ElementLoss::Focal { alpha: None, gamma: 0.5 });
        assert_eq!(ElementLoss::bce().with_gamma(3.0), ElementLoss::Bce { pos_weight: 1.0 });
    }

    #[test]
    fn out_of_domain_parameters_are_named() {
        let cases: [(LossConfig, &str); 7] = [
            (LossConfig::default().loss(ElementLoss::focal().with_alpha(Some(1.5))), "alpha"),
            (LossConfig::default().loss(ElementLoss::focal().with_gamma(-1.0)), "gamma"),
            (LossConfig::default().loss(ElementLoss::focal().with_gamma(f64::NAN)), "gamma"),
            (LossConfig::default().loss(ElementLoss::Bce { pos_weight: 0.0 }), "pos_weight"),
            (
                LossConfig::default().penalty(Some(Penalty::new(PenaltyKind::L1).weight(-0.1))),
                "penalty_weight",
            ),
            (
                LossConfig::default().penalty(Some(Penalty::new(PenaltyKind::Huber { delta: 0.0 }))),
                "huber_delta",
            ),
            (
                LossConfig::default().strategy(Strategy::Average).allow_asymmetric_labels(true),
                "allow_asymmetric_labels",
            ),
        ];
        for (cfg, name) in cases {
            match cfg.validate() {
                Err(Error::InvalidConfig { param, .. }) => assert_eq!(param, name),
                other => panic!("{name}: expected InvalidConfig, got {other:?}"),
            }
        }
        assert!(
            LossConfig::default().strategy(Strategy::Dual).allow_asymmetric_labels(true).validate().is_ok()
        );
    }

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
        }
        for r in Reduction::ALL {
            assert_eq!(r.as_str().parse::<Reduction>(), Ok(r));
        }
        for m in SymMode::ALL {
            assert_eq!(m.as_str().parse::<SymMode>(), Ok(m));
        }
        assert!(matches!("diagonal".parse::<Strategy>(), Err(Error::InvalidConfig { .. })));
    }
}
