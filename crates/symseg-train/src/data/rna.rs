//! RNA secondary structures: dot-bracket FASTA and `.bpseq` parsers, and the
//! pair features of UFold-type models.

use std::path::Path;

use ndarray::{Array2, Array3};

use crate::error::{TrainError, TrainResult};

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

/// Bracket types of dot-bracket notation, nested first, then pseudoknot levels.
pub const BRACKETS: [(char, char); 4] = [('(', ')'), ('[', ']'), ('{', '}'), ('<', '>')];

fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> TrainError {
    TrainError::Parse { path: path.to_path_buf(), line, message: message.into() }
}

/// Pairs of a dot-bracket string; `line` is for error messages.
pub fn parse_dot_bracket(structure: &str, path: &Path, line: usize) -> TrainResult<Vec<(usize, usize)>> {
    let mut stacks: [Vec<usize>; 4] = Default::default();
    let mut pairs = Vec::new();
    for (k, c) in structure.chars().enumerate() {
        if c == '.' || c == '-' || c == ',' || c == ':' || c == '_' {
            continue;
        }
        if let Some(t) = BRACKETS.iter().position(|b| b.0 == c) {
            stacks[t].push(k);
        } else if let Some(t) = BRACKETS.iter().position(|b| b.1 == c) {
            let i = stacks[t].pop().ok_or_else(|| {
                parse_err(path, line, format!("column {}: '{c}' closes a pair that was never opened", k + 1))
            })?;
            pairs.push((i, k));
        } else {
            return Err(parse_err(
                path,
                line,
                format!("column {}: '{c}' is not a dot-bracket character", k + 1),
            ));
        }
    }
    for (t, s) in stacks.iter().enumerate() {
        if let Some(&i) = s.last() {
            return Err(parse_err(
                path,
                line,
                format!("column {}: '{}' is never closed", i + 1, BRACKETS[t].0),
            ));
        }
    }
    pairs.sort_unstable();
    Ok(pairs)
}

/// The outcome of parsing a file that may hold bad records.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Good records.
    pub records: Vec<RnaRecord>,
    /// Errors of records skipped under `skip_bad`.
    pub skipped: Vec<TrainError>,
}

fn keep_or_fail(out: &mut Parsed, r: TrainResult<RnaRecord>, skip_bad: bool) -> TrainResult<()> {
    match r {
        Ok(rec) => out.records.push(rec),
        Err(e) if skip_bad => out.skipped.push(e),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Parses dot-bracket FASTA text: records of `>id`, sequence, structure.
///
/// # Errors
/// [`TrainError::Parse`] naming the file and line of the first bad record
/// (unless `skip_bad`, which collects them instead).
pub fn parse_dbn(text: &str, path: &Path, skip_bad: bool) -> TrainResult<Parsed> {
    parse_records(text, path, skip_bad, true)
}

/// Parses FASTA or dot-bracket FASTA: with `require_structure = false`, records
/// may hold a sequence alone (for prediction); they get no pairs.
///
/// # Errors
/// As [`parse_dbn`].
pub fn parse_records(
    text: &str,
    path: &Path,
    skip_bad: bool,
    require_structure: bool,
) -> TrainResult<Parsed> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(k, l)| (k + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut out = Parsed::default();
    let mut k = 0;
    while k < lines.len() {
        let (hl, header) = lines[k];
        let Some(id) = header.strip_prefix('>') else {
            // Not at a header: this record is broken; resynchronise at the next header.
            let err = parse_err(path, hl, "expected a '>id' header line");
            keep_or_fail(&mut out, Err(err), skip_bad)?;
            k += 1;
            while k < lines.len() && !lines[k].1.starts_with('>') {
                k += 1;
            }
            continue;
        };
        let body: Vec<(usize, &str)> =
            lines[k + 1..].iter().take_while(|(_, l)| !l.starts_with('>')).copied().collect();
        k += 1 + body.len();
        let rec = (|| {
            let (sl, seq, structure) = match body[..] {
                [(sl, seq), (tl, structure)] => (sl, seq, Some((tl, structure))),
                [(sl, seq)] if !require_structure => (sl, seq, None),
                _ => {
                    return Err(parse_err(
                        path,
                        hl,
                        format!(
                            "record '{id}' needs a sequence line and a structure line, found {} lines",
                            body.len()
                        ),
                    ));
                }
            };
            if let Some((c, ch)) = seq.chars().enumerate().find(|(_, c)| !c.is_ascii_alphabetic()) {
                return Err(parse_err(path, sl, format!("column {}: '{ch}' is not a base letter", c + 1)));
            }
            let pairs = match structure {
                None => Vec::new(),
                Some((tl, structure)) => {
                    if seq.chars().count() != structure.chars().count() {
                        return Err(parse_err(
                            path,
                            tl,
                            format!(
                                "structure has {} characters but the sequence has {}",
                                structure.chars().count(),
                                seq.chars().count()
                            ),
                        ));
                    }
                    parse_dot_bracket(structure, path, tl)?
                }
            };
            Ok(RnaRecord { id: id.trim().to_string(), sequence: seq.to_ascii_uppercase(), pairs })
        })();
        keep_or_fail(&mut out, rec, skip_bad)?;
    }
    Ok(out)
}

/// Parses one `.bpseq` structure (`index base partner` per line, 1-based, 0 = unpaired).
///
/// # Errors
/// [`TrainError::Parse`] naming the line.
pub fn parse_bpseq(text: &str, path: &Path) -> TrainResult<RnaRecord> {
    let mut seq = String::new();
    let mut partner: Vec<usize> = Vec::new();
    let mut lines_of: Vec<usize> = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let line_no = k + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || line.starts_with('#') {
            continue;
        }
        let Ok(index) = fields[0].parse::<usize>() else {
            if seq.is_empty() {
                continue; // header lines (Filename:, Organism:, ...) before the data
            }
            return Err(parse_err(path, line_no, format!("'{}' is not a base index", fields[0])));
        };
        if fields.len() != 3 {
            return Err(parse_err(path, line_no, "expected three fields: index base partner"));
        }
        if index != partner.len() + 1 {
            return Err(parse_err(
                path,
                line_no,
                format!("index {index} out of order (expected {})", partner.len() + 1),
            ));
        }
        let base = fields[1];
        if base.len() != 1 || !base.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(parse_err(path, line_no, format!("'{base}' is not a base letter")));
        }
        let j: usize = fields[2]
            .parse()
            .map_err(|_| parse_err(path, line_no, format!("'{}' is not a partner index", fields[2])))?;
        seq.push_str(&base.to_ascii_uppercase());
        partner.push(j);
        lines_of.push(line_no);
    }
    if partner.is_empty() {
        return Err(parse_err(path, 0, "no base lines"));
    }
    let n = partner.len();
    let mut pairs = Vec::new();
    for (i0, &j) in partner.iter().enumerate() {
        let i = i0 + 1;
        if j == 0 {
            continue;
        }
        if j > n || j == i || partner[j - 1] != i {
            return Err(parse_err(
                path,
                lines_of[i0],
                format!("base {i} pairs with {j}, which does not pair back"),
            ));
        }
        if i < j {
            pairs.push((i - 1, j - 1));
        }
    }
    let id = path.file_stem().map_or_else(|| "bpseq".to_string(), |s| s.to_string_lossy().to_string());
    Ok(RnaRecord { id, sequence: seq, pairs })
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

/// Dot-bracket notation of pairs (`i < j`, each base at most once): nested pairs
/// get `()`, and each pseudoknot level the next of `[]`, `{}`, `<>` (pairs that
/// would need a fifth level are dropped and counted in the second value).
pub fn to_dot_bracket(n: usize, pairs: &[(usize, usize)]) -> (String, usize) {
    let mut sorted = pairs.to_vec();
    sorted.sort_unstable();
    let mut levels: Vec<Vec<(usize, usize)>> = vec![Vec::new(); BRACKETS.len()];
    let mut out = vec!['.'; n];
    let mut dropped = 0;
    for (i, j) in sorted {
        let crosses = |&(a, b): &(usize, usize)| (a < i && i < b && b < j) || (i < a && a < j && j < b);
        match levels.iter().position(|lv| !lv.iter().any(crosses)) {
            Some(t) => {
                levels[t].push((i, j));
                out[i] = BRACKETS[t].0;
                out[j] = BRACKETS[t].1;
            }
            None => dropped += 1,
        }
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
    fn malformed_records_name_file_and_line() {
        let text = ">a\nGGAUCC\n((..))\n>b\nGGAUC\n((..))\n";
        let err = parse_dbn(text, p(), false).unwrap_err().to_string();
        assert!(err.starts_with("t.dbn:6:"), "{err}");
        let parsed = parse_dbn(text, p(), true).unwrap();
        assert_eq!((parsed.records.len(), parsed.skipped.len()), (1, 1));
        let err = parse_dbn(">a\nGGAUCC\n((..)(\n", p(), false).unwrap_err().to_string();
        assert!(err.contains("t.dbn:3:") && err.contains("never closed"), "{err}");
        let err = parse_dbn(">a\nGGAUCC\n((..)))\n", p(), false).unwrap_err().to_string();
        assert!(err.contains("t.dbn:3:"), "{err}");
        let err = parse_dbn("GGAUCC\n((..))\n", p(), false).unwrap_err().to_string();
        assert!(err.contains("t.dbn:1:") && err.contains("header"), "{err}");
        let err = parse_dbn(">a\nGGA1CC\n((..))\n", p(), false).unwrap_err().to_string();
        assert!(err.contains("t.dbn:2:"), "{err}");
    }

    #[test]
    fn bpseq_parses_and_checks_partners() {
        let text = "Filename: x\n1 G 6\n2 G 5\n3 A 0\n4 U 0\n5 C 2\n6 C 1\n";
        let r = parse_bpseq(text, Path::new("x.bpseq")).unwrap();
        assert_eq!(r.sequence, "GGAUCC");
        assert_eq!(r.pairs, vec![(0, 5), (1, 4)]);
        let bad = "1 G 6\n2 G 5\n3 A 0\n4 U 0\n5 C 2\n6 C 2\n";
        let err = parse_bpseq(bad, Path::new("x.bpseq")).unwrap_err().to_string();
        assert!(err.starts_with("x.bpseq:1:"), "{err}");
        let err = parse_bpseq("1 G 0\n3 A 0\n", Path::new("x.bpseq")).unwrap_err().to_string();
        assert!(err.starts_with("x.bpseq:2:"), "{err}");
    }

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
