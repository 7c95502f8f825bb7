//! Literal normalisation for the simple protocol: one pass over a statement text (no sqlparser)
//! that replaces the constants in expression positions by pseudo-parameters `$1..$n`, so that
//! `... WHERE aid = 12345` and `... WHERE aid = 678` share one cache entry and one analysis.
//!
//! The scanner knows PostgreSQL's lexical rules (comments, `'...'` with `''`, `E'...'` with
//! backslashes, `"identifiers"`, `$tag$ dollar quotes $tag$`, `$n` parameters, numbers such as
//! `1.5e3`, identifiers such as `t1`) but not its grammar, so it replaces a constant only where a
//! parameter is certainly an expression of the same shape: right after a comparison or
//! arithmetic operator, or as an item of an `IN (...)` list or a `VALUES` row. Everything else
//! (LIMIT counts, type modifiers, typed strings such as `DATE '...'`, function arguments) stays
//! in the text, and so in the cache key. Whether the analysis of the normalized text may stand
//! for the text itself is then checked once per normalized text (`verify`).

pub(crate) mod verify;

use std::fmt::Write as _;

/// Cache keys separate the normalized text from the constants' kinds with a NUL, which no SQL
/// text from the wire contains (texts that do are not normalized).
const KIND_SEPARATOR: char = '\0';

/// A constant of the original text that became pseudo-parameter `$k` (k = index + 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Constant {
    /// Byte range of the constant as written (quotes and a leading `-` included).
    pub start: usize,
    /// End of that range (exclusive).
    pub end: usize,
    /// A quoted string (else a number).
    pub is_string: bool,
    /// The string's contents when they differ from the text between the quotes (`''`).
    pub unescaped: Option<String>,
}

impl Constant {
    /// The constant as written in `sql`.
    pub(crate) fn written<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.start..self.end).unwrap_or("")
    }

    /// The value as sqlparser reads it: a number with its sign, or a string's contents.
    pub(crate) fn value<'a>(&'a self, sql: &'a str) -> &'a str {
        match (&self.unescaped, self.is_string) {
            (Some(s), _) => s,
            (None, true) => sql
                .get(self.start + 1..self.end.saturating_sub(1))
                .unwrap_or(""),
            (None, false) => self.written(sql),
        }
    }
}

/// A text with its constants replaced by pseudo-parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Normalized {
    /// The cache key: the normalized text, NUL, one letter per constant (`n`umber/`s`tring).
    pub key: String,
    /// Length of the normalized text at the start of `key`.
    pub text_len: usize,
    /// The constants, in order: `$1` is the first.
    pub constants: Vec<Constant>,
}

impl Normalized {
    /// The normalized SQL text.
    pub(crate) fn text(&self) -> &str {
        self.key.get(..self.text_len).unwrap_or("")
    }
}

/// The last significant token, as far as replacing a constant after it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// Start of text.
    Start,
    /// `=`, `<>`, `!=`, `<`, `>`, `<=`, `>=`.
    Compare,
    /// `+`, `*`, `/`, `%`.
    Arith,
    /// `-`, with whether it is a sign (after an operator or a list opening) and its position.
    Minus { unary: bool, at: usize, out: usize },
    /// Any other operator.
    OtherOp,
    /// `(` or `[`.
    Open,
    /// `)`, closing a `VALUES` row or not.
    Close { row: bool },
    /// `,`.
    Comma,
    /// A word: keyword or identifier.
    Word(Kw),
    /// A constant or anything else.
    Other,
}

/// The keywords the scanner cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    In,
    Values,
    Query,
    Other,
}

/// One open bracket: is it a list whose items may be replaced, and is it a `VALUES` row?
#[derive(Debug, Clone, Copy)]
struct Bracket {
    list: bool,
    row: bool,
}

struct Scanner<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: String,
    constants: Vec<Constant>,
    prev: Tok,
    /// The token before `prev` (a `VALUES` row opens after `)` `,`).
    before: Tok,
    brackets: Vec<Bracket>,
    first_word: bool,
    ended: bool,
}

/// The statements eligible for normalisation start with one of these words.
const LEADING_WORDS: &[&str] = &["select", "insert", "update", "delete", "with"];

/// Normalizes a single SELECT/INSERT/UPDATE/DELETE/WITH statement with at least one replaced
/// constant; `None` for anything else (several statements, `$n` parameters, a NUL byte, an
/// unterminated quote or comment, unbalanced brackets).
pub(crate) fn normalize(sql: &str) -> Option<Normalized> {
    if sql.contains(KIND_SEPARATOR) {
        return None;
    }
    let mut s = Scanner {
        sql,
        bytes: sql.as_bytes(),
        pos: 0,
        out: String::with_capacity(sql.len() + 16),
        constants: Vec::new(),
        prev: Tok::Start,
        before: Tok::Start,
        brackets: Vec::new(),
        first_word: false,
        ended: false,
    };
    s.run()?;
    if s.constants.is_empty() || !s.brackets.is_empty() {
        return None;
    }
    let text_len = s.out.len();
    let mut key = s.out;
    key.push(KIND_SEPARATOR);
    key.extend(
        s.constants
            .iter()
            .map(|c| if c.is_string { 's' } else { 'n' }),
    );
    Some(Normalized {
        key,
        text_len,
        constants: s.constants,
    })
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_part(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_op_char(b: u8) -> bool {
    b"+-*/<>=~!@#%^&|`?".contains(&b)
}

impl Scanner<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    /// Copies the input from `from` to the current position.
    fn copy_from(&mut self, from: usize) -> Option<()> {
        self.out.push_str(self.sql.get(from..self.pos)?);
        Some(())
    }

    fn token(&mut self, tok: Tok) {
        self.before = self.prev;
        self.prev = tok;
    }

    fn run(&mut self) -> Option<()> {
        while let Some(b) = self.peek(0) {
            let start = self.pos;
            if b.is_ascii_whitespace() {
                self.pos += 1;
                self.copy_from(start)?;
                continue;
            }
            if b == b'-' && self.peek(1) == Some(b'-') {
                while self.peek(0).is_some_and(|c| c != b'\n') {
                    self.pos += 1;
                }
                self.copy_from(start)?;
                continue;
            }
            if b == b'/' && self.peek(1) == Some(b'*') {
                self.block_comment()?;
                self.copy_from(start)?;
                continue;
            }
            if self.ended {
                // Something after the statement's `;`: several statements.
                return None;
            }
            self.significant(b, start)?;
        }
        Some(())
    }

    fn significant(&mut self, b: u8, start: usize) -> Option<()> {
        if !self.first_word && !is_ident_start(b) {
            return None;
        }
        match b {
            b'\'' => self.string(start),
            b'"' => {
                self.pos += 1;
                self.quoted(b'"')?;
                self.copy_from(start)?;
                self.token(Tok::Word(Kw::Other));
                Some(())
            }
            b'$' => {
                if self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
                    // The text has parameters of its own: not a simple-protocol constant query.
                    return None;
                }
                self.dollar()?;
                self.copy_from(start)?;
                self.token(Tok::Other);
                Some(())
            }
            b'0'..=b'9' => self.number(start),
            b'.' if self.peek(1).is_some_and(|c| c.is_ascii_digit()) => {
                // `.5`: kept as written.
                self.pos += 1;
                while self
                    .peek(0)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.')
                {
                    self.pos += 1;
                }
                self.copy_from(start)?;
                self.token(Tok::Other);
                Some(())
            }
            c if is_ident_start(c) => self.word(start),
            c if is_op_char(c) => self.operator(start),
            b'(' | b'[' => {
                let list = b == b'('
                    && (matches!(self.prev, Tok::Word(Kw::In | Kw::Values))
                        || (self.prev == Tok::Comma && self.before == Tok::Close { row: true }));
                let row = list && self.prev != Tok::Word(Kw::In);
                self.brackets.push(Bracket { list, row });
                self.pos += 1;
                self.copy_from(start)?;
                self.token(Tok::Open);
                Some(())
            }
            b')' | b']' => {
                let bracket = self.brackets.pop()?;
                self.pos += 1;
                self.copy_from(start)?;
                self.token(Tok::Close { row: bracket.row });
                Some(())
            }
            b',' => {
                self.pos += 1;
                self.copy_from(start)?;
                self.token(Tok::Comma);
                Some(())
            }
            b';' => {
                if !self.brackets.is_empty() {
                    return None;
                }
                self.pos += 1;
                self.copy_from(start)?;
                self.ended = true;
                Some(())
            }
            _ => {
                // `::`, `.`, `:` and anything else: one character, copied. Multi-byte characters
                // start with a byte >= 0x80, which is an identifier start.
                self.pos += 1;
                self.copy_from(start)?;
                self.token(Tok::Other);
                Some(())
            }
        }
    }

    /// `/* ... */`, nested as PostgreSQL nests them.
    fn block_comment(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match (self.peek(0)?, self.peek(1)) {
                (b'/', Some(b'*')) => {
                    depth += 1;
                    self.pos += 2;
                }
                (b'*', Some(b'/')) => {
                    depth -= 1;
                    self.pos += 2;
                    if depth == 0 {
                        return Some(());
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Past the closing `quote` of a quoted run whose opening quote was consumed (doubled
    /// quotes are escapes). Returns whether there was a doubled quote.
    fn quoted(&mut self, quote: u8) -> Option<bool> {
        let mut doubled = false;
        loop {
            let c = self.peek(0)?;
            self.pos += 1;
            if c == quote {
                if self.peek(0) == Some(quote) {
                    self.pos += 1;
                    doubled = true;
                } else {
                    return Some(doubled);
                }
            }
        }
    }

    /// `E'...'`: backslash escapes as well as doubled quotes.
    fn escaped_string(&mut self) -> Option<()> {
        loop {
            let c = self.peek(0)?;
            self.pos += 1;
            match c {
                b'\\' => {
                    self.peek(0)?;
                    self.pos += 1;
                }
                b'\'' if self.peek(0) == Some(b'\'') => self.pos += 1,
                b'\'' => return Some(()),
                _ => {}
            }
        }
    }

    /// `$tag$ ... $tag$` (the `$` is at the current position); a lone `$` is one character.
    fn dollar(&mut self) -> Option<()> {
        let open = self.pos;
        let mut end = open + 1;
        while self
            .bytes
            .get(end)
            .is_some_and(|&c| is_ident_part(c) && c != b'$')
        {
            end += 1;
        }
        if self.bytes.get(end) != Some(&b'$') {
            self.pos += 1;
            return Some(());
        }
        let tag = self.sql.get(open..=end)?;
        let body = end + 1;
        let close = self.sql.get(body..)?.find(tag)?;
        self.pos = body + close + tag.len();
        Some(())
    }

    /// Is a constant after `tok` (the token before it) in a position to be replaced?
    fn replaceable_after(&self, tok: Tok) -> bool {
        match tok {
            Tok::Compare | Tok::Arith | Tok::Minus { unary: false, .. } => true,
            Tok::Open | Tok::Comma => self.brackets.last().is_some_and(|b| b.list),
            _ => false,
        }
    }

    /// The significant byte after position `from`, skipping spaces and comments.
    fn next_significant(&self, from: usize) -> Option<u8> {
        let mut i = from;
        loop {
            let c = *self.bytes.get(i)?;
            if c.is_ascii_whitespace() {
                i += 1;
            } else if c == b'-' && self.bytes.get(i + 1) == Some(&b'-') {
                while self.bytes.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
            } else if c == b'/' && self.bytes.get(i + 1) == Some(&b'*') {
                // A comment after a string could hide a continuation; do not look further.
                return Some(b'/');
            } else {
                return Some(c);
            }
        }
    }

    /// A standard `'...'` string.
    fn string(&mut self, start: usize) -> Option<()> {
        self.pos += 1;
        let doubled = self.quoted(b'\'')?;
        let end = self.pos;
        let body = self.sql.get(start + 1..end - 1)?;
        // Backslashes and string continuations (`'a' 'b'`) are left to the exact text.
        let plain = !body.contains('\\') && self.next_significant(end) != Some(b'\'');
        if plain && self.replaceable_after(self.prev) {
            let unescaped = doubled.then(|| body.replace("''", "'"));
            self.replace(start, end, true, unescaped);
        } else {
            self.copy_from(start)?;
        }
        self.token(Tok::Other);
        Some(())
    }

    /// A number: `12`, `1.5`, `1.5e3`, `1e-3`; replaced only in that exact form and when no
    /// identifier character or `.` follows (`5L`, `0x1F`, `1_000`, `5.` stay as written).
    fn number(&mut self, start: usize) -> Option<()> {
        let digits = |s: &mut Self| {
            let from = s.pos;
            while s.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                s.pos += 1;
            }
            s.pos > from
        };
        digits(self);
        let mut exact = true;
        if self.peek(0) == Some(b'.') {
            self.pos += 1;
            exact = digits(self);
        }
        if matches!(self.peek(0), Some(b'e' | b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(0), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                self.pos = save;
            }
        }
        let follows = self
            .peek(0)
            .is_some_and(|c| is_ident_part(c) || c == b'.' || c == b'\'');
        if follows {
            // Keep the whole glued run (`0x1F`, `5abc`) as written.
            while self.peek(0).is_some_and(|c| is_ident_part(c) || c == b'.') {
                self.pos += 1;
            }
            self.copy_from(start)?;
            self.token(Tok::Other);
            return Some(());
        }
        let end = self.pos;
        match self.prev {
            Tok::Minus {
                unary: true,
                at,
                out,
            } => {
                // `-5` right after an operator or list opening: one signed constant, sign
                // included, when the sign touches the digits and nothing binds tighter than
                // the sign (`-5::text` is `-(5::text)`, `-5[1]` is `-(5[1])`).
                let tighter = matches!(self.next_significant(end), Some(b':' | b'['));
                if exact && at + 1 == start && !tighter && self.replaceable_after(self.before) {
                    self.out.truncate(out);
                    self.replace(at, end, false, None);
                } else {
                    self.copy_from(start)?;
                }
            }
            prev if exact && self.replaceable_after(prev) => self.replace(start, end, false, None),
            _ => self.copy_from(start)?,
        }
        self.token(Tok::Other);
        Some(())
    }

    fn replace(&mut self, start: usize, end: usize, is_string: bool, unescaped: Option<String>) {
        self.constants.push(Constant {
            start,
            end,
            is_string,
            unescaped,
        });
        let _ = write!(self.out, "${}", self.constants.len());
    }

    /// An identifier or keyword; an identifier glued to a quote is a prefixed string
    /// (`E'...'`, `B'...'`, `X'...'`, `N'...'`, `DATE'...'`), kept as written.
    fn word(&mut self, start: usize) -> Option<()> {
        while self.peek(0).is_some_and(is_ident_part) {
            self.pos += 1;
        }
        let word = self.sql.get(start..self.pos)?;
        if self.peek(0) == Some(b'\'') {
            self.pos += 1;
            if word.eq_ignore_ascii_case("e") {
                self.escaped_string()?;
            } else {
                self.quoted(b'\'')?;
            }
            self.copy_from(start)?;
            self.token(Tok::Other);
            return Some(());
        }
        if !self.first_word {
            if !LEADING_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w)) {
                return None;
            }
            self.first_word = true;
        }
        let kw = if word.eq_ignore_ascii_case("in") {
            Kw::In
        } else if word.eq_ignore_ascii_case("values") {
            Kw::Values
        } else if ["select", "with", "values", "table"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w))
        {
            Kw::Query
        } else {
            Kw::Other
        };
        if self.prev == Tok::Open && matches!(kw, Kw::Query | Kw::Values) {
            // `IN (SELECT ...)`, `VALUES ((VALUES ...))`: a query, not a list of constants.
            if let Some(b) = self.brackets.last_mut() {
                b.list = false;
            }
        }
        self.copy_from(start)?;
        self.token(Tok::Word(kw));
        Some(())
    }

    /// An operator, cut as PostgreSQL cuts it: at `--` or `/*`, and a trailing `+`/`-` is its
    /// own operator unless the run holds one of `~!@#%^&|`?`.
    fn operator(&mut self, start: usize) -> Option<()> {
        let mut end = start;
        while let Some(&c) = self.bytes.get(end) {
            let comment = matches!(
                (c, self.bytes.get(end + 1)),
                (b'-', Some(b'-')) | (b'/', Some(b'*'))
            );
            if !is_op_char(c) || (end > start && comment) {
                break;
            }
            end += 1;
        }
        let mut op = self.sql.get(start..end)?;
        if op.len() > 1 && !op.bytes().any(|c| b"~!@#%^&|`?".contains(&c)) {
            while op.len() > 1 && (op.ends_with('+') || op.ends_with('-')) {
                op = op.get(..op.len() - 1)?;
            }
        }
        self.pos = start + op.len();
        let tok = match op {
            "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" => Tok::Compare,
            "+" | "*" | "/" | "%" => Tok::Arith,
            "-" => Tok::Minus {
                unary: matches!(
                    self.prev,
                    Tok::Compare | Tok::Arith | Tok::Minus { .. } | Tok::OtherOp | Tok::Open
                ) || self.prev == Tok::Comma,
                at: start,
                out: self.out.len(),
            },
            _ => Tok::OtherOp,
        };
        self.copy_from(start)?;
        self.token(tok);
        Some(())
    }
}

#[cfg(test)]
mod tests;
