//! Properties of the structure parsers: every format writes and reads back the
//! same pairs, however the pairs cross and however the lines are wrapped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use proptest::prelude::*;
use symseg_train::data::rna::{parse_bpseq, parse_ct, parse_dbn, parse_dot_bracket, to_dot_bracket};

/// A sequence of `n` bases and a set of pairs, each base in at most one.
fn structure() -> impl Strategy<Value = (String, Vec<(usize, usize)>)> {
    (2usize..160).prop_flat_map(|n| {
        let bases = proptest::collection::vec(prop::sample::select(vec!['A', 'C', 'G', 'U', 'N']), n);
        // A random matching: shuffle the indices and pair neighbours, keeping some.
        let order = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
        let keep = proptest::collection::vec(any::<bool>(), n / 2);
        (bases, order, keep).prop_map(|(bases, order, keep)| {
            let mut pairs: Vec<(usize, usize)> = order
                .chunks_exact(2)
                .zip(keep)
                .filter(|(_, k)| *k)
                .map(|(c, _)| (c[0].min(c[1]), c[0].max(c[1])))
                .collect();
            pairs.sort_unstable();
            (bases.into_iter().collect(), pairs)
        })
    })
}

fn partners(n: usize, pairs: &[(usize, usize)]) -> Vec<usize> {
    let mut p = vec![0; n];
    for &(i, j) in pairs {
        p[i] = j + 1;
        p[j] = i + 1;
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn dot_bracket_round_trips_what_it_can_write((seq, pairs) in structure()) {
        let (db, dropped) = to_dot_bracket(seq.len(), &pairs);
        let back = parse_dot_bracket(&db, Path::new("p.dbn"), 1).unwrap();
        prop_assert_eq!(back.len() + dropped, pairs.len());
        prop_assert!(back.iter().all(|p| pairs.contains(p)));
        if dropped == 0 {
            prop_assert_eq!(back, pairs);
        }
    }

    #[test]
    fn fasta_records_read_back_however_wrapped((seq, pairs) in structure(), width in 1usize..200, crlf in any::<bool>()) {
        let (db, dropped) = to_dot_bracket(seq.len(), &pairs);
        prop_assume!(dropped == 0);
        let wrap = |s: &str| s.as_bytes().chunks(width).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect::<Vec<_>>();
        let nl = if crlf { "\r\n" } else { "\n" };
        let text = format!(">r1 x{nl}{}{nl}{}{nl}>r2{nl}{seq}{nl}{db} (-1.5){nl}", wrap(&seq).join(nl), wrap(&db).join(nl));
        let recs = parse_dbn(&text, Path::new("p.fa"), false).unwrap().records;
        prop_assert_eq!(recs.len(), 2);
        for r in &recs {
            prop_assert_eq!(&r.sequence, &seq);
            prop_assert_eq!(&r.pairs, &pairs);
        }
        prop_assert_eq!(recs[0].id.as_str(), "r1 x");
    }

    #[test]
    fn bpseq_and_ct_round_trip((seq, pairs) in structure(), (seq2, pairs2) in structure()) {
        let p = partners(seq.len(), &pairs);
        let bpseq: String = seq.chars().zip(&p).enumerate().map(|(k, (b, q))| format!("{} {b} {q}\n", k + 1)).collect();
        let r = parse_bpseq(&bpseq, Path::new("s.bpseq")).unwrap();
        prop_assert_eq!((&r.sequence, &r.pairs), (&seq, &pairs));

        let ct = |seq: &str, pairs: &[(usize, usize)], title: &str| -> String {
            let n = seq.len();
            let p = partners(n, pairs);
            let mut out = format!("{n:5}  ENERGY = -3.2  {title}\n");
            for (k, b) in seq.chars().enumerate() {
                out += &format!("{:5} {b} {:5} {:5} {:5} {:5}\n", k + 1, k, if k + 1 < n { k + 2 } else { 0 }, p[k], k + 1);
            }
            out
        };
        let text = ct(&seq, &pairs, "first one") + &ct(&seq2, &pairs2, "second");
        let recs = parse_ct(&text, Path::new("s.ct")).unwrap();
        prop_assert_eq!(recs.len(), 2);
        prop_assert_eq!((&recs[0].id, &recs[0].sequence, &recs[0].pairs), (&"first one".to_string(), &seq, &pairs));
        prop_assert_eq!((&recs[1].id, &recs[1].sequence, &recs[1].pairs), (&"second".to_string(), &seq2, &pairs2));
    }
}
