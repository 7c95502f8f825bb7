//! `COPY table ...` statements. sqlparser cannot read `COPY t FROM STDIN` without its data, so
//! the table form is read here from tokens (both directions, new and pre-9.0 option syntax).

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::names::{classify, describe_table, is_blank, TableClass, TableName};
use super::{CopyIn, Part};
use crate::copy::CopyFormat;
use crate::{RouteError, Router, StatementKind, Target};

/// Where COPY data goes to or comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyEnd {
    /// STDIN / STDOUT: through the client connection.
    Client,
    /// A file on the database server.
    File,
    /// A program run on the database server.
    Program,
}

/// A `COPY table [(columns)] FROM|TO ...` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyStmt {
    /// The table.
    pub table: TableName,
    /// The column list (folded), empty when not given.
    pub columns: Vec<String>,
    /// COPY FROM (true) or COPY TO.
    pub from: bool,
    /// The other end.
    pub end: CopyEnd,
    /// Options as (lower-case name, value) pairs, as `CopyFormat::from_options` takes them.
    pub options: Vec<(String, Option<String>)>,
}

/// Reads `COPY table ...`; `None` when the text is not that form (or is malformed).
pub(crate) fn parse_copy(sql: &str) -> Option<CopyStmt> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let tokens: Vec<Token> = tokens.into_iter().filter(|t| !is_blank(t)).collect();
    let mut p = Cursor { tokens, at: 0 };
    p.keyword("COPY")?;
    let mut options = Vec::new();
    if p.eat_keyword("BINARY") {
        options.push(("format".to_owned(), Some("binary".to_owned())));
    }
    let mut parts = vec![p.ident()?];
    while p.eat(&Token::Period) {
        parts.push(p.ident()?);
    }
    let table = TableName::from_parts(parts)?;
    let columns = if p.eat(&Token::LParen) {
        p.ident_list_until_rparen()?
    } else {
        Vec::new()
    };
    let from = if p.eat_keyword("FROM") {
        true
    } else {
        p.keyword("TO")?;
        false
    };
    let end = if p.eat_keyword("STDIN") || p.eat_keyword("STDOUT") {
        CopyEnd::Client
    } else if p.eat_keyword("PROGRAM") {
        p.string()?;
        CopyEnd::Program
    } else {
        p.string()?;
        CopyEnd::File
    };
    p.eat_keyword("WITH");
    if p.eat(&Token::LParen) {
        loop {
            let name = p.word()?.to_ascii_lowercase();
            let value = match p.peek()? {
                Token::Comma | Token::RParen => None,
                Token::LParen => {
                    p.next();
                    Some(p.ident_list_until_rparen()?.join(","))
                }
                Token::Mul => {
                    p.next();
                    Some("*".to_owned())
                }
                _ => Some(p.value()?),
            };
            options.push((name, value));
            if !p.eat(&Token::Comma) {
                p.expect(&Token::RParen)?;
                break;
            }
        }
    } else {
        legacy_options(&mut p, &mut options)?;
    }
    // `COPY ... FROM ... WHERE cond` filters rows; each shard applies it to the rows it gets.
    if !p.eat_keyword("WHERE") && p.peek().is_some() {
        return None;
    }
    Some(CopyStmt {
        table,
        columns,
        from,
        end,
        options,
    })
}

/// The pre-9.0 option syntax: `BINARY`, `DELIMITER [AS] 'c'`, `CSV HEADER QUOTE 'q'`...
fn legacy_options(p: &mut Cursor, options: &mut Vec<(String, Option<String>)>) -> Option<()> {
    loop {
        let (name, value) = if p.eat_keyword("BINARY") {
            ("binary", None)
        } else if p.eat_keyword("CSV") {
            ("csv", None)
        } else if p.eat_keyword("HEADER") {
            ("header", None)
        } else if p.eat_keyword("OIDS") {
            ("oids", None)
        } else if let Some(name) = ["DELIMITER", "NULL", "QUOTE", "ESCAPE", "ENCODING"]
            .into_iter()
            .find(|k| p.eat_keyword(k))
        {
            p.eat_keyword("AS");
            let value = p.string()?;
            options.push((name.to_ascii_lowercase(), Some(value)));
            continue;
        } else if p.eat_keyword("FORCE") {
            let name = if p.eat_keyword("QUOTE") {
                "force_quote"
            } else if p.eat_keyword("NOT") {
                p.keyword("NULL")?;
                "force_not_null"
            } else {
                p.keyword("NULL")?;
                "force_null"
            };
            let value = if p.eat(&Token::Mul) {
                "*".to_owned()
            } else {
                let mut cols = vec![p.ident()?];
                while p.eat(&Token::Comma) {
                    cols.push(p.ident()?);
                }
                cols.join(",")
            };
            options.push((name.to_owned(), Some(value)));
            continue;
        } else {
            return Some(());
        };
        options.push((name.to_owned(), value));
    }
}

struct Cursor {
    tokens: Vec<Token>,
    at: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Token> {
        self.tokens
            .get(self.at)
            .filter(|t| !matches!(t, Token::SemiColon | Token::EOF))
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.peek()?.clone();
        self.at += 1;
        Some(t)
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token) -> Option<()> {
        self.eat(token).then_some(())
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w))
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword) =>
            {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn keyword(&mut self, keyword: &str) -> Option<()> {
        self.eat_keyword(keyword).then_some(())
    }

    fn word(&mut self) -> Option<String> {
        match self.next()? {
            Token::Word(w) => Some(w.value),
            _ => None,
        }
    }

    /// An identifier, folded as PostgreSQL does.
    fn ident(&mut self) -> Option<String> {
        match self.next()? {
            Token::Word(w) if w.quote_style.is_some() => Some(w.value),
            Token::Word(w) => Some(w.value.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn ident_list_until_rparen(&mut self) -> Option<Vec<String>> {
        let mut list = vec![self.ident()?];
        while self.eat(&Token::Comma) {
            list.push(self.ident()?);
        }
        self.expect(&Token::RParen)?;
        Some(list)
    }

    fn string(&mut self) -> Option<String> {
        match self.next()? {
            Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => Some(s),
            _ => None,
        }
    }

    fn value(&mut self) -> Option<String> {
        match self.next()? {
            Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => Some(s),
            Token::Word(w) => Some(w.value),
            Token::Number(n, _) => Some(n),
            _ => None,
        }
    }
}

/// True when the options ask for a header line or the binary format: per-shard outputs then
/// cannot simply be concatenated.
fn per_stream_framing(options: &[(String, Option<String>)]) -> bool {
    options.iter().any(|(name, value)| {
        let value = value.as_deref().map(str::to_ascii_lowercase);
        match name.as_str() {
            "header" => !matches!(value.as_deref(), Some("false" | "off" | "0")),
            "format" => value.as_deref() == Some("binary"),
            "binary" => true,
            _ => false,
        }
    })
}

/// The route of a `COPY table ...` statement.
pub(crate) fn copy_table(router: &Router, stmt: CopyStmt) -> Result<Part, RouteError> {
    let name = stmt.table.name.clone();
    let class = classify(router, &stmt.table);
    let direction = if stmt.from { "FROM" } else { "TO" };
    if stmt.end != CopyEnd::Client {
        if class != TableClass::DefaultOnly {
            return Err(RouteError::new(
                "0A000",
                format!(
                    "COPY {direction} a file or program on the database server cannot be used \
                     with {}: use COPY ... {} instead",
                    describe_table(router, &name),
                    if stmt.from { "FROM STDIN" } else { "TO STDOUT" }
                ),
            ));
        }
        let kind = if stmt.from {
            StatementKind::Write
        } else {
            StatementKind::Read
        };
        return Ok(Part::fixed(
            kind,
            Target::Default,
            format!("COPY {name} -> default shard"),
        ));
    }
    if !stmt.from {
        let (target, reason) = match class {
            TableClass::Sharded { .. } => {
                (Target::All, format!("COPY {name} TO STDOUT -> all shards"))
            }
            TableClass::Reference => (
                Target::ReferenceRead,
                format!("COPY of reference table {name} -> any one shard"),
            ),
            TableClass::DefaultOnly => (Target::Default, format!("COPY {name} -> default shard")),
        };
        let mut part = Part::fixed(StatementKind::CopyOut, target, reason);
        if per_stream_framing(&stmt.options) {
            part.merge = Some("COPY TO STDOUT with a header line or in binary format");
        }
        return Ok(part);
    }
    match class {
        TableClass::Sharded { map, key } => {
            if stmt.columns.is_empty() {
                // Every column in table order: the key's position comes from the catalog, which
                // the router cannot read; the proxy looks it up (`key_index` is None).
                let format = CopyFormat::from_options(&stmt.options)?;
                let mut part = Part::fixed(
                    StatementKind::CopyIn,
                    Target::All,
                    format!("COPY into sharded table {name}: rows split by {key}"),
                );
                part.copy_in = Some(CopyIn {
                    table: name,
                    column: key,
                    map,
                    key_index: None,
                    column_count: None,
                    format,
                });
                return Ok(part);
            }
            let Some(key_index) = stmt.columns.iter().position(|c| *c == key) else {
                return Err(RouteError::new(
                    "23502",
                    format!(
                        "null value in shard key column \"{key}\" of sharded table \"{name}\": \
                         the COPY column list must include it"
                    ),
                ));
            };
            let format = CopyFormat::from_options(&stmt.options)?;
            let mut part = Part::fixed(
                StatementKind::CopyIn,
                Target::All,
                format!("COPY into sharded table {name}: rows split by {key}"),
            );
            part.copy_in = Some(CopyIn {
                table: name,
                column: key,
                map,
                key_index: Some(key_index),
                column_count: Some(stmt.columns.len()),
                format,
            });
            Ok(part)
        }
        TableClass::Reference => Ok(Part::fixed(
            StatementKind::CopyIn,
            Target::ReferenceWrite,
            format!("COPY into reference table {name} -> all shards"),
        )),
        TableClass::DefaultOnly => Ok(Part::fixed(
            StatementKind::CopyIn,
            Target::Default,
            format!("COPY into {name} (not a sharded or reference table) -> default shard"),
        )),
    }
}

/// Header/binary options of a parsed `COPY (query) TO ...`.
pub(crate) fn query_copy_framing(
    options: &[sqlparser::ast::CopyOption],
    legacy: &[sqlparser::ast::CopyLegacyOption],
) -> bool {
    use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};
    options.iter().any(|o| match o {
        CopyOption::Format(f) => f.value.eq_ignore_ascii_case("binary"),
        CopyOption::Header(h) => *h,
        _ => false,
    }) || legacy.iter().any(|o| match o {
        CopyLegacyOption::Binary | CopyLegacyOption::Header => true,
        CopyLegacyOption::Csv(csv) => csv.iter().any(|c| matches!(c, CopyLegacyCsvOption::Header)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn reads_the_table_forms() {
        let c = parse_copy("COPY public.\"Users\" (ID, \"Name\") FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';', FORCE_NOT_NULL (a, b))").unwrap();
        assert_eq!(c.table.name, "Users");
        assert_eq!(c.table.schema.as_deref(), Some("public"));
        assert_eq!(c.columns, vec!["id", "Name"]);
        assert!(c.from);
        assert_eq!(c.end, CopyEnd::Client);
        assert_eq!(
            c.options,
            opts(&[
                ("format", Some("csv")),
                ("header", None),
                ("delimiter", Some(";")),
                ("force_not_null", Some("a,b")),
            ])
        );
        let c = parse_copy(
            "copy users from stdin csv header delimiter as ',' quote '\"' force not null a, b;",
        )
        .unwrap();
        assert_eq!(
            c.options,
            opts(&[
                ("csv", None),
                ("header", None),
                ("delimiter", Some(",")),
                ("quote", Some("\"")),
                ("force_not_null", Some("a,b")),
            ])
        );
        let c = parse_copy("COPY users TO PROGRAM 'gzip > x'").unwrap();
        assert_eq!((c.from, c.end), (false, CopyEnd::Program));
        let c = parse_copy("COPY users FROM '/tmp/x' WHERE id > 5").unwrap();
        assert_eq!(c.end, CopyEnd::File);
        let c = parse_copy("COPY users FROM STDIN (DELIMITER E'\\t')").unwrap();
        assert_eq!(c.options, opts(&[("delimiter", Some("\t"))]));
        assert!(parse_copy("COPY (SELECT 1) TO STDOUT").is_none());
        assert!(parse_copy("COPY users FROM STDIN junk").is_none());
    }

    #[test]
    fn framing() {
        assert!(per_stream_framing(&opts(&[("header", None)])));
        assert!(!per_stream_framing(&opts(&[("header", Some("false"))])));
        assert!(per_stream_framing(&opts(&[("format", Some("BINARY"))])));
        assert!(!per_stream_framing(&opts(&[("format", Some("csv"))])));
    }
}
