//! `symseg synth`: a small synthetic data set in the shapes `symseg loss` takes,
//! so every command can be tried without data of one's own.
//!
//! Labels are RNA-like: stems of 3–6 nested pairs, each index paired at most
//! once, symmetric. Logits are noisy scores that favour the true pairs, with
//! independent noise on `(i, j)` and `(j, i)`, so they are not symmetric.

use ndarray::{Array1, Array3};
use symseg::testing::Rng;

use crate::args::SynthArgs;
use crate::error::{CliError, CliResult};
use crate::{io, output};

/// A synthetic batch.
#[derive(Debug)]
pub struct Synthetic {
    /// `[B, N, N]` float32 logits.
    pub logits: Array3<f32>,
    /// `[B, N, N]` symmetric labels.
    pub labels: Array3<u8>,
    /// Per-sample lengths (the first sample is full length).
    pub lengths: Array1<i64>,
    /// A symmetric mask that drops about 10% of pairs.
    pub mask: Array3<u8>,
}

/// Draws a synthetic batch.
pub fn generate(batch: usize, n: usize, seed: u64) -> Synthetic {
    let mut rng = Rng::new(seed);
    let mut labels = Array3::<u8>::zeros((batch, n, n));
    let mut lengths = Array1::<i64>::zeros(batch);
    for b in 0..batch {
        let len = if b == 0 { n } else { n / 2 + rng.below(n - n / 2) };
        lengths[b] = len as i64;
        let mut paired = vec![false; len];
        for _ in 0..len / 6 {
            let stem = 3 + rng.below(4);
            if len < 2 * stem + 4 {
                break;
            }
            let i = rng.below(len - 2 * stem - 3);
            let j = i + 2 * stem + 3 + rng.below(len - i - 2 * stem - 3);
            if (0..stem).all(|k| !paired[i + k] && !paired[j - k]) {
                for k in 0..stem {
                    paired[i + k] = true;
                    paired[j - k] = true;
                    labels[[b, i + k, j - k]] = 1;
                    labels[[b, j - k, i + k]] = 1;
                }
            }
        }
    }
    let logits = Array3::from_shape_fn((batch, n, n), |(b, i, j)| {
        let base = if labels[[b, i, j]] == 1 { 1.5 } else { -3.0 };
        (base + 1.5 * rng.normal()) as f32
    });
    let mut mask = Array3::<u8>::ones((batch, n, n));
    for b in 0..batch {
        for i in 0..n {
            for j in i + 1..n {
                if labels[[b, i, j]] == 0 && rng.chance(0.1) {
                    mask[[b, i, j]] = 0;
                    mask[[b, j, i]] = 0;
                }
            }
        }
    }
    Synthetic { logits, labels, lengths, mask }
}

/// Runs `symseg synth`.
pub fn run(args: &SynthArgs) -> CliResult<()> {
    if args.n < 2 || args.batch < 1 {
        return Err(CliError::Usage("--n must be >= 2 and --batch >= 1".into()));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::Write { path: args.out.clone(), message: e.to_string() })?;
    let s = generate(args.batch, args.n, args.seed);
    let path = |name: &str| args.out.join(name);
    io::write_array(&path("logits.npy"), &s.logits.into_dyn())?;
    io::write_array(&path("labels.npy"), &s.labels.into_dyn())?;
    io::write_array(&path("lengths.npy"), &s.lengths.into_dyn())?;
    io::write_array(&path("mask.npy"), &s.mask.into_dyn())?;
    let shown = |name: &str| path(name).display().to_string();
    output::table(&[
        ("logits", shown("logits.npy")),
        ("labels", shown("labels.npy")),
        ("lengths", shown("lengths.npy")),
        ("mask", shown("mask.npy")),
    ])
}
