//! Names as PostgreSQL resolves them: identifier folding, what a table name refers to, and the
//! token-level view of a statement (used when the SQL parser cannot read it).

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::{Router, TableRule};

/// An identifier as PostgreSQL stores it: unquoted names fold to lower case (ASCII only, as
/// PostgreSQL does for multibyte encodings), quoted names are kept as written.
pub(crate) fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// A table name split into its folded parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    /// The unqualified, folded name.
    pub name: String,
    /// The folded schema, when written.
    pub schema: Option<String>,
}

impl TableName {
    /// `[catalog.][schema.]table` from sqlparser's name; `None` for names with function parts.
    pub(crate) fn from_object(name: &ObjectName) -> Option<TableName> {
        let mut parts = Vec::with_capacity(name.0.len());
        for part in &name.0 {
            match part {
                ObjectNamePart::Identifier(ident) => parts.push(fold(ident)),
                ObjectNamePart::Function(_) => return None,
            }
        }
        let table = parts.pop()?;
        Some(TableName {
            name: table,
            schema: parts.pop(),
        })
    }

    /// From already folded parts (the COPY scanner).
    pub(crate) fn from_parts(mut parts: Vec<String>) -> Option<TableName> {
        let table = parts.pop()?;
        Some(TableName {
            name: table,
            schema: parts.pop(),
        })
    }
}

/// Where a table's rows live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableClass {
    /// Sharded on `map` by column `key`.
    Sharded { map: usize, key: String },
    /// A full copy on every shard.
    Reference,
    /// Only on the default shard: unlisted tables and the system catalogs.
    DefaultOnly,
}

/// Classifies a table name by the config's table rules (`pg_catalog.*` and
/// `information_schema.*` are always the default shard's).
pub(crate) fn classify(router: &Router, table: &TableName) -> TableClass {
    if matches!(
        table.schema.as_deref(),
        Some("pg_catalog" | "information_schema")
    ) {
        return TableClass::DefaultOnly;
    }
    match router.tables().get(&table.name) {
        Some(TableRule::Sharded { map, key }) => TableClass::Sharded {
            map: *map,
            key: key.clone(),
        },
        Some(TableRule::Reference) => TableClass::Reference,
        None => TableClass::DefaultOnly,
    }
}

/// "sharded table users" / "reference table countries", for messages.
pub(crate) fn describe_table(router: &Router, name: &str) -> String {
    match router.tables().get(name) {
        Some(TableRule::Sharded { .. }) => format!("sharded table {name}"),
        Some(TableRule::Reference) => format!("reference table {name}"),
        None => format!("table {name}"),
    }
}

/// Tokens of `sql` with their positions, string literals kept as written (not unescaped), or
/// `None` when the tokenizer rejects the text (an unclosed quote, say).
pub(crate) fn tokenize(sql: &str) -> Option<Vec<TokenWithSpan>> {
    Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize_with_location()
        .ok()
}

/// True for tokens that carry no meaning (spaces and comments).
pub(crate) fn is_blank(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_) | Token::EOF)
}

/// Byte offsets of a text's line starts, to turn token locations into byte offsets.
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    /// Indexes `text`.
    pub(crate) fn new(text: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// The byte offset of a (1-based line, 1-based character column) location.
    pub(crate) fn offset(&self, loc: Location) -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let column = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let start = *self.starts.get(line)?;
        let rest = self.text.get(start..)?;
        match rest.char_indices().nth(column) {
            Some((i, _)) => Some(start + i),
            None if rest.chars().count() == column => Some(self.text.len()),
            None => None,
        }
    }
}

/// One statement of a text: its exact source and its tokens.
pub(crate) struct Piece<'s, 't> {
    /// The statement's text (without the semicolon).
    pub sql: &'s str,
    /// Its tokens.
    pub tokens: &'t [TokenWithSpan],
}

/// Splits a text into statements at top-level semicolons, dropping empty ones; `None` when a
/// token position cannot be mapped back to the text.
pub(crate) fn split_statements<'s, 't>(
    sql: &'s str,
    tokens: &'t [TokenWithSpan],
) -> Option<Vec<Piece<'s, 't>>> {
    let lines = Lines::new(sql);
    let mut pieces = Vec::new();
    let mut start_byte = 0usize;
    let mut start_token = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        let end = matches!(t.token, Token::SemiColon | Token::EOF) || i + 1 == tokens.len();
        if !end {
            continue;
        }
        let (end_byte, end_token) = match t.token {
            Token::SemiColon => (lines.offset(t.span.start)?, i),
            _ => (sql.len(), i + 1),
        };
        let piece_tokens = tokens.get(start_token..end_token)?;
        if piece_tokens.iter().any(|t| !is_blank(&t.token)) {
            pieces.push(Piece {
                sql: sql.get(start_byte..end_byte)?,
                tokens: piece_tokens,
            });
        }
        start_byte = end_byte + 1;
        start_token = i + 1;
        if matches!(t.token, Token::EOF) {
            break;
        }
    }
    Some(pieces)
}

/// The first `n` words of a statement, upper-cased (keywords), skipping blanks.
pub(crate) fn leading_words(tokens: &[TokenWithSpan], n: usize) -> Vec<String> {
    tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !is_blank(t))
        .take(n)
        .map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect()
}

/// Number of operator tokens: a bound on how deep the parser's expression trees can get
/// (long `a OR b OR ...` chains nest one level per operator).
pub(crate) fn operator_count(tokens: &[TokenWithSpan]) -> usize {
    tokens
        .iter()
        .filter(|t| match &t.token {
            Token::Word(w) => {
                w.quote_style.is_none()
                    && (w.value.eq_ignore_ascii_case("and")
                        || w.value.eq_ignore_ascii_case("or")
                        || w.value.eq_ignore_ascii_case("not"))
            }
            Token::Whitespace(_)
            | Token::EOF
            | Token::Comma
            | Token::LParen
            | Token::RParen
            | Token::SemiColon
            | Token::Period
            | Token::Number(..)
            | Token::Placeholder(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_) => false,
            _ => true,
        })
        .count()
}

/// The largest `$n` among the tokens (0 when there is none).
pub(crate) fn max_placeholder(tokens: &[TokenWithSpan]) -> usize {
    tokens
        .iter()
        .filter_map(|t| match &t.token {
            Token::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Sharded and reference tables named by any word of the tokens, also inside dollar-quoted
/// bodies (`DO $$ ... $$`, function bodies). Sorted, without duplicates.
pub(crate) fn named_tables(router: &Router, tokens: &[TokenWithSpan]) -> Vec<String> {
    let mut found = Vec::new();
    collect_named(router, tokens, 0, &mut found);
    found.sort();
    found.dedup();
    found
}

/// Like [`named_tables`] for text that may not even tokenize (crude word split then).
pub(crate) fn named_tables_in_text(router: &Router, sql: &str) -> Vec<String> {
    match tokenize(sql) {
        Some(tokens) => named_tables(router, &tokens),
        None => {
            let mut found: Vec<String> = sql
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .filter(|w| !w.is_empty())
                .flat_map(|w| [w.to_owned(), w.to_ascii_lowercase()])
                .filter(|w| router.tables().get(w).is_some())
                .collect();
            found.sort();
            found.dedup();
            found
        }
    }
}

/// Nested dollar-quoted bodies are scanned this deep.
const MAX_BODY_DEPTH: usize = 4;

fn collect_named(router: &Router, tokens: &[TokenWithSpan], depth: usize, found: &mut Vec<String>) {
    for token in tokens {
        match &token.token {
            Token::Word(w) => {
                let name = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_ascii_lowercase()
                };
                if router.tables().get(&name).is_some() {
                    found.push(name);
                }
            }
            Token::DollarQuotedString(body) if depth < MAX_BODY_DEPTH => {
                match tokenize(&body.value) {
                    Some(inner) => collect_named(router, &inner, depth + 1, found),
                    None => found.extend(named_tables_in_text(router, &body.value)),
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold(&Ident::new("Users")), "users");
        assert_eq!(fold(&Ident::with_quote('"', "Users")), "Users");
    }

    #[test]
    fn splitting_and_words() {
        let sql = "BEGIN; -- c\n ; SELECT 'a;b' ;\n VACUUM  users";
        let tokens = tokenize(sql).unwrap();
        let pieces = split_statements(sql, &tokens).unwrap();
        let texts: Vec<&str> = pieces.iter().map(|p| p.sql.trim()).collect();
        assert_eq!(texts, vec!["BEGIN", "SELECT 'a;b'", "VACUUM  users"]);
        assert_eq!(leading_words(pieces[2].tokens, 2), vec!["VACUUM", "USERS"]);
    }

    #[test]
    fn splitting_after_multibyte_text() {
        let sql = "SELECT 'é€\t'; \tSELECT 2";
        let tokens = tokenize(sql).unwrap();
        let pieces = split_statements(sql, &tokens).unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].sql, "SELECT 'é€\t'");
        assert_eq!(pieces[1].sql, " \tSELECT 2");
    }

    #[test]
    fn offsets_count_characters() {
        let text = "ab\né;x";
        let lines = Lines::new(text);
        assert_eq!(lines.offset(Location::new(2, 2)), Some(5));
        assert_eq!(lines.offset(Location::new(2, 4)), Some(text.len()));
        assert_eq!(lines.offset(Location::new(3, 1)), None);
    }

    #[test]
    fn operators_and_placeholders() {
        let tokens = tokenize("SELECT $2 WHERE a = 1 OR b = $10 AND c IN (1, 2, 3)").unwrap();
        assert_eq!(operator_count(&tokens), 4);
        assert_eq!(max_placeholder(&tokens), 10);
    }
}
