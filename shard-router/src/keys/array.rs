//! Array parameters for `key = ANY($n)`: PostgreSQL's text (`array_in`) and binary
//! (`array_recv`) formats, flattened to their elements (ANY looks at every dimension).

use super::oid;

/// PostgreSQL's MAXDIM.
const MAX_DIMS: usize = 6;

/// The element type of an array type OID; `Some(0)` when unspecified (PostgreSQL infers an
/// array of the key column's type); `None` when the OID is not an array type we read.
pub(super) fn element_oid(array_oid: u32) -> Option<u32> {
    Some(match array_oid {
        oid::UNSPECIFIED | oid::UNKNOWN => oid::UNSPECIFIED,
        oid::INT2_ARRAY => oid::INT2,
        oid::INT4_ARRAY => oid::INT4,
        oid::INT8_ARRAY => oid::INT8,
        oid::TEXT_ARRAY => oid::TEXT,
        oid::VARCHAR_ARRAY => oid::VARCHAR,
        oid::BPCHAR_ARRAY => oid::BPCHAR,
        oid::NAME_ARRAY => oid::NAME,
        oid::NUMERIC_ARRAY => oid::NUMERIC,
        oid::UUID_ARRAY => oid::UUID,
        _ => return None,
    })
}

/// `isspace` as `array_in` uses it.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The elements of a text-format array (`{1,"two",NULL}`, `{{1,2},{3,4}}`,
/// `[0:1]={1,2}`), `None` for NULL. Malformed input is an error naming the problem.
pub(super) fn parse_text(text: &str) -> Result<Vec<Option<String>>, String> {
    let mut rest = text.trim_start_matches(is_space);
    if rest.starts_with('[') {
        // Dimension decoration: only its shape matters to PostgreSQL, not to ANY.
        let eq = rest
            .find('=')
            .ok_or_else(|| "missing \"=\" after array dimensions".to_owned())?;
        let dims = &rest[..eq];
        if !dims
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '[' | ']' | ':' | '-' | '+') || is_space(c))
        {
            return Err("malformed array dimensions".to_owned());
        }
        rest = rest[eq + 1..].trim_start_matches(is_space);
    }
    let mut chars = rest.chars().peekable();
    if chars.next() != Some('{') {
        return Err("array value must start with \"{\" or dimension information".to_owned());
    }
    let mut depth = 1usize;
    let mut out = Vec::new();
    while depth > 0 {
        let Some(c) = chars.next() else {
            return Err("unexpected end of input".to_owned());
        };
        match c {
            c if is_space(c) => {}
            '{' => {
                depth += 1;
                if depth > MAX_DIMS {
                    return Err(format!("more than {MAX_DIMS} dimensions"));
                }
            }
            '}' => depth -= 1,
            ',' => {}
            '"' => {
                let mut elem = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted element".to_owned()),
                        Some('\\') => match chars.next() {
                            Some(escaped) => elem.push(escaped),
                            None => return Err("unexpected end of input".to_owned()),
                        },
                        Some('"') => break,
                        Some(other) => elem.push(other),
                    }
                }
                out.push(Some(elem));
            }
            first => {
                let mut elem = String::new();
                // Length of `elem` up to its last escaped or non-space character.
                let mut kept = 0usize;
                let mut escaped_any = false;
                let mut current = first;
                loop {
                    match current {
                        '{' | '"' => return Err(format!("unexpected \"{current}\" character")),
                        '\\' => {
                            let escaped = chars
                                .next()
                                .ok_or_else(|| "unexpected end of input".to_owned())?;
                            elem.push(escaped);
                            kept = elem.len();
                            escaped_any = true;
                        }
                        c => {
                            elem.push(c);
                            if !is_space(c) {
                                kept = elem.len();
                            }
                        }
                    }
                    // The delimiter or closing brace is left for the outer loop.
                    match chars.peek() {
                        Some(',' | '}') | None => break,
                        Some(_) => {}
                    }
                    current = chars.next().unwrap_or(',');
                }
                elem.truncate(kept);
                if !escaped_any && elem.eq_ignore_ascii_case("null") {
                    out.push(None);
                } else {
                    out.push(Some(elem));
                }
            }
        }
    }
    if chars.any(|c| !is_space(c)) {
        return Err("junk after closing right brace".to_owned());
    }
    Ok(out)
}

/// A binary-format array: its declared element type and elements (`None` = NULL).
#[derive(Debug)]
pub(super) struct BinaryArray<'a> {
    /// Element type OID written in the value.
    pub(super) elem_oid: u32,
    /// The elements in storage order.
    pub(super) elements: Vec<Option<&'a [u8]>>,
}

/// A cursor over big-endian fields.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("insufficient data in binary array".to_owned());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| "insufficient data in binary array".to_owned())?;
        Ok(i32::from_be_bytes(b))
    }
}

/// Parses `array_recv` input: ndim, flags, element OID, (size, lower bound) per dimension, then
/// each element as a length (-1 = NULL) and its bytes.
pub(super) fn parse_binary(bytes: &[u8]) -> Result<BinaryArray<'_>, String> {
    let mut r = Reader { bytes };
    let ndim = usize::try_from(r.i32()?).map_err(|_| "negative dimension count".to_owned())?;
    if ndim > MAX_DIMS {
        return Err(format!("more than {MAX_DIMS} dimensions"));
    }
    let flags = r.i32()?;
    if flags != 0 && flags != 1 {
        return Err("invalid array flags".to_owned());
    }
    let elem_oid = u32::from_be_bytes(r.i32()?.to_be_bytes());
    let mut total: usize = if ndim == 0 { 0 } else { 1 };
    for _ in 0..ndim {
        let size = usize::try_from(r.i32()?).map_err(|_| "negative dimension size".to_owned())?;
        let _lower_bound = r.i32()?;
        total = total
            .checked_mul(size)
            .ok_or_else(|| "array too large".to_owned())?;
    }
    // Every element takes at least its 4-byte length: a larger count is a lie.
    if total > r.bytes.len() / 4 {
        return Err("insufficient data in binary array".to_owned());
    }
    let mut elements = Vec::with_capacity(total);
    for _ in 0..total {
        let len = r.i32()?;
        if len == -1 {
            elements.push(None);
        } else {
            let len = usize::try_from(len).map_err(|_| "invalid element length".to_owned())?;
            elements.push(Some(r.take(len)?));
        }
    }
    if !r.bytes.is_empty() {
        return Err("extra data after binary array".to_owned());
    }
    Ok(BinaryArray { elem_oid, elements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|e| e.map(str::to_owned)).collect()
    }

    #[test]
    fn text_arrays() {
        assert_eq!(
            parse_text("{1,2,3}"),
            Ok(strs(&[Some("1"), Some("2"), Some("3")]))
        );
        assert_eq!(parse_text(" { 1 , 2 } "), Ok(strs(&[Some("1"), Some("2")])));
        assert_eq!(parse_text("{}"), Ok(vec![]));
        assert_eq!(
            parse_text(r#"{"a,b","c\"d",NULL,null,"NULL",e\,f, g h ,\ }"#),
            Ok(strs(&[
                Some("a,b"),
                Some("c\"d"),
                None,
                None,
                Some("NULL"),
                Some("e,f"),
                Some("g h"),
                Some(" "),
            ]))
        );
        assert_eq!(
            parse_text("{{1,2},{3,4}}"),
            Ok(strs(&[Some("1"), Some("2"), Some("3"), Some("4")]))
        );
        assert_eq!(parse_text("[0:1]={7,8}"), Ok(strs(&[Some("7"), Some("8")])));
        assert_eq!(parse_text(r#"{"",x}"#), Ok(strs(&[Some(""), Some("x")])));
        for bad in [
            "",
            "1,2",
            "{1,2",
            "{\"a}",
            "{1}x",
            "{{{{{{{1}}}}}}}",
            "{a\"b}",
            "{a\\",
        ] {
            assert!(parse_text(bad).is_err(), "{bad:?}");
        }
    }

    fn binary(elem_oid: u32, dims: &[i32], elems: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((dims.len() as i32).to_be_bytes());
        out.extend(i32::from(elems.iter().any(Option::is_none)).to_be_bytes());
        out.extend(elem_oid.to_be_bytes());
        for d in dims {
            out.extend(d.to_be_bytes());
            out.extend(1i32.to_be_bytes());
        }
        for e in elems {
            match e {
                None => out.extend((-1i32).to_be_bytes()),
                Some(b) => {
                    out.extend((b.len() as i32).to_be_bytes());
                    out.extend(*b);
                }
            }
        }
        out
    }

    #[test]
    fn binary_arrays() {
        let five = 5i64.to_be_bytes();
        let bytes = binary(20, &[2], &[Some(&five), None]);
        let parsed = parse_binary(&bytes).unwrap();
        assert_eq!(parsed.elem_oid, 20);
        assert_eq!(parsed.elements, vec![Some(&five[..]), None]);
        let empty = binary(20, &[], &[]);
        assert!(parse_binary(&empty).unwrap().elements.is_empty());
        // Declares a million elements but carries none.
        let lie = binary(20, &[1_000_000], &[]);
        assert!(parse_binary(&lie).is_err());
        let mut extra = binary(20, &[1], &[Some(&five)]);
        extra.push(0);
        assert!(parse_binary(&extra).is_err());
        assert!(parse_binary(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_binary(&[0, 0]).is_err());
    }
}
