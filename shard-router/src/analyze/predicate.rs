//! Shard-key predicates: the key values a WHERE clause fixes (`key = v`, `IN`, `= ANY`, ORs and
//! ANDs of those), key equalities that join tables, and key values written as SQL literals or
//! parameters.

use std::borrow::Cow;

use sqlparser::ast::{BinaryOperator, CastKind, Expr, Query, UnaryOperator, Value};

use super::analyzer::{Analyzer, ColRef, Scope};
use crate::keys::{self, KeyError};
use crate::placement::show_key;
use crate::plan::{KeyExpr, KeyTerm, Keys};
use crate::RouteError;

/// A value written where a key is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySrc<'a> {
    /// A literal, with the cast written on it.
    Literal {
        /// its text (numbers with their sign)
        text: Cow<'a, str>,
        /// a quoted string
        is_string: bool,
        /// `::type` / `CAST(... AS type)`, lower-cased
        cast: Option<String>,
    },
    /// `NULL`.
    Null,
    /// `$n` (0-based), with the cast written on it.
    Param {
        /// parameter index
        index: usize,
        /// `$n::type`, lower-cased
        cast: Option<String>,
    },
    /// `DEFAULT` (in VALUES).
    Default,
}

/// `"$3"` -> 2; `$0` is an error as in PostgreSQL; other placeholder styles are not parameters.
pub(crate) fn param_index(placeholder: &str) -> Result<Option<usize>, RouteError> {
    let Some(digits) = placeholder.strip_prefix('$') else {
        return Ok(None);
    };
    match digits.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Some(n - 1)),
        _ => Err(RouteError::new(
            "42P02",
            format!("there is no parameter {placeholder}"),
        )),
    }
}

/// Numeric types, for which a unary minus over a cast constant is still a constant.
fn is_numeric_type(name: &str) -> bool {
    matches!(
        name,
        "bigint"
            | "int8"
            | "integer"
            | "int"
            | "int4"
            | "smallint"
            | "int2"
            | "numeric"
            | "decimal"
            | "real"
            | "float4"
            | "double precision"
            | "float8"
    )
}

/// The key source an expression is, or `None` if it is not a plain literal/parameter.
pub(crate) fn key_source(expr: &Expr) -> Result<Option<KeySrc<'_>>, RouteError> {
    Ok(match expr {
        Expr::Nested(inner) => key_source(inner)?,
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) => Some(KeySrc::Literal {
                text: Cow::Borrowed(text.as_str()),
                is_string: false,
                cast: None,
            }),
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
            | Value::NationalStringLiteral(s) => Some(KeySrc::Literal {
                text: Cow::Borrowed(s.as_str()),
                is_string: true,
                cast: None,
            }),
            Value::DollarQuotedString(d) => Some(KeySrc::Literal {
                text: Cow::Borrowed(d.value.as_str()),
                is_string: true,
                cast: None,
            }),
            Value::Null => Some(KeySrc::Null),
            Value::Placeholder(p) => {
                param_index(p)?.map(|index| KeySrc::Param { index, cast: None })
            }
            _ => None,
        },
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr: inner,
        } => {
            let negative = matches!(op, UnaryOperator::Minus);
            match key_source(inner)? {
                Some(KeySrc::Literal {
                    text,
                    is_string: false,
                    cast: None,
                }) => {
                    // `- -5` is 5: flip a leading sign rather than stacking them.
                    let text = match (negative, text.strip_prefix('-')) {
                        (true, Some(rest)) => Cow::Owned(rest.to_owned()),
                        (true, None) => Cow::Owned(format!("-{text}")),
                        (false, _) => text,
                    };
                    Some(KeySrc::Literal {
                        text,
                        is_string: false,
                        cast: None,
                    })
                }
                // `-1::int8` is `-(1::int8)` in PostgreSQL: still a constant of that type.
                Some(KeySrc::Literal {
                    text,
                    is_string,
                    cast: Some(cast),
                }) if is_numeric_type(&cast) => {
                    let text = match (negative, text.trim_start().strip_prefix('-')) {
                        (true, Some(rest)) => Cow::Owned(rest.to_owned()),
                        (true, None) => Cow::Owned(format!("-{}", text.trim_start())),
                        (false, _) => text,
                    };
                    Some(KeySrc::Literal {
                        text,
                        is_string,
                        cast: Some(cast),
                    })
                }
                _ => None,
            }
        }
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr: inner,
            data_type,
            format: None,
        } => {
            let cast = data_type.to_string().to_ascii_lowercase();
            match key_source(inner)? {
                Some(KeySrc::Literal {
                    text,
                    is_string,
                    cast: None,
                }) => Some(KeySrc::Literal {
                    text,
                    is_string,
                    cast: Some(cast),
                }),
                Some(KeySrc::Param { index, cast: None }) => Some(KeySrc::Param {
                    index,
                    cast: Some(cast),
                }),
                Some(KeySrc::Null) => Some(KeySrc::Null),
                _ => None,
            }
        }
        Expr::TypedString(typed) => match &typed.value.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => {
                Some(KeySrc::Literal {
                    text: Cow::Borrowed(s.as_str()),
                    is_string: true,
                    cast: Some(typed.data_type.to_string().to_ascii_lowercase()),
                })
            }
            _ => None,
        },
        Expr::Identifier(ident)
            if ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("default") =>
        {
            Some(KeySrc::Default)
        }
        _ => None,
    })
}

/// The type OID a cast name denotes, for parameters Parse left untyped (0 when unknown).
pub(crate) fn cast_oid(cast: &str) -> u32 {
    use keys::oid;
    let name = cast.trim();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(name);
    let (base, array) = match name.strip_suffix("[]") {
        Some(base) => (base.trim(), true),
        None => (name, false),
    };
    let base = base.split('(').next().unwrap_or(base).trim();
    let scalar_and_array = match base {
        "bigint" | "int8" => (oid::INT8, oid::INT8_ARRAY),
        "integer" | "int" | "int4" => (oid::INT4, oid::INT4_ARRAY),
        "smallint" | "int2" => (oid::INT2, oid::INT2_ARRAY),
        "text" => (oid::TEXT, oid::TEXT_ARRAY),
        "varchar" | "character varying" => (oid::VARCHAR, oid::VARCHAR_ARRAY),
        "char" | "character" | "bpchar" => (oid::BPCHAR, oid::BPCHAR_ARRAY),
        "name" => (oid::NAME, oid::NAME_ARRAY),
        "uuid" => (oid::UUID, oid::UUID_ARRAY),
        "numeric" | "decimal" => (oid::NUMERIC, oid::NUMERIC_ARRAY),
        _ => (0, 0),
    };
    if array {
        scalar_and_array.1
    } else {
        scalar_and_array.0
    }
}

/// The top-level AND-ed parts of a condition (parentheses looked through).
pub(crate) fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                stack.push(right);
                stack.push(left);
            }
            Expr::Nested(inner) => stack.push(inner),
            other => out.push(other),
        }
    }
    out
}

/// `x IN (subquery)` / `x = ANY (subquery)`: (x, the subquery, negated).
pub(crate) fn in_subquery(expr: &Expr) -> Option<(&Expr, &Query, bool)> {
    match expr {
        Expr::InSubquery {
            expr,
            subquery,
            negated,
        } => Some((expr, subquery, *negated)),
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => match right.as_ref() {
            Expr::Subquery(q) => Some((left, q, false)),
            _ => None,
        },
        _ => None,
    }
}

/// Strips parentheses.
fn unnest(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

impl Analyzer<'_, '_> {
    /// The keys a condition restricts this query's rows to (keys of its own FROM items only).
    pub(crate) fn keys_of(&self, expr: &Expr, scope: &Scope<'_>) -> Result<Keys, RouteError> {
        Ok(match expr {
            Expr::Nested(inner) => self.keys_of(inner, scope)?,
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => self.keys_of(left, scope)?.and(self.keys_of(right, scope)?),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => {
                let l = self.keys_of(left, scope)?;
                let r = self.keys_of(right, scope)?;
                l.or(r)
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            }
            | Expr::IsNotDistinctFrom(left, right) => match self.eq_keys(left, right, scope)? {
                Keys::Any => self.eq_keys(right, left, scope)?,
                keys => keys,
            },
            Expr::InList {
                expr,
                list,
                negated: false,
            } => match local_key(scope, expr) {
                Some(occ) => {
                    let mut terms = Vec::with_capacity(list.len());
                    for item in list {
                        match key_source(item)? {
                            Some(src) if src != KeySrc::Default => terms.push(self.term(occ, src)?),
                            _ => return Ok(Keys::Any),
                        }
                    }
                    Keys::Terms(terms)
                }
                None => Keys::Any,
            },
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => match local_key(scope, left) {
                Some(occ) => self.any_keys(occ, right)?,
                None => Keys::Any,
            },
            _ => Keys::Any,
        })
    }

    /// `col = value` where `col` is a key of this query.
    fn eq_keys(&self, col: &Expr, value: &Expr, scope: &Scope<'_>) -> Result<Keys, RouteError> {
        let Some(occ) = local_key(scope, col) else {
            return Ok(Keys::Any);
        };
        Ok(match key_source(value)? {
            Some(KeySrc::Default) | None => Keys::Any,
            Some(src) => Keys::Terms(vec![self.term(occ, src)?]),
        })
    }

    /// `key = ANY(...)`: an array parameter, `ARRAY[...]`, or an array literal `'{...}'`.
    fn any_keys(&self, occ: usize, right: &Expr) -> Result<Keys, RouteError> {
        let (inner, cast) = match unnest(right) {
            Expr::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                expr,
                data_type,
                format: None,
            } => (
                unnest(expr),
                Some(data_type.to_string().to_ascii_lowercase()),
            ),
            other => (other, None),
        };
        let type_oid = cast.as_deref().map_or(0, cast_oid);
        match inner {
            Expr::Value(v) => match &v.value {
                Value::Placeholder(p) => match param_index(p)? {
                    Some(index) => Ok(Keys::Terms(vec![KeyTerm {
                        map: self.map_of(occ),
                        column: self.column_of(occ),
                        expr: KeyExpr::ArrayParam { index, type_oid },
                    }])),
                    None => Ok(Keys::Any),
                },
                Value::SingleQuotedString(text) | Value::EscapedStringLiteral(text) => {
                    self.array_literal(occ, text, type_oid)
                }
                _ => Ok(Keys::Any),
            },
            Expr::Array(array) => {
                let mut terms = Vec::with_capacity(array.elem.len());
                for item in &array.elem {
                    match key_source(item)? {
                        Some(src) if src != KeySrc::Default => terms.push(self.term(occ, src)?),
                        _ => return Ok(Keys::Any),
                    }
                }
                Ok(Keys::Terms(terms))
            }
            _ => Ok(Keys::Any),
        }
    }

    /// `'{1,2}'` (possibly cast to an array type) as key terms, placed now.
    fn array_literal(&self, occ: usize, text: &str, type_oid: u32) -> Result<Keys, RouteError> {
        let (map_index, column) = (self.map_of(occ), self.column_of(occ));
        let map = self.map(map_index)?;
        let values =
            keys::keys_from_array_param(map.key_type(), Some(text.as_bytes()), 0, type_oid)
                .map_err(|e| self.key_error(occ, &e))?;
        let mut terms = Vec::with_capacity(values.len());
        for value in values {
            let (how, shard) = map
                .explain(&value)
                .map_err(|e| RouteError::new(e.sqlstate(), format!("{column}: {e}")))?;
            terms.push(KeyTerm {
                map: map_index,
                column: column.clone(),
                expr: KeyExpr::Fixed {
                    shard,
                    shown: show_key(&value),
                    how,
                },
            });
        }
        Ok(Keys::Terms(terms))
    }

    /// One compared key value for occurrence `occ`; literals are placed now.
    pub(crate) fn term(&self, occ: usize, src: KeySrc<'_>) -> Result<KeyTerm, RouteError> {
        let (map_index, column) = (self.map_of(occ), self.column_of(occ));
        let map = self.map(map_index)?;
        let expr = match src {
            KeySrc::Literal {
                text,
                is_string,
                cast,
            } => match keys::key_from_literal(map.key_type(), &text, is_string, cast.as_deref()) {
                Ok(value) => {
                    let (how, shard) = map.explain(&value).map_err(|e| {
                        RouteError::new(
                            e.sqlstate(),
                            format!("{column} = {}: {e}", show_key(&value)),
                        )
                    })?;
                    KeyExpr::Fixed {
                        shard,
                        shown: show_key(&value),
                        how,
                    }
                }
                Err(KeyError::NoMatch { .. } | KeyError::Null) => KeyExpr::NoMatch {
                    shown: text.into_owned(),
                },
                Err(e) => return Err(self.key_error(occ, &e)),
            },
            KeySrc::Null | KeySrc::Default => KeyExpr::NoMatch {
                shown: "NULL".to_owned(),
            },
            KeySrc::Param { index, cast } => KeyExpr::Param { index, cast },
        };
        Ok(KeyTerm {
            map: map_index,
            column,
            expr,
        })
    }

    /// A key error naming the occurrence's table and key column.
    pub(crate) fn key_error(&self, occ: usize, e: &KeyError) -> RouteError {
        match self.occs.get(occ) {
            Some(o) => e.to_route_error(&o.table, &o.key),
            None => RouteError::new(e.sqlstate(), e.to_string()),
        }
    }

    /// The map index of an occurrence.
    pub(crate) fn map_of(&self, occ: usize) -> usize {
        self.occs.get(occ).map_or(0, |o| o.map)
    }

    /// The runtime map by index.
    pub(crate) fn map(&self, index: usize) -> Result<&crate::ShardMap, RouteError> {
        self.router
            .maps()
            .get(index)
            .ok_or_else(|| RouteError::new("XX000", "shard map index out of range"))
    }

    /// `a = b` between two key columns joins their occurrences. Returns true when it links this
    /// query's key with an enclosing query's (a correlated key equality).
    pub(crate) fn equality(&mut self, expr: &Expr, scope: &Scope<'_>) -> Result<bool, RouteError> {
        let (left, right) = match unnest(expr) {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            }
            | Expr::IsNotDistinctFrom(left, right) => (left, right),
            _ => return Ok(false),
        };
        let (ColRef::Key { occs: a, depth: da }, ColRef::Key { occs: b, depth: db }) =
            (scope.resolve(left), scope.resolve(right))
        else {
            return Ok(false);
        };
        // An equality between two outer columns says nothing about this query's rows (under
        // NOT EXISTS it may even be false for the rows that are kept).
        if da != 0 && db != 0 {
            return Ok(false);
        }
        let Some(&first) = a.first() else {
            return Ok(false);
        };
        for &x in a.iter().chain(b.iter()) {
            self.union(first, x)?;
        }
        Ok(da != db)
    }
}

/// The occurrence whose key `expr` is, if it is a key column of this query's own FROM.
pub(crate) fn local_key(scope: &Scope<'_>, expr: &Expr) -> Option<usize> {
    match scope.resolve(expr) {
        ColRef::Key { occs, depth: 0 } => occs.first().copied(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn expr(sql: &str) -> Expr {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    fn literal(text: &str, is_string: bool, cast: Option<&str>) -> KeySrc<'static> {
        KeySrc::Literal {
            text: Cow::Owned(text.to_owned()),
            is_string,
            cast: cast.map(str::to_owned),
        }
    }

    #[test]
    fn literal_spellings() {
        let cases = [
            ("5", literal("5", false, None)),
            ("-5", literal("-5", false, None)),
            ("- -5", literal("5", false, None)),
            ("+5", literal("5", false, None)),
            ("'5'", literal("5", true, None)),
            ("5::int8", literal("5", false, Some("int8"))),
            ("'5'::bigint", literal("5", true, Some("bigint"))),
            ("CAST(5 AS bigint)", literal("5", false, Some("bigint"))),
            ("int8 '5'", literal("5", true, Some("int8"))),
            ("(5)", literal("5", false, None)),
            ("NULL", KeySrc::Null),
            ("NULL::bigint", KeySrc::Null),
            ("DEFAULT", KeySrc::Default),
            (
                "$3",
                KeySrc::Param {
                    index: 2,
                    cast: None,
                },
            ),
            (
                "$1::bigint",
                KeySrc::Param {
                    index: 0,
                    cast: Some("bigint".into()),
                },
            ),
            (
                "CAST($1 AS uuid)",
                KeySrc::Param {
                    index: 0,
                    cast: Some("uuid".into()),
                },
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(key_source(&expr(sql)).unwrap(), Some(want), "{sql}");
        }
        for sql in ["1 + 1", "f(1)", "'5'::text::bigint", "x", "-'5'"] {
            assert_eq!(key_source(&expr(sql)).unwrap(), None, "{sql}");
        }
        assert_eq!(key_source(&expr("$0")).unwrap_err().code, "42P02");
    }

    #[test]
    fn cast_oids() {
        assert_eq!(cast_oid("bigint"), 20);
        assert_eq!(cast_oid("pg_catalog.int8"), 20);
        assert_eq!(cast_oid("character varying(10)"), 1043);
        assert_eq!(cast_oid("bigint[]"), 1016);
        assert_eq!(cast_oid("uuid[]"), 2951);
        assert_eq!(cast_oid("point"), 0);
    }

    #[test]
    fn conjunct_splitting() {
        let e = expr("a = 1 AND (b = 2 AND (c = 3)) AND (d = 4 OR e = 5)");
        let parts: Vec<String> = conjuncts(&e).iter().map(|e| e.to_string()).collect();
        assert_eq!(parts, vec!["a = 1", "b = 2", "c = 3", "d = 4 OR e = 5"]);
    }
}
