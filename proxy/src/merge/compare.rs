//! Orders two values of one sort key exactly as PostgreSQL does, from their wire bytes.
//!
//! Values are compared as the shard sent them (text or binary format), so a merge never decodes
//! and re-encodes a row. Text-like types (`text`, `varchar`, `bpchar`, `name`) compare by bytes:
//! that is PostgreSQL's `C` collation, and only ORDER BY under `C` (or a byte-order-equivalent
//! collation) merges to the same order one server would give.

use std::cmp::Ordering;

use super::numeric::Numeric;

/// How one ORDER BY key sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortSpec {
    /// `DESC`: non-null values in reverse order.
    pub descending: bool,
    /// NULLs before every non-null value (regardless of direction).
    pub nulls_first: bool,
}

impl SortSpec {
    /// PostgreSQL defaults: ASC NULLS LAST, DESC NULLS FIRST.
    pub fn new(descending: bool, nulls_first: Option<bool>) -> SortSpec {
        SortSpec {
            descending,
            nulls_first: nulls_first.unwrap_or(descending),
        }
    }
}

/// A column's type and wire format (from RowDescription: type OID, format code 0 text / 1 binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnType {
    /// The column's type OID.
    pub oid: u32,
    /// Whether values arrive in binary format (format code 1).
    pub binary: bool,
}

/// Why two values could not be compared.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CompareError {
    /// The type has no merge ordering here (e.g. interval, or collation-dependent types).
    #[error("sorting by type {0} across shards is not supported")]
    Unsupported(u32),
    /// A value's bytes are not a valid value of its type (names the type).
    #[error("invalid {0} value from a shard")]
    Invalid(&'static str),
}

/// Type OIDs this module orders.
pub(super) mod oids {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
}

pub(super) type Result<T> = std::result::Result<T, CompareError>;

/// Every type OID [`compare`] orders.
#[rustfmt::skip]
const SUPPORTED: [u32; 17] = {
    use oids::*;
    [BOOL, BYTEA, NAME, INT8, INT2, INT4, TEXT, OID, FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE,
        TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID]
};

/// Whether a type can be merged (for refusing ORDER BY on others up front).
pub fn supported(oid: u32) -> bool {
    SUPPORTED.contains(&oid)
}

/// Compares two values of one sort key (None = SQL NULL) exactly as PostgreSQL orders them.
pub fn compare(
    a: Option<&[u8]>,
    b: Option<&[u8]>,
    ty: ColumnType,
    spec: SortSpec,
) -> Result<Ordering> {
    let null_first = if spec.nulls_first {
        Ordering::Less
    } else {
        Ordering::Greater
    };
    let ord = match (a, b) {
        (None, None) => return Ok(Ordering::Equal),
        (None, Some(_)) => return Ok(null_first),
        (Some(_), None) => return Ok(null_first.reverse()),
        (Some(a), Some(b)) => compare_values(a, b, ty)?,
    };
    Ok(if spec.descending { ord.reverse() } else { ord })
}

/// Field values of a DataRow body ('D' message body: int16 count, then int32 len (-1 NULL) + bytes) — zero-copy slices.
pub fn data_row_fields(body: &[u8]) -> Result<Vec<Option<&[u8]>>> {
    const BAD: CompareError = CompareError::Invalid("DataRow");
    let (count, mut rest) = body.split_first_chunk::<2>().ok_or(BAD)?;
    let count = usize::try_from(i16::from_be_bytes(*count)).map_err(|_| BAD)?;
    // Every field needs at least its 4-byte length: bounds the allocation by the body size.
    if count.saturating_mul(4) > rest.len() {
        return Err(BAD);
    }
    let mut fields = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or(BAD)?;
        let len = i32::from_be_bytes(*len);
        if len == -1 {
            fields.push(None);
            rest = tail;
            continue;
        }
        let len = usize::try_from(len).map_err(|_| BAD)?;
        let (value, tail) = tail.split_at_checked(len).ok_or(BAD)?;
        fields.push(Some(value));
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(BAD);
    }
    Ok(fields)
}

/// Orders two non-null values of one type and format.
fn compare_values(a: &[u8], b: &[u8], ty: ColumnType) -> Result<Ordering> {
    use oids::*;
    let bin = ty.binary;
    match ty.oid {
        INT2 => by(a, b, |v| {
            int(v, bin, "int2", |x: [u8; 2]| i16::from_be_bytes(x).into())
        }),
        INT4 => by(a, b, |v| {
            int(v, bin, "int4", |x: [u8; 4]| i32::from_be_bytes(x).into())
        }),
        INT8 => by(a, b, |v| int(v, bin, "int8", i64::from_be_bytes)),
        OID => by(a, b, |v| oid(v, bin)),
        FLOAT4 => Ok(float_order(float4(a, bin)?, float4(b, bin)?)),
        FLOAT8 => Ok(float_order(float8(a, bin)?, float8(b, bin)?)),
        NUMERIC => by(a, b, |v| Numeric::parse(v, bin)),
        TEXT | VARCHAR | NAME => Ok(a.cmp(b)),
        BPCHAR => Ok(trim_spaces(a).cmp(trim_spaces(b))),
        BOOL => by(a, b, |v| boolean(v, bin)),
        DATE => by(a, b, |v| date(v, bin)),
        TIMESTAMP => by(a, b, |v| timestamp(v, bin, false)),
        TIMESTAMPTZ => by(a, b, |v| timestamp(v, bin, true)),
        UUID => by(a, b, |v| uuid(v, bin)),
        BYTEA if bin => Ok(a.cmp(b)),
        BYTEA => by(a, b, bytea_text),
        other => Err(CompareError::Unsupported(other)),
    }
}

/// Compares `a` and `b` by a key decoded from each.
fn by<T: Ord>(a: &[u8], b: &[u8], key: impl Fn(&[u8]) -> Result<T>) -> Result<Ordering> {
    Ok(key(a)?.cmp(&key(b)?))
}

/// The value as UTF-8 text.
pub(super) fn utf8<'a>(v: &'a [u8], what: &'static str) -> Result<&'a str> {
    std::str::from_utf8(v).map_err(|_| CompareError::Invalid(what))
}

/// Exactly `N` bytes (a binary fixed-width value).
fn fixed<const N: usize>(v: &[u8], what: &'static str) -> Result<[u8; N]> {
    <[u8; N]>::try_from(v).map_err(|_| CompareError::Invalid(what))
}

/// An int2/int4/int8 value widened to i64.
pub(super) fn int<const N: usize>(
    v: &[u8],
    binary: bool,
    what: &'static str,
    from_be: impl Fn([u8; N]) -> i64,
) -> Result<i64> {
    if binary {
        return Ok(from_be(fixed::<N>(v, what)?));
    }
    utf8(v, what)?
        .trim()
        .parse()
        .map_err(|_| CompareError::Invalid(what))
}

/// An oid (unsigned 32-bit).
pub(super) fn oid(v: &[u8], binary: bool) -> Result<u32> {
    if binary {
        return Ok(u32::from_be_bytes(fixed(v, "oid")?));
    }
    utf8(v, "oid")?
        .trim()
        .parse()
        .map_err(|_| CompareError::Invalid("oid"))
}

/// A float4 value; parsed as f32 so that text and binary round identically.
pub(super) fn float4(v: &[u8], binary: bool) -> Result<f64> {
    if binary {
        return Ok(f32::from_be_bytes(fixed(v, "float4")?).into());
    }
    let x: f32 = parse_float(utf8(v, "float4")?).ok_or(CompareError::Invalid("float4"))?;
    Ok(x.into())
}

/// A float8 value.
pub(super) fn float8(v: &[u8], binary: bool) -> Result<f64> {
    if binary {
        return Ok(f64::from_be_bytes(fixed(v, "float8")?));
    }
    parse_float(utf8(v, "float8")?).ok_or(CompareError::Invalid("float8"))
}

/// Parses PostgreSQL's float text (`NaN`, `Infinity`, `-Infinity` or a decimal).
fn parse_float<F: std::str::FromStr>(s: &str) -> Option<F> {
    // Rust's parser already accepts "NaN", "Infinity" and "inf" case-insensitively.
    s.trim().parse().ok()
}

/// PostgreSQL's float order: NaN equals NaN and sorts above everything, -0 equals 0.
pub(super) fn float_order(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// bpchar ignores trailing spaces when comparing.
pub(super) fn trim_spaces(v: &[u8]) -> &[u8] {
    let end = v.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &v[..end]
}

/// A boolean (false < true).
pub(super) fn boolean(v: &[u8], binary: bool) -> Result<bool> {
    match (binary, v) {
        (true, [x]) => Ok(*x != 0),
        (false, b"t" | b"true") => Ok(true),
        (false, b"f" | b"false") => Ok(false),
        _ => Err(CompareError::Invalid("bool")),
    }
}

/// A uuid's 16 bytes (binary, or hex text with optional hyphens/braces).
pub(super) fn uuid(v: &[u8], binary: bool) -> Result<[u8; 16]> {
    const BAD: CompareError = CompareError::Invalid("uuid");
    if binary {
        return fixed(v, "uuid");
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0usize;
    for &c in v {
        if matches!(c, b'-' | b'{' | b'}') {
            continue;
        }
        let n = hex_digit(c).ok_or(BAD)?;
        let byte = out.get_mut(nibbles / 2).ok_or(BAD)?;
        *byte = (*byte << 4) | n;
        nibbles += 1;
    }
    if nibbles != 32 {
        return Err(BAD);
    }
    Ok(out)
}

/// The value of one hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A bytea's bytes from its text form: hex (`\x...`) or the older escape format.
fn bytea_text(v: &[u8]) -> Result<Vec<u8>> {
    const BAD: CompareError = CompareError::Invalid("bytea");
    if let Some(hex) = v.strip_prefix(b"\\x") {
        let digits: Vec<u8> = hex
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let pairs = digits.chunks_exact(2);
        if !pairs.remainder().is_empty() {
            return Err(BAD);
        }
        return pairs
            .map(|p| match (hex_digit(p[0]), hex_digit(p[1])) {
                (Some(h), Some(l)) => Ok((h << 4) | l),
                _ => Err(BAD),
            })
            .collect();
    }
    let mut out = Vec::with_capacity(v.len());
    let mut rest = v;
    while let Some((&c, tail)) = rest.split_first() {
        if c != b'\\' {
            out.push(c);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', more @ ..] => {
                out.push(b'\\');
                rest = more;
            }
            [d0 @ b'0'..=b'3', d1 @ b'0'..=b'7', d2 @ b'0'..=b'7', more @ ..] => {
                out.push(((d0 - b'0') << 6) | ((d1 - b'0') << 3) | (d2 - b'0'));
                rest = more;
            }
            _ => return Err(BAD),
        }
    }
    Ok(out)
}

/// A date as days (any fixed epoch); ±infinity sort outside every finite date.
pub(super) fn date(v: &[u8], binary: bool) -> Result<i64> {
    if binary {
        // i32::MIN / i32::MAX are -infinity / infinity and already sort that way.
        return Ok(i32::from_be_bytes(fixed(v, "date")?).into());
    }
    let s = utf8(v, "date")?.trim();
    match s {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let (s, bc) = strip_bc(s);
    parse_ymd(s, bc).ok_or(CompareError::Invalid("date"))
}

/// A timestamp as UTC microseconds (any fixed epoch); ±infinity sort outside every finite one.
pub(super) fn timestamp(v: &[u8], binary: bool, with_tz: bool) -> Result<i128> {
    let what = if with_tz { "timestamptz" } else { "timestamp" };
    if binary {
        // i64::MIN / i64::MAX are -infinity / infinity and already sort that way.
        return Ok(i64::from_be_bytes(fixed(v, what)?).into());
    }
    let s = utf8(v, what)?.trim();
    match s {
        "infinity" => return Ok(i128::MAX),
        "-infinity" => return Ok(i128::MIN),
        _ => {}
    }
    parse_timestamp(s, with_tz).ok_or(CompareError::Invalid(what))
}

/// Splits off PostgreSQL's ` BC` suffix.
fn strip_bc(s: &str) -> (&str, bool) {
    match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    }
}

/// Parses ISO `YYYY-MM-DD[ HH:MM:SS[.ffffff]][+HH[:MM[:SS]]]` (with ` BC` already split off).
fn parse_timestamp(s: &str, with_tz: bool) -> Option<i128> {
    let (s, bc) = strip_bc(s);
    let (day, time) = s.split_once(' ')?;
    let days = i128::from(parse_ymd(day, bc)?);
    let (clock, offset) = match time.find(['+', '-']) {
        Some(at) if with_tz => (&time[..at], parse_offset(&time[at..])?),
        None if !with_tz => (time, 0),
        _ => return None,
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (clock, ""),
    };
    let mut parts = hms.split(':');
    let h = small_number(parts.next()?, 2)?;
    let m = small_number(parts.next()?, 2)?;
    let sec = small_number(parts.next()?, 2)?;
    if parts.next().is_some() || frac.len() > 6 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let micros = if frac.is_empty() {
        0
    } else {
        frac.parse::<i128>().ok()? * 10i128.pow(6 - frac.len() as u32)
    };
    let local_secs = days * 86_400 + i128::from((h * 60 + m) * 60 + sec);
    Some((local_secs - i128::from(offset)) * 1_000_000 + micros)
}

/// Parses a UTC offset `+HH[:MM[:SS]]` into seconds east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    let (sign, rest) = match s.split_at_checked(1)? {
        ("+", rest) => (1, rest),
        ("-", rest) => (-1, rest),
        _ => return None,
    };
    let mut secs = 0;
    let mut unit = 3600;
    for part in rest.split(':') {
        if unit == 0 {
            return None;
        }
        secs += small_number(part, 2)? * unit;
        unit /= 60;
    }
    Some(sign * secs)
}

/// A non-empty run of at most `max_len` ASCII digits.
fn small_number(s: &str, max_len: usize) -> Option<i64> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Days since 1970-01-01 of an ISO `Y-MM-DD` date (proleptic Gregorian, `bc` for BC years).
fn parse_ymd(s: &str, bc: bool) -> Option<i64> {
    let mut parts = s.split('-');
    let year = small_number(parts.next()?, 9)?;
    let month = small_number(parts.next()?, 2)?;
    let day = small_number(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Year 1 BC is astronomical year 0.
    let year = if bc { 1 - year } else { year };
    Some(days_from_civil(year, month, day))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#[path = "compare_tests.rs"]
mod tests;
