//! A light SQL lexer: statements split at top-level `;`, tokens that respect quotes, `E''`
//! strings, dollar quotes and comments. Enough to read statement heads (SET, DEALLOCATE, ROLLBACK)
//! on the hot path without a parser; never used to route.

/// A lexical token: enough to read statement heads without a full parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// Keyword, identifier or number (bare).
    Word(&'a str),
    /// Quoted literal or identifier, with its quotes (`'x'`, `E'x'`, `"X"`, `$$x$$`).
    Quoted(&'a str),
    /// Any other single character.
    Punct(char),
}

impl Token<'_> {
    /// The token's text as written.
    pub(crate) fn text(&self) -> String {
        match self {
            Token::Word(w) | Token::Quoted(w) => (*w).to_string(),
            Token::Punct(c) => c.to_string(),
        }
    }
}

/// Splits SQL into statements of tokens, respecting quotes, dollar quotes and comments.
pub(crate) fn split_statements(sql: &str) -> Vec<Vec<Token<'_>>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b';' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' | b'"' => {
                let end = quoted_end(b, i, c, false);
                cur.push(Token::Quoted(&sql[i..end]));
                i = end;
            }
            b'e' | b'E' if b.get(i + 1) == Some(&b'\'') => {
                let end = quoted_end(b, i + 1, b'\'', true);
                cur.push(Token::Quoted(&sql[i..end]));
                i = end;
            }
            b'$' if dollar_tag(b, i).is_some() => {
                let tag_end = dollar_tag(b, i).unwrap_or(i + 1);
                let tag = &b[i..tag_end];
                let mut j = tag_end;
                let end = loop {
                    if j >= b.len() {
                        break b.len();
                    }
                    if b[j..].starts_with(tag) {
                        break j + tag.len();
                    }
                    j += 1;
                };
                cur.push(Token::Quoted(&sql[i..end]));
                i = end;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                cur.push(Token::Word(&sql[start..i]));
            }
            _ => {
                // i is on an ASCII byte here (all multi-byte starts are >= 0x80 above)
                cur.push(Token::Punct(c as char));
                i += 1;
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Index just past the closing quote of a quoted token starting at `start`.
fn quoted_end(b: &[u8], start: usize, q: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

/// If a dollar-quote tag (`$$` or `$tag$`) starts at `i`, the index just past it.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        if j == i + 1 && b[j].is_ascii_digit() {
            return None; // $1 is a parameter
        }
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}
