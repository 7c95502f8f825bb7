//! The end of a run: counts per query shape (same / refused / mismatched), refusal reasons
//! and kinds of mismatch, the first mismatches in full; and the bar (no mismatch, refusals
//! under 5%), with the seed in every message.

use std::collections::BTreeMap;

use crate::compare::Verdict;
use crate::querygen::{Kind, Query};

/// Mismatches printed in full.
const PRINTED: usize = 20;

/// What happened to one query.
pub struct QueryResult {
    /// Its position among the generated queries.
    pub index: usize,
    /// Its shape.
    pub kind: Kind,
    /// How it went.
    pub verdict: Verdict,
    /// For a mismatch: its kind in each protocol run that differed (for the summary).
    pub causes: Vec<String>,
}

/// What kind of difference `diff` is, for counting alike ones: the protocol, and the first
/// words of the difference without numbers.
pub fn cause(mode: &str, diff: &str) -> String {
    let protocol = mode.split(',').next().unwrap_or(mode);
    let first_line = diff.lines().next().unwrap_or("");
    let words: String = first_line
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(90)
        .collect();
    format!("{protocol}: {words}")
}

/// Prints the per-shape summary, the refusal reasons and the first mismatches; asserts zero
/// mismatches and refusals under 5%.
pub fn report(seed: u64, queries: &[Query], results: &[QueryResult]) {
    // kind -> [same, refused, mismatched]
    let mut by_kind: BTreeMap<Kind, [usize; 3]> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    let mut printed = Vec::new();
    for r in results {
        let cell = by_kind.entry(r.kind).or_default();
        match &r.verdict {
            Verdict::Same => cell[0] += 1,
            Verdict::Refused(why) => {
                cell[1] += 1;
                // Messages that differ only in numbers are one reason.
                let key: String = why.chars().filter(|c| !c.is_ascii_digit()).collect();
                *reasons.entry(key).or_default() += 1;
            }
            Verdict::Mismatch(diff) => {
                cell[2] += 1;
                for c in &r.causes {
                    *causes.entry(c.clone()).or_default() += 1;
                }
                if printed.len() < PRINTED {
                    let q = &queries[r.index];
                    printed.push(format!(
                        "#{} ({:?}, {:?}): {}\n{diff}",
                        r.index, q.kind, q.order, q.sql
                    ));
                }
            }
        }
    }
    let mut table = format!(
        "{:<12} {:>6} {:>6} {:>8} {:>10}\n",
        "shape", "total", "same", "refused", "mismatched"
    );
    let mut totals = [0usize; 3];
    for (kind, cell) in &by_kind {
        let n: usize = cell.iter().sum();
        table.push_str(&format!(
            "{:<12} {n:>6} {:>6} {:>8} {:>10}\n",
            format!("{kind:?}"),
            cell[0],
            cell[1],
            cell[2]
        ));
        for (t, c) in totals.iter_mut().zip(cell) {
            *t += c;
        }
    }
    let total = results.len();
    table.push_str(&format!(
        "{:<12} {total:>6} {:>6} {:>8} {:>10}\n",
        "all", totals[0], totals[1], totals[2]
    ));
    for (label, counts) in [("refused", reasons), ("mismatched", causes)] {
        let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        for (why, n) in counts.iter().take(10) {
            table.push_str(&format!("  {label} {n}x: {why}\n"));
        }
    }
    eprintln!("scatter_diff (seed {seed}):\n{table}");
    assert_eq!(total, queries.len(), "queries lost (seed {seed})");
    assert!(
        totals[2] == 0,
        "{} of {total} queries answered differently through the proxy (seed {seed}; \
         SCATTER_SEED={seed} to replay); first {}:\n\n{}\n\n{table}",
        totals[2],
        printed.len(),
        printed.join("\n\n")
    );
    assert!(
        totals[1] * 20 < total,
        "{} of {total} queries refused with 0A000, the bar is under 5% (seed {seed}):\n{table}",
        totals[1]
    );
}
