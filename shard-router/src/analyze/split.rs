//! The split template of a multi-row `INSERT ... VALUES`: its text cut around the rows and the
//! parameters, so that a statement with any subset of the rows is built by concatenation. The
//! template is trusted only after a parse -> print -> parse round trip reproduces the statement.

use sqlparser::ast::{Expr, Ident, SetExpr, Statement as SqlStatement, Values};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::names::{tokenize, Lines};
use super::predicate::param_index;
use super::RECURSION_LIMIT;
use crate::plan::{Segment, SplitTemplate};

/// Stands for the rows while the rest of the statement is printed.
const MARKER: &str = "__shardproxy_values_rows__";

fn values_mut(stmt: &mut SqlStatement) -> Option<&mut Values> {
    let SqlStatement::Insert(insert) = stmt else {
        return None;
    };
    match insert.source.as_mut()?.body.as_mut() {
        SetExpr::Values(values) if !values.explicit_row => Some(values),
        _ => None,
    }
}

/// Builds and verifies the template of an INSERT statement; the error says why it cannot be
/// split.
pub(crate) fn template(stmt: &mut SqlStatement) -> Result<SplitTemplate, String> {
    const NOT_VALUES: &str = "it is not a plain INSERT ... VALUES";
    let original = stmt.to_string();
    let marker = vec![vec![Expr::Identifier(Ident::new(MARKER))]];
    let rows = std::mem::replace(&mut values_mut(stmt).ok_or(NOT_VALUES)?.rows, marker);
    let shell = stmt.to_string();
    let row_texts: Vec<String> = rows
        .iter()
        .map(|row| {
            let items: Vec<String> = row.iter().map(ToString::to_string).collect();
            format!("({})", items.join(", "))
        })
        .collect();
    values_mut(stmt).ok_or(NOT_VALUES)?.rows = rows;

    let marker_text = format!("({MARKER})");
    if shell.matches(&marker_text).count() != 1 {
        return Err("its text could not be cut around the VALUES rows".to_owned());
    }
    let (prefix, suffix) = shell
        .split_once(&marker_text)
        .ok_or("its text could not be cut around the VALUES rows")?;
    if format!("{prefix}{}{suffix}", row_texts.join(", ")) != original {
        return Err("its rows do not print back as written".to_owned());
    }
    let reparsed = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(&original)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| format!("its printed form does not parse again ({e})"))?;
    if reparsed.as_slice() != std::slice::from_ref(stmt) {
        return Err("its printed form does not parse back to the same statement".to_owned());
    }
    Ok(SplitTemplate {
        prefix: segments(prefix)?,
        rows: row_texts
            .iter()
            .map(|r| segments(r))
            .collect::<Result<_, _>>()?,
        suffix: segments(suffix)?,
    })
}

/// Renumbers the `$n` parameters of `text` to `$1..$k` in increasing order of n: the new text
/// and, for each new parameter, the 0-based index of the old one (a statement that drops some
/// of a client's parameters must not declare them). None when the text cannot be tokenized.
pub(crate) fn renumber_params(text: &str) -> Option<(String, Vec<usize>)> {
    let segments = segments(text).ok()?;
    let mut used: Vec<usize> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Param(i) => Some(*i),
            Segment::Text(_) => None,
        })
        .collect();
    used.sort_unstable();
    used.dedup();
    let mut out = String::with_capacity(text.len());
    for s in &segments {
        match s {
            Segment::Text(t) => out.push_str(t),
            Segment::Param(i) => {
                let k = used.binary_search(i).ok()?;
                out.push('$');
                out.push_str(&(k + 1).to_string());
            }
        }
    }
    Some((out, used))
}

/// A text cut at its `$n` parameters (found by the tokenizer, so `'$1'` in a string is text).
fn segments(text: &str) -> Result<Vec<Segment>, String> {
    const UNREADABLE: &str = "its printed form could not be tokenized";
    let tokens = tokenize(text).ok_or(UNREADABLE)?;
    let lines = Lines::new(text);
    let mut out = Vec::new();
    let mut last = 0;
    for t in &tokens {
        let Token::Placeholder(p) = &t.token else {
            continue;
        };
        let Ok(Some(index)) = param_index(p) else {
            continue;
        };
        let start = lines.offset(t.span.start).ok_or(UNREADABLE)?;
        if text.get(start..start + p.len()) != Some(p.as_str()) {
            return Err(UNREADABLE.to_owned());
        }
        let before = text.get(last..start).ok_or(UNREADABLE)?;
        if !before.is_empty() {
            out.push(Segment::Text(before.to_owned()));
        }
        out.push(Segment::Param(index));
        last = start + p.len();
    }
    let rest = text.get(last..).ok_or(UNREADABLE)?;
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> SqlStatement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn renumbers_parameters() {
        let (text, used) =
            renumber_params("SELECT a FROM t WHERE b = $3 AND c = '$1' AND d = $5 OR e = $3")
                .unwrap();
        assert_eq!(
            text,
            "SELECT a FROM t WHERE b = $1 AND c = '$1' AND d = $2 OR e = $1"
        );
        assert_eq!(used, vec![2, 4]);
        assert_eq!(
            renumber_params("SELECT 1").unwrap(),
            ("SELECT 1".into(), vec![])
        );
    }

    #[test]
    fn cuts_rows_and_parameters() {
        let mut stmt = parse(
            "INSERT INTO users (id, name) VALUES ($1, 'it''s $2'), (7, $3) \
             ON CONFLICT (id) DO UPDATE SET name = $4 RETURNING id",
        );
        let t = template(&mut stmt).unwrap();
        assert_eq!(
            t.prefix,
            vec![Segment::Text("INSERT INTO users (id, name) VALUES ".into())]
        );
        assert_eq!(
            t.rows[0],
            vec![
                Segment::Text("(".into()),
                Segment::Param(0),
                Segment::Text(", 'it''s $2')".into())
            ]
        );
        assert_eq!(
            t.rows[1],
            vec![
                Segment::Text("(7, ".into()),
                Segment::Param(2),
                Segment::Text(")".into())
            ]
        );
        assert_eq!(
            t.suffix,
            vec![
                Segment::Text(" ON CONFLICT(id) DO UPDATE SET name = ".into()),
                Segment::Param(3),
                Segment::Text(" RETURNING id".into())
            ]
        );
    }

    #[test]
    fn refuses_what_does_not_round_trip() {
        // sqlparser prints `- -5` as `--5`, a comment.
        let mut stmt = parse("INSERT INTO users (id, n) VALUES (1, - -5), (2, 3)");
        assert!(template(&mut stmt).is_err());
        let mut stmt = parse("INSERT INTO users (id) SELECT 1");
        assert!(template(&mut stmt).is_err());
    }
}
