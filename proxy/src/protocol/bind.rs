//! The Bind message: decoded names up front, parameters parsed lazily from the raw frame.

use bytes::{Bytes, BytesMut};

use super::encode;
use super::reader::Reader;
use super::{ProtocolError, HEADER_LEN};

/// A Bind ('B') message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The whole frame including tag and length, for forwarding unchanged.
    pub raw: Bytes,
    /// Destination portal ("" = unnamed).
    pub portal: String,
    /// Source prepared statement ("" = unnamed).
    pub statement: String,
    /// Offset in `raw` where the parameter section starts (after the statement name's NUL).
    params_at: usize,
}

/// Parameters of a Bind, borrowed from its frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindParams<'a> {
    /// One format code per value (0 text, 1 binary), already expanded from the wire's 0/1/n codes.
    pub formats: Vec<i16>,
    /// Parameter values; `None` is SQL NULL.
    pub values: Vec<Option<&'a [u8]>>,
    /// Result column format codes as sent (0 codes = all text, 1 code = applies to all columns).
    pub result_formats: Vec<i16>,
}

impl Bind {
    /// Decodes a Bind from its whole frame, validating the full structure.
    pub(crate) fn decode(raw: Bytes) -> Result<Self, ProtocolError> {
        let body = raw.get(HEADER_LEN..).unwrap_or_default();
        let mut r = Reader::new(body, "Bind");
        let portal = r.string()?;
        let statement = r.string()?;
        let params_at = HEADER_LEN + r.pos();
        scan(r.rest(), None)?;
        Ok(Self {
            raw,
            portal,
            statement,
            params_at,
        })
    }

    /// The bytes after the statement name: formats, values and result formats.
    fn tail(&self) -> &[u8] {
        self.raw.get(self.params_at..).unwrap_or_default()
    }

    /// The same Bind addressed to another prepared statement name (re-encoded; the rest copied).
    pub fn with_statement(&self, statement: &str) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.raw.len() + statement.len());
        self.write_with_statement(&mut buf, statement);
        buf.freeze()
    }

    /// Appends this Bind addressed to `statement` to `buf` (no intermediate allocation).
    pub fn write_with_statement(&self, buf: &mut BytesMut, statement: &str) {
        let start = encode::begin(buf, b'B');
        encode::put_cstr(buf, &self.portal);
        encode::put_cstr(buf, statement);
        buf.extend_from_slice(self.tail());
        encode::finish(buf, start);
    }

    /// Parameter formats (0 text / 1 binary, already expanded to one per value as the protocol
    /// rules say: 0 codes = all text, 1 code = applies to all) and values (None = NULL).
    /// Lazily parsed from raw; validated (lengths, counts) -> Malformed on error.
    pub fn params(&self) -> Result<BindParams<'_>, ProtocolError> {
        let mut out = BindParams::default();
        scan(self.tail(), Some(&mut out))?;
        Ok(out)
    }
}

/// Walks the parameter section, checking every count and length; fills `out` when given.
///
/// Counts are read as unsigned 16-bit, as PostgreSQL does (up to 65535 parameters). Every
/// `Vec::with_capacity` is bounded by bytes actually present, never by a claimed count alone.
fn scan<'a>(tail: &'a [u8], mut out: Option<&mut BindParams<'a>>) -> Result<(), ProtocolError> {
    let mut r = Reader::new(tail, "Bind");
    let n_formats = usize::from(r.u16()?);
    let format_bytes = r.bytes(n_formats * 2)?;
    codes(format_bytes).try_for_each(check_format)?;
    let n_values = usize::from(r.u16()?);
    if n_formats > 1 && n_formats != n_values {
        return Err(r.malformed());
    }
    if let Some(out) = out.as_deref_mut() {
        // Each value needs at least its 4-byte length, which bounds the allocation.
        if r.remaining() / 4 < n_values {
            return Err(r.malformed());
        }
        out.values.reserve_exact(n_values);
        out.formats = match format_bytes {
            [] => vec![0; n_values],
            [a, b] => vec![i16::from_be_bytes([*a, *b]); n_values],
            _ => codes(format_bytes).collect(),
        };
    }
    for _ in 0..n_values {
        let len = r.i32()?;
        let value = match len {
            -1 => None,
            // Lengths below -1 are not NULL markers; PostgreSQL refuses them too.
            ..=-2 => return Err(r.malformed()),
            _ => Some(r.bytes(len.unsigned_abs() as usize)?),
        };
        if let Some(out) = out.as_deref_mut() {
            out.values.push(value);
        }
    }
    let n_results = usize::from(r.u16()?);
    let result_bytes = r.bytes(n_results * 2)?;
    r.finish()?;
    codes(result_bytes).try_for_each(check_format)?;
    if let Some(out) = out {
        out.result_formats = codes(result_bytes).collect();
    }
    Ok(())
}

/// Big-endian Int16 format codes packed in `bytes` (a trailing odd byte is ignored).
fn codes(bytes: &[u8]) -> impl Iterator<Item = i16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|c| i16::from_be_bytes([c[0], c[1]]))
}

/// Only text (0) and binary (1) formats exist; PostgreSQL refuses anything else.
fn check_format(code: i16) -> Result<(), ProtocolError> {
    match code {
        0 | 1 => Ok(()),
        _ => Err(ProtocolError::Malformed("Bind")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use bytes::BufMut;

    /// A Bind frame around a hand-written parameter section.
    fn frame(portal: &str, stmt: &str, tail: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(b'B');
        b.put_i32((4 + portal.len() + stmt.len() + 2 + tail.len()) as i32);
        b.put_slice(portal.as_bytes());
        b.put_u8(0);
        b.put_slice(stmt.as_bytes());
        b.put_u8(0);
        b.put_slice(tail);
        b.freeze()
    }

    fn tail(formats: &[i16], values: &[Option<&[u8]>], results: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u16(formats.len() as u16);
        formats.iter().for_each(|f| b.put_i16(*f));
        b.put_u16(values.len() as u16);
        for v in values {
            match v {
                None => b.put_i32(-1),
                Some(v) => {
                    b.put_i32(v.len() as i32);
                    b.put_slice(v);
                }
            }
        }
        b.put_u16(results.len() as u16);
        results.iter().for_each(|f| b.put_i16(*f));
        b
    }

    fn malformed(t: &[u8]) {
        assert_eq!(
            Bind::decode(frame("", "", t)),
            Err(ProtocolError::Malformed("Bind")),
            "{t:?}"
        );
    }

    #[test]
    fn expands_format_codes() {
        let vals: &[Option<&[u8]>] = &[Some(b"1"), None, Some(b"")];
        let none = Bind::decode(frame("p", "s", &tail(&[], vals, &[]))).unwrap();
        assert_eq!((none.portal.as_str(), none.statement.as_str()), ("p", "s"));
        let p = none.params().unwrap();
        assert_eq!(p.formats, vec![0, 0, 0]);
        assert_eq!(p.values, vals.to_vec());
        assert!(p.result_formats.is_empty());

        let one = Bind::decode(frame("", "", &tail(&[1], vals, &[1]))).unwrap();
        assert_eq!(one.params().unwrap().formats, vec![1, 1, 1]);
        assert_eq!(one.params().unwrap().result_formats, vec![1]);

        let each = Bind::decode(frame("", "", &tail(&[0, 1, 0], vals, &[0, 1]))).unwrap();
        assert_eq!(each.params().unwrap().formats, vec![0, 1, 0]);
        assert_eq!(each.params().unwrap().result_formats, vec![0, 1]);
    }

    #[test]
    fn accepts_counts_above_i16_max() {
        let vals: Vec<Option<&[u8]>> = vec![None; 40_000];
        let bind = Bind::decode(frame("", "", &tail(&[], &vals, &[]))).unwrap();
        assert_eq!(bind.params().unwrap().values.len(), 40_000);
    }

    #[test]
    fn refuses_bad_structure() {
        let v: &[Option<&[u8]>] = &[Some(b"ab"), None];
        malformed(&tail(&[0, 1, 0], v, &[])); // format count neither 0, 1 nor n
        malformed(&tail(&[2], v, &[])); // unknown format code
        malformed(&tail(&[-1], v, &[]));
        malformed(&tail(&[], v, &[7])); // unknown result format
        let mut trailing = tail(&[], v, &[]);
        trailing.push(0);
        malformed(&trailing);
        // Every truncation of a valid section is refused.
        let good = tail(&[1], v, &[0]);
        for cut in 0..good.len() {
            malformed(&good[..cut]);
        }
        // Negative lengths other than -1, and lengths past the end.
        malformed(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0]);
        malformed(&[0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0]);
        malformed(&[0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 0]);
        // A huge value count with no data behind it.
        malformed(&[0, 0, 0xff, 0xff]);
    }

    #[test]
    fn refuses_bad_names() {
        let t = tail(&[], &[], &[]);
        assert_eq!(
            Bind::decode(frame("\u{fffd}", "", &t)).map(|b| b.portal),
            Ok("\u{fffd}".to_string())
        );
        let mut raw = frame("x", "", &t).to_vec();
        raw[5] = 0xff;
        assert_eq!(
            Bind::decode(Bytes::from(raw)),
            Err(ProtocolError::InvalidUtf8("Bind"))
        );
        // Statement name without NUL.
        let mut b = BytesMut::new();
        b.put_u8(b'B');
        b.put_i32(7);
        b.put_slice(b"\0ab");
        assert_eq!(
            Bind::decode(b.freeze()),
            Err(ProtocolError::Malformed("Bind"))
        );
    }

    #[test]
    fn with_statement_keeps_parameters() {
        let vals: &[Option<&[u8]>] = &[Some(b"42"), None];
        let bind = Bind::decode(frame("portal", "", &tail(&[1], vals, &[1, 0]))).unwrap();
        let renamed = Bind::decode(bind.with_statement("__sp_7")).unwrap();
        assert_eq!(renamed.portal, "portal");
        assert_eq!(renamed.statement, "__sp_7");
        assert_eq!(renamed.params().unwrap(), bind.params().unwrap());
        assert_eq!(
            Bind::decode(renamed.with_statement("")).unwrap().raw,
            bind.raw
        );
    }
}
