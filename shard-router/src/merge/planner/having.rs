//! HAVING as a [`Filter`] over final columns, evaluated by the proxy after the merge.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

use super::aggs;
use super::exprs::{is_aggregate, placeholder, unparen};
use super::groups::Builder;
use crate::merge::{AggFunc, CmpOp, Filter, Literal, Operand};
use crate::RouteError;

const CLAUSE: &str = "HAVING";

/// The condition `expr` over final columns (aggregates and per-group values get columns,
/// hidden ones when not selected).
pub(super) fn filter(expr: &Expr, b: &mut Builder) -> Result<Filter, RouteError> {
    match unparen(expr) {
        Expr::BinaryOp {
            op: BinaryOperator::And,
            ..
        } => Ok(Filter::And(chain(expr, &BinaryOperator::And, b)?)),
        Expr::BinaryOp {
            op: BinaryOperator::Or,
            ..
        } => Ok(Filter::Or(chain(expr, &BinaryOperator::Or, b)?)),
        Expr::BinaryOp { left, op, right } => match comparison(op) {
            Some(op) => Ok(Filter::Cmp {
                op,
                left: operand(left, b)?,
                right: operand(right, b)?,
            }),
            None => truth(expr, b),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Ok(Filter::Not(Box::new(filter(expr, b)?))),
        Expr::IsNull(x) | Expr::IsNotNull(x) => Ok(Filter::IsNull {
            operand: operand(x, b)?,
            negated: matches!(unparen(expr), Expr::IsNotNull(_)),
        }),
        Expr::InList {
            expr: x,
            list,
            negated,
        } if !list.is_empty() => {
            // `x IN (a, b)` is `x = a OR x = b`, NULLs included.
            let x = operand(x, b)?;
            let mut any = Vec::with_capacity(list.len());
            for item in list {
                any.push(Filter::Cmp {
                    op: CmpOp::Eq,
                    left: x.clone(),
                    right: operand(item, b)?,
                });
            }
            Ok(if *negated {
                Filter::Not(Box::new(Filter::Or(any)))
            } else {
                Filter::Or(any)
            })
        }
        Expr::Between {
            expr: x,
            negated,
            low,
            high,
        } => {
            let x = operand(x, b)?;
            let both = Filter::And(vec![
                Filter::Cmp {
                    op: CmpOp::GtEq,
                    left: x.clone(),
                    right: operand(low, b)?,
                },
                Filter::Cmp {
                    op: CmpOp::LtEq,
                    left: x,
                    right: operand(high, b)?,
                },
            ]);
            Ok(if *negated {
                Filter::Not(Box::new(both))
            } else {
                both
            })
        }
        _ => truth(expr, b),
    }
}

/// The operands of a chain of one operator (`a AND b AND c`), flattened without recursion
/// along the chain.
fn chain(expr: &Expr, op: &BinaryOperator, b: &mut Builder) -> Result<Vec<Filter>, RouteError> {
    let mut parts = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match unparen(e) {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                stack.push(right);
                stack.push(left);
            }
            other => parts.push(filter(other, b)?),
        }
    }
    Ok(parts)
}

fn comparison(op: &BinaryOperator) -> Option<CmpOp> {
    Some(match op {
        BinaryOperator::Eq => CmpOp::Eq,
        BinaryOperator::NotEq => CmpOp::NotEq,
        BinaryOperator::Lt => CmpOp::Lt,
        BinaryOperator::LtEq => CmpOp::LtEq,
        BinaryOperator::Gt => CmpOp::Gt,
        BinaryOperator::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

/// A condition that is a boolean value itself (`HAVING bool_or(x)`, `HAVING flag`,
/// `HAVING a LIKE 'x%'` over a group key): `value = TRUE` has the same three-valued result.
fn truth(expr: &Expr, b: &mut Builder) -> Result<Filter, RouteError> {
    if let Expr::Function(f) = unparen(expr) {
        if is_aggregate(f) {
            let agg = aggs::parse(f)?;
            if !matches!(agg.func, AggFunc::BoolAnd | AggFunc::BoolOr) {
                return Err(RouteError::new(
                    "42804",
                    format!(
                        "argument of HAVING must be type boolean, not {}()",
                        agg.name
                    ),
                ));
            }
        }
    }
    Ok(Filter::Cmp {
        op: CmpOp::Eq,
        left: operand(expr, b)?,
        right: Operand::Literal(Literal::Bool(true)),
    })
}

/// A comparison operand: a constant, a parameter, or a final column.
fn operand(expr: &Expr, b: &mut Builder) -> Result<Operand, RouteError> {
    if let Some(constant) = constant(expr) {
        return Ok(constant);
    }
    b.operand(expr, CLAUSE).map(Operand::Column)
}

/// A constant as written (numbers keep their spelling, with a leading minus), a `$n`
/// parameter, or a string or integer constant cast to a type (the column's type reads it).
fn constant(expr: &Expr) -> Option<Operand> {
    let expr = unparen(expr);
    if let Some(i) = placeholder(expr) {
        return Some(Operand::Param(i));
    }
    match expr {
        Expr::Value(v) => Some(Operand::Literal(match &v.value {
            Value::Number(n, _) => Literal::Number(n.clone()),
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s) => Literal::Text(s.clone()),
            Value::DollarQuotedString(s) => Literal::Text(s.value.clone()),
            Value::Boolean(b) => Literal::Bool(*b),
            Value::Null => Literal::Null,
            _ => return None,
        })),
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr: inner,
        } => match unparen(inner) {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) if matches!(op, UnaryOperator::Minus) => {
                    Some(Operand::Literal(Literal::Number(format!("-{n}"))))
                }
                Value::Number(n, _) => Some(Operand::Literal(Literal::Number(n.clone()))),
                _ => None,
            },
            _ => None,
        },
        Expr::Cast { expr: inner, .. } => match constant(inner)? {
            // A cast can round a fractional number: the shard computes that one.
            Operand::Literal(Literal::Number(n))
                if !n
                    .trim_start_matches('-')
                    .bytes()
                    .all(|c| c.is_ascii_digit()) =>
            {
                None
            }
            // NULL::type stays NULL; booleans and text are read by the column's type.
            other => Some(other),
        },
        Expr::TypedString(t) => t
            .value
            .clone()
            .into_string()
            .map(|s| Operand::Literal(Literal::Text(s))),
        _ => None,
    }
}
