//! Per-base table formats: `.bpseq` (`index base partner`) and connectivity
//! tables `.ct` (RNAstructure, mfold, ViennaRNA's `b2ct`), several structures
//! per file.

use std::path::Path;

use super::{RnaRecord, parse_err, without_bom};
use crate::error::TrainResult;

/// Pairs `(i, j)`, `i < j`, 0-based, from 1-based partners (0 = unpaired),
/// checking that every partner pairs back; `lines[k]` is base `k + 1`'s line.
fn pairs_from_partners(partner: &[usize], lines: &[usize], path: &Path) -> TrainResult<Vec<(usize, usize)>> {
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
                lines[i0],
                format!("base {i} pairs with {j}, which does not pair back"),
            ));
        }
        if i < j {
            pairs.push((i - 1, j - 1));
        }
    }
    Ok(pairs)
}

/// A base letter field, upper-cased.
fn base_letter(field: &str, path: &Path, line: usize) -> TrainResult<char> {
    let mut chars = field.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Ok(c.to_ascii_uppercase()),
        _ => Err(parse_err(path, line, format!("'{field}' is not a base letter"))),
    }
}

/// A 1-based index field.
fn index_field(field: &str, what: &str, path: &Path, line: usize) -> TrainResult<usize> {
    field.parse().map_err(|_| parse_err(path, line, format!("'{field}' is not {what}")))
}

/// The file's stem, the id of a record whose file names none.
fn stem(path: &Path, fallback: &str) -> String {
    path.file_stem().map_or_else(|| fallback.to_string(), |s| s.to_string_lossy().to_string())
}

/// Parses one `.bpseq` structure (`index base partner` per line, 1-based, 0 = unpaired).
///
/// # Errors
/// [`crate::error::TrainError::Parse`] naming the line.
pub fn parse_bpseq(text: &str, path: &Path) -> TrainResult<RnaRecord> {
    let text = without_bom(text);
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
        seq.push(base_letter(fields[1], path, line_no)?);
        partner.push(index_field(fields[2], "a partner index", path, line_no)?);
        lines_of.push(line_no);
    }
    if partner.is_empty() {
        return Err(parse_err(path, 0, "no base lines"));
    }
    let pairs = pairs_from_partners(&partner, &lines_of, path)?;
    Ok(RnaRecord { id: stem(path, "bpseq"), sequence: seq, pairs })
}

/// The title of a `.ct` header after its base count: the text that follows an
/// `ENERGY = -12.3` or `dG = -12.3` field when there is one.
fn ct_title(rest: &[&str]) -> String {
    let starts_with_energy = rest.first().is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("energy") || t.starts_with("dg")
    });
    if !starts_with_energy {
        return rest.join(" ");
    }
    // Skip up to and including the energy's value (`=` may stand alone or be attached).
    let value_at = rest
        .iter()
        .position(|t| t.trim_start_matches(|c: char| !c.is_ascii_digit() && c != '-').parse::<f64>().is_ok());
    value_at.map_or_else(String::new, |k| rest[k + 1..].join(" "))
}

/// Parses a connectivity table (`.ct`): per structure a header line
/// `N [ENERGY = E] title`, then `N` lines `index base previous next partner
/// natural-index` (1-based, partner 0 = unpaired). A file may hold several
/// structures one after the other; each gets the header's title as its id, or
/// the file's stem (with `_2`, `_3`, … after the first).
///
/// # Errors
/// [`crate::error::TrainError::Parse`] naming the line of the first problem:
/// a malformed header or base line, an index out of order, a partner that
/// does not pair back, or a structure cut short.
pub fn parse_ct(text: &str, path: &Path) -> TrainResult<Vec<RnaRecord>> {
    let text = without_bom(text);
    let mut lines = text.lines().enumerate().map(|(k, l)| (k + 1, l)).filter(|(_, l)| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    });
    let mut records = Vec::new();
    while let Some((header_line, header)) = lines.next() {
        let fields: Vec<&str> = header.split_whitespace().collect();
        let n = index_field(fields[0], "a base count in a .ct header", path, header_line)?;
        if n == 0 {
            return Err(parse_err(path, header_line, "a .ct structure of 0 bases"));
        }
        let mut seq = String::with_capacity(n);
        let mut partner = Vec::with_capacity(n);
        let mut lines_of = Vec::with_capacity(n);
        for k in 1..=n {
            let Some((line_no, line)) = lines.next() else {
                return Err(parse_err(
                    path,
                    header_line,
                    format!("the structure announces {n} bases but the file ends after {}", k - 1),
                ));
            };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 {
                return Err(parse_err(
                    path,
                    line_no,
                    "expected at least five fields: index base previous next partner",
                ));
            }
            let index = index_field(f[0], "a base index", path, line_no)?;
            if index != k {
                return Err(parse_err(path, line_no, format!("index {index} out of order (expected {k})")));
            }
            seq.push(base_letter(f[1], path, line_no)?);
            partner.push(index_field(f[4], "a partner index", path, line_no)?);
            lines_of.push(line_no);
        }
        let pairs = pairs_from_partners(&partner, &lines_of, path)?;
        let title = ct_title(&fields[1..]);
        let id = if title.is_empty() {
            match records.len() {
                0 => stem(path, "ct"),
                k => format!("{}_{}", stem(path, "ct"), k + 1),
            }
        } else {
            title
        };
        records.push(RnaRecord { id, sequence: seq, pairs });
    }
    if records.is_empty() {
        return Err(parse_err(path, 0, "no .ct structure"));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Two structures as RNAstructure writes them: an energy header, then one without.
    const TWO: &str = "    6  ENERGY = -1.2   hairpin one\n\
        1 G 0 2 6 1\n2 g 1 3 5 2\n3 A 2 4 0 3\n4 U 3 5 0 4\n5 C 4 6 2 5\n6 C 5 0 1 6\n\
        4\n1 A 0 2 0 1\n2 C 1 3 4 2\n3 A 2 4 0 3\n4 G 3 0 2 4\n";

    #[test]
    fn ct_reads_every_structure_with_its_title() {
        let recs = parse_ct(TWO, Path::new("dir/two.ct")).unwrap();
        let windows = format!("\u{feff}{}", TWO.replace('\n', "\r\n"));
        assert_eq!(parse_ct(&windows, Path::new("dir/two.ct")).unwrap(), recs);
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].id.as_str(), recs[0].sequence.as_str()), ("hairpin one", "GGAUCC"));
        assert_eq!(recs[0].pairs, vec![(0, 5), (1, 4)]);
        assert_eq!((recs[1].id.as_str(), recs[1].sequence.as_str()), ("two_2", "ACAG"));
        assert_eq!(recs[1].pairs, vec![(1, 3)]);
        assert_eq!(ct_title(&["dG", "=", "-3.5", "tRNA", "Phe"]), "tRNA Phe");
        assert_eq!(ct_title(&["ENERGY=-3.5", "x"]), "x");
        assert_eq!(ct_title(&["my", "rna"]), "my rna");
    }

    #[test]
    fn ct_errors_name_the_line() {
        let path = Path::new("b.ct");
        let cut = TWO.replace("4 G 3 0 2 4\n", "");
        let err = parse_ct(&cut, path).unwrap_err().to_string();
        assert!(err.starts_with("b.ct:8:") && err.contains("announces 4 bases"), "{err}");
        let one_way = TWO.replace("6 C 5 0 1 6", "6 C 5 0 0 6");
        let err = parse_ct(&one_way, path).unwrap_err().to_string();
        assert!(err.starts_with("b.ct:2:") && err.contains("does not pair back"), "{err}");
        let err = parse_ct(&TWO.replace("3 A 2 4 0 3", "4 A 2 4 0 3"), path).unwrap_err().to_string();
        assert!(err.starts_with("b.ct:4:") && err.contains("out of order"), "{err}");
        let err = parse_ct("x ENERGY\n", path).unwrap_err().to_string();
        assert!(err.starts_with("b.ct:1:"), "{err}");
        let err = parse_ct(&TWO.replace("2 C 1 3 4 2", "2 C 1 3"), path).unwrap_err().to_string();
        assert!(err.starts_with("b.ct:10:") && err.contains("five fields"), "{err}");
        assert!(parse_ct("\n\n", path).is_err());
    }
}
