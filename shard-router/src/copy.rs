//! COPY FROM STDIN splitting: rows out of CopyData chunks, and the key field of a row
//! (text and CSV formats, PostgreSQL's rules). The proxy streams rows, never the whole input.
//!
//! Line splitting follows PostgreSQL's `CopyReadLineText` (backslash escapes in text format,
//! quote toggling in CSV, one newline style per input, the `\.` end marker), so each shard
//! receives exactly the rows PostgreSQL would have read.

use bytes::{Bytes, BytesMut};
use config::{KeyType, KeyValue};
use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::keys::{key_from_copy_field, KeyError};
use crate::RouteError;

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

fn bad_format(msg: &str) -> CopyError {
    CopyError::BadFormat(msg.to_owned())
}

/// The newline style, fixed by the first line as PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Unknown,
    Nl,
    Cr,
    CrNl,
}

impl Eol {
    fn bytes(self) -> &'static [u8] {
        match self {
            Eol::Cr => b"\r",
            Eol::CrNl => b"\r\n",
            Eol::Unknown | Eol::Nl => b"\n",
        }
    }
}

/// What the scanner found in the data of the current row.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A row ends here (exclusive, terminator included).
    Row(usize),
    /// The `\.` end marker: everything from here on is ignored.
    End,
    /// More data is needed.
    Need,
}

/// Line-splitting state that survives across chunks, so every byte is scanned once.
#[derive(Debug)]
struct Scanner {
    /// Bytes of the current row already scanned.
    pos: usize,
    in_quote: bool,
    last_was_esc: bool,
    eol: Eol,
}

impl Scanner {
    /// Accepts a newline sequence of style `seen`, or fails on a mixed style.
    fn newline(&mut self, seen: Eol) -> Result<(), CopyError> {
        match (self.eol, seen) {
            (Eol::Unknown, s) => self.eol = s,
            (a, b) if a == b => {}
            (_, Eol::Nl) => return Err(bad_format("literal newline found in data")),
            _ => return Err(bad_format("literal carriage return found in data")),
        }
        Ok(())
    }

    /// The newline starting at `data[i]` (`\n`, `\r` or `\r\n`): its length, or `None` when a
    /// `\r` is the last byte and the style is not yet known.
    fn newline_at(&mut self, data: &[u8], i: usize, eof: bool) -> Result<Option<usize>, CopyError> {
        match data.get(i) {
            Some(b'\n') => self.newline(Eol::Nl).map(|()| Some(1)),
            Some(b'\r') => match data.get(i + 1) {
                Some(b'\n') => self.newline(Eol::CrNl).map(|()| Some(2)),
                None if !eof && self.eol != Eol::Cr => Ok(None),
                _ => self.newline(Eol::Cr).map(|()| Some(1)),
            },
            _ => Ok(Some(0)),
        }
    }

    /// The `\.` end marker at the start of a row: `Some(true)` it is one, `Some(false)` it is
    /// not, `None` more data is needed.
    fn end_marker(&mut self, data: &[u8], csv: bool, eof: bool) -> Result<Option<bool>, CopyError> {
        match data {
            [] | [b'\\'] | [b'\\', b'.'] if !eof => return Ok(None),
            [b'\\', b'.'] => return Ok(Some(true)),
            [b'\\', b'.', b'\n' | b'\r', ..] => {}
            [b'\\', b'.', ..] if !csv => return Err(bad_format("end-of-copy marker corrupt")),
            _ => return Ok(Some(false)),
        }
        match self.newline_at(data, 2, eof) {
            Ok(None) => Ok(None),
            Ok(Some(_)) => Ok(Some(true)),
            Err(_) => Err(bad_format(
                "end-of-copy marker does not match previous newline style",
            )),
        }
    }

    /// Scans `data` (the current row's bytes from its start) for the row's end.
    fn step(&mut self, data: &[u8], format: &CopyFormat, eof: bool) -> Result<Step, CopyError> {
        if self.pos == 0 {
            match self.end_marker(data, format.csv, eof)? {
                None => return Ok(Step::Need),
                Some(true) => return Ok(Step::End),
                Some(false) => {}
            }
        }
        // With escape == quote, quotes simply toggle (PostgreSQL disables the escape then).
        let escape = (format.escape != format.quote).then_some(format.escape);
        let mut i = self.pos;
        while let Some(&c) = data.get(i) {
            if format.csv {
                if self.in_quote && Some(c) == escape {
                    self.last_was_esc = !self.last_was_esc;
                }
                if c == format.quote && !self.last_was_esc {
                    self.in_quote = !self.in_quote;
                }
                if Some(c) != escape {
                    self.last_was_esc = false;
                }
                if self.in_quote {
                    i += 1;
                    continue;
                }
            } else if c == b'\\' {
                match data.get(i + 1) {
                    // At the end of the data PostgreSQL drops a dangling backslash; `finish` does.
                    None => break,
                    Some(b'.') => {
                        return Err(bad_format(
                            "end-of-copy marker \\. must be alone on its line",
                        ))
                    }
                    Some(_) => {
                        i += 2;
                        continue;
                    }
                }
            }
            if c == b'\n' || c == b'\r' {
                match self.newline_at(data, i, eof)? {
                    Some(n) => return Ok(Step::Row(i + n)),
                    None => break,
                }
            }
            i += 1;
        }
        self.pos = i.min(data.len());
        Ok(Step::Need)
    }

    /// Forgets the finished row (the newline style stays).
    fn next_row(&mut self) {
        self.pos = 0;
        self.in_quote = false;
        self.last_was_esc = false;
    }
}

/// Incremental row splitter: feed CopyData payloads (rows may span chunks; CSV quoted fields may
/// hold newlines) and get complete rows back, each a `Bytes` including its line terminator, so
/// the rows of one shard concatenated are valid COPY data for it.
///
/// The header line (HEADER option) is not returned as a row: either send the shards the COPY
/// statement without HEADER, or send each shard [`RowSplitter::header`] first.
#[derive(Debug)]
pub struct RowSplitter {
    format: CopyFormat,
    /// The unfinished row (only its bytes; complete rows are split off at once).
    buf: BytesMut,
    scanner: Scanner,
    header_pending: bool,
    header: Option<Bytes>,
    done: bool,
    max_row: usize,
}

impl RowSplitter {
    /// A splitter with the default row limit.
    pub fn new(format: CopyFormat) -> Self {
        RowSplitter::with_max_row(format, DEFAULT_MAX_ROW_BYTES)
    }

    /// A splitter refusing rows longer than `max_row` bytes.
    pub fn with_max_row(format: CopyFormat, max_row: usize) -> Self {
        RowSplitter {
            header_pending: format.header,
            format,
            buf: BytesMut::new(),
            scanner: Scanner {
                pos: 0,
                in_quote: false,
                last_was_esc: false,
                eol: Eol::Unknown,
            },
            header: None,
            done: false,
            max_row,
        }
    }

    /// The format rows are split by.
    pub fn format(&self) -> &CopyFormat {
        &self.format
    }

    /// The header line once read (with its terminator).
    pub fn header(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    /// True once the `\.` end marker was read (later data is ignored, as PostgreSQL does).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Records a complete row, or the header.
    fn emit(&mut self, row: Bytes, rows: &mut Vec<Bytes>) -> Result<(), CopyError> {
        self.scanner.next_row();
        if row.len() > self.max_row {
            return Err(CopyError::RowTooLarge {
                limit: self.max_row,
            });
        }
        if self.header_pending {
            self.header_pending = false;
            self.header = Some(row);
        } else {
            rows.push(row);
        }
        Ok(())
    }

    /// Splits the rows off the internal buffer.
    fn drain(&mut self, eof: bool, rows: &mut Vec<Bytes>) -> Result<(), CopyError> {
        while !self.done {
            match self.scanner.step(&self.buf, &self.format, eof)? {
                Step::Row(end) => {
                    let row = self.buf.split_to(end).freeze();
                    self.emit(row, rows)?;
                }
                Step::End => {
                    self.done = true;
                    self.buf.clear();
                }
                Step::Need => break,
            }
        }
        if self.buf.len() > self.max_row {
            return Err(CopyError::RowTooLarge {
                limit: self.max_row,
            });
        }
        Ok(())
    }

    /// Appends data; returns the rows it completed (the header line and the `\.` end marker are
    /// not rows). Copies the chunk once into the pending buffer; see [`RowSplitter::push_bytes`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, CopyError> {
        let mut rows = Vec::new();
        if !self.done {
            self.buf.extend_from_slice(chunk);
            self.drain(false, &mut rows)?;
        }
        Ok(rows)
    }

    /// Like [`RowSplitter::push`], but rows lying wholly inside `chunk` are slices of it (no
    /// copy); only an unfinished last row is copied.
    pub fn push_bytes(&mut self, chunk: Bytes) -> Result<Vec<Bytes>, CopyError> {
        if !self.buf.is_empty() || self.done {
            return self.push(&chunk);
        }
        let mut rows = Vec::new();
        let mut start = 0;
        while let Some(data) = chunk.get(start..) {
            match self.scanner.step(data, &self.format, false)? {
                Step::Row(len) => {
                    self.emit(chunk.slice(start..start + len), &mut rows)?;
                    start += len;
                }
                Step::End => {
                    self.done = true;
                    break;
                }
                Step::Need => {
                    self.buf.extend_from_slice(data);
                    if self.buf.len() > self.max_row {
                        return Err(CopyError::RowTooLarge {
                            limit: self.max_row,
                        });
                    }
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// At CopyDone: the rows still pending, the last one given a terminator if the data did
    /// not end with one (so every row ends with a newline).
    pub fn finish(&mut self) -> Result<Vec<Bytes>, CopyError> {
        let mut rows = Vec::new();
        self.drain(true, &mut rows)?;
        if self.done || self.buf.is_empty() {
            self.buf.clear();
            return Ok(rows);
        }
        if self.format.csv && self.scanner.in_quote {
            return Err(bad_format("unterminated CSV quoted field"));
        }
        let mut last = std::mem::take(&mut self.buf);
        if !self.format.csv && last.last() == Some(&b'\\') && self.scanner.pos + 1 == last.len() {
            // An unpaired trailing backslash escapes nothing; before our newline it would
            // escape that, so drop it (PostgreSQL ignores it at the end of a line).
            last.truncate(last.len() - 1);
        }
        last.extend_from_slice(self.scanner.eol.bytes());
        self.emit(last.freeze(), &mut rows)?;
        self.done = true;
        Ok(rows)
    }
}

/// The row without its line terminator.
fn strip_terminator(row: &[u8]) -> &[u8] {
    row.strip_suffix(b"\r\n")
        .or_else(|| row.strip_suffix(b"\n"))
        .or_else(|| row.strip_suffix(b"\r"))
        .unwrap_or(row)
}

/// The field at `index` of one row (text format: backslash escapes decoded; CSV: unquoted);
/// `None` is NULL. The row may include its line terminator.
pub fn field(row: &[u8], index: usize, format: &CopyFormat) -> Result<Option<Vec<u8>>, CopyError> {
    field_with(row, index, format, false, false)
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
    match field_with(row, index, format, force_not_null, force_null)? {
        None => Err(CopyError::Key(KeyError::Null)),
        Some(bytes) => Ok(key_from_copy_field(key_type, &bytes)?),
    }
}

/// `field` with the CSV FORCE options of that column.
fn field_with(
    row: &[u8],
    index: usize,
    format: &CopyFormat,
    force_not_null: bool,
    force_null: bool,
) -> Result<Option<Vec<u8>>, CopyError> {
    let line = strip_terminator(row);
    let mut start = 0;
    for n in 0..=index {
        let parsed = if format.csv {
            csv_field(line, start, format)?
        } else {
            text_field(line, start, format)
        };
        let Some((raw_end, value, saw_quote)) = parsed else {
            return Err(CopyError::MissingColumn { index, found: n });
        };
        if n == index {
            let raw = line.get(start..raw_end).unwrap_or_default();
            let is_null_marker = raw == format.null.as_slice();
            if format.csv {
                if !saw_quote && is_null_marker {
                    return Ok((force_not_null).then(|| format.null.clone()));
                }
                if force_null && value == format.null {
                    return Ok(None);
                }
                return Ok(Some(value));
            }
            return Ok((!is_null_marker).then_some(value));
        }
        // Past the delimiter.
        start = raw_end + 1;
        if raw_end >= line.len() {
            return Err(CopyError::MissingColumn {
                index,
                found: n + 1,
            });
        }
    }
    Err(CopyError::MissingColumn { index, found: 0 })
}

/// One text-format field from `start`: (raw end, decoded value, false).
fn text_field(line: &[u8], start: usize, format: &CopyFormat) -> Option<(usize, Vec<u8>, bool)> {
    if start > line.len() {
        return None;
    }
    let mut out = Vec::new();
    let mut i = start;
    while let Some(&c) = line.get(i) {
        if c == format.delimiter {
            break;
        }
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = line.get(i) else { break };
        i += 1;
        match e {
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match line.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => match line.get(i).and_then(|&h| char::from(h).to_digit(16)) {
                Some(first) => {
                    i += 1;
                    let mut v = first;
                    if let Some(second) = line.get(i).and_then(|&h| char::from(h).to_digit(16)) {
                        v = v * 16 + second;
                        i += 1;
                    }
                    out.push(v as u8);
                }
                None => out.push(b'x'),
            },
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            other => out.push(other),
        }
    }
    Some((i, out, false))
}

/// One CSV field from `start`: (raw end, unquoted value, whether it had quotes).
fn csv_field(
    line: &[u8],
    start: usize,
    format: &CopyFormat,
) -> Result<Option<(usize, Vec<u8>, bool)>, CopyError> {
    if start > line.len() {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut saw_quote = false;
    let mut i = start;
    while let Some(&c) = line.get(i) {
        if c == format.delimiter {
            break;
        }
        i += 1;
        if c != format.quote {
            out.push(c);
            continue;
        }
        saw_quote = true;
        loop {
            let Some(&q) = line.get(i) else {
                return Err(bad_format("unterminated CSV quoted field"));
            };
            i += 1;
            if q == format.escape {
                if let Some(&next) = line.get(i) {
                    if next == format.escape || next == format.quote {
                        out.push(next);
                        i += 1;
                        continue;
                    }
                }
            }
            if q == format.quote {
                break;
            }
            out.push(q);
        }
    }
    Ok(Some((i, out, saw_quote)))
}
