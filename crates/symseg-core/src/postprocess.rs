//! Decoding steps that turn scores into a valid symmetric map: one-partner
//! decoding, pair-type masks (canonical RNA pairs), and choosing the threshold
//! or the triangle (`best-half`) on a validation set.

use crate::config::SymMode;
use crate::error::{Error, Result};

/// Greedy one-partner decoding: accept candidate pairs `(score, i, j)` (`i < j`)
/// from the highest score down, skipping any pair whose `i` or `j` is already
/// paired, so every index ends in at most one pair. Ties are broken by `(i, j)`
/// ascending. Returns the accepted pairs.
///
/// ```
/// use symseg_core::postprocess::one_partner;
/// let mut c = vec![(0.9, 0, 5), (0.8, 0, 4), (0.7, 1, 4), (0.6, 2, 3)];
/// assert_eq!(one_partner(&mut c, 6), vec![(0, 5), (1, 4), (2, 3)]);
/// ```
pub fn one_partner(candidates: &mut [(f64, usize, usize)], n: usize) -> Vec<(usize, usize)> {
    // `+ 0.0` makes -0.0 a +0.0, so equal scores tie by position whatever their sign bit.
    candidates.sort_unstable_by(|a, b| (b.0 + 0.0).total_cmp(&(a.0 + 0.0)).then((a.1, a.2).cmp(&(b.1, b.2))));
    let mut taken = vec![false; n];
    let mut out = Vec::new();
    for &(_, i, j) in candidates.iter() {
        if i != j && !taken[i] && !taken[j] {
            taken[i] = true;
            taken[j] = true;
            out.push((i, j));
        }
    }
    out
}

/// Whether two bases can form a canonical pair: Watson–Crick AU, CG and wobble GU
/// (either order, case-insensitive, `T` read as `U`).
pub fn canonical_pair(a: u8, b: u8) -> bool {
    let norm = |c: u8| match c.to_ascii_uppercase() {
        b'T' => b'U',
        other => other,
    };
    matches!(
        (norm(a), norm(b)),
        (b'A', b'U') | (b'U', b'A') | (b'C', b'G') | (b'G', b'C') | (b'G', b'U') | (b'U', b'G')
    )
}

/// The `n x n` pair-type mask of a sequence (1 where the two bases can pair
/// canonically), row-major, symmetric. `n >= seq.len()`; rows and columns past
/// the sequence are 0.
///
/// # Errors
/// [`Error::InvalidConfig`] if the sequence is longer than `n`.
pub fn canonical_mask(seq: &[u8], n: usize) -> Result<Vec<u8>> {
    if seq.len() > n {
        return Err(Error::InvalidConfig {
            param: "sequence",
            value: format!("length {}", seq.len()),
            reason: "longer than the map size N",
        });
    }
    let mut m = vec![0u8; n * n];
    for (i, &a) in seq.iter().enumerate() {
        for (j, &b) in seq.iter().enumerate() {
            m[i * n + j] = u8::from(canonical_pair(a, b));
        }
    }
    Ok(m)
}

/// `best-half` (SPEC §5): `upper` or `lower`, whichever has the higher F1 on a
/// validation set (`upper` on a tie).
pub fn best_half(f1_upper: f64, f1_lower: f64) -> SymMode {
    if f1_lower > f1_upper { SymMode::Lower } else { SymMode::Upper }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_zero_scores_tie_by_position() {
        for (a, b) in [(0.0, -0.0), (-0.0, 0.0)] {
            let mut c = vec![(b, 0, 2), (a, 0, 1)];
            assert_eq!(one_partner(&mut c, 3), vec![(0, 1)], "({a}, {b})");
        }
    }

    #[test]
    fn canonical_pairs() {
        for (a, b) in [(b'A', b'U'), (b'u', b'a'), (b'C', b'G'), (b'G', b'U'), (b'G', b'T')] {
            assert!(canonical_pair(a, b) && canonical_pair(b, a), "{} {}", a as char, b as char);
        }
        for (a, b) in [(b'A', b'A'), (b'A', b'C'), (b'C', b'U'), (b'N', b'G')] {
            assert!(!canonical_pair(a, b));
        }
        let m = canonical_mask(b"GAUC", 5).unwrap();
        assert_eq!(m[2], 1); // G-U
        assert_eq!(m[3], 1); // G-C
        assert_eq!(m[5 + 2], 1); // A-U
        assert_eq!(m[5 + 3], 0); // A-C
        assert_eq!(m[4 * 5], 0); // padding
        assert!(canonical_mask(b"GAUCA", 4).is_err());
    }

    #[test]
    fn one_partner_keeps_each_index_once() {
        let mut c = vec![(0.5, 0, 3), (0.9, 1, 3), (0.9, 0, 2), (0.1, 2, 3)];
        let got = one_partner(&mut c, 4);
        // 0.9 ties: (0, 2) before (1, 3); then (0, 3) and (2, 3) are blocked.
        assert_eq!(got, vec![(0, 2), (1, 3)]);
    }

    #[test]
    fn best_half_prefers_upper_on_ties() {
        assert_eq!(best_half(0.5, 0.5), SymMode::Upper);
        assert_eq!(best_half(0.4, 0.6), SymMode::Lower);
    }
}
