//! Dot-bracket FASTA: records of a `>id` header, a sequence and a structure,
//! as the RNA benchmark sets, RNAfold and bpRNA write them. Sequence and
//! structure may be wrapped over several lines; RNAfold's free energy after the
//! structure is ignored; a file without any header is one record (bpRNA's
//! `.dbn`, one structure under `#Name:` comments), or, read for prediction and
//! holding only sequence lines, a record per line.

use std::path::Path;

use super::{RnaRecord, parse_dot_bracket, parse_err, without_bom};
use crate::error::{TrainError, TrainResult};

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

/// A line of the file: its 1-based number and its trimmed text.
type Line<'a> = (usize, &'a str);

/// Parses FASTA or dot-bracket FASTA: with `require_structure = false`, records
/// may hold a sequence alone (for prediction); they get no pairs.
///
/// Lines starting with `#` are comments. A file with no `>` header at all is
/// one record, named by a `#Name:` comment (bpRNA) or else by the file's stem;
/// without `require_structure`, several lines of bare sequences are a record
/// each (`stem_1`, `stem_2`, …).
///
/// # Errors
/// As [`parse_dbn`].
pub fn parse_records(
    text: &str,
    path: &Path,
    skip_bad: bool,
    require_structure: bool,
) -> TrainResult<Parsed> {
    let text = without_bom(text);
    let all: Vec<Line<'_>> = text.lines().enumerate().map(|(k, l)| (k + 1, l.trim())).collect();
    let lines: Vec<Line<'_>> =
        all.iter().copied().filter(|(_, l)| !l.is_empty() && !l.starts_with('#')).collect();
    let mut out = Parsed::default();
    if !lines.is_empty() && !lines.iter().any(|(_, l)| is_header(l)) {
        let name =
            all.iter().find_map(|(_, l)| l.strip_prefix("#Name:").map(str::trim)).filter(|n| !n.is_empty());
        let id = name.map_or_else(
            || path.file_stem().map_or_else(|| "record".to_string(), |s| s.to_string_lossy().to_string()),
            str::to_string,
        );
        // Bare sequences, one per line (inputs for prediction): a record each.
        if !require_structure && lines.len() > 1 && lines.iter().all(|(_, l)| is_sequence_line(l)) {
            for (k, &(line, seq)) in lines.iter().enumerate() {
                let rec = record(&format!("{id}_{}", k + 1), line, &[(line, seq)], path, false);
                keep_or_fail(&mut out, rec, skip_bad)?;
            }
            return Ok(out);
        }
        keep_or_fail(&mut out, record(&id, lines[0].0, &lines, path, require_structure), skip_bad)?;
        return Ok(out);
    }
    let mut k = 0;
    while k < lines.len() {
        let (hl, header) = lines[k];
        let Some(id) = header.strip_prefix('>') else {
            // Not at a header: this record is broken; resynchronise at the next header.
            let err = parse_err(path, hl, "expected a '>id' header line");
            keep_or_fail(&mut out, Err(err), skip_bad)?;
            k += 1;
            while k < lines.len() && !is_header(lines[k].1) {
                k += 1;
            }
            continue;
        };
        let body = record_body(&lines[k + 1..]);
        k += 1 + body.len();
        keep_or_fail(&mut out, record(id.trim(), hl, &body, path, require_structure), skip_bad)?;
    }
    Ok(out)
}

/// A line that starts a record: `>` and not only brackets and unpaired marks
/// (a wrapped structure's line can start with the `>` that closes a `<>` pair).
fn is_header(line: &str) -> bool {
    line.starts_with('>') && !line.chars().all(|c| "()[]{}<>.-,:_".contains(c))
}

/// The lines of the record whose header precedes `rest`: up to the next `>`
/// line, unless that line can only continue a wrapped structure: the structure
/// has begun, is still shorter than the sequence, and the line holds only
/// dot-bracket characters (letter brackets included, so `>.a..` continues
/// where `>` alone would end the record).
fn record_body<'a>(rest: &[Line<'a>]) -> Vec<Line<'a>> {
    let mut end = 0;
    while end < rest.len() {
        let line = rest[end].1;
        if line.starts_with('>') {
            let body = &rest[..end];
            let structure_begun = body.iter().any(|(_, l)| !is_sequence_line(l));
            let dot_bracket = line.chars().all(|c| c.is_ascii_alphabetic() || "()[]{}<>.-,:_".contains(c));
            if !(structure_begun && dot_bracket && split_body(body).is_none()) {
                break;
            }
        }
        end += 1;
    }
    rest[..end].to_vec()
}

fn is_sequence_line(line: &str) -> bool {
    line.chars().all(|c| c.is_ascii_alphabetic())
}

fn char_count(lines: &[Line<'_>]) -> usize {
    lines.iter().map(|(_, l)| l.chars().count()).sum()
}

fn concat(lines: &[Line<'_>]) -> String {
    lines.iter().map(|(_, l)| *l).collect()
}

/// `body` without the free energy RNAfold writes after the structure
/// (`((..)) (-1.20)`): the last line up to its first blank.
fn without_energy<'a>(body: &[Line<'a>]) -> Vec<Line<'a>> {
    let mut body = body.to_vec();
    if body.len() >= 2
        && let Some(last) = body.last_mut()
        && let Some((structure, _energy)) = last.1.split_once(char::is_whitespace)
    {
        last.1 = structure;
    }
    body
}

/// Where a record's structure lines begin: at its first line that is not all
/// letters (a structure starts with `.` or an opening bracket of the first
/// level), provided they hold as many characters as the sequence lines before
/// them. Later structure lines may be all letters (bpRNA's `Aa` brackets);
/// letters-only records are sequences (`None`).
fn split_body(body: &[Line<'_>]) -> Option<usize> {
    let body = without_energy(body);
    let letters = body.iter().take_while(|(_, l)| is_sequence_line(l)).count();
    (letters > 0 && letters < body.len() && char_count(&body[..letters]) == char_count(&body[letters..]))
        .then_some(letters)
}

/// One record from the lines after its header (`header_line` names it in errors).
fn record(
    id: &str,
    header_line: usize,
    body: &[Line<'_>],
    path: &Path,
    require_structure: bool,
) -> TrainResult<RnaRecord> {
    let (body, split) = (without_energy(body), split_body(body));
    let letters = body.iter().take_while(|(_, l)| is_sequence_line(l)).count();
    let (seq_lines, structure_lines) = match split {
        Some(s) => body.split_at(s),
        None if !require_structure && !body.is_empty() && letters == body.len() => (&body[..], &[][..]),
        None => return Err(record_error(id, header_line, &body, letters, path)),
    };
    let sequence = concat(seq_lines).to_ascii_uppercase();
    let pairs = match structure_lines.first() {
        Some(&(first_line, _)) => parse_dot_bracket(&concat(structure_lines), path, first_line)?,
        None => Vec::new(),
    };
    Ok(RnaRecord { id: id.to_string(), sequence, pairs })
}

/// Why a record's lines do not split into a sequence and a structure of its length.
fn record_error(id: &str, header_line: usize, body: &[Line<'_>], letters: usize, path: &Path) -> TrainError {
    if let Some(&(line, text)) = body.get(letters)
        && letters == 0
        && let Some((c, ch)) = text.chars().enumerate().find(|(_, c)| !c.is_ascii_alphabetic())
    {
        return parse_err(path, line, format!("column {}: '{ch}' is not a base letter", c + 1));
    }
    if let [(_, seq), (line, structure)] = body {
        return parse_err(
            path,
            *line,
            format!(
                "structure has {} characters but the sequence has {}",
                structure.chars().count(),
                seq.chars().count()
            ),
        );
    }
    parse_err(
        path,
        header_line,
        format!(
            "record '{id}' needs sequence lines and structure lines of the same length, found {} lines",
            body.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.dbn")
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
        let err = parse_dbn("GGAUCC\n((..))\n>b\nGC\n..\n", p(), false).unwrap_err().to_string();
        assert!(err.contains("t.dbn:1:") && err.contains("header"), "{err}");
        let err = parse_dbn(">a\nGGA1CC\n((..))\n", p(), false).unwrap_err().to_string();
        assert!(err.contains("t.dbn:2:") && err.contains("'1'"), "{err}");
        let err = parse_dbn(">a\nGGAUCC\n", p(), false).unwrap_err().to_string();
        assert!(err.contains("t.dbn:1:") && err.contains("found 1 lines"), "{err}");
        let err = parse_dbn(">a\nGGA\nUCC\n((..)\n", p(), false).unwrap_err().to_string();
        assert!(err.contains("t.dbn:1:") && err.contains("same length"), "{err}");
    }

    #[test]
    fn wrapped_records_and_rnafold_energies() {
        let text = ">w wrapped\nGGGAAA\nUCCC\n((((..\n))))\n>e\ngcaugc\n((..)) (-1.20)\n";
        let recs = parse_dbn(text, p(), false).unwrap().records;
        assert_eq!(recs.len(), 2);
        // A wrapped structure's line that starts with the `>` closing a `<>` pair.
        let angle = parse_dbn(">w\nGGAAACC\nUU\n(<...)\n>..\n>x2\nGC\n..\n", p(), false).unwrap().records;
        assert_eq!(
            (angle.len(), angle[0].pairs.clone(), angle[1].id.as_str()),
            (2, vec![(0, 5), (1, 6)], "x2")
        );
        // A wrapped structure whose later line holds only letter brackets.
        let r = &parse_dbn(">k\nGGACGUC\nU\n((A..))\na\n", p(), false).unwrap().records[0];
        assert_eq!((r.sequence.as_str(), r.pairs.clone()), ("GGACGUCU", vec![(0, 6), (1, 5), (2, 7)]));
        assert_eq!((recs[0].id.as_str(), recs[0].sequence.as_str()), ("w wrapped", "GGGAAAUCCC"));
        assert_eq!(recs[0].pairs, vec![(0, 9), (1, 8), (2, 7), (3, 6)]);
        assert_eq!((recs[1].sequence.as_str(), recs[1].pairs.clone()), ("GCAUGC", vec![(0, 5), (1, 4)]));
        // A wrapped sequence alone, for prediction.
        let recs =
            parse_records(">s\nGGGA\nAAU\n>t\nCC\n>u\nACGU\nACGU\n", p(), false, false).unwrap().records;
        let seqs: Vec<&str> = recs.iter().map(|r| r.sequence.as_str()).collect();
        assert_eq!(seqs, ["GGGAAAU", "CC", "ACGUACGU"]);
        assert!(recs.iter().all(|r| r.pairs.is_empty()));
    }

    #[test]
    fn headerless_bprna_file_is_one_record() {
        let text = "#Name: bpRNA_RFAM_1\n#Length:  8\n#PageNumber: 1\nGGACAUCC\n((A..)a)\n";
        let recs = parse_dbn(text, p(), false).unwrap().records;
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].id.as_str(), recs[0].sequence.as_str()), ("bpRNA_RFAM_1", "GGACAUCC"));
        assert_eq!(recs[0].pairs, vec![(0, 7), (1, 5), (2, 6)]);
        let recs = parse_dbn("\u{feff}GGAUCC\r\n((..))\r\n", Path::new("dir/hp.dbn"), false).unwrap().records;
        assert_eq!((recs[0].id.as_str(), recs[0].pairs.len()), ("hp", 2));
        // Bare sequences one per line, for prediction: a record each.
        let recs = parse_records("GGGAAACCC\nacgu\n", Path::new("s.txt"), false, false).unwrap().records;
        let got: Vec<(&str, &str)> = recs.iter().map(|r| (r.id.as_str(), r.sequence.as_str())).collect();
        assert_eq!(got, [("s_1", "GGGAAACCC"), ("s_2", "ACGU")]);
        assert!(parse_dbn("GGGAAACCC\nACGU\n", p(), false).is_err());
    }
}
