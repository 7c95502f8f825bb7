//! Comparing the proxy's answer with the oracle's: columns (names, type OIDs, lengths,
//! modifiers, formats), the parameter types the statement was described with, the command tag,
//! and the rows value by value, in order as far as the query's ORDER BY defines one.

use crate::querygen::OrderCheck;
use crate::wire::{Answer, Column, Outcome, Row};

/// What one protocol run of a query came to.
#[derive(Debug)]
pub enum Verdict {
    /// The same answer (or the same error) from both.
    Same,
    /// The proxy refused with 0A000 where the oracle answered: the message.
    Refused(String),
    /// Any other difference, described.
    Mismatch(String),
}

/// Rows shown around a difference.
const SHOWN_ROWS: usize = 5;

/// Judges the proxy's outcome against the oracle's.
pub fn judge(oracle: &Outcome, proxy: &Outcome, order: &OrderCheck) -> Verdict {
    match (oracle, proxy) {
        (Ok(_), Err(p)) if p.code == "0A000" => Verdict::Refused(p.message.clone()),
        (Ok(o), Ok(p)) => match compare(o, p, order) {
            Ok(()) => Verdict::Same,
            Err(diff) => Verdict::Mismatch(format!(
                "{diff}\n  oracle: {}\n  proxy:  {}",
                summary(o),
                summary(p)
            )),
        },
        // The generator writes valid SQL: an oracle error is a bug of the test, reported as
        // a mismatch so that it is seen.
        (Err(o), Err(p)) => Verdict::Mismatch(format!(
            "both failed: oracle {} {:?}, proxy {} {:?}",
            o.code, o.message, p.code, p.message
        )),
        (Err(o), Ok(p)) => Verdict::Mismatch(format!(
            "oracle failed ({} {:?}), proxy answered {}",
            o.code,
            o.message,
            summary(p)
        )),
        (Ok(o), Err(p)) => Verdict::Mismatch(format!(
            "proxy failed ({} {:?}), oracle answered {}",
            p.code,
            p.message,
            summary(o)
        )),
    }
}

/// Ok if `proxy` is what `oracle` answered, else what differs.
pub fn compare(oracle: &Answer, proxy: &Answer, order: &OrderCheck) -> Result<(), String> {
    if let (Some(o), Some(p)) = (&oracle.described, &proxy.described) {
        if o.0 != p.0 {
            return Err(format!(
                "parameter types (Describe statement) differ: oracle {:?}, proxy {:?}",
                o.0, p.0
            ));
        }
        if o.1 != p.1 {
            return Err(format!(
                "Describe statement columns differ: oracle {}, proxy {}",
                columns(&o.1),
                columns(&p.1)
            ));
        }
    }
    if oracle.columns != proxy.columns {
        return Err(format!(
            "columns differ: oracle {}, proxy {}",
            columns(&oracle.columns),
            columns(&proxy.columns)
        ));
    }
    if oracle.tag != proxy.tag {
        return Err(format!(
            "command tags differ: oracle {:?}, proxy {:?}",
            oracle.tag, proxy.tag
        ));
    }
    if oracle.rows.len() != proxy.rows.len() {
        return Err(format!(
            "row counts differ: oracle {}, proxy {}",
            oracle.rows.len(),
            proxy.rows.len()
        ));
    }
    let formats: Vec<i16> = oracle.columns.iter().flatten().map(|c| c.format).collect();
    match order {
        OrderCheck::Total => same_sequence(&oracle.rows, &proxy.rows, &formats, "rows"),
        OrderCheck::Keys(keys) => {
            let project = |rows: &[Row]| -> Vec<Row> {
                rows.iter()
                    .map(|r| keys.iter().map(|k| r.get(*k).cloned().flatten()).collect())
                    .collect()
            };
            let key_formats: Vec<i16> = keys
                .iter()
                .map(|k| formats.get(*k).copied().unwrap_or(0))
                .collect();
            same_sequence(
                &project(&oracle.rows),
                &project(&proxy.rows),
                &key_formats,
                &format!("sort key values (output columns {keys:?}) in row order"),
            )?;
            same_multiset(&oracle.rows, &proxy.rows, &formats)
        }
        OrderCheck::Unordered => same_multiset(&oracle.rows, &proxy.rows, &formats),
    }
}

fn same_sequence(oracle: &[Row], proxy: &[Row], formats: &[i16], what: &str) -> Result<(), String> {
    let Some(at) = oracle.iter().zip(proxy).position(|(o, p)| o != p) else {
        return Ok(());
    };
    let from = at.saturating_sub(2);
    let to = (at + SHOWN_ROWS).min(oracle.len());
    Err(format!(
        "{what} differ from row {at}:\n    oracle rows {from}..{to}: {}\n    proxy rows {from}..{to}:  {}",
        rows(&oracle[from..to], formats),
        rows(&proxy[from..to.min(proxy.len())], formats)
    ))
}

fn same_multiset(oracle: &[Row], proxy: &[Row], formats: &[i16]) -> Result<(), String> {
    let mut o = oracle.to_vec();
    let mut p = proxy.to_vec();
    o.sort();
    p.sort();
    if o == p {
        return Ok(());
    }
    let only = |a: &[Row], b: &[Row]| -> Vec<Row> {
        let mut rest = b.to_vec();
        a.iter()
            .filter(|r| match rest.iter().position(|x| x == *r) {
                Some(i) => {
                    rest.swap_remove(i);
                    false
                }
                None => true,
            })
            .take(SHOWN_ROWS)
            .cloned()
            .collect()
    };
    Err(format!(
        "different rows (as multisets):\n    only from the oracle: {}\n    only from the proxy:  {}",
        rows(&only(&o, &p), formats),
        rows(&only(&p, &o), formats)
    ))
}

/// A few words about an answer: columns, row count, tag, first rows.
pub fn summary(a: &Answer) -> String {
    let formats: Vec<i16> = a.columns.iter().flatten().map(|c| c.format).collect();
    let shown = &a.rows[..a.rows.len().min(3)];
    format!(
        "{} {} rows [{}] first {}",
        columns(&a.columns),
        a.rows.len(),
        a.tag,
        rows(shown, &formats)
    )
}

fn columns(cols: &Option<Vec<Column>>) -> String {
    match cols {
        None => "NoData".into(),
        Some(cols) => {
            let each: Vec<String> = cols
                .iter()
                .map(|c| {
                    format!(
                        "{}:{}/{}/{}{}",
                        c.name,
                        c.type_oid,
                        c.type_len,
                        c.type_mod,
                        if c.format == 1 { "b" } else { "" }
                    )
                })
                .collect();
            format!("({})", each.join(", "))
        }
    }
}

/// Rows for a message: text values as text, binary ones in hex.
fn rows(rows: &[Row], formats: &[i16]) -> String {
    let each: Vec<String> = rows
        .iter()
        .map(|row| {
            let vals: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    None => "NULL".into(),
                    Some(b) if formats.get(i) == Some(&1) => {
                        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                        format!("\\x{hex}")
                    }
                    Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
                })
                .collect();
            format!("({})", vals.join(", "))
        })
        .collect();
    format!("[{}]", each.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(rows: &[&[&str]]) -> Answer {
        Answer {
            columns: Some(vec![
                Column {
                    name: "a".into(),
                    type_oid: 23,
                    type_len: 4,
                    type_mod: -1,
                    format: 0,
                };
                2
            ]),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| Some(v.as_bytes().to_vec())).collect())
                .collect(),
            tag: format!("SELECT {}", rows.len()),
            described: None,
        }
    }

    #[test]
    fn order_checks_catch_what_they_should_and_only_that() {
        let a = answer(&[&["1", "x"], &["1", "y"], &["2", "z"]]);
        let ties_swapped = answer(&[&["1", "y"], &["1", "x"], &["2", "z"]]);
        let misordered = answer(&[&["2", "z"], &["1", "x"], &["1", "y"]]);
        let other = answer(&[&["1", "x"], &["1", "x"], &["2", "z"]]);
        assert!(compare(&a, &a, &OrderCheck::Total).is_ok());
        assert!(compare(&a, &ties_swapped, &OrderCheck::Total).is_err());
        assert!(compare(&a, &ties_swapped, &OrderCheck::Keys(vec![0])).is_ok());
        assert!(compare(&a, &misordered, &OrderCheck::Keys(vec![0])).is_err());
        assert!(compare(&a, &misordered, &OrderCheck::Unordered).is_ok());
        assert!(compare(&a, &other, &OrderCheck::Unordered).is_err());
        let mut renamed = a.clone();
        if let Some(cols) = renamed.columns.as_mut() {
            cols[1].type_oid = 20;
        }
        assert!(compare(&a, &renamed, &OrderCheck::Unordered).is_err());
        let mut tagged = a.clone();
        tagged.tag = "SELECT 4".into();
        assert!(compare(&a, &tagged, &OrderCheck::Unordered).is_err());
    }
}
