//! Canonical key values from SQL literals and bind parameters (text and binary formats).
//!
//! Every spelling of the same key must reduce to the same [`KeyValue`] (INTERFACE.md section 3),
//! and the value must be the one PostgreSQL itself would compare or store. Two contexts differ:
//! - [`KeyContext::Compare`] (`WHERE key = v`, `IN`, `= ANY`): a numeric such as `5.5` equals no
//!   bigint, so it gives [`KeyError::NoMatch`] (no row can match; any single shard may answer).
//! - [`KeyContext::Assign`] (`INSERT ... VALUES`, `UPDATE ... SET key =`): PostgreSQL's assignment
//!   casts apply, so `5.5` is stored as 6 and `5` into a text column is stored as `'5'`.

mod array;
mod convert;
mod numeric;

use config::{KeyType, KeyValue};

use convert::{
    cast_typed, coerce, incompatible_cast, input_for_key, number_literal, parse_cast, read_param,
    shown, utf8, Typed,
};

use crate::RouteError;

/// Type OIDs of the parameter types we canonicalise.
pub mod oid {
    /// `unspecified` in Parse: PostgreSQL infers the type from the key column.
    pub const UNSPECIFIED: u32 = 0;
    /// int8
    pub const INT8: u32 = 20;
    /// int2
    pub const INT2: u32 = 21;
    /// int4
    pub const INT4: u32 = 23;
    /// text
    pub const TEXT: u32 = 25;
    /// name
    pub const NAME: u32 = 19;
    /// float4
    pub const FLOAT4: u32 = 700;
    /// float8
    pub const FLOAT8: u32 = 701;
    /// unknown
    pub const UNKNOWN: u32 = 705;
    /// bpchar (char(n))
    pub const BPCHAR: u32 = 1042;
    /// varchar
    pub const VARCHAR: u32 = 1043;
    /// numeric
    pub const NUMERIC: u32 = 1700;
    /// uuid
    pub const UUID: u32 = 2950;
    /// name[]
    pub const NAME_ARRAY: u32 = 1003;
    /// int2[]
    pub const INT2_ARRAY: u32 = 1005;
    /// int4[]
    pub const INT4_ARRAY: u32 = 1007;
    /// text[]
    pub const TEXT_ARRAY: u32 = 1009;
    /// bpchar[]
    pub const BPCHAR_ARRAY: u32 = 1014;
    /// varchar[]
    pub const VARCHAR_ARRAY: u32 = 1015;
    /// int8[]
    pub const INT8_ARRAY: u32 = 1016;
    /// numeric[]
    pub const NUMERIC_ARRAY: u32 = 1231;
    /// uuid[]
    pub const UUID_ARRAY: u32 = 2951;
}

/// Where a key value is used, which decides PostgreSQL's conversion rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyContext {
    /// Compared with the key column (`=`, `IN`, `= ANY`).
    #[default]
    Compare,
    /// Stored into the key column (`INSERT`, `UPDATE ... SET`, COPY).
    Assign,
}

/// A key as it appears in SQL or a bind parameter, before canonicalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource<'a> {
    /// A SQL literal: its text as sqlparser gives it (numbers may carry a leading `-`),
    /// whether it was a quoted string, and the cast type name if written as `v::type` or
    /// `CAST(v AS type)`.
    Literal {
        /// literal text (string contents already unescaped)
        text: &'a str,
        /// true for a quoted string literal
        is_string: bool,
        /// cast target type name, e.g. "bigint", "pg_catalog.int8", "varchar(10)"
        cast: Option<&'a str>,
    },
    /// SQL `NULL` (possibly cast).
    Null,
    /// A bind parameter value.
    Param {
        /// the value bytes; `None` is SQL NULL
        value: Option<&'a [u8]>,
        /// 0 text, 1 binary
        format: i16,
        /// type OID declared at Parse (0 = unspecified)
        type_oid: u32,
        /// cast written on the parameter (`$1::bigint`), if any
        cast: Option<&'a str>,
    },
}

impl KeySource<'_> {
    /// The canonical key this source denotes for a key column of `key_type`.
    pub fn to_key(&self, key_type: KeyType, ctx: KeyContext) -> Result<KeyValue, KeyError> {
        match *self {
            KeySource::Literal {
                text,
                is_string,
                cast,
            } => literal_key(ctx, key_type, text, is_string, cast),
            KeySource::Null => Err(KeyError::Null),
            KeySource::Param {
                value,
                format,
                type_oid,
                cast,
            } => cast_param_key(ctx, key_type, value, format, type_oid, cast),
        }
    }
}

/// Why a key value cannot be canonicalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is SQL NULL. Stored (INSERT, COPY) it is the client error 23502; compared
    /// (`key = NULL`, `key = $1` bound to NULL) it matches nothing, which the planner treats
    /// like [`KeyError::NoMatch`].
    #[error("shard key is NULL")]
    Null,
    /// The text is not a valid spelling for the type (PostgreSQL's input function rejects it).
    #[error("invalid {key_type} shard key {value}: {reason}")]
    Invalid {
        /// the offending value as written (truncated when long)
        value: String,
        /// the type being read
        key_type: KeyType,
        /// what is wrong
        reason: String,
    },
    /// The value does not fit the target type (for example 2^63 as bigint).
    #[error("value {value} is out of range for type {type_name}")]
    OutOfRange {
        /// the offending value as written
        value: String,
        /// the target type name
        type_name: String,
    },
    /// A value or cast of a type that cannot be compared with or stored into the key column.
    #[error("{what} cannot be used as a {key_type} shard key")]
    Incompatible {
        /// e.g. "a value cast to uuid", "a float8 parameter"
        what: String,
        /// the key column's type
        key_type: KeyType,
    },
    /// A bind parameter with a format code other than 0 (text) or 1 (binary).
    #[error("invalid parameter format code {0}")]
    BadFormat(i16),
    /// Only in [`KeyContext::Compare`]: the value equals no key of this type (e.g. `5.5` or
    /// `1e30` compared with a bigint), so no row can match. The planner treats the predicate as
    /// false (it may send the statement to any single shard); it is not a client error.
    #[error("value {value} equals no {key_type} key")]
    NoMatch {
        /// the value as written
        value: String,
        /// the key column's type
        key_type: KeyType,
    },
}

impl KeyError {
    /// SQLSTATE: NULL 23502, bad syntax 22P02, out of range 22003, bad format 08P01, else 22023.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            KeyError::Null => "23502",
            KeyError::Invalid { .. } => "22P02",
            KeyError::OutOfRange { .. } => "22003",
            KeyError::BadFormat(_) => "08P01",
            KeyError::Incompatible { .. } | KeyError::NoMatch { .. } => "22023",
        }
    }

    /// The client-facing error for the key column `column` of `table`.
    pub fn to_route_error(&self, table: &str, column: &str) -> RouteError {
        let message = match self {
            KeyError::Null => format!(
                "shard key column \"{column}\" of table \"{table}\" is NULL: every row needs a shard key"
            ),
            other => format!("shard key column \"{column}\" of table \"{table}\": {other}"),
        };
        RouteError::new(self.sqlstate(), message)
    }
}

/// From a SQL literal's text as sqlparser gives it, compared with the key column
/// ([`KeyContext::Compare`]); see [`literal_key`].
pub fn key_from_literal(
    key_type: KeyType,
    text: &str,
    is_string: bool,
    cast: Option<&str>,
) -> Result<KeyValue, KeyError> {
    literal_key(KeyContext::Compare, key_type, text, is_string, cast)
}

/// From a bind parameter compared with the key column ([`KeyContext::Compare`]); see
/// [`param_key`].
pub fn key_from_param(
    key_type: KeyType,
    value: Option<&[u8]>,
    format: i16,
    type_oid: u32,
) -> Result<KeyValue, KeyError> {
    param_key(KeyContext::Compare, key_type, value, format, type_oid)
}

/// From a SQL literal: numbers (`5`, `-5`, `5.0`, `5e0`), strings (`'5'`), with an optional
/// cast type name (`bigint`, `int8`, `integer`, `int`, `int4`, `smallint`, `int2`, `numeric`,
/// `text`, `varchar[(n)]`, `character varying`, `char(n)`, `bpchar`, `name`, `uuid`, optionally
/// `pg_catalog.`-qualified). A cast to a type that cannot meet the key column is 22023.
pub fn literal_key(
    ctx: KeyContext,
    key_type: KeyType,
    text: &str,
    is_string: bool,
    cast: Option<&str>,
) -> Result<KeyValue, KeyError> {
    let typed = if is_string {
        Typed::Unknown(text.to_owned())
    } else {
        number_literal(text, key_type)?
    };
    let typed = match cast {
        Some(name) => {
            let target = parse_cast(name);
            if !target.meets(key_type, ctx) {
                return Err(incompatible_cast(name, key_type));
            }
            cast_typed(typed, &target, name, key_type)?
        }
        None => typed,
    };
    coerce(typed, key_type, ctx)
}

/// From a bind parameter: format 0 text / 1 binary; `type_oid` as declared at Parse (0 =
/// unspecified: the key column's type; binary bigint of unknown type is read by its length
/// 2/4/8). Accepted types: int2/int4/int8, numeric (integral values), text, varchar, bpchar,
/// name, unknown, uuid.
pub fn param_key(
    ctx: KeyContext,
    key_type: KeyType,
    value: Option<&[u8]>,
    format: i16,
    type_oid: u32,
) -> Result<KeyValue, KeyError> {
    cast_param_key(ctx, key_type, value, format, type_oid, None)
}

/// [`param_key`] for a parameter written with a cast (`$1::int4`), which applies as in
/// PostgreSQL: with an unspecified type the parameter takes the cast's type, else its value is
/// cast.
pub fn cast_param_key(
    ctx: KeyContext,
    key_type: KeyType,
    value: Option<&[u8]>,
    format: i16,
    type_oid: u32,
    cast: Option<&str>,
) -> Result<KeyValue, KeyError> {
    let bytes = value.ok_or(KeyError::Null)?;
    let typed = match cast {
        None => read_param(bytes, format, type_oid, key_type)?,
        Some(name) => {
            let target = parse_cast(name);
            if !target.meets(key_type, ctx) {
                return Err(incompatible_cast(name, key_type));
            }
            let oid = if matches!(type_oid, oid::UNSPECIFIED | oid::UNKNOWN) {
                // PostgreSQL infers the parameter's type from the cast.
                target
                    .oid()
                    .ok_or_else(|| incompatible_cast(name, key_type))?
            } else {
                type_oid
            };
            let read = read_param(bytes, format, oid, key_type)?;
            cast_typed(read, &target, name, key_type)?
        }
    };
    coerce(typed, key_type, ctx)
}

/// `= ANY($n)` with an array parameter: text format `{1,2,"3",NULL}` (quotes, escapes, NULL,
/// nested dimensions) or the binary array format. NULL elements and elements that equal no key
/// (`NoMatch`) are skipped; a NULL array or an empty result means no row can match.
pub fn keys_from_array_param(
    key_type: KeyType,
    value: Option<&[u8]>,
    format: i16,
    type_oid: u32,
) -> Result<Vec<KeyValue>, KeyError> {
    let Some(bytes) = value else {
        return Ok(Vec::new());
    };
    let declared_elem = array::element_oid(type_oid).ok_or_else(|| KeyError::Incompatible {
        what: format!("a parameter of type OID {type_oid} (not an array) compared with = ANY"),
        key_type,
    })?;
    let mut keys = Vec::new();
    let mut add = |elem: Option<&[u8]>, format: i16, elem_oid: u32| {
        let Some(elem) = elem else { return Ok(()) };
        let key = read_param(elem, format, elem_oid, key_type)
            .and_then(|typed| coerce(typed, key_type, KeyContext::Compare));
        match key {
            Ok(k) => keys.push(k),
            Err(KeyError::NoMatch { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    };
    match format {
        0 => {
            let text = utf8(bytes, key_type)?;
            let elems = array::parse_text(text).map_err(|reason| KeyError::Invalid {
                value: shown(text),
                key_type,
                reason,
            })?;
            for elem in &elems {
                add(elem.as_deref().map(str::as_bytes), 0, declared_elem)?;
            }
        }
        1 => {
            let parsed = array::parse_binary(bytes).map_err(|reason| KeyError::Invalid {
                value: format!("binary array of {} bytes", bytes.len()),
                key_type,
                reason,
            })?;
            let elem_oid = if parsed.elem_oid == 0 {
                declared_elem
            } else {
                parsed.elem_oid
            };
            for elem in parsed.elements {
                add(elem, 1, elem_oid)?;
            }
        }
        other => return Err(KeyError::BadFormat(other)),
    }
    Ok(keys)
}

/// A COPY field's text (already unescaped/unquoted) as PostgreSQL's input function for the key
/// column reads it (int8 input for bigint: no decimals; UTF-8 for text; any uuid spelling).
pub fn key_from_copy_field(key_type: KeyType, field: &[u8]) -> Result<KeyValue, KeyError> {
    input_for_key(key_type, utf8(field, key_type)?)
}

#[cfg(test)]
mod tests;
