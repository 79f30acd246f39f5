//! Shift-tolerant matching (Mathews): a predicted pair `(i, j)` is correct when a
//! reference pair lies at `(i, j)`, `(i ± 1, j)` or `(i, j ± 1)`, each reference
//! pair matched at most once.

/// The number of predicted pairs matched to distinct reference pairs. `predicted`
/// and `reference` are `n x n` boolean maps (row-major) of the counted pairs.
///
/// Matching is deterministic: exact matches first, then the remaining predictions
/// in row-major order, each taking the first free reference pair among
/// `(i-1, j), (i+1, j), (i, j-1), (i, j+1)`.
pub fn shift_matches(predicted: &[bool], reference: &[bool], n: usize) -> u64 {
    let mut used = vec![false; n * n];
    let mut matched = vec![false; n * n];
    let mut count = 0u64;
    for k in 0..n * n {
        if predicted[k] && reference[k] {
            used[k] = true;
            matched[k] = true;
            count += 1;
        }
    }
    for k in 0..n * n {
        if !predicted[k] || matched[k] {
            continue;
        }
        let (i, j) = (k / n, k % n);
        let neighbours = [(i.wrapping_sub(1), j), (i + 1, j), (i, j.wrapping_sub(1)), (i, j + 1)];
        for (a, b) in neighbours {
            if a < n && b < n {
                let r = a * n + b;
                if reference[r] && !used[r] {
                    used[r] = true;
                    count += 1;
                    break;
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_pairs_match_once() {
        let n = 5;
        let mut p = vec![false; n * n];
        let mut r = vec![false; n * n];
        r[5 + 3] = true; // reference (1, 3)
        p[2 * 5 + 3] = true; // predicted (2, 3): shifted by one row
        p[5 + 4] = true; // predicted (1, 4): shifted by one column, same reference
        assert_eq!(shift_matches(&p, &r, n), 1);
        p[5 + 3] = true; // an exact prediction takes the reference first
        assert_eq!(shift_matches(&p, &r, n), 1);
        r[2 * 5 + 4] = true; // a second reference (2, 4) next to both shifted predictions
        assert_eq!(shift_matches(&p, &r, n), 2);
        let far = {
            let mut v = vec![false; n * n];
            v[4 * 5] = true;
            v
        };
        assert_eq!(shift_matches(&far, &r, n), 0);
    }
}
