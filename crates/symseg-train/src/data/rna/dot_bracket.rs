//! Dot-bracket notation: `()` for nested pairs, then `[]`, `{}`, `<>` and the
//! letter pairs `Aa` … `Zz` (bpRNA's convention) for pseudoknot levels.

use std::path::Path;

use super::parse_err;
use crate::error::TrainResult;

/// Bracket types of dot-bracket notation, nested first, then pseudoknot levels.
/// Deeper levels use letter pairs, upper case opening (see [`LETTER_LEVELS`]).
pub const BRACKETS: [(char, char); 4] = [('(', ')'), ('[', ']'), ('{', '}'), ('<', '>')];

/// Pseudoknot levels written as letter pairs `A…a` to `Z…z` after [`BRACKETS`].
pub const LETTER_LEVELS: usize = 26;

/// Characters that mark an unpaired base (`.` and the spellings other tools use).
fn is_unpaired(c: char) -> bool {
    matches!(c, '.' | '-' | ',' | ':' | '_')
}

/// The level of a bracket character and whether it opens a pair.
fn level_of(c: char) -> Option<(usize, bool)> {
    if let Some(t) = BRACKETS.iter().position(|b| b.0 == c) {
        return Some((t, true));
    }
    if let Some(t) = BRACKETS.iter().position(|b| b.1 == c) {
        return Some((t, false));
    }
    match c {
        'A'..='Z' => Some((BRACKETS.len() + usize::from(c as u8 - b'A'), true)),
        'a'..='z' => Some((BRACKETS.len() + usize::from(c as u8 - b'a'), false)),
        _ => None,
    }
}

/// The opening and closing character of `level`.
fn brackets_of(level: usize) -> (char, char) {
    match BRACKETS.get(level) {
        Some(&b) => b,
        None => {
            let k = (level - BRACKETS.len()) as u8;
            (char::from(b'A' + k), char::from(b'a' + k))
        }
    }
}

/// Pairs `(i, j)`, `i < j`, 0-based and sorted, of a dot-bracket string; `line`
/// is for error messages.
///
/// # Errors
/// [`crate::error::TrainError::Parse`] for a character that is neither a
/// bracket nor an unpaired mark, a closing bracket without its opening one, or
/// an opening bracket never closed.
pub fn parse_dot_bracket(structure: &str, path: &Path, line: usize) -> TrainResult<Vec<(usize, usize)>> {
    let mut stacks: Vec<Vec<usize>> = vec![Vec::new(); BRACKETS.len() + LETTER_LEVELS];
    let mut pairs = Vec::new();
    for (k, c) in structure.chars().enumerate() {
        if is_unpaired(c) {
            continue;
        }
        match level_of(c) {
            Some((t, true)) => stacks[t].push(k),
            Some((t, false)) => {
                let i = stacks[t].pop().ok_or_else(|| {
                    parse_err(
                        path,
                        line,
                        format!("column {}: '{c}' closes a pair that was never opened", k + 1),
                    )
                })?;
                pairs.push((i, k));
            }
            None => {
                return Err(parse_err(
                    path,
                    line,
                    format!("column {}: '{c}' is not a dot-bracket character", k + 1),
                ));
            }
        }
    }
    // Report the leftmost unclosed bracket, whatever its level.
    if let Some((t, &i)) =
        stacks.iter().enumerate().filter_map(|(t, s)| s.first().map(|i| (t, i))).min_by_key(|p| p.1)
    {
        return Err(parse_err(
            path,
            line,
            format!("column {}: '{}' is never closed", i + 1, brackets_of(t).0),
        ));
    }
    pairs.sort_unstable();
    Ok(pairs)
}

/// Dot-bracket notation of pairs (`i < j`, each base at most once): nested pairs
/// get `()`, and each pseudoknot level the next of `[]`, `{}`, `<>`, then
/// `Aa` … `Zz`. Pairs that would need a level beyond those 30 are dropped and
/// counted in the second value.
pub fn to_dot_bracket(n: usize, pairs: &[(usize, usize)]) -> (String, usize) {
    let mut sorted = pairs.to_vec();
    sorted.sort_unstable();
    let mut levels: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut out = vec!['.'; n];
    let mut dropped = 0;
    for (i, j) in sorted {
        let crosses = |&(a, b): &(usize, usize)| (a < i && i < b && b < j) || (i < a && a < j && j < b);
        let t = match levels.iter().position(|lv| !lv.iter().any(crosses)) {
            Some(t) => t,
            None if levels.len() < BRACKETS.len() + LETTER_LEVELS => {
                levels.push(Vec::new());
                levels.len() - 1
            }
            None => {
                dropped += 1;
                continue;
            }
        };
        levels[t].push((i, j));
        (out[i], out[j]) = brackets_of(t);
    }
    (out.into_iter().collect(), dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.dbn")
    }

    #[test]
    fn dot_bracket_with_pseudoknots_round_trips() {
        let s = "((..[[..))..]]{.}";
        let pairs = parse_dot_bracket(s, p(), 3).unwrap();
        assert_eq!(pairs, vec![(0, 9), (1, 8), (4, 13), (5, 12), (14, 16)]);
        let (back, dropped) = to_dot_bracket(s.len(), &pairs);
        assert_eq!(dropped, 0);
        assert_eq!(parse_dot_bracket(&back, p(), 1).unwrap(), pairs);
    }

    #[test]
    fn letter_pseudoknots_parse_as_bprna_writes_them() {
        // bpRNA: `Aa`, `Bb` for levels past `<>`; each letter pairs with its own case partner.
        let s = "(A[B)a]b..Cc";
        let pairs = parse_dot_bracket(s, p(), 1).unwrap();
        assert_eq!(pairs, vec![(0, 4), (1, 5), (2, 6), (3, 7), (10, 11)]);
        let err = parse_dot_bracket("A..b", p(), 7).unwrap_err().to_string();
        assert!(err.starts_with("t.dbn:7:") && err.contains("column 4") && err.contains("'b'"), "{err}");
        let err = parse_dot_bracket("..(A..)", p(), 2).unwrap_err().to_string();
        assert!(err.contains("column 4: 'A' is never closed"), "{err}");
    }

    #[test]
    fn deep_pseudoknots_use_letters_and_round_trip() {
        // Six mutually crossing pairs: (k, 6 + k) for k < 6 need six levels.
        let pairs: Vec<(usize, usize)> = (0..6).map(|k| (k, 6 + k)).collect();
        let (s, dropped) = to_dot_bracket(12, &pairs);
        assert_eq!((s.as_str(), dropped), ("([{<AB)]}>ab", 0));
        assert_eq!(parse_dot_bracket(&s, p(), 1).unwrap(), pairs);
        // 31 mutually crossing pairs: one more than the levels there are.
        let many: Vec<(usize, usize)> = (0..31).map(|k| (k, 31 + k)).collect();
        let (s, dropped) = to_dot_bracket(62, &many);
        assert_eq!(dropped, 1);
        assert_eq!(parse_dot_bracket(&s, p(), 1).unwrap(), many[..30].to_vec());
    }
}
