//! Reading a HAVING constant or bind parameter as a value of the type PostgreSQL gives it,
//! with PostgreSQL's input rules and error messages (`invalid input syntax for type integer:
//! "abc"`, `value "99999" is out of range for type smallint`, ...).
//!
//! Dates and timestamps are read in ISO form only (`YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][+HH[:MM]]`,
//! `infinity`); other spellings PostgreSQL accepts (`Jan 1 2024`, `today`, ...) and
//! `timestamptz` constants without a UTC offset (whose value depends on the session's TimeZone)
//! are refused as unsupported rather than guessed.

use super::compare;
use super::decimal::Decimal;
use super::filter::FilterError;

/// The SQL types HAVING compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SqlType {
    Int2,
    Int4,
    Int8,
    Oid,
    Numeric,
    Float4,
    Float8,
    Bool,
    /// text and varchar.
    Text,
    Name,
    Bpchar,
    Date,
    Timestamp,
    Timestamptz,
    Uuid,
}

/// A value ready to compare within one domain.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Key<'a> {
    Int(i64),
    Numeric(Decimal),
    Float(f64),
    Bool(bool),
    /// Text-like bytes (bpchar without trailing spaces).
    Bytes(&'a [u8]),
    /// Microseconds since 1970-01-01 (UTC for timestamptz), infinities at the extremes.
    Time(i128),
    Uuid([u8; 16]),
}

impl SqlType {
    /// The type PostgreSQL gives a numeric constant: integer, bigint, or numeric.
    pub(super) fn of_number(s: &str) -> SqlType {
        let digits = s.trim().trim_start_matches(['+', '-']);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return SqlType::Numeric;
        }
        if s.trim().parse::<i32>().is_ok() {
            SqlType::Int4
        } else if s.trim().parse::<i64>().is_ok() {
            SqlType::Int8
        } else {
            SqlType::Numeric
        }
    }

    /// The name PostgreSQL shows for the type (format_type).
    pub(super) fn sql_name(self) -> &'static str {
        match self {
            SqlType::Timestamp => "timestamp without time zone",
            other => other.input_name(),
        }
    }

    /// The name in PostgreSQL's input-syntax errors.
    fn input_name(self) -> &'static str {
        match self {
            SqlType::Int2 => "smallint",
            SqlType::Int4 => "integer",
            SqlType::Int8 => "bigint",
            SqlType::Oid => "oid",
            SqlType::Numeric => "numeric",
            SqlType::Float4 => "real",
            SqlType::Float8 => "double precision",
            SqlType::Bool => "boolean",
            SqlType::Text => "text",
            SqlType::Name => "name",
            SqlType::Bpchar => "character",
            SqlType::Date => "date",
            SqlType::Timestamp => "timestamp",
            SqlType::Timestamptz => "timestamp with time zone",
            SqlType::Uuid => "uuid",
        }
    }
}

/// `invalid input syntax for type T: "s"`.
fn syntax(ty: SqlType, s: &str) -> FilterError {
    FilterError::Invalid(format!(
        "invalid input syntax for type {}: \"{s}\"",
        ty.input_name()
    ))
}

/// PostgreSQL's message for an integer constant out of its type's range.
fn int_range(ty: SqlType, s: &str) -> FilterError {
    FilterError::Invalid(format!(
        "value \"{s}\" is out of range for type {}",
        ty.input_name()
    ))
}

/// PostgreSQL's message for a float constant out of range.
fn float_range(ty: SqlType, s: &str) -> FilterError {
    FilterError::Invalid(format!(
        "\"{s}\" is out of range for type {}",
        ty.input_name()
    ))
}

/// A date / timestamp spelling the proxy does not read.
fn not_iso(ty: SqlType, s: &str) -> FilterError {
    FilterError::Unsupported(format!(
        "HAVING at the proxy reads {} constants only in ISO form (YYYY-MM-DD HH:MM:SS{}): \"{s}\"",
        ty.input_name(),
        if ty == SqlType::Timestamptz {
            " with a UTC offset such as +00"
        } else {
            ""
        }
    ))
}

/// Whitespace PostgreSQL's input functions skip around a value.
fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Reads `s` as a value of type `ty`, as PostgreSQL's input function for `ty` would.
pub(super) fn parse_input(s: &str, ty: SqlType) -> Result<Key<'_>, FilterError> {
    match ty {
        SqlType::Int2 => parse_int(s, ty, i64::from(i16::MIN), i64::from(i16::MAX)).map(Key::Int),
        SqlType::Int4 => parse_int(s, ty, i64::from(i32::MIN), i64::from(i32::MAX)).map(Key::Int),
        SqlType::Int8 => parse_int(s, ty, i64::MIN, i64::MAX).map(Key::Int),
        // oidin also takes negative int4 values (as their unsigned bit pattern).
        SqlType::Oid => parse_int(s, ty, i64::from(i32::MIN), i64::from(u32::MAX))
            .map(|v| Key::Int(if v < 0 { v + (1 << 32) } else { v })),
        SqlType::Numeric => Decimal::from_text(s)
            .map(Key::Numeric)
            .ok_or_else(|| syntax(ty, s)),
        SqlType::Float4 => parse_float::<f32>(s, ty).map(|x| Key::Float(f64::from(x))),
        SqlType::Float8 => parse_float::<f64>(s, ty).map(Key::Float),
        SqlType::Bool => parse_bool(s).map(Key::Bool).ok_or_else(|| syntax(ty, s)),
        SqlType::Text | SqlType::Name => Ok(Key::Bytes(s.as_bytes())),
        SqlType::Bpchar => Ok(Key::Bytes(compare::trim_spaces(s.as_bytes()))),
        SqlType::Uuid => compare::uuid(trim(s).as_bytes(), false)
            .map(Key::Uuid)
            .map_err(|_| syntax(ty, s)),
        SqlType::Date => {
            let days = compare::date(trim(s).as_bytes(), false).map_err(|_| not_iso(ty, s))?;
            Ok(Key::Time(match days {
                i64::MAX => i128::MAX,
                i64::MIN => i128::MIN,
                d => i128::from(d) * 86_400_000_000,
            }))
        }
        SqlType::Timestamp | SqlType::Timestamptz => {
            let with_tz = ty == SqlType::Timestamptz;
            let text = iso_timestamp(trim(s), with_tz);
            compare::timestamp(text.as_bytes(), false, with_tz)
                .map(Key::Time)
                .map_err(|_| not_iso(ty, s))
        }
    }
}

/// PostgreSQL's integer input: optional sign, digits, surrounding whitespace.
fn parse_int(s: &str, ty: SqlType, min: i64, max: i64) -> Result<i64, FilterError> {
    let t = trim(s);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(syntax(ty, s));
    }
    match t.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(int_range(ty, s)),
    }
}

/// PostgreSQL's float input (`float4in` / `float8in`): decimal or exponent form, `NaN`,
/// `[+-]Infinity`, `[+-]inf`; a finite value that overflows, or underflows to zero, is out of
/// range.
fn parse_float<F>(s: &str, ty: SqlType) -> Result<F, FilterError>
where
    F: std::str::FromStr + Into<f64> + Copy,
{
    let t = trim(s);
    let lower = t.to_ascii_lowercase();
    let word = lower.trim_start_matches(['+', '-']);
    let special = matches!(word, "nan" | "inf" | "infinity");
    let numeric_shape = !word.is_empty()
        && word
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-'));
    if !special && !numeric_shape {
        return Err(syntax(ty, s));
    }
    let value: F = t.parse().map_err(|_| syntax(ty, s))?;
    let x: f64 = value.into();
    let mantissa = word.split('e').next().unwrap_or("");
    let nonzero = mantissa.bytes().any(|c| matches!(c, b'1'..=b'9'));
    if !special && (x.is_infinite() || (x == 0.0 && nonzero)) {
        return Err(float_range(ty, s));
    }
    Ok(value)
}

/// PostgreSQL's boolean input: any prefix of true/false/yes/no, on/off (two letters at
/// least), 1/0, case-insensitive, surrounding whitespace allowed.
fn parse_bool(s: &str) -> Option<bool> {
    let t = trim(s).to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || t == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || t == "0" {
        Some(false)
    } else {
        None
    }
}

/// Normalizes ISO timestamp spellings to what `compare::timestamp` reads: a `T` separator, a
/// date alone (midnight), minutes without seconds, and a `Z` offset.
fn iso_timestamp(s: &str, with_tz: bool) -> String {
    if matches!(s, "infinity" | "-infinity") {
        return s.to_string();
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, " BC"),
        None => (s, ""),
    };
    let (day, time) = match s.split_once([' ', 'T']) {
        Some((day, time)) => (day, time.trim_start()),
        None => (s, "00:00:00"),
    };
    let (clock, zone) = match time.find(['+', '-', 'Z']) {
        Some(at) => time.split_at(at),
        None => (time, ""),
    };
    let clock = clock.trim_end();
    let clock = if clock.matches(':').count() == 1 {
        format!("{clock}:00")
    } else {
        clock.to_string()
    };
    let zone = if zone == "Z" && with_tz { "+00" } else { zone };
    format!("{day} {clock}{zone}{bc}")
}
