//! Aggregates finished at the proxy from per-shard partials, with the output type and value one
//! PostgreSQL would have computed over all the rows.
//!
//! Each shard ran the partial aggregate over its rows (`count`, `sum`, `min`, `max`,
//! `bool_and`, `bool_or`; `avg` as `sum` + `count`). Combining is exact: int8 sums are checked
//! like PostgreSQL's `int8pl`, numeric sums and averages use exact decimals with PostgreSQL's
//! display-scale and division-scale rules, float sums report overflow like `float8pl`, and
//! min / max keep the winning value's bytes (the tie rules of PostgreSQL's `*larger` /
//! `*smaller` functions included).

use std::cmp::Ordering;

use shard_router::merge::AggFunc;

use super::compare::{self, oids, ColumnType, CompareError, SortSpec};
use super::decimal::Decimal;
use super::float_text;

/// Why an aggregate could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AggError {
    /// The aggregate over this partial type cannot be merged.
    #[error("{func} over type {oid} across shards is not supported")]
    Unsupported {
        /// The aggregate's name.
        func: &'static str,
        /// The partial's type OID.
        oid: u32,
    },
    /// A partial value's bytes are not valid for its type.
    #[error("invalid {0} value from a shard")]
    Invalid(&'static str),
    /// The result does not fit its type.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
}

impl AggError {
    /// The SQLSTATE to report.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AggError::Unsupported { .. } => "0A000",
            AggError::Invalid(_) => "XX000",
            AggError::OutOfRange(_) => "22003",
        }
    }
}

/// Float overflow, named as PostgreSQL names it ("value out of range: overflow").
const FLOAT_OVERFLOW: AggError = AggError::OutOfRange("value");

/// One aggregate's running state.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// count or sum over int8 partials (count starts at 0, sum at NULL).
    Int8(Option<i64>),
    /// sum over numeric partials.
    Numeric(Option<Decimal>),
    /// sum over float8 partials.
    Float8(Option<f64>),
    /// sum over float4 partials (added in single precision, as `float4pl` does).
    Float4(Option<f32>),
    /// min / max: the winning value's bytes as the shard sent them.
    Extreme(Option<Vec<u8>>),
    /// bool_and / bool_or.
    Bool(Option<bool>),
    /// avg over int8 partial sums (of int2 / int4): exact total.
    AvgInt {
        /// Sum of the partial sums.
        total: i128,
        /// Sum of the partial counts.
        count: i64,
    },
    /// avg over numeric partial sums (of int8 / numeric).
    AvgNumeric {
        /// Sum of the partial sums.
        total: Decimal,
        /// Sum of the partial counts.
        count: i64,
    },
    /// avg over float4 / float8 partial sums: float8 result.
    AvgFloat {
        /// Sum of the partial sums.
        total: f64,
        /// Sum of the partial counts.
        count: i64,
    },
}

/// One aggregate's running state for one group.
#[derive(Debug)]
pub struct Accumulator {
    func: AggFunc,
    arg: ColumnType,
    count: Option<ColumnType>,
    initial: State,
    state: State,
}

/// The aggregate's SQL name (for messages).
fn name(func: AggFunc) -> &'static str {
    match func {
        AggFunc::Count => "count",
        AggFunc::Sum => "sum",
        AggFunc::Min => "min",
        AggFunc::Max => "max",
        AggFunc::Avg => "avg",
        AggFunc::BoolAnd => "bool_and",
        AggFunc::BoolOr => "bool_or",
    }
}

impl Accumulator {
    /// An accumulator for `func` over partials of type `arg` (avg: plus the partial count's type).
    pub fn new(
        func: AggFunc,
        arg: ColumnType,
        count: Option<ColumnType>,
    ) -> Result<Accumulator, AggError> {
        use oids::*;
        let unsupported = |oid| AggError::Unsupported {
            func: name(func),
            oid,
        };
        let initial = match (func, arg.oid) {
            (AggFunc::Count, INT8) => State::Int8(Some(0)),
            (AggFunc::Sum, INT8) => State::Int8(None),
            (AggFunc::Sum, NUMERIC) => State::Numeric(None),
            (AggFunc::Sum, FLOAT8) => State::Float8(None),
            (AggFunc::Sum, FLOAT4) => State::Float4(None),
            (AggFunc::Min | AggFunc::Max, oid) if compare::supported(oid) => State::Extreme(None),
            (AggFunc::BoolAnd | AggFunc::BoolOr, BOOL) => State::Bool(None),
            (AggFunc::Avg, oid) => {
                match count {
                    Some(ColumnType { oid: INT8, .. }) => {}
                    Some(other) => return Err(unsupported(other.oid)),
                    None => return Err(unsupported(oid)),
                }
                match oid {
                    INT8 => State::AvgInt { total: 0, count: 0 },
                    NUMERIC => State::AvgNumeric {
                        total: Decimal::from_int(0),
                        count: 0,
                    },
                    FLOAT8 | FLOAT4 => State::AvgFloat {
                        total: 0.0,
                        count: 0,
                    },
                    _ => return Err(unsupported(oid)),
                }
            }
            (_, oid) => return Err(unsupported(oid)),
        };
        Ok(Accumulator {
            func,
            arg,
            count,
            state: initial.clone(),
            initial,
        })
    }

    /// Adds one shard's partial (avg: with its partial count).
    pub fn add(&mut self, arg: Option<&[u8]>, count: Option<&[u8]>) -> Result<(), AggError> {
        let ty = self.arg;
        match &mut self.state {
            State::Int8(total) => {
                if let Some(v) = arg {
                    let x = int8(v, ty.binary)?;
                    *total = Some(match *total {
                        None => x,
                        Some(t) => t.checked_add(x).ok_or(AggError::OutOfRange("bigint"))?,
                    });
                }
            }
            State::Numeric(total) => {
                if let Some(v) = arg {
                    let x = numeric(v, ty.binary)?;
                    *total = Some(match total {
                        None => x,
                        Some(t) => t.add(&x),
                    });
                }
            }
            State::Float8(total) => {
                if let Some(v) = arg {
                    let x = compare::float8(v, ty.binary).map_err(invalid)?;
                    *total = Some(match *total {
                        None => x,
                        Some(t) => float_add(t, x)?,
                    });
                }
            }
            State::Float4(total) => {
                if let Some(v) = arg {
                    // Exact: the value was read as a float4.
                    let x = compare::float4(v, ty.binary).map_err(invalid)? as f32;
                    *total = Some(match *total {
                        None => x,
                        Some(t) => float4_add(t, x)?,
                    });
                }
            }
            State::Extreme(best) => {
                if let Some(v) = arg {
                    if replaces(self.func, ty, v, best.as_deref())? {
                        *best = Some(v.to_vec());
                    }
                }
            }
            State::Bool(value) => {
                if let Some(v) = arg {
                    let x = compare::boolean(v, ty.binary).map_err(invalid)?;
                    *value = Some(match (self.func, *value) {
                        (_, None) => x,
                        (AggFunc::BoolOr, Some(b)) => b || x,
                        (_, Some(b)) => b && x,
                    });
                }
            }
            State::AvgInt { total, count: n } => {
                if let Some(v) = arg {
                    *total = total
                        .checked_add(i128::from(int8(v, ty.binary)?))
                        .ok_or(AggError::OutOfRange("bigint"))?;
                }
                add_count(n, count, self.count)?;
            }
            State::AvgNumeric { total, count: n } => {
                if let Some(v) = arg {
                    *total = total.add(&numeric(v, ty.binary)?);
                }
                add_count(n, count, self.count)?;
            }
            State::AvgFloat { total, count: n } => {
                if let Some(v) = arg {
                    let x = if ty.oid == oids::FLOAT4 {
                        compare::float4(v, ty.binary)
                    } else {
                        compare::float8(v, ty.binary)
                    };
                    *total = float_add(*total, x.map_err(invalid)?)?;
                }
                add_count(n, count, self.count)?;
            }
        }
        Ok(())
    }

    /// The result's type OID.
    pub fn output_oid(&self) -> u32 {
        match self.func {
            AggFunc::Count => oids::INT8,
            AggFunc::Sum | AggFunc::Min | AggFunc::Max => self.arg.oid,
            AggFunc::Avg if self.arg.oid == oids::FLOAT8 || self.arg.oid == oids::FLOAT4 => {
                oids::FLOAT8
            }
            AggFunc::Avg => oids::NUMERIC,
            AggFunc::BoolAnd | AggFunc::BoolOr => oids::BOOL,
        }
    }

    /// The result's typlen for RowDescription (-1 variable).
    pub fn output_typlen(&self) -> i16 {
        use oids::*;
        match self.output_oid() {
            BOOL => 1,
            INT2 => 2,
            INT4 | OID | FLOAT4 | DATE => 4,
            INT8 | FLOAT8 | TIMESTAMP | TIMESTAMPTZ => 8,
            UUID => 16,
            NAME => 64,
            _ => -1,
        }
    }

    /// Appends the result in text or binary format; Ok(false) for SQL NULL (nothing appended).
    pub fn finish(&self, binary: bool, out: &mut Vec<u8>) -> Result<bool, AggError> {
        match &self.state {
            State::Int8(None)
            | State::Numeric(None)
            | State::Float8(None)
            | State::Float4(None)
            | State::Extreme(None)
            | State::Bool(None) => return Ok(false),
            State::AvgInt { count: 0, .. }
            | State::AvgNumeric { count: 0, .. }
            | State::AvgFloat { count: 0, .. } => return Ok(false),
            State::Int8(Some(x)) => write_int8(*x, binary, out),
            State::Numeric(Some(x)) => write_numeric(x, binary, out)?,
            State::Float8(Some(x)) => write_float8(*x, binary, out),
            State::Float4(Some(x)) => {
                if binary {
                    out.extend_from_slice(&x.to_be_bytes());
                } else {
                    out.extend_from_slice(float_text::float4_text(*x).as_bytes());
                }
            }
            State::Extreme(Some(bytes)) => out.extend_from_slice(bytes),
            State::Bool(Some(b)) => out.push(match (binary, b) {
                (true, b) => u8::from(*b),
                (false, true) => b't',
                (false, false) => b'f',
            }),
            State::AvgInt { total, count } => {
                let avg = Decimal::from_int(*total).div_int(*count);
                write_numeric(&avg.ok_or(AggError::Invalid("count"))?, binary, out)?;
            }
            State::AvgNumeric { total, count } => {
                let avg = total.div_int(*count);
                write_numeric(&avg.ok_or(AggError::Invalid("count"))?, binary, out)?;
            }
            // float8_avg: Sx / N, with N as a float8.
            State::AvgFloat { total, count } => write_float8(*total / *count as f64, binary, out),
        }
        Ok(true)
    }

    /// Back to the empty state (for the next group).
    pub fn reset(&mut self) {
        self.state = self.initial.clone();
    }
}

/// Whether `candidate` becomes the new min / max over `best`. Ties go to the later value, as
/// PostgreSQL's `*larger` / `*smaller` functions return their second argument on a tie — except
/// `bpchar_larger` / `bpchar_smaller`, which keep the first.
fn replaces(
    func: AggFunc,
    ty: ColumnType,
    candidate: &[u8],
    best: Option<&[u8]>,
) -> Result<bool, AggError> {
    let Some(best) = best else {
        // Validate the first value too, so a bad partial fails the same way wherever it lands.
        compare::compare(
            Some(candidate),
            Some(candidate),
            ty,
            SortSpec::new(false, None),
        )
        .map_err(invalid)?;
        return Ok(true);
    };
    let ord = compare::compare(Some(candidate), Some(best), ty, SortSpec::new(false, None))
        .map_err(invalid)?;
    let wanted = if func == AggFunc::Max {
        Ordering::Greater
    } else {
        Ordering::Less
    };
    Ok(ord == wanted || (ord == Ordering::Equal && ty.oid != oids::BPCHAR))
}

/// A compare error as an aggregate error.
fn invalid(e: CompareError) -> AggError {
    match e {
        CompareError::Invalid(what) => AggError::Invalid(what),
        CompareError::Unsupported(_) => AggError::Invalid("value"),
    }
}

/// An int8 partial.
fn int8(v: &[u8], binary: bool) -> Result<i64, AggError> {
    compare::int(v, binary, "int8", i64::from_be_bytes).map_err(invalid)
}

/// A numeric partial.
fn numeric(v: &[u8], binary: bool) -> Result<Decimal, AggError> {
    Decimal::parse(v, binary).ok_or(AggError::Invalid("numeric"))
}

/// Adds avg's partial count (int8; NULL counts nothing).
fn add_count(n: &mut i64, count: Option<&[u8]>, ty: Option<ColumnType>) -> Result<(), AggError> {
    if let Some(v) = count {
        let binary = ty.is_some_and(|t| t.binary);
        *n = n
            .checked_add(int8(v, binary)?)
            .ok_or(AggError::OutOfRange("bigint"))?;
    }
    Ok(())
}

/// `float8pl`: an infinite result from finite inputs is an overflow error.
fn float_add(a: f64, b: f64) -> Result<f64, AggError> {
    let sum = a + b;
    if sum.is_infinite() && !a.is_infinite() && !b.is_infinite() {
        return Err(FLOAT_OVERFLOW);
    }
    Ok(sum)
}

/// `float4pl`: single-precision addition with the same overflow rule.
fn float4_add(a: f32, b: f32) -> Result<f32, AggError> {
    let sum = a + b;
    if sum.is_infinite() && !a.is_infinite() && !b.is_infinite() {
        return Err(FLOAT_OVERFLOW);
    }
    Ok(sum)
}

/// An int8 in text or binary format.
fn write_int8(x: i64, binary: bool, out: &mut Vec<u8>) {
    if binary {
        out.extend_from_slice(&x.to_be_bytes());
    } else {
        out.extend_from_slice(x.to_string().as_bytes());
    }
}

/// A float8 in text (PostgreSQL's shortest form) or binary format.
fn write_float8(x: f64, binary: bool, out: &mut Vec<u8>) {
    if binary {
        out.extend_from_slice(&x.to_be_bytes());
    } else {
        out.extend_from_slice(float_text::float8_text(x).as_bytes());
    }
}

/// A numeric in text or binary format.
fn write_numeric(x: &Decimal, binary: bool, out: &mut Vec<u8>) -> Result<(), AggError> {
    if binary {
        x.write_binary(out).ok_or(AggError::OutOfRange("numeric"))
    } else {
        out.extend_from_slice(x.to_text().as_bytes());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#[path = "agg_tests.rs"]
mod tests;
