//! Typed values and PostgreSQL's conversions: input functions, explicit casts, and how a
//! value meets the key column (comparison or assignment).

use config::{KeyType, KeyValue};

use super::numeric::{self, IntError, Numeric};
use super::{oid, KeyContext, KeyError};

/// A value with the SQL type PostgreSQL gives it before it meets the key column.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Typed {
    /// int2 / int4 / int8.
    Int(i64),
    /// numeric (also integer literals beyond int8).
    Numeric(Numeric),
    /// text, varchar, bpchar (trailing spaces already dropped, as its cast to text does), name.
    Text(String),
    /// uuid.
    Uuid([u8; 16]),
    /// An untyped string literal or parameter: read by the target type's input function.
    Unknown(String),
}

impl Typed {
    /// How the value is named in messages.
    fn describe(&self) -> &'static str {
        match self {
            Typed::Int(_) => "an integer value",
            Typed::Numeric(_) => "a numeric value",
            Typed::Text(_) | Typed::Unknown(_) => "a text value",
            Typed::Uuid(_) => "a uuid value",
        }
    }

    /// The value's text form (its type's output function).
    fn into_text(self) -> String {
        match self {
            Typed::Int(v) => v.to_string(),
            Typed::Numeric(Numeric::Finite(f)) => f.to_pg_string(),
            Typed::Numeric(Numeric::NaN) => "NaN".to_owned(),
            Typed::Numeric(Numeric::Infinity { negative: false }) => "Infinity".to_owned(),
            Typed::Numeric(Numeric::Infinity { negative: true }) => "-Infinity".to_owned(),
            Typed::Text(s) | Typed::Unknown(s) => s,
            Typed::Uuid(u) => KeyValue::Uuid(u).to_string(),
        }
    }
}

/// A cast's target type, from its SQL name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CastType {
    /// smallint (16), integer (32), bigint (64).
    Int(u32),
    /// numeric, with (precision, scale) when given.
    Numeric(Option<(u32, u32)>),
    /// text.
    Text,
    /// varchar(n): an explicit cast truncates to n characters.
    Varchar(Option<usize>),
    /// char(n) / bpchar: truncated to n characters; trailing spaces vanish on the way to text.
    Bpchar(Option<usize>),
    /// name: truncated to 63 bytes.
    Name,
    /// uuid.
    Uuid,
    /// Anything else (float types compare inexactly; others have no cast to a key type).
    Other,
}

impl CastType {
    /// Whether a value of this type can be compared with (or stored into) a `key_type` column;
    /// checked before the cast runs, so `'5'::uuid` on a bigint map is a type error (22023).
    pub(super) fn meets(&self, key_type: KeyType, ctx: KeyContext) -> bool {
        let textual = matches!(
            self,
            CastType::Text | CastType::Varchar(_) | CastType::Bpchar(_) | CastType::Name
        );
        match key_type {
            KeyType::Bigint => matches!(self, CastType::Int(_) | CastType::Numeric(_)),
            KeyType::Text => textual || (ctx == KeyContext::Assign && *self != CastType::Other),
            KeyType::Uuid => *self == CastType::Uuid,
        }
    }

    /// The parameter type PostgreSQL infers from this cast on an untyped parameter.
    pub(super) fn oid(&self) -> Option<u32> {
        Some(match self {
            CastType::Int(16) => oid::INT2,
            CastType::Int(32) => oid::INT4,
            CastType::Int(_) => oid::INT8,
            CastType::Numeric(_) => oid::NUMERIC,
            CastType::Text => oid::TEXT,
            CastType::Varchar(_) => oid::VARCHAR,
            CastType::Bpchar(_) => oid::BPCHAR,
            CastType::Name => oid::NAME,
            CastType::Uuid => oid::UUID,
            CastType::Other => return None,
        })
    }
}

/// Bytes in a `name` (NAMEDATALEN - 1).
const NAME_MAX_BYTES: usize = 63;

/// Parses a cast type name as sqlparser prints it (`BIGINT`, `pg_catalog.int8`, `VARCHAR(10)`,
/// `NUMERIC(10,2)`, `CHARACTER VARYING`).
pub(super) fn parse_cast(name: &str) -> CastType {
    let lower = name.to_ascii_lowercase().replace('"', "");
    let (base, args) = match lower.find('(') {
        Some(at) => (&lower[..at], lower[at..].trim()),
        None => (lower.as_str(), ""),
    };
    let base: Vec<&str> = base.split_whitespace().collect();
    let base = base.join(" ");
    let base = base.strip_prefix("pg_catalog.").unwrap_or(&base);
    let nums: Option<Vec<u32>> = if args.is_empty() {
        Some(Vec::new())
    } else {
        args.strip_prefix('(')
            .and_then(|a| a.strip_suffix(')'))
            .and_then(|a| a.split(',').map(|n| n.trim().parse().ok()).collect())
    };
    let Some(nums) = nums else {
        return CastType::Other;
    };
    let len = |n: u32| usize::try_from(n).ok();
    match (base, nums.as_slice()) {
        ("bigint" | "int8", []) => CastType::Int(64),
        ("integer" | "int" | "int4", []) => CastType::Int(32),
        ("smallint" | "int2", []) => CastType::Int(16),
        ("numeric" | "decimal", []) => CastType::Numeric(None),
        ("numeric" | "decimal", [p]) => CastType::Numeric(Some((*p, 0))),
        ("numeric" | "decimal", [p, s]) => CastType::Numeric(Some((*p, *s))),
        ("text", []) => CastType::Text,
        ("varchar" | "character varying", []) => CastType::Varchar(None),
        ("varchar" | "character varying", [n]) => CastType::Varchar(len(*n)),
        // `char` without a length is char(1).
        ("char" | "character", []) => CastType::Bpchar(Some(1)),
        ("char" | "character" | "bpchar", [n]) => CastType::Bpchar(len(*n)),
        ("bpchar", []) => CastType::Bpchar(None),
        ("name", []) => CastType::Name,
        ("uuid", []) => CastType::Uuid,
        _ => CastType::Other,
    }
}

/// The error for a cast whose type cannot meet the key column.
pub(super) fn incompatible_cast(name: &str, key_type: KeyType) -> KeyError {
    KeyError::Incompatible {
        what: format!("a value cast to {}", name.trim()),
        key_type,
    }
}

/// A value shown in a message: quoted, and cut when long.
pub(super) fn shown(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("\"{}...\"", &text[..cut]),
        None => format!("\"{text}\""),
    }
}

/// Type names for int widths.
fn int_type_name(bits: u32) -> &'static str {
    match bits {
        16 => "smallint",
        32 => "integer",
        _ => "bigint",
    }
}

/// Checks an integer against the width of int2/int4.
fn check_bits(v: i64, bits: u32) -> Result<i64, KeyError> {
    let fits = match bits {
        16 => i16::try_from(v).is_ok(),
        32 => i32::try_from(v).is_ok(),
        _ => true,
    };
    if fits {
        Ok(v)
    } else {
        Err(KeyError::OutOfRange {
            value: v.to_string(),
            type_name: int_type_name(bits).to_owned(),
        })
    }
}

/// int2/int4/int8 input.
fn int_input(text: &str, bits: u32, key_type: KeyType) -> Result<i64, KeyError> {
    match numeric::parse_int(text) {
        Ok(v) => check_bits(v, bits).map_err(|_| KeyError::OutOfRange {
            value: shown(text),
            type_name: int_type_name(bits).to_owned(),
        }),
        Err(IntError::Overflow) => Err(KeyError::OutOfRange {
            value: shown(text),
            type_name: int_type_name(bits).to_owned(),
        }),
        Err(IntError::Syntax) => Err(KeyError::Invalid {
            value: shown(text),
            key_type,
            reason: format!("not a valid {}", int_type_name(bits)),
        }),
    }
}

/// numeric input.
fn numeric_input(text: &str, key_type: KeyType) -> Result<Numeric, KeyError> {
    numeric::parse_numeric(text).map_err(|e| match e {
        IntError::Overflow => KeyError::OutOfRange {
            value: shown(text),
            type_name: "numeric".to_owned(),
        },
        IntError::Syntax => KeyError::Invalid {
            value: shown(text),
            key_type,
            reason: "not a valid numeric".to_owned(),
        },
    })
}

/// A numeric rounded to an integer (numeric -> int casts).
fn numeric_to_int(n: &Numeric, bits: u32, key_type: KeyType) -> Result<i64, KeyError> {
    match n {
        Numeric::Finite(f) => f
            .round_to_i64()
            .ok()
            .and_then(|v| check_bits(v, bits).ok())
            .ok_or_else(|| KeyError::OutOfRange {
                value: shown(&f.to_pg_string()),
                type_name: int_type_name(bits).to_owned(),
            }),
        special => Err(KeyError::Invalid {
            value: Typed::Numeric(special.clone()).into_text(),
            key_type,
            reason: format!("cannot convert it to {}", int_type_name(bits)),
        }),
    }
}

/// An unquoted number literal: an integer when it fits int8, else numeric (PostgreSQL's lexer).
pub(super) fn number_literal(text: &str, key_type: KeyType) -> Result<Typed, KeyError> {
    let trimmed = numeric::trim_pg(text);
    // sqlparser may hand over `- 5` for a unary minus; the sign belongs to the number.
    let (sign, body) = match trimmed.as_bytes().first() {
        Some(b'-' | b'+') => trimmed.split_at(1),
        _ => ("", trimmed),
    };
    let joined = format!("{sign}{}", numeric::trim_pg(body));
    let lower = joined.to_ascii_lowercase();
    let non_decimal = matches!(
        lower.trim_start_matches(['-', '+']).get(..2),
        Some("0x" | "0o" | "0b")
    );
    if !non_decimal && lower.contains(['.', 'e']) {
        return numeric_input(&joined, key_type).map(Typed::Numeric);
    }
    match numeric::parse_int(&joined) {
        Ok(v) => Ok(Typed::Int(v)),
        Err(IntError::Overflow) if !non_decimal => {
            numeric_input(&joined, key_type).map(Typed::Numeric)
        }
        Err(_) => int_input(&joined, 64, key_type).map(Typed::Int),
    }
}

/// Applies an explicit cast, as PostgreSQL would.
pub(super) fn cast_typed(
    value: Typed,
    target: &CastType,
    name: &str,
    key_type: KeyType,
) -> Result<Typed, KeyError> {
    let incompatible = || KeyError::Incompatible {
        what: format!("{} cast to {}", value.describe(), name.trim()),
        key_type,
    };
    Ok(match target {
        CastType::Int(bits) => Typed::Int(match &value {
            Typed::Int(v) => check_bits(*v, *bits)?,
            Typed::Numeric(n) => numeric_to_int(n, *bits, key_type)?,
            Typed::Text(s) | Typed::Unknown(s) => int_input(s, *bits, key_type)?,
            Typed::Uuid(_) => return Err(incompatible()),
        }),
        CastType::Numeric(typmod) => {
            let n = match &value {
                Typed::Int(v) => Numeric::Finite(numeric::Finite::from_i64(*v)),
                Typed::Numeric(n) => n.clone(),
                Typed::Text(s) | Typed::Unknown(s) => numeric_input(s, key_type)?,
                Typed::Uuid(_) => return Err(incompatible()),
            };
            match (n, typmod) {
                (Numeric::Finite(f), Some((p, s))) => {
                    let rounded = f.with_typmod(*p, *s).map_err(|_| KeyError::OutOfRange {
                        value: shown(&f.to_pg_string()),
                        type_name: name.trim().to_owned(),
                    })?;
                    Typed::Numeric(Numeric::Finite(rounded))
                }
                (n, _) => Typed::Numeric(n),
            }
        }
        CastType::Text | CastType::Varchar(_) | CastType::Bpchar(_) | CastType::Name => {
            let text = value.into_text();
            Typed::Text(match target {
                CastType::Varchar(Some(n)) => truncate_chars(text, *n),
                CastType::Bpchar(len) => {
                    let cut = match len {
                        Some(n) => truncate_chars(text, *n),
                        None => text,
                    };
                    cut.trim_end_matches(' ').to_owned()
                }
                CastType::Name => truncate_bytes(text, NAME_MAX_BYTES),
                _ => text,
            })
        }
        CastType::Uuid => match value {
            Typed::Uuid(u) => Typed::Uuid(u),
            Typed::Text(s) | Typed::Unknown(s) => Typed::Uuid(uuid_input(&s, key_type)?),
            Typed::Int(_) | Typed::Numeric(_) => return Err(incompatible()),
        },
        CastType::Other => return Err(incompatible()),
    })
}

/// The first `n` characters.
fn truncate_chars(text: String, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text,
    }
}

/// At most `max` bytes, cut at a character boundary (how `name` input truncates).
fn truncate_bytes(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// uuid input.
fn uuid_input(text: &str, key_type: KeyType) -> Result<[u8; 16], KeyError> {
    match KeyValue::parse(KeyType::Uuid, text) {
        Ok(KeyValue::Uuid(u)) => Ok(u),
        _ => Err(KeyError::Invalid {
            value: shown(text),
            key_type,
            reason: "not a valid uuid".to_owned(),
        }),
    }
}

/// UTF-8 text from parameter bytes.
pub(super) fn utf8(bytes: &[u8], key_type: KeyType) -> Result<&str, KeyError> {
    std::str::from_utf8(bytes).map_err(|_| KeyError::Invalid {
        value: shown(&String::from_utf8_lossy(bytes)),
        key_type,
        reason: "not valid UTF-8".to_owned(),
    })
}

/// A text key: PostgreSQL text cannot hold NUL.
fn text_key(text: String, key_type: KeyType) -> Result<KeyValue, KeyError> {
    if text.contains('\0') {
        return Err(KeyError::Invalid {
            value: shown(&text.replace('\0', "\\0")),
            key_type,
            reason: "text cannot contain NUL bytes".to_owned(),
        });
    }
    Ok(KeyValue::Text(text))
}

/// The key column's input function applied to an untyped string.
pub(super) fn input_for_key(key_type: KeyType, text: &str) -> Result<KeyValue, KeyError> {
    match key_type {
        KeyType::Bigint => int_input(text, 64, key_type).map(KeyValue::Int),
        KeyType::Text => text_key(text.to_owned(), key_type),
        KeyType::Uuid => uuid_input(text, key_type).map(KeyValue::Uuid),
    }
}

/// The typed value as it meets the key column (comparison or assignment rules).
pub(super) fn coerce(
    value: Typed,
    key_type: KeyType,
    ctx: KeyContext,
) -> Result<KeyValue, KeyError> {
    match (key_type, value) {
        (_, Typed::Unknown(s)) => input_for_key(key_type, &s),
        (KeyType::Bigint, Typed::Int(v)) => Ok(KeyValue::Int(v)),
        (KeyType::Bigint, Typed::Numeric(n)) => match ctx {
            KeyContext::Assign => numeric_to_int(&n, 64, key_type).map(KeyValue::Int),
            KeyContext::Compare => match &n {
                Numeric::Finite(f) => {
                    f.to_i64_exact()
                        .map(KeyValue::Int)
                        .ok_or_else(|| KeyError::NoMatch {
                            value: shown(&f.to_pg_string()),
                            key_type,
                        })
                }
                special => Err(KeyError::NoMatch {
                    value: Typed::Numeric(special.clone()).into_text(),
                    key_type,
                }),
            },
        },
        (KeyType::Text, Typed::Text(s)) => text_key(s, key_type),
        (KeyType::Uuid, Typed::Uuid(u)) => Ok(KeyValue::Uuid(u)),
        // Assignment to a text column converts through the value's output function.
        (KeyType::Text, other) if ctx == KeyContext::Assign => {
            text_key(other.into_text(), key_type)
        }
        (_, other) => Err(KeyError::Incompatible {
            what: other.describe().to_owned(),
            key_type,
        }),
    }
}

/// Reads a parameter value of type `type_oid` (0 / unknown: the key column's type).
pub(super) fn read_param(
    bytes: &[u8],
    format: i16,
    type_oid: u32,
    key_type: KeyType,
) -> Result<Typed, KeyError> {
    let incompatible = |what: String| KeyError::Incompatible { what, key_type };
    match format {
        0 => {
            let text = utf8(bytes, key_type)?;
            Ok(match type_oid {
                oid::INT2 => Typed::Int(int_input(text, 16, key_type)?),
                oid::INT4 => Typed::Int(int_input(text, 32, key_type)?),
                oid::INT8 => Typed::Int(int_input(text, 64, key_type)?),
                oid::NUMERIC => Typed::Numeric(numeric_input(text, key_type)?),
                oid::TEXT | oid::VARCHAR => Typed::Text(text.to_owned()),
                oid::BPCHAR => Typed::Text(text.trim_end_matches(' ').to_owned()),
                oid::NAME => Typed::Text(truncate_bytes(text.to_owned(), NAME_MAX_BYTES)),
                oid::UUID => Typed::Uuid(uuid_input(text, key_type)?),
                oid::UNSPECIFIED | oid::UNKNOWN => Typed::Unknown(text.to_owned()),
                oid::FLOAT4 | oid::FLOAT8 => {
                    return Err(incompatible("a float parameter (inexact)".to_owned()))
                }
                other => return Err(incompatible(format!("a parameter of type OID {other}"))),
            })
        }
        1 => read_binary_param(bytes, type_oid, key_type),
        other => Err(KeyError::BadFormat(other)),
    }
}

/// Reads a binary-format parameter.
fn read_binary_param(bytes: &[u8], type_oid: u32, key_type: KeyType) -> Result<Typed, KeyError> {
    let wrong_length = |what: &str| KeyError::Invalid {
        value: format!("{} bytes", bytes.len()),
        key_type,
        reason: format!("binary {what} has the wrong length"),
    };
    let int = |len: usize, what: &str| -> Result<Typed, KeyError> {
        Ok(Typed::Int(match (len, bytes) {
            (2, [a, b]) => i64::from(i16::from_be_bytes([*a, *b])),
            (4, [a, b, c, d]) => i64::from(i32::from_be_bytes([*a, *b, *c, *d])),
            (8, _) => i64::from_be_bytes(bytes.try_into().map_err(|_| wrong_length(what))?),
            _ => return Err(wrong_length(what)),
        }))
    };
    let text = || utf8(bytes, key_type).map(str::to_owned);
    match type_oid {
        oid::INT2 => int(2, "int2"),
        oid::INT4 => int(4, "int4"),
        oid::INT8 => int(8, "int8"),
        oid::NUMERIC => numeric::numeric_from_binary(bytes)
            .map(Typed::Numeric)
            .ok_or_else(|| wrong_length("numeric")),
        oid::TEXT | oid::VARCHAR => Ok(Typed::Text(text()?)),
        oid::BPCHAR => Ok(Typed::Text(text()?.trim_end_matches(' ').to_owned())),
        oid::NAME => Ok(Typed::Text(truncate_bytes(text()?, NAME_MAX_BYTES))),
        oid::UUID => uuid_bytes(bytes).ok_or_else(|| wrong_length("uuid")),
        // Untyped: the key column's own binary format; bigint accepts int2/int4/int8 widths.
        oid::UNSPECIFIED | oid::UNKNOWN => match key_type {
            KeyType::Bigint => int(bytes.len(), "integer"),
            KeyType::Text => Ok(Typed::Text(text()?)),
            KeyType::Uuid => uuid_bytes(bytes).ok_or_else(|| wrong_length("uuid")),
        },
        oid::FLOAT4 | oid::FLOAT8 => Err(KeyError::Incompatible {
            what: "a float parameter (inexact)".to_owned(),
            key_type,
        }),
        other => Err(KeyError::Incompatible {
            what: format!("a parameter of type OID {other}"),
            key_type,
        }),
    }
}

/// A uuid from its 16 raw bytes.
fn uuid_bytes(bytes: &[u8]) -> Option<Typed> {
    <[u8; 16]>::try_from(bytes).ok().map(Typed::Uuid)
}
