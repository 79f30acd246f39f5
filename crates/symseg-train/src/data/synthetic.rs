//! Synthetic RNA-like structures: random sequences whose stems are made of
//! complementary bases, so a model can learn them from pair features alone.

use symseg::rng::Rng;

use super::rna::RnaRecord;

/// `count` synthetic records with lengths in `min_len..=max_len`.
pub fn synthetic_rna(count: usize, seed: u64, min_len: usize, max_len: usize) -> Vec<RnaRecord> {
    let mut rng = Rng::new(seed ^ 0x5EED_DA7A);
    let bases = [b'A', b'C', b'G', b'U'];
    let complement = |b: u8, rng: &mut Rng| match b {
        b'A' => b'U',
        b'C' => b'G',
        b'G' => {
            if rng.chance(0.8) {
                b'C'
            } else {
                b'U'
            }
        }
        _ => b'A',
    };
    (0..count)
        .map(|k| {
            let len = min_len + rng.below(max_len - min_len + 1);
            let mut seq: Vec<u8> = (0..len).map(|_| bases[rng.below(4)]).collect();
            let mut paired = vec![false; len];
            let mut pairs = Vec::new();
            for _ in 0..len / 8 {
                let stem = 3 + rng.below(4);
                if len < 2 * stem + 5 {
                    break;
                }
                let i = rng.below(len - 2 * stem - 4);
                let j = i + 2 * stem + 3 + rng.below(len - i - 2 * stem - 3);
                let fits = (0..stem).all(|d| !paired[i + d] && !paired[j - d])
                    && pairs.iter().all(|&(a, b): &(usize, usize)| {
                        !((a < i && i < b && b < j) || (i < a && a < j && j < b))
                    });
                if fits {
                    for d in 0..stem {
                        paired[i + d] = true;
                        paired[j - d] = true;
                        seq[j - d] = complement(seq[i + d], &mut rng);
                        pairs.push((i + d, j - d));
                    }
                }
            }
            pairs.sort_unstable();
            RnaRecord {
                id: format!("synthetic_{k:04}"),
                sequence: String::from_utf8_lossy(&seq).into_owned(),
                pairs,
            }
        })
        .collect()
}
