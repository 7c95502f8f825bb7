//! HAVING evaluated at the proxy over merged rows, with SQL three-valued logic and PostgreSQL's
//! comparison rules.
//!
//! A comparison is typed the way PostgreSQL's operator resolution would type it: integers
//! compare exactly with integers, integers and numerics as exact numerics, anything numeric
//! against a float as float8 (NaN equal to NaN and above everything), text-like values by bytes
//! (the `C` collation; `bpchar` without its trailing spaces). A string constant or a bind
//! parameter takes the other side's type and is read with that type's input rules (see
//! `filter_input`), so `int_col > '2.5'` fails as PostgreSQL fails it.

use std::cmp::Ordering;

use shard_router::merge::{CmpOp, Filter, Literal, Operand};

use super::compare::{self, oids, ColumnType, CompareError};
use super::decimal::Decimal;
use super::filter_input::{parse_input, Key, SqlType};

/// Why a condition could not be evaluated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FilterError {
    /// Comparing these types is not supported at the proxy.
    #[error("{0}")]
    Unsupported(String),
    /// A value or constant is invalid for its type (PostgreSQL's 22P02).
    #[error("{0}")]
    Invalid(String),
}

impl FilterError {
    /// The SQLSTATE to report.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            FilterError::Unsupported(_) => "0A000",
            FilterError::Invalid(_) => "22P02",
        }
    }
}

/// What a condition is evaluated over.
struct Ctx<'a> {
    row: &'a [Option<&'a [u8]>],
    types: &'a [ColumnType],
    params: &'a [Option<String>],
}

/// Evaluates `filter` over one final row (None = SQL NULL) with SQL three-valued logic.
pub fn eval(
    filter: &Filter,
    row: &[Option<&[u8]>],
    types: &[ColumnType],
    params: &[Option<String>],
) -> Result<Option<bool>, FilterError> {
    eval_in(filter, &Ctx { row, types, params })
}

/// [`eval`] over a context. Every branch is evaluated (no short circuit), so a bad constant
/// fails whatever the data, as it does in PostgreSQL (where it fails at parse time).
fn eval_in(filter: &Filter, ctx: &Ctx<'_>) -> Result<Option<bool>, FilterError> {
    match filter {
        Filter::Cmp { op, left, right } => compare_operands(*op, left, right, ctx),
        Filter::And(items) => {
            let mut result = Some(true);
            for item in items {
                match eval_in(item, ctx)? {
                    Some(false) => result = Some(false),
                    None if result == Some(true) => result = None,
                    _ => {}
                }
            }
            Ok(result)
        }
        Filter::Or(items) => {
            let mut result = Some(false);
            for item in items {
                match eval_in(item, ctx)? {
                    Some(true) => result = Some(true),
                    None if result == Some(false) => result = None,
                    _ => {}
                }
            }
            Ok(result)
        }
        Filter::Not(inner) => Ok(eval_in(inner, ctx)?.map(|b| !b)),
        Filter::IsNull { operand, negated } => {
            let null = match operand {
                Operand::Column(i) => column(ctx, *i)?.0.is_none(),
                Operand::Param(i) => param(ctx, *i)?.is_none(),
                Operand::Literal(lit) => *lit == Literal::Null,
            };
            Ok(Some(null != *negated))
        }
    }
}

/// An operand's type before resolution: typed, or an untyped string (constant or parameter).
#[derive(Debug, Clone, Copy)]
enum Static {
    Typed(SqlType),
    Unknown,
}

/// Where comparisons happen once both sides are converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Int,
    Numeric,
    Float,
    Bool,
    Text,
    Time,
    TimeTz,
    Uuid,
}

/// `left op right` with NULL for a NULL operand.
fn compare_operands(
    op: CmpOp,
    left: &Operand,
    right: &Operand,
    ctx: &Ctx<'_>,
) -> Result<Option<bool>, FilterError> {
    if matches!(left, Operand::Literal(Literal::Null))
        || matches!(right, Operand::Literal(Literal::Null))
    {
        return Ok(None);
    }
    let (lt, rt) = (static_type(left, ctx)?, static_type(right, ctx)?);
    let (lt, rt) = match (lt, rt) {
        (Static::Typed(l), Static::Typed(r)) => (l, r),
        (Static::Typed(l), Static::Unknown) => (l, l),
        (Static::Unknown, Static::Typed(r)) => (r, r),
        (Static::Unknown, Static::Unknown) => (SqlType::Text, SqlType::Text),
    };
    let domain = domain(lt, rt).ok_or_else(|| {
        FilterError::Unsupported(format!(
            "operator does not exist: {} {} {}",
            lt.sql_name(),
            symbol(op),
            rt.sql_name()
        ))
    })?;
    // Constants first: a bad one is an error even when the column value is NULL.
    let l = key(left, lt, domain, ctx)?;
    let r = key(right, rt, domain, ctx)?;
    let (Some(l), Some(r)) = (l, r) else {
        return Ok(None);
    };
    let ord = order(&l, &r).ok_or_else(|| {
        FilterError::Unsupported(format!(
            "cannot compare {} with {} in HAVING",
            lt.sql_name(),
            rt.sql_name()
        ))
    })?;
    Ok(Some(holds(op, ord)))
}

/// The operator's SQL spelling.
fn symbol(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::NotEq => "<>",
        CmpOp::Lt => "<",
        CmpOp::LtEq => "<=",
        CmpOp::Gt => ">",
        CmpOp::GtEq => ">=",
    }
}

/// Whether `op` holds for two values in order `ord`.
fn holds(op: CmpOp, ord: Ordering) -> bool {
    match op {
        CmpOp::Eq => ord.is_eq(),
        CmpOp::NotEq => ord.is_ne(),
        CmpOp::Lt => ord.is_lt(),
        CmpOp::LtEq => ord.is_le(),
        CmpOp::Gt => ord.is_gt(),
        CmpOp::GtEq => ord.is_ge(),
    }
}

/// A final column's value and type (an index past the row is a planner bug: refused).
fn column<'a>(ctx: &Ctx<'a>, i: usize) -> Result<(Option<&'a [u8]>, ColumnType), FilterError> {
    match (ctx.row.get(i), ctx.types.get(i)) {
        (Some(v), Some(ty)) => Ok((*v, *ty)),
        _ => Err(FilterError::Unsupported(format!(
            "HAVING refers to result column {} of {}",
            i + 1,
            ctx.row.len().min(ctx.types.len())
        ))),
    }
}

/// A bind parameter's text (None = NULL).
fn param<'a>(ctx: &Ctx<'a>, i: usize) -> Result<Option<&'a str>, FilterError> {
    ctx.params
        .get(i)
        .map(Option::as_deref)
        .ok_or_else(|| FilterError::Invalid(format!("there is no parameter ${}", i + 1)))
}

/// An operand's type as PostgreSQL sees it before operator resolution.
fn static_type(operand: &Operand, ctx: &Ctx<'_>) -> Result<Static, FilterError> {
    Ok(match operand {
        Operand::Column(i) => {
            let ty = column(ctx, *i)?.1;
            Static::Typed(SqlType::of_oid(ty.oid).ok_or_else(|| {
                FilterError::Unsupported(format!(
                    "HAVING comparing values of type {} across shards is not supported",
                    ty.oid
                ))
            })?)
        }
        Operand::Literal(Literal::Number(s)) => Static::Typed(SqlType::of_number(s)),
        Operand::Literal(Literal::Bool(_)) => Static::Typed(SqlType::Bool),
        Operand::Literal(Literal::Text(_) | Literal::Null) | Operand::Param(_) => Static::Unknown,
    })
}

/// The common domain of two operand types (None: PostgreSQL has no such operator, or its
/// result depends on session settings the proxy does not know).
fn domain(a: SqlType, b: SqlType) -> Option<Domain> {
    use Domain::*;
    Some(match (a.domain(), b.domain()) {
        (Int, Int) => Int,
        (Int | Numeric, Int | Numeric) => Numeric,
        (Int | Numeric | Float, Int | Numeric | Float) => Float,
        (x, y) if x == y => x,
        _ => return None,
    })
}

/// An operand's comparison key in `domain` (None = NULL); `ty` is its resolved type.
fn key<'a>(
    operand: &'a Operand,
    ty: SqlType,
    domain: Domain,
    ctx: &Ctx<'a>,
) -> Result<Option<Key<'a>>, FilterError> {
    let key = match operand {
        Operand::Column(i) => match column(ctx, *i)? {
            (None, _) => return Ok(None),
            (Some(v), col) => column_key(v, col, ty).map_err(|e| match e {
                CompareError::Invalid(what) => {
                    FilterError::Invalid(format!("invalid {what} value from a shard"))
                }
                CompareError::Unsupported(oid) => FilterError::Unsupported(format!(
                    "HAVING comparing values of type {oid} across shards is not supported"
                )),
            })?,
        },
        Operand::Param(i) => match param(ctx, *i)? {
            None => return Ok(None),
            Some(text) => parse_input(text, ty)?,
        },
        Operand::Literal(Literal::Text(text)) => parse_input(text, ty)?,
        Operand::Literal(Literal::Number(text)) => parse_input(text, ty)?,
        Operand::Literal(Literal::Bool(b)) => Key::Bool(*b),
        Operand::Literal(Literal::Null) => return Ok(None),
    };
    Ok(Some(convert(key, domain)))
}

/// A column's wire value as a key of its own type.
fn column_key(v: &[u8], col: ColumnType, ty: SqlType) -> Result<Key<'_>, CompareError> {
    let bin = col.binary;
    // 1970-01-01 - 2000-01-01 (PostgreSQL's binary epoch), in days and microseconds.
    const EPOCH_DAYS: i64 = 10_957;
    const EPOCH_MICROS: i128 = 946_684_800_000_000;
    const DAY_MICROS: i128 = 86_400_000_000;
    Ok(match ty {
        SqlType::Int2 => Key::Int(compare::int(v, bin, "int2", |x: [u8; 2]| {
            i16::from_be_bytes(x).into()
        })?),
        SqlType::Int4 => Key::Int(compare::int(v, bin, "int4", |x: [u8; 4]| {
            i32::from_be_bytes(x).into()
        })?),
        SqlType::Int8 => Key::Int(compare::int(v, bin, "int8", i64::from_be_bytes)?),
        SqlType::Oid => Key::Int(compare::oid(v, bin)?.into()),
        SqlType::Numeric => {
            Key::Numeric(Decimal::parse(v, bin).ok_or(CompareError::Invalid("numeric"))?)
        }
        SqlType::Float4 => Key::Float(compare::float4(v, bin)?),
        SqlType::Float8 => Key::Float(compare::float8(v, bin)?),
        SqlType::Bool => Key::Bool(compare::boolean(v, bin)?),
        SqlType::Text | SqlType::Name => Key::Bytes(v),
        SqlType::Bpchar => Key::Bytes(compare::trim_spaces(v)),
        SqlType::Uuid => Key::Uuid(compare::uuid(v, bin)?),
        SqlType::Date => {
            let days = compare::date(v, bin)?;
            let days = match (bin, days) {
                (true, d) if d == i64::from(i32::MAX) => i64::MAX,
                (true, d) if d == i64::from(i32::MIN) => i64::MIN,
                (true, d) => d + EPOCH_DAYS,
                (false, d) => d,
            };
            Key::Time(match days {
                i64::MAX => i128::MAX,
                i64::MIN => i128::MIN,
                d => i128::from(d) * DAY_MICROS,
            })
        }
        SqlType::Timestamp | SqlType::Timestamptz => {
            let micros = compare::timestamp(v, bin, ty == SqlType::Timestamptz)?;
            Key::Time(match (bin, micros) {
                (true, m) if m == i128::from(i64::MAX) => i128::MAX,
                (true, m) if m == i128::from(i64::MIN) => i128::MIN,
                (true, m) => m + EPOCH_MICROS,
                (false, m) => m,
            })
        }
    })
}

/// Widens a key into the comparison domain (integers and numerics to numeric or float8).
fn convert(key: Key<'_>, domain: Domain) -> Key<'_> {
    match (key, domain) {
        (Key::Int(i), Domain::Numeric) => Key::Numeric(Decimal::from_int(i)),
        // int8 -> float8 rounds to nearest, as PostgreSQL's cast does.
        (Key::Int(i), Domain::Float) => Key::Float(i as f64),
        (Key::Numeric(d), Domain::Float) => Key::Float(d.to_f64()),
        (k, _) => k,
    }
}

/// Orders two keys of one domain (None if they are not of one domain).
fn order(a: &Key<'_>, b: &Key<'_>) -> Option<Ordering> {
    Some(match (a, b) {
        (Key::Int(a), Key::Int(b)) => a.cmp(b),
        (Key::Numeric(a), Key::Numeric(b)) => a.cmp_value(b),
        (Key::Float(a), Key::Float(b)) => compare::float_order(*a, *b),
        (Key::Bool(a), Key::Bool(b)) => a.cmp(b),
        (Key::Bytes(a), Key::Bytes(b)) => a.cmp(b),
        (Key::Time(a), Key::Time(b)) => a.cmp(b),
        (Key::Uuid(a), Key::Uuid(b)) => a.cmp(b),
        _ => return None,
    })
}

impl SqlType {
    /// The type of a column OID (None: not comparable at the proxy).
    fn of_oid(oid: u32) -> Option<SqlType> {
        use oids::*;
        Some(match oid {
            INT2 => SqlType::Int2,
            INT4 => SqlType::Int4,
            INT8 => SqlType::Int8,
            OID => SqlType::Oid,
            NUMERIC => SqlType::Numeric,
            FLOAT4 => SqlType::Float4,
            FLOAT8 => SqlType::Float8,
            BOOL => SqlType::Bool,
            TEXT | VARCHAR => SqlType::Text,
            NAME => SqlType::Name,
            BPCHAR => SqlType::Bpchar,
            DATE => SqlType::Date,
            TIMESTAMP => SqlType::Timestamp,
            TIMESTAMPTZ => SqlType::Timestamptz,
            UUID => SqlType::Uuid,
            _ => return None,
        })
    }

    /// The domain values of this type compare in (with a value of the same type).
    fn domain(self) -> Domain {
        match self {
            SqlType::Int2 | SqlType::Int4 | SqlType::Int8 | SqlType::Oid => Domain::Int,
            SqlType::Numeric => Domain::Numeric,
            SqlType::Float4 | SqlType::Float8 => Domain::Float,
            SqlType::Bool => Domain::Bool,
            SqlType::Text | SqlType::Name | SqlType::Bpchar => Domain::Text,
            SqlType::Date | SqlType::Timestamp => Domain::Time,
            SqlType::Timestamptz => Domain::TimeTz,
            SqlType::Uuid => Domain::Uuid,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#[path = "filter_tests.rs"]
mod tests;
