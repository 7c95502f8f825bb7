//! Fields of one COPY row: PostgreSQL's `CopyReadAttributesText` / `CopyReadAttributesCSV`.

use super::{bad_format, CopyError, CopyFormat};

/// The row without its line terminator.
fn strip_terminator(row: &[u8]) -> &[u8] {
    row.strip_suffix(b"\r\n")
        .or_else(|| row.strip_suffix(b"\n"))
        .or_else(|| row.strip_suffix(b"\r"))
        .unwrap_or(row)
}

/// `field` with the CSV FORCE options of that column.
pub(super) fn field_with(
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
