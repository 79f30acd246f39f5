//! The training loop: per-sample forward/backward in parallel (rayon across the
//! samples of a mini-batch), gradients summed in sample order (deterministic for
//! a seed and thread count), AdamW steps, validation each epoch, and the decoding
//! settings chosen on validation at the end.

use std::time::Instant;

use ndarray::{Array2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use symseg::metrics::{HostBatch, MetricsAccumulator, MetricsReport, PredictConfig, predicted, sym_pair};
use symseg::rng::Rng;
use symseg::{CpuBackend, Dims, LossConfig, LossInput, Region, SymMode, TensorBackend, postprocess};

use crate::data::{DataKind, Dataset, Sample};
use crate::error::{TrainError, TrainResult};
use crate::model::{Arch, ModelOps};
use crate::optim::{AdamW, AdamWConfig};

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Loss, strategy, penalty (the reduction applies within each sample; samples
    /// of a mini-batch are averaged, so `mean` trains like `sample-mean`).
    pub loss: LossConfig,
    /// Pairs closer than this do not count.
    pub min_sep: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per optimiser step.
    pub batch_size: usize,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Optimiser.
    pub optim: AdamWConfig,
    /// Hidden width.
    pub width: usize,
    /// Dilations of the residual blocks.
    pub dilations: Vec<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: LossConfig::default(),
            min_sep: 4,
            epochs: 30,
            batch_size: 8,
            seed: 0,
            optim: AdamWConfig::default(),
            width: 24,
            dilations: vec![1, 2, 4, 8, 16, 1],
        }
    }
}

impl TrainConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`TrainError::Config`] or the loss configuration's error.
    pub fn validate(&self) -> TrainResult<()> {
        self.loss.validate()?;
        let bad = |param, value: String, reason| Err(TrainError::Config { param, value, reason });
        if self.epochs == 0 {
            return bad("epochs", self.epochs.to_string(), "must be >= 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", self.batch_size.to_string(), "must be >= 1");
        }
        if !(self.optim.lr.is_finite() && self.optim.lr > 0.0) {
            return bad("lr", self.optim.lr.to_string(), "must be finite and > 0");
        }
        if self.width == 0 || self.dilations.contains(&0) {
            return bad("width/dilations", format!("{} {:?}", self.width, self.dilations), "must be >= 1");
        }
        Ok(())
    }
}

/// How predictions are decoded, chosen on validation data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decode {
    /// Symmetrising mode.
    pub mode: SymMode,
    /// Threshold on `sigmoid(z)`.
    pub threshold: f64,
    /// One-partner decoding.
    pub one_partner: bool,
    /// Restrict predictions to canonical pairs (RNA only).
    pub canonical: bool,
}

impl Default for Decode {
    fn default() -> Self {
        Decode { mode: SymMode::Average, threshold: 0.5, one_partner: false, canonical: false }
    }
}

/// Figures of one epoch (one line of `log.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Mean validation loss.
    pub val_loss: Option<f64>,
    /// Validation F1 (mode average, threshold 0.5).
    pub val_f1: Option<f64>,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_s: f64,
}

/// Progress events for a progress bar.
#[derive(Debug, Clone)]
pub enum Event {
    /// A mini-batch finished.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// Samples done in this epoch.
        done: usize,
        /// Samples per epoch.
        total: usize,
        /// Mean loss of the batch.
        loss: f64,
    },
    /// An epoch finished.
    Epoch(EpochLog),
}

/// A trained model.
#[derive(Debug, Clone)]
pub struct Trained {
    /// Architecture.
    pub arch: Arch,
    /// Parameters.
    pub params: Vec<f32>,
    /// Per-epoch figures.
    pub history: Vec<EpochLog>,
    /// Decoding chosen on validation.
    pub decode: Decode,
}

/// `(loss, d loss / d logits)` of one sample's logits.
fn sample_loss(
    logits: &Array2<f32>,
    s: &Sample,
    cfg: &TrainConfig,
    grad: bool,
) -> TrainResult<(f64, Option<Array2<f32>>)> {
    let x = logits.view().insert_axis(Axis(0));
    let y = s.labels.view().insert_axis(Axis(0));
    let input = LossInput::new(x, y).region(Region::default().min_sep(cfg.min_sep));
    let backend = CpuBackend::new();
    if grad {
        let mut g = ndarray::Array3::<f32>::zeros(x.raw_dim());
        let r = backend.loss_grad(&input, &cfg.loss, g.view_mut())?;
        Ok((r.loss, Some(g.index_axis_move(Axis(0), 0))))
    } else {
        Ok((backend.loss(&input, &cfg.loss)?.loss, None))
    }
}

/// Trains on `train`, validating on `val` after each epoch.
///
/// # Errors
/// A configuration error, or a loss error on bad data.
pub fn train<O: ModelOps>(
    ops: &O,
    cfg: &TrainConfig,
    train: &Dataset,
    val: Option<&Dataset>,
    on_event: &mut dyn FnMut(Event),
) -> TrainResult<Trained> {
    cfg.validate()?;
    if let Some(v) = val
        && v.channels != train.channels
    {
        return Err(TrainError::Dataset {
            path: v.source.clone().into(),
            message: format!("{} input channels, the training set has {}", v.channels, train.channels),
        });
    }
    let arch = Arch { channels: train.channels, width: cfg.width, dilations: cfg.dilations.clone() };
    let mut params = arch.init(cfg.seed);
    let n = train.samples.len();
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let mut opt = AdamW::new(cfg.optim, arch.decay_mask(), (steps_per_epoch * cfg.epochs) as u64);
    let mut rng = Rng::new(cfg.seed.wrapping_add(0xC0FFEE));
    let mut order: Vec<usize> = (0..n).collect();
    let mut history = Vec::new();
    let mut step = 0u64;
    for epoch in 1..=cfg.epochs {
        for k in (1..n).rev() {
            order.swap(k, rng.below(k + 1));
        }
        let start = Instant::now();
        let mut loss_sum = 0.0;
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let results: Vec<TrainResult<(f64, Vec<f32>)>> = chunk
                .par_iter()
                .map(|&i| {
                    let s = &train.samples[i];
                    let (logits, tape) = ops.forward(&arch, &params, s.features().view())?;
                    let (loss, dlogits) = sample_loss(&logits, s, cfg, true)?;
                    let mut g = vec![0.0f32; params.len()];
                    if let Some(d) = dlogits {
                        ops.backward(&arch, &params, &tape, d.view(), &mut g);
                    }
                    Ok((loss, g))
                })
                .collect();
            let mut grad = vec![0.0f32; params.len()];
            let mut batch_loss = 0.0;
            for r in results {
                let (loss, g) = r?;
                batch_loss += loss;
                grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
            }
            let scale = 1.0 / chunk.len() as f32;
            grad.iter_mut().for_each(|g| *g *= scale);
            opt.step(&mut params, &mut grad);
            step += 1;
            loss_sum += batch_loss;
            let done = (b * cfg.batch_size + chunk.len()).min(n);
            on_event(Event::Step { epoch, done, total: n, loss: batch_loss / chunk.len() as f64 });
        }
        let seconds = start.elapsed().as_secs_f64();
        let (val_loss, val_f1) = match val {
            Some(v) => {
                let logits = predict_all(ops, &arch, &params, v)?;
                let loss = v
                    .samples
                    .iter()
                    .zip(&logits)
                    .map(|(s, l)| sample_loss(l, s, cfg, false).map(|r| r.0))
                    .sum::<TrainResult<f64>>()?
                    / v.samples.len() as f64;
                let f1 = evaluate(v, &logits, cfg.min_sep, &Decode::default())?.f1;
                (Some(loss), Some(f1))
            }
            None => (None, None),
        };
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / n as f64,
            val_loss,
            val_f1,
            lr: opt.lr_at(step.saturating_sub(1)),
            seconds,
            samples_per_s: n as f64 / seconds,
        };
        history.push(log.clone());
        on_event(Event::Epoch(log));
    }
    let decode = match val {
        Some(v) => choose_decode(v, &predict_all(ops, &arch, &params, v)?, cfg.min_sep)?,
        None => Decode::default(),
    };
    Ok(Trained { arch, params, history, decode })
}

/// Logits of every sample (parallel over samples).
///
/// # Errors
/// A sample that does not fit the model.
pub fn predict_all<O: ModelOps>(
    ops: &O,
    arch: &Arch,
    params: &[f32],
    data: &Dataset,
) -> TrainResult<Vec<Array2<f32>>> {
    data.samples.par_iter().map(|s| ops.forward(arch, params, s.features().view()).map(|r| r.0)).collect()
}

/// SPEC §6 figures of `logits` against `data` with `decode`.
///
/// # Errors
/// Validation errors of the labels or a non-finite logit.
pub fn evaluate(
    data: &Dataset,
    logits: &[Array2<f32>],
    min_sep: usize,
    decode: &Decode,
) -> TrainResult<MetricsReport> {
    Ok(accumulate(data, logits, min_sep, decode)?.finish())
}

/// Scores every sample of `data` into one accumulator under `decode`.
fn accumulate(
    data: &Dataset,
    logits: &[Array2<f32>],
    min_sep: usize,
    decode: &Decode,
) -> TrainResult<MetricsAccumulator> {
    let pred = PredictConfig::default().mode(decode.mode).threshold(decode.threshold);
    let mut acc = MetricsAccumulator::new(pred, decode.one_partner);
    for (s, l) in data.samples.iter().zip(logits) {
        let n = s.len();
        let mask = match (&s.sequence, decode.canonical) {
            (Some(seq), true) => Some(postprocess::canonical_mask(seq.as_bytes(), n)?),
            _ => None,
        };
        let (x, y) = (l.as_standard_layout(), s.labels.as_standard_layout());
        let batch = HostBatch {
            dims: Dims { batch: 1, n },
            logits: x.as_slice().unwrap_or_default(),
            labels: y.as_slice().unwrap_or_default(),
            mask: None,
            pair_mask: mask.as_deref(),
            lengths: None,
            min_sep,
        };
        acc.add(&batch, None)?;
    }
    Ok(acc)
}

/// Chooses the decoding with the best validation F1: each symmetrising mode with
/// its best threshold, with and without one-partner decoding and (for RNA)
/// canonical-pair masking.
///
/// # Errors
/// As [`evaluate`].
pub fn choose_decode(data: &Dataset, logits: &[Array2<f32>], min_sep: usize) -> TrainResult<Decode> {
    let mut best = (Decode::default(), f64::NEG_INFINITY);
    for mode in SymMode::ALL {
        let plain = Decode { mode, ..Decode::default() };
        let acc = accumulate(data, logits, min_sep, &plain)?;
        let threshold = acc.scores().best_f1_threshold().0;
        let canon: &[bool] = if data.kind == DataKind::Rna { &[false, true] } else { &[false] };
        for one_partner in [false, true] {
            for &canonical in canon {
                let d = Decode { mode, threshold, one_partner, canonical };
                let f1 = evaluate(data, logits, min_sep, &d)?.f1;
                if f1 > best.1 {
                    best = (d, f1);
                }
            }
        }
    }
    Ok(best.0)
}

/// The predicted pairs `(i, j)`, `i < j`, of one sample's logits under `decode`.
///
/// # Errors
/// A sequence longer than the map.
pub fn decode_pairs(
    logits: &Array2<f32>,
    sequence: Option<&str>,
    min_sep: usize,
    decode: &Decode,
) -> TrainResult<Vec<(usize, usize)>> {
    let n = logits.nrows();
    let mask = match (sequence, decode.canonical) {
        (Some(seq), true) => Some(postprocess::canonical_mask(seq.as_bytes(), n)?),
        _ => None,
    };
    let mut cands = Vec::new();
    for i in 0..n {
        for j in (i + min_sep.max(1))..n {
            let (zij, zji) = sym_pair(decode.mode, logits[[i, j]], logits[[j, i]]);
            let z = if decode.mode == SymMode::None { 0.5 * (zij + zji) } else { zij };
            if predicted(z, decode.threshold) && mask.as_ref().is_none_or(|m| m[i * n + j] != 0) {
                cands.push((z, i, j));
            }
        }
    }
    if decode.one_partner {
        return Ok(postprocess::one_partner(&mut cands, n));
    }
    let mut pairs: Vec<(usize, usize)> = cands.into_iter().map(|(_, i, j)| (i, j)).collect();
    pairs.sort_unstable();
    Ok(pairs)
}

/// The precision–recall curve of `logits` on `data` under `mode`, highest
/// threshold first: `(threshold, precision, recall)`.
///
/// # Errors
/// As [`evaluate`].
pub fn pr_curve(
    data: &Dataset,
    logits: &[Array2<f32>],
    min_sep: usize,
    mode: SymMode,
) -> TrainResult<Vec<(f64, f64, f64)>> {
    let acc = accumulate(data, logits, min_sep, &Decode { mode, ..Decode::default() })?;
    Ok(acc.scores().pr_curve())
}
