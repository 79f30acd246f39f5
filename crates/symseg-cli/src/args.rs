//! The command line's flags (clap derive: doc comments are the help) and their
//! mapping onto symseg's configuration, so the library never sees clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use symseg::{ElementLoss, LossConfig, Penalty, PenaltyKind, PenaltyOn, Reduction, Strategy};

use crate::error::CliResult;

/// symseg: losses for sparse symmetric binary maps (contact maps, RNA pairing, Hi-C).
#[derive(Debug, Parser)]
#[command(name = "symseg", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Loss (and optionally its gradient) of logits against symmetric labels (SPEC §7).
    Loss(LossArgs),
    /// Metrics of a symmetrised, thresholded (optionally decoded) prediction (SPEC §5–7).
    Metrics(MetricsArgs),
    /// Train a model with one symmetry strategy; writes model.ckpt, log.jsonl and report.md.
    Train(TrainArgs),
    /// Score a trained model on a data set.
    Eval(EvalArgs),
    /// Predict structures (dot-bracket) or probability maps with a trained model.
    Predict(PredictArgs),
    /// Train one model per symmetry strategy (same data, seeds, budget) and compare them.
    Compare(CompareArgs),
    /// Write a small synthetic data set (logits, labels, lengths, mask) as .npy files.
    Synth(SynthArgs),
}

/// Element loss names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossName {
    /// Focal loss (torchvision's convention).
    Focal,
    /// Binary cross-entropy.
    Bce,
}

/// Symmetry strategy names (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyName {
    /// Every pair on its own.
    Plain,
    /// Add l(x_ji, y_ij): exactly 2 x plain when labels are symmetric.
    Dual,
    /// Loss of (x + x^T) / 2.
    Average,
    /// Upper triangle only.
    Upper,
    /// Lower triangle only.
    Lower,
}

/// Penalty names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PenaltyName {
    /// No penalty.
    None,
    /// |d|.
    L1,
    /// d^2.
    L2,
    /// Huber with --huber-delta.
    Huber,
}

/// What the penalty compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PenaltyOnName {
    /// Logits.
    Logits,
    /// Probabilities.
    Probs,
}

/// Reduction names (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReductionName {
    /// One mean over the batch's counted set.
    Mean,
    /// Mean of per-sample means.
    SampleMean,
    /// Sum.
    Sum,
}

/// Backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// The CPU backend.
    Cpu,
    /// The CUDA backend (builds with the `cuda` feature; needs a driver and GPU).
    Cuda,
}

/// `alpha` or `none`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alpha(pub Option<f64>);

fn parse_alpha(s: &str) -> Result<Alpha, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Alpha(None));
    }
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is neither a number nor 'none'"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{v} is outside [0, 1]"));
    }
    Ok(Alpha(Some(v)))
}

fn parse_nonneg(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{v} must be finite and >= 0"));
    }
    Ok(v)
}

fn parse_positive(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{v} must be finite and > 0"));
    }
    Ok(v)
}

/// Where the counted set comes from: lengths, mask, min_sep (SPEC §1).
#[derive(Debug, Args)]
pub struct RegionArgs {
    /// Per-sample lengths, an integer .npy of shape [B]; the rest of each map is padding.
    #[arg(long, value_name = "L.npy")]
    pub lengths: Option<PathBuf>,
    /// A symmetric mask .npy of the logits' shape; 0 excludes a pair.
    #[arg(long, value_name = "M.npy")]
    pub mask: Option<PathBuf>,
    /// Only pairs with |i - j| >= K count (1 drops the diagonal).
    #[arg(long, allow_negative_numbers = true, value_name = "K", default_value_t = 0)]
    pub min_sep: usize,
}

/// The element-loss flags shared by `symseg loss`, `train` and `compare` (SPEC §7).
#[derive(Debug, Args)]
pub struct ElementFlags {
    /// Element loss.
    #[arg(long, value_enum, default_value_t = LossName::Focal)]
    pub loss: LossName,
    /// Focal weight of positives in [0, 1], or `none` [default: 0.25 for `loss`; none for
    /// `train` and `compare`, where 0.25 starves the ~1% positives of gradient].
    #[arg(long, allow_negative_numbers = true, value_name = "A|none", value_parser = parse_alpha)]
    pub alpha: Option<Alpha>,
    /// Focal exponent, >= 0 [default: 2].
    #[arg(long, allow_negative_numbers = true, value_name = "G", value_parser = parse_nonneg)]
    pub gamma: Option<f64>,
    /// BCE weight of positives, > 0 [default: 1].
    #[arg(long, allow_negative_numbers = true, value_name = "W", value_parser = parse_positive)]
    pub pos_weight: Option<f64>,
}

impl ElementFlags {
    /// The element loss these flags describe, with `default_alpha` when `--alpha`
    /// is not given. Flags that do not apply to the chosen loss are ignored and
    /// named by [`ElementFlags::ignored`], so one sweep script can pass every flag.
    pub fn element_loss(&self, default_alpha: Option<f64>) -> CliResult<ElementLoss> {
        let loss = match self.loss {
            LossName::Focal => ElementLoss::Focal {
                alpha: self.alpha.map_or(default_alpha, |a| a.0),
                gamma: self.gamma.unwrap_or(2.0),
            },
            LossName::Bce => ElementLoss::Bce { pos_weight: self.pos_weight.unwrap_or(1.0) },
        };
        loss.validate()?;
        Ok(loss)
    }

    /// The given flags that the chosen loss ignores, each with the reason.
    pub fn ignored(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        match self.loss {
            LossName::Focal if self.pos_weight.is_some() => {
                out.push("--pos-weight is ignored: it applies to --loss bce only")
            }
            LossName::Bce if self.alpha.is_some() || self.gamma.is_some() => {
                out.push("--alpha and --gamma are ignored: they apply to --loss focal only")
            }
            _ => {}
        }
        out
    }
}

/// The loss flags shared by `symseg loss` and `symseg train` (SPEC §7).
#[derive(Debug, Args)]
pub struct LossFlags {
    #[command(flatten)]
    pub element: ElementFlags,
    /// Symmetry strategy (`--strategy` is the same flag).
    #[arg(long, alias = "strategy", value_enum, default_value_t = StrategyName::Plain)]
    pub symmetry: StrategyName,
    /// Symmetry penalty added to the loss.
    #[arg(long, value_enum, default_value_t = PenaltyName::None)]
    pub penalty: PenaltyName,
    /// Penalty weight lambda, >= 0 [default: 1].
    #[arg(long, allow_negative_numbers = true, value_name = "W", value_parser = parse_nonneg)]
    pub penalty_weight: Option<f64>,
    /// What the penalty compares [default: logits].
    #[arg(long, value_enum)]
    pub penalty_on: Option<PenaltyOnName>,
    /// Huber threshold, > 0 [default: 1].
    #[arg(long, allow_negative_numbers = true, value_name = "D", value_parser = parse_positive)]
    pub huber_delta: Option<f64>,
    /// Reduction.
    #[arg(long, value_enum, default_value_t = ReductionName::Mean)]
    pub reduction: ReductionName,
    /// Accept labels with y[i,j] != y[j,i] (plain and dual only).
    #[arg(long)]
    pub allow_asymmetric_labels: bool,
}

/// `symseg loss`.
#[derive(Debug, Args)]
pub struct LossArgs {
    /// Logits, a float32 or float64 .npy of shape [B, N, N] or [N, N] (or an array of an
    /// .npz: FILE.npz:NAME, or FILE.npz holding one array or one named `logits` or `x`).
    #[arg(long, value_name = "X.npy")]
    pub logits: PathBuf,
    /// Labels of the same shape: 0, 1, or 255 (ignore); u8, bool, any integer or float.
    #[arg(long, value_name = "Y.npy")]
    pub labels: PathBuf,
    #[command(flatten)]
    pub region: RegionArgs,
    #[command(flatten)]
    pub flags: LossFlags,
    /// Write the float32 gradient, with the logits' shape, to this .npy file.
    #[arg(long, value_name = "G.npy")]
    pub grad_out: Option<PathBuf>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendName::Cpu)]
    pub backend: BackendName,
    /// Worker threads for the CPU backend [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_name = "T")]
    pub threads: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl LossFlags {
    /// The loss configuration these flags describe. Flags that do not apply to the
    /// chosen loss or penalty are ignored; [`LossFlags::ignored`] names them so the
    /// command can warn rather than fail a sweep that passes every flag.
    pub fn config(&self) -> CliResult<LossConfig> {
        self.config_with_alpha(Some(0.25))
    }

    /// As [`LossFlags::config`], with another default `alpha` when `--alpha` is not given.
    pub fn config_with_alpha(&self, default_alpha: Option<f64>) -> CliResult<LossConfig> {
        let loss = self.element.element_loss(default_alpha)?;
        let kind = match self.penalty {
            PenaltyName::None => None,
            PenaltyName::L1 => Some(PenaltyKind::L1),
            PenaltyName::L2 => Some(PenaltyKind::L2),
            PenaltyName::Huber => Some(PenaltyKind::Huber { delta: self.huber_delta.unwrap_or(1.0) }),
        };
        let penalty = kind.map(|k| {
            Penalty::new(k).weight(self.penalty_weight.unwrap_or(1.0)).on(match self.penalty_on {
                Some(PenaltyOnName::Probs) => PenaltyOn::Probs,
                _ => PenaltyOn::Logits,
            })
        });
        let strategy = match self.symmetry {
            StrategyName::Plain => Strategy::Plain,
            StrategyName::Dual => Strategy::Dual,
            StrategyName::Average => Strategy::Average,
            StrategyName::Upper => Strategy::Upper,
            StrategyName::Lower => Strategy::Lower,
        };
        let reduction = match self.reduction {
            ReductionName::Mean => Reduction::Mean,
            ReductionName::SampleMean => Reduction::SampleMean,
            ReductionName::Sum => Reduction::Sum,
        };
        let cfg = LossConfig::default()
            .loss(loss)
            .strategy(strategy)
            .penalty(penalty)
            .reduction(reduction)
            .allow_asymmetric_labels(self.allow_asymmetric_labels);
        cfg.validate()?;
        Ok(cfg)
    }

    /// The given flags that the chosen loss and penalty ignore, each with the reason.
    pub fn ignored(&self) -> Vec<&'static str> {
        let mut out = self.element.ignored();
        if self.penalty == PenaltyName::None && (self.penalty_weight.is_some() || self.penalty_on.is_some()) {
            out.push("--penalty-weight and --penalty-on are ignored without --penalty l1|l2|huber");
        }
        if self.huber_delta.is_some() && self.penalty != PenaltyName::Huber {
            out.push("--huber-delta is ignored: it applies to --penalty huber only");
        }
        out
    }
}

/// `symseg synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Samples.
    #[arg(long, allow_negative_numbers = true, default_value_t = 2)]
    pub batch: usize,
    /// Map size N.
    #[arg(long, allow_negative_numbers = true, default_value_t = 48)]
    pub n: usize,
    /// Random seed.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    pub seed: u64,
}

/// Symmetrising modes for `symseg metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeName {
    /// z = x.
    None,
    /// z = (x + x^T) / 2.
    Average,
    /// The upper triangle mirrored.
    Upper,
    /// The lower triangle mirrored.
    Lower,
    /// Upper or lower, whichever has the higher F1 on the validation set (needs --val-logits).
    BestHalf,
}

/// A threshold in [0, 1], or `best` (chosen to maximise F1 on the validation set).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdArg {
    /// A fixed threshold on sigmoid(z).
    Fixed(f64),
    /// Chosen on validation data.
    Best,
}

fn parse_threshold(s: &str) -> Result<ThresholdArg, String> {
    if s.eq_ignore_ascii_case("best") {
        return Ok(ThresholdArg::Best);
    }
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is neither a number nor 'best'"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{v} is outside [0, 1]"));
    }
    Ok(ThresholdArg::Fixed(v))
}

/// `symseg metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Logits, a float32 or float64 .npy of shape [B, N, N] or [N, N] (or an array of an
    /// .npz: FILE.npz:NAME, or FILE.npz holding one array or one named `logits` or `x`).
    #[arg(long, value_name = "X.npy")]
    pub logits: PathBuf,
    /// Labels of the same shape: 0, 1, or 255 (ignore).
    #[arg(long, value_name = "Y.npy")]
    pub labels: PathBuf,
    #[command(flatten)]
    pub region: RegionArgs,
    /// How logits are made symmetric before thresholding.
    #[arg(long, value_enum, default_value_t = ModeName::Average)]
    pub mode: ModeName,
    /// A pair is predicted iff sigmoid(z) >= T; `best` picks T on the validation set [default: 0.5].
    #[arg(long, allow_negative_numbers = true, value_name = "T|best", value_parser = parse_threshold)]
    pub threshold: Option<ThresholdArg>,
    /// One-partner decoding: keep the highest-scoring pairs so every index pairs at most once.
    #[arg(long)]
    pub one_partner: bool,
    /// A pair-type mask .npy (logits' shape) applied to predictions: 0 forbids a pair.
    #[arg(long, value_name = "P.npy", conflicts_with = "sequences")]
    pub pair_mask: Option<PathBuf>,
    /// RNA sequences (FASTA or dot-bracket FASTA, one record per sample): predictions are
    /// restricted to canonical pairs (AU, CG, GU).
    #[arg(long, value_name = "SEQ.fa")]
    pub sequences: Option<PathBuf>,
    /// Validation logits for --mode best-half and --threshold best.
    #[arg(long, value_name = "VX.npy", requires = "val_labels")]
    pub val_logits: Option<PathBuf>,
    /// Validation labels.
    #[arg(long, value_name = "VY.npy", requires = "val_logits")]
    pub val_labels: Option<PathBuf>,
    /// Validation lengths.
    #[arg(long, value_name = "VL.npy", requires = "val_logits")]
    pub val_lengths: Option<PathBuf>,
    /// Validation mask.
    #[arg(long, value_name = "VM.npy", requires = "val_logits")]
    pub val_mask: Option<PathBuf>,
    /// Worker threads for the CPU backend [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_name = "T")]
    pub threads: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendName::Cpu)]
    pub backend: BackendName,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `symseg train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data: an RNA structure file (dot-bracket FASTA .dbn/.fa, .bpseq, .ct), a
    /// directory of such files or of .npz files, or `synthetic[:COUNT[:SEED]]`
    /// [default: the embedded PDB-derived train.dbn].
    #[arg(long, value_name = "FILE|DIR")]
    pub data: Option<String>,
    /// Validation data, same forms [default: the embedded test.dbn when --data is not given].
    #[arg(long, value_name = "FILE|DIR")]
    pub val: Option<String>,
    /// Output directory [default: a new folder under runs/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub flags: LossFlags,
    /// Only pairs with |i - j| >= K count in the loss and the metrics.
    #[arg(long, allow_negative_numbers = true, value_name = "K", default_value_t = 4)]
    pub min_sep: usize,
    /// Passes over the training data.
    #[arg(long, allow_negative_numbers = true, value_name = "E", default_value_t = 30)]
    pub epochs: usize,
    /// Peak learning rate (AdamW, warm-up then cosine decay).
    #[arg(long, allow_negative_numbers = true, value_name = "LR", default_value_t = 0.01)]
    pub lr: f64,
    /// Samples per optimiser step.
    #[arg(long, allow_negative_numbers = true, value_name = "B", default_value_t = 8)]
    pub batch_size: usize,
    /// Hidden width of the network.
    #[arg(long, allow_negative_numbers = true, value_name = "W", default_value_t = 16)]
    pub width: usize,
    /// Seed of initialisation and shuffling.
    #[arg(long, allow_negative_numbers = true, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Skip malformed records (counted and reported) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// Leave out samples longer than N, in training and validation data (time and
    /// memory grow with N²) [default: keep all].
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub max_len: Option<usize>,
    /// Worker threads [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_name = "T")]
    pub threads: Option<usize>,
    /// Print the final summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `symseg eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A checkpoint written by `symseg train`.
    #[arg(long, value_name = "DIR/model.ckpt")]
    pub checkpoint: PathBuf,
    /// Data to score (same forms as `symseg train --data`).
    #[arg(long, value_name = "FILE|DIR")]
    pub data: String,
    /// Skip malformed records (counted and reported).
    #[arg(long)]
    pub skip_bad: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `symseg predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A checkpoint written by `symseg train`.
    #[arg(long, value_name = "DIR/model.ckpt")]
    pub checkpoint: PathBuf,
    /// Inputs: as `symseg train --data`, and FASTA records may hold a sequence alone.
    #[arg(long, value_name = "FILE|DIR")]
    pub data: String,
    /// Output: a dot-bracket FASTA file for RNA input, a directory of .npy probability maps otherwise.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Skip malformed records (counted and reported).
    #[arg(long)]
    pub skip_bad: bool,
}

/// `symseg compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Training data (same forms as `symseg train --data`) [default: the embedded train.dbn].
    #[arg(long, value_name = "FILE|DIR")]
    pub data: Option<String>,
    /// Validation data [default: the embedded test.dbn when --data is not given; required otherwise].
    #[arg(long, value_name = "FILE|DIR")]
    pub val: Option<String>,
    /// Output directory [default: a new folder under runs/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seeds per strategy (mean ± sd over seeds).
    #[arg(long, allow_negative_numbers = true, value_name = "K", default_value_t = 2)]
    pub seeds: usize,
    /// Epochs per run.
    #[arg(long, allow_negative_numbers = true, value_name = "E", default_value_t = 15)]
    pub epochs: usize,
    #[command(flatten)]
    pub element: ElementFlags,
    /// Weight of the l1 symmetry penalty in the `+ l1` variants.
    #[arg(long, allow_negative_numbers = true, value_name = "W", value_parser = parse_nonneg, default_value_t = 0.1)]
    pub penalty_weight: f64,
    /// Only pairs with |i - j| >= K count.
    #[arg(long, allow_negative_numbers = true, value_name = "K", default_value_t = 4)]
    pub min_sep: usize,
    /// Peak learning rate.
    #[arg(long, allow_negative_numbers = true, value_name = "LR", default_value_t = 0.01)]
    pub lr: f64,
    /// Hidden width.
    #[arg(long, allow_negative_numbers = true, value_name = "W", default_value_t = 16)]
    pub width: usize,
    /// Samples per optimiser step.
    #[arg(long, allow_negative_numbers = true, value_name = "B", default_value_t = 8)]
    pub batch_size: usize,
    /// First seed (seeds are S, S+1, ...).
    #[arg(long, allow_negative_numbers = true, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Skip malformed records (counted and reported).
    #[arg(long)]
    pub skip_bad: bool,
    /// Leave out samples longer than N, in training and validation data (time and
    /// memory grow with N²) [default: keep all].
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub max_len: Option<usize>,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}
