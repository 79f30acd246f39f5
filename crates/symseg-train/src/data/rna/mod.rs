//! RNA secondary structures: parsers for dot-bracket FASTA (`fasta`),
//! dot-bracket strings (`dot_bracket`) and per-base tables (`.bpseq`, `.ct`:
//! `tables`), and the pair features of UFold-type models.

mod dot_bracket;
mod fasta;
mod tables;

use std::path::Path;

pub use dot_bracket::{BRACKETS, LETTER_LEVELS, parse_dot_bracket, to_dot_bracket};
pub use fasta::{Parsed, parse_dbn, parse_records};
pub use tables::{parse_bpseq, parse_ct};

use ndarray::{Array2, Array3};

use crate::error::TrainError;

/// One RNA structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RnaRecord {
    /// Record id.
    pub id: String,
    /// Sequence (upper case as given).
    pub sequence: String,
    /// Base pairs `(i, j)`, `i < j`, 0-based.
    pub pairs: Vec<(usize, usize)>,
}

fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> TrainError {
    TrainError::Parse { path: path.to_path_buf(), line, message: message.into() }
}

/// `text` without a leading UTF-8 byte-order mark (editors on Windows write one).
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn base_index(c: u8) -> Option<usize> {
    match c.to_ascii_uppercase() {
        b'A' => Some(0),
        b'C' => Some(1),
        b'G' => Some(2),
        b'U' | b'T' => Some(3),
        _ => None,
    }
}

/// Channels of [`rna_features`].
pub const RNA_CHANNELS: usize = 17;

/// Pair features of a sequence, `17 x L x L`: the 16 outer-product one-hot
/// channels `[base_i][base_j]` and a canonical-pair channel (AU, CG, GU).
/// Unknown letters (N, modified bases) get all-zero one-hot entries.
pub fn rna_features(seq: &str) -> Array3<f32> {
    let s = seq.as_bytes();
    let n = s.len();
    let mut f = Array3::<f32>::zeros((RNA_CHANNELS, n, n));
    for i in 0..n {
        for j in 0..n {
            if let (Some(a), Some(b)) = (base_index(s[i]), base_index(s[j])) {
                f[[a * 4 + b, i, j]] = 1.0;
            }
            if symseg::postprocess::canonical_pair(s[i], s[j]) {
                f[[16, i, j]] = 1.0;
            }
        }
    }
    f
}

/// The symmetric `L x L` pairing matrix of a record.
pub fn pair_labels(rec: &RnaRecord) -> Array2<u8> {
    let n = rec.sequence.len();
    let mut y = Array2::<u8>::zeros((n, n));
    for &(i, j) in &rec.pairs {
        y[[i, j]] = 1;
        y[[j, i]] = 1;
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_one_hot_outer_products() {
        let f = rna_features("GAUN");
        assert_eq!(f.shape(), &[17, 4, 4]);
        assert_eq!(f[[2 * 4, 0, 1]], 1.0); // G x A
        assert_eq!(f[[16, 0, 2]], 1.0); // G-U canonical
        assert_eq!(f[[16, 1, 2]], 1.0); // A-U
        assert_eq!(f[[16, 0, 1]], 0.0);
        assert_eq!(f.slice(ndarray::s![.., 3, ..]).sum(), 0.0); // N has no one-hot
        let sum_per_pair = f.slice(ndarray::s![..16, 0, 1]).sum();
        assert_eq!(sum_per_pair, 1.0);
    }
}
