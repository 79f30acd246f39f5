//! `symseg predict`: dot-bracket FASTA for RNA input, `.npy` probability maps otherwise.

use std::fmt::Write as _;

use ndarray::Array2;
use symseg::metrics::{score, sym_pair};
use symseg_train::data::DataKind;
use symseg_train::data::rna::to_dot_bracket;
use symseg_train::model::CpuOps;
use symseg_train::train::{decode_pairs, predict_all};

use crate::args::PredictArgs;
use crate::error::{CliError, CliResult};
use crate::{io, output};

/// Runs `symseg predict`.
pub fn run(args: &PredictArgs) -> CliResult<()> {
    let (ckpt, set) = super::eval::load(&args.checkpoint, &args.data, args.skip_bad, false)?;
    let logits = predict_all(&CpuOps::default(), &ckpt.arch, &ckpt.params, &set)?;
    let write_err = |e: std::io::Error| CliError::Write { path: args.out.clone(), message: e.to_string() };
    match set.kind {
        DataKind::Rna => {
            let mut text = String::new();
            let mut dropped = 0;
            for (s, l) in set.samples.iter().zip(&logits) {
                let pairs = decode_pairs(l, s.sequence.as_deref(), ckpt.config.min_sep, &ckpt.decode)?;
                let one_partner: Vec<(usize, usize)> = if ckpt.decode.one_partner {
                    pairs
                } else {
                    // Dot-bracket needs each base in at most one pair: keep the best-scoring ones.
                    let mut scored: Vec<(f64, usize, usize)> = pairs
                        .iter()
                        .map(|&(i, j)| (sym_pair(ckpt.decode.mode, l[[i, j]], l[[j, i]]).0, i, j))
                        .collect();
                    symseg::postprocess::one_partner(&mut scored, s.len())
                };
                let (db, d) = to_dot_bracket(s.len(), &one_partner);
                dropped += d;
                let _ = writeln!(text, ">{}\n{}\n{db}", s.id, s.sequence.as_deref().unwrap_or_default());
            }
            std::fs::write(&args.out, text).map_err(write_err)?;
            if dropped > 0 {
                eprintln_warning(&format!(
                    "{dropped} pair(s) needed more than 30 bracket levels and were left out"
                ));
            }
        }
        DataKind::Generic => {
            std::fs::create_dir_all(&args.out).map_err(write_err)?;
            for (s, l) in set.samples.iter().zip(&logits) {
                let n = s.len();
                let probs = Array2::from_shape_fn((n, n), |(i, j)| {
                    let (a, b) = if i <= j { (i, j) } else { (j, i) };
                    let (zab, zba) = sym_pair(ckpt.decode.mode, l[[a, b]], l[[b, a]]);
                    score(if i <= j { zab } else { zba }) as f32
                });
                io::write_array(&args.out.join(format!("{}.npy", s.id)), &probs.into_dyn())?;
            }
        }
    }
    output::table(&[("predictions", format!("{} ({} samples)", args.out.display(), set.samples.len()))])
}

fn eprintln_warning(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "warning: {msg}");
}
