//! LIMIT / OFFSET / FETCH FIRST: the counts the proxy applies after the merge, and the
//! widened LIMIT pushed down to the shards of a row merge.

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, LimitClause, Query, UnaryOperator, Value,
};

use super::exprs::{placeholder, unparen};
use super::refuse;
use crate::merge::Count;
use crate::RouteError;

/// The row counts of a query, as the plan holds them and as written.
#[derive(Debug, Clone, Default)]
pub(super) struct Counts {
    /// LIMIT / FETCH FIRST (None: no limit).
    pub limit: Option<Count>,
    /// OFFSET (None: 0).
    pub offset: Option<Count>,
    limit_expr: Option<Expr>,
    offset_expr: Option<Expr>,
}

/// Which clause a count comes from (for messages and SQLSTATEs).
#[derive(Clone, Copy)]
enum Which {
    Limit,
    Offset,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Limit => "LIMIT",
            Which::Offset => "OFFSET",
        }
    }
}

/// Reads the LIMIT, OFFSET and FETCH clauses of `q`.
pub(super) fn read(q: &Query) -> Result<Counts, RouteError> {
    let (limit, offset) = match (&q.limit_clause, &q.fetch) {
        (
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }),
            fetch,
        ) => {
            if !limit_by.is_empty() {
                return Err(refuse("LIMIT ... BY across shards is not supported"));
            }
            let limit = match (limit, fetch) {
                (Some(_), Some(_)) => {
                    return Err(refuse("LIMIT together with FETCH is not supported"))
                }
                (Some(l), None) => Some(l.clone()),
                (None, Some(f)) => Some(fetch_count(f.quantity.as_ref())),
                (None, None) => None,
            };
            (limit, offset.as_ref().map(|o| o.value.clone()))
        }
        (Some(LimitClause::OffsetCommaLimit { .. }), _) => {
            return Err(refuse("LIMIT offset, count across shards is not supported"))
        }
        (None, Some(f)) => (Some(fetch_count(f.quantity.as_ref())), None),
        (None, None) => (None, None),
    };
    let mut counts = Counts::default();
    if let Some(l) = limit {
        counts.limit = count(&l, Which::Limit)?;
        counts.limit_expr = counts.limit.map(|_| l);
    }
    if let Some(o) = offset {
        counts.offset = count(&o, Which::Offset)?.filter(|c| *c != Count::Const(0));
        counts.offset_expr = counts.offset.map(|_| o);
    }
    Ok(counts)
}

/// `FETCH FIRST ROW ONLY` means one row.
fn fetch_count(quantity: Option<&Expr>) -> Expr {
    quantity
        .cloned()
        .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)))
}

/// A count: a non-negative integer constant, a parameter, or NULL / ALL (no count).
fn count(expr: &Expr, which: Which) -> Result<Option<Count>, RouteError> {
    let negative = || match which {
        Which::Limit => RouteError::new("2201W", "LIMIT must not be negative"),
        Which::Offset => RouteError::new("2201X", "OFFSET must not be negative"),
    };
    let unsupported = || {
        refuse(format!(
            "{} {expr} across shards is not supported: use an integer constant or a parameter",
            which.name()
        ))
    };
    let expr = unparen(expr);
    if let Some(i) = placeholder(expr) {
        return Ok(Some(Count::Param(i)));
    }
    match expr {
        Expr::Cast { expr, .. } => count(expr, which),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => count(expr, which),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match count(inner, which)? {
            Some(Count::Const(0)) => Ok(Some(Count::Const(0))),
            Some(Count::Const(_)) => Err(negative()),
            _ => Err(unsupported()),
        },
        Expr::Value(v) => match &v.value {
            Value::Null => Ok(None),
            Value::Number(n, _) if n.bytes().all(|b| b.is_ascii_digit()) => {
                integer(n).map(|c| Some(Count::Const(c)))
            }
            Value::SingleQuotedString(s) => {
                let s = s.trim();
                match s.strip_prefix('-') {
                    Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b == b'0') => {
                        Ok(Some(Count::Const(0)))
                    }
                    Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Err(negative()),
                    _ => {
                        let digits = s.strip_prefix('+').unwrap_or(s);
                        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                            return Err(unsupported());
                        }
                        integer(digits).map(|c| Some(Count::Const(c)))
                    }
                }
            }
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
}

/// A bigint count.
fn integer(digits: &str) -> Result<u64, RouteError> {
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| RouteError::new("22003", "bigint out of range"))
}

/// Rewrites `q`'s row counts for the shards of a row merge: each shard returns at most
/// `limit + offset` rows (the proxy skips the offset after merging); without a limit, all rows.
pub(super) fn push_down(q: &mut Query, counts: &Counts) {
    q.fetch = None;
    let limit = match (counts.limit, counts.offset) {
        (None, _) => None,
        (Some(Count::Const(l)), None) => Some(number(l)),
        (Some(Count::Const(l)), Some(Count::Const(o))) => {
            Some(number(l.saturating_add(o).min(i64::MAX as u64)))
        }
        (Some(Count::Param(_)), None) => counts.limit_expr.clone(),
        (Some(_), Some(_)) => match (&counts.limit_expr, &counts.offset_expr) {
            (Some(l), Some(o)) => Some(Expr::BinaryOp {
                left: Box::new(bigint(l)),
                op: BinaryOperator::Plus,
                right: Box::new(bigint(o)),
            }),
            _ => None,
        },
    };
    q.limit_clause = limit.map(|limit| LimitClause::LimitOffset {
        limit: Some(limit),
        offset: None,
        limit_by: Vec::new(),
    });
}

fn number(n: u64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

/// `(expr)::bigint`.
fn bigint(expr: &Expr) -> Expr {
    Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(Expr::Nested(Box::new(expr.clone()))),
        data_type: DataType::BigInt(None),
        format: None,
    }
}
