//! COPY FROM STDIN splitting: rows out of CopyData chunks, and the key field of a row
//! (text and CSV formats, PostgreSQL's rules). The proxy streams rows, never the whole input.
//!
//! Line splitting follows PostgreSQL's `CopyReadLineText` (backslash escapes in text format,
//! quote toggling in CSV, one newline style per input, the `\.` end marker), so each shard
//! receives exactly the rows PostgreSQL would have read.

mod fields;
mod split;

use config::{KeyType, KeyValue};
use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::keys::{key_from_copy_field, KeyError};
use crate::RouteError;

pub use split::RowSplitter;

/// Largest row the splitter buffers (PostgreSQL's own limit on a row is 1 GB; 64 MiB keeps the
/// proxy's memory bounded per COPY).
pub const DEFAULT_MAX_ROW_BYTES: usize = 64 * 1024 * 1024;

/// How COPY data is written (FORMAT text or csv and their options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    /// CSV (true) or text (false).
    pub csv: bool,
    /// Field delimiter (text: tab, CSV: comma).
    pub delimiter: u8,
    /// CSV quote character.
    pub quote: u8,
    /// CSV escape character (defaults to the quote).
    pub escape: u8,
    /// The NULL marker (text: `\N`, CSV: empty unquoted).
    pub null: Vec<u8>,
    /// The first line is a header (skipped by the splitter; see [`RowSplitter::header`]).
    pub header: bool,
    /// CSV FORCE_NOT_NULL columns (folded names, `*` = all): their NULL marker is a value.
    pub force_not_null: Vec<String>,
    /// CSV FORCE_NULL columns (folded names, `*` = all): a quoted NULL marker is NULL too.
    pub force_null: Vec<String>,
}

/// Characters a text-format delimiter may not be (they mean something after a backslash).
const TEXT_FORBIDDEN_DELIMITERS: &[u8] = b"\\.abcdefghijklmnopqrstuvwxyz0123456789";

impl CopyFormat {
    /// FORMAT text defaults: tab, `\N`, no header.
    pub fn text() -> Self {
        CopyFormat {
            csv: false,
            delimiter: b'\t',
            quote: b'"',
            escape: b'"',
            null: b"\\N".to_vec(),
            header: false,
            force_not_null: Vec::new(),
            force_null: Vec::new(),
        }
    }

    /// FORMAT csv defaults: comma, `"` quote and escape, empty NULL, no header.
    pub fn csv() -> Self {
        CopyFormat {
            csv: true,
            delimiter: b',',
            null: Vec::new(),
            ..CopyFormat::text()
        }
    }

    /// From COPY options as (name, value) pairs, names case-insensitive: FORMAT, DELIMITER,
    /// QUOTE, ESCAPE, NULL, HEADER (true/false/on/off/1/0/match; no value = true), ENCODING
    /// (UTF8 only), FREEZE, FORCE_NOT_NULL / FORCE_NULL (comma-separated column names, quoted
    /// names keep their case), ON_ERROR stop; old syntax CSV (no value). BINARY, DEFAULT and
    /// ON_ERROR ignore are refused (0A000).
    pub fn from_options(opts: &[(String, Option<String>)]) -> Result<CopyFormat, RouteError> {
        let bad = |msg: String| RouteError::new("22023", msg);
        let unsupported = |msg: String| RouteError::new("0A000", msg);
        let mut csv = false;
        let (mut delimiter, mut quote, mut escape, mut null) = (None, None, None, None);
        let (mut header, mut force_not_null, mut force_null) = (false, Vec::new(), Vec::new());
        for (name, value) in opts {
            let lower = name.to_ascii_lowercase();
            let need = || {
                value.as_deref().ok_or_else(|| {
                    RouteError::new("42601", format!("COPY option {lower} needs a value"))
                })
            };
            let one_byte = |what: &str| -> Result<u8, RouteError> {
                match need()?.as_bytes() {
                    [b] if b.is_ascii() => Ok(*b),
                    _ => Err(bad(format!(
                        "COPY {what} must be a single one-byte character"
                    ))),
                }
            };
            match lower.as_str() {
                "format" => match need()?.to_ascii_lowercase().as_str() {
                    "text" => csv = false,
                    "csv" => csv = true,
                    "binary" => {
                        return Err(unsupported(
                            "COPY FORMAT binary into a sharded table is not supported; use text or csv"
                                .to_owned(),
                        ))
                    }
                    other => return Err(bad(format!("COPY format \"{other}\" not recognized"))),
                },
                "csv" => csv = true,
                "text" => csv = false,
                "binary" => {
                    return Err(unsupported(
                        "COPY BINARY into a sharded table is not supported; use text or csv"
                            .to_owned(),
                    ))
                }
                "delimiter" => delimiter = Some(one_byte("delimiter")?),
                "quote" => quote = Some(one_byte("quote")?),
                "escape" => escape = Some(one_byte("escape")?),
                "null" => null = Some(need()?.as_bytes().to_vec()),
                "header" => {
                    header = match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
                        None | Some("true" | "on" | "1" | "t" | "yes" | "y" | "match") => true,
                        Some("false" | "off" | "0" | "f" | "no" | "n") => false,
                        Some(other) => {
                            return Err(bad(format!("COPY header \"{other}\" is not a boolean")))
                        }
                    }
                }
                "encoding" => {
                    let enc = need()?.to_ascii_lowercase().replace(['-', '_'], "");
                    if enc != "utf8" && enc != "unicode" {
                        return Err(unsupported(format!(
                            "COPY ENCODING {} into a sharded table is not supported; send UTF8",
                            need()?
                        )));
                    }
                }
                "freeze" | "log_verbosity" | "reject_limit" => {}
                "on_error" => {
                    if !value
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case("stop"))
                    {
                        return Err(unsupported(
                            "COPY ON_ERROR other than stop is not supported into a sharded table"
                                .to_owned(),
                        ));
                    }
                }
                "force_not_null" => force_not_null.extend(column_list(need()?)),
                "force_null" => force_null.extend(column_list(need()?)),
                "force_quote" => {
                    return Err(bad("COPY FORCE_QUOTE cannot be used with COPY FROM".to_owned()))
                }
                "default" => {
                    return Err(unsupported(
                        "COPY DEFAULT into a sharded table is not supported: the shard key must be in the data"
                            .to_owned(),
                    ))
                }
                other => {
                    return Err(RouteError::new(
                        "42601",
                        format!("COPY option \"{other}\" not recognized"),
                    ))
                }
            }
        }
        let base = if csv {
            CopyFormat::csv()
        } else {
            CopyFormat::text()
        };
        if !csv && (quote.is_some() || escape.is_some()) {
            return Err(unsupported(
                "COPY QUOTE and ESCAPE require CSV mode".to_owned(),
            ));
        }
        if !csv && (!force_not_null.is_empty() || !force_null.is_empty()) {
            return Err(unsupported(
                "COPY FORCE_NOT_NULL and FORCE_NULL require CSV mode".to_owned(),
            ));
        }
        let quote = quote.unwrap_or(base.quote);
        let format = CopyFormat {
            csv,
            delimiter: delimiter.unwrap_or(base.delimiter),
            quote,
            escape: escape.unwrap_or(quote),
            null: null.unwrap_or(base.null),
            header,
            force_not_null,
            force_null,
        };
        format.validate()?;
        Ok(format)
    }

    /// PostgreSQL's checks on delimiter, quote and NULL marker combinations.
    fn validate(&self) -> Result<(), RouteError> {
        let bad = |msg: &str| Err(RouteError::new("22023", msg.to_owned()));
        if matches!(self.delimiter, b'\r' | b'\n') {
            return bad("COPY delimiter cannot be newline or carriage return");
        }
        if self.null.contains(&b'\r') || self.null.contains(&b'\n') {
            return bad("COPY null representation cannot use newline or carriage return");
        }
        if !self.csv && TEXT_FORBIDDEN_DELIMITERS.contains(&self.delimiter.to_ascii_lowercase()) {
            return bad("COPY delimiter cannot be a backslash, a period, a letter or a digit");
        }
        if self.csv && self.delimiter == self.quote {
            return bad("COPY delimiter and quote must be different");
        }
        if self.null.contains(&self.delimiter) {
            return bad("COPY delimiter must not appear in the NULL specification");
        }
        if self.csv && self.null.contains(&self.quote) {
            return bad("CSV quote character must not appear in the NULL specification");
        }
        Ok(())
    }

    /// From sqlparser's COPY options (new `WITH (...)` and legacy forms).
    pub fn from_sql_options(
        options: &[CopyOption],
        legacy: &[CopyLegacyOption],
    ) -> Result<CopyFormat, RouteError> {
        let pair = |n: &str, v: Option<String>| (n.to_owned(), v);
        let names = |cols: &[sqlparser::ast::Ident]| {
            let shown: Vec<String> = cols.iter().map(ToString::to_string).collect();
            Some(shown.join(","))
        };
        let mut opts = Vec::new();
        for o in options {
            opts.push(match o {
                CopyOption::Format(f) => pair("format", Some(f.value.clone())),
                CopyOption::Freeze(b) => pair("freeze", Some(b.to_string())),
                CopyOption::Delimiter(c) => pair("delimiter", Some(c.to_string())),
                CopyOption::Null(s) => pair("null", Some(s.clone())),
                CopyOption::Header(b) => pair("header", Some(b.to_string())),
                CopyOption::Quote(c) => pair("quote", Some(c.to_string())),
                CopyOption::Escape(c) => pair("escape", Some(c.to_string())),
                CopyOption::ForceQuote(cols) => pair("force_quote", names(cols)),
                CopyOption::ForceNotNull(cols) => pair("force_not_null", names(cols)),
                CopyOption::ForceNull(cols) => pair("force_null", names(cols)),
                CopyOption::Encoding(e) => pair("encoding", Some(e.clone())),
            });
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Binary => opts.push(pair("binary", None)),
                CopyLegacyOption::Delimiter(c) => opts.push(pair("delimiter", Some(c.to_string()))),
                CopyLegacyOption::Null(s) => opts.push(pair("null", Some(s.clone()))),
                CopyLegacyOption::Header => opts.push(pair("header", None)),
                CopyLegacyOption::Csv(csv_opts) => {
                    opts.push(pair("csv", None));
                    for c in csv_opts {
                        opts.push(match c {
                            CopyLegacyCsvOption::Header => pair("header", None),
                            CopyLegacyCsvOption::Quote(q) => pair("quote", Some(q.to_string())),
                            CopyLegacyCsvOption::Escape(e) => pair("escape", Some(e.to_string())),
                            CopyLegacyCsvOption::ForceQuote(cols) => {
                                pair("force_quote", names(cols))
                            }
                            CopyLegacyCsvOption::ForceNotNull(cols) => {
                                pair("force_not_null", names(cols))
                            }
                        });
                    }
                }
                other => {
                    return Err(RouteError::new(
                        "42601",
                        format!("COPY option {other} is not a PostgreSQL option"),
                    ))
                }
            }
        }
        CopyFormat::from_options(&opts)
    }

    /// Whether FORCE_NOT_NULL / FORCE_NULL name `column` (folded).
    fn forced(&self, column: &str) -> (bool, bool) {
        let has = |list: &[String]| list.iter().any(|c| c == "*" || c == column);
        (has(&self.force_not_null), has(&self.force_null))
    }
}

/// Column names from `a, "B", c`: unquoted names fold to lower case, quoted ones keep theirs.
fn column_list(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            c if !quoted && c.is_whitespace() => {}
            c if !quoted => current.push(c.to_ascii_lowercase()),
            c => current.push(c),
        }
    }
    out.push(current);
    out.retain(|c| !c.is_empty());
    out
}

/// Why COPY data cannot be split or its key read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// A row longer than the splitter's limit.
    #[error("COPY row exceeds {limit} bytes")]
    RowTooLarge {
        /// the limit in bytes
        limit: usize,
    },
    /// Malformed data (PostgreSQL's bad_copy_file_format).
    #[error("{0}")]
    BadFormat(String),
    /// The row has fewer fields than the key column's position.
    #[error("missing data for column {index} (the row has {found} fields)")]
    MissingColumn {
        /// zero-based field index looked for
        index: usize,
        /// fields in the row
        found: usize,
    },
    /// The key field of a row is NULL or not a valid key.
    #[error("{0}")]
    Key(#[from] KeyError),
}

impl CopyError {
    /// SQLSTATE: 54000 row too large, 22P04 bad COPY data, or the key error's.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CopyError::RowTooLarge { .. } => "54000",
            CopyError::BadFormat(_) | CopyError::MissingColumn { .. } => "22P04",
            CopyError::Key(e) => e.sqlstate(),
        }
    }

    /// The client-facing error for COPY into `table` keyed by `column`.
    pub fn to_route_error(&self, table: &str, column: &str) -> RouteError {
        match self {
            CopyError::Key(e) => e.to_route_error(table, column),
            other => RouteError::new(other.sqlstate(), format!("COPY {table}: {other}")),
        }
    }
}

/// A bad_copy_file_format error.
fn bad_format(msg: &str) -> CopyError {
    CopyError::BadFormat(msg.to_owned())
}

/// The field at `index` of one row (text format: backslash escapes decoded; CSV: unquoted);
/// `None` is NULL. The row may include its line terminator.
pub fn field(row: &[u8], index: usize, format: &CopyFormat) -> Result<Option<Vec<u8>>, CopyError> {
    fields::field_with(row, index, format, false, false)
}

/// The shard key of one row: field `index` (for the key column `column`, folded, whose
/// FORCE_NULL / FORCE_NOT_NULL options apply) read as `key_type`. NULL is [`KeyError::Null`].
pub fn row_key(
    row: &[u8],
    index: usize,
    column: &str,
    key_type: KeyType,
    format: &CopyFormat,
) -> Result<KeyValue, CopyError> {
    let (force_not_null, force_null) = format.forced(column);
    match fields::field_with(row, index, format, force_not_null, force_null)? {
        None => Err(CopyError::Key(KeyError::Null)),
        Some(bytes) => Ok(key_from_copy_field(key_type, &bytes)?),
    }
}
