//! # symseg-train
//!
//! An autograd-free trainer for sparse symmetric maps: a small fully
//! convolutional network (3x3 convolutions with growing dilation, ReLU, residual
//! connections, a 1x1 head) whose forward and backward passes are written by
//! hand, trained with AdamW on any symseg loss and symmetry strategy.
//!
//! - [`data`]: RNA structures (dot-bracket FASTA, `.bpseq`) as UFold-style pair
//!   features, generic `.npz` directories, synthetic data, and the embedded
//!   PDB-derived RNA set;
//! - [`model`]: the network and its [`model::ModelOps`] (CPU: im2col + matrix multiply);
//! - [`optim`]: AdamW with warm-up, cosine decay and clipping;
//! - [`train`]: the loop, evaluation and decoding selection; [`checkpoint`]: `model.ckpt`.
//!
//! ```
//! use symseg_train::data::Dataset;
//! use symseg_train::model::CpuOps;
//! use symseg_train::train::{TrainConfig, train};
//!
//! let data = Dataset::load("synthetic:4:1", false)?;
//! let cfg = TrainConfig { epochs: 1, width: 4, dilations: vec![1, 2], ..TrainConfig::default() };
//! let trained = train(&CpuOps::default(), &cfg, &data, None, &mut |_| {})?;
//! assert_eq!(trained.history.len(), 1);
//! assert!(trained.history[0].train_loss.is_finite());
//! # Ok::<(), symseg_train::error::TrainError>(())
//! ```
#![warn(missing_docs)]

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod model;
pub mod optim;
pub mod train;
