//! A walk over expressions that stops at subqueries: it finds them and notes aggregates, window
//! functions and functions that may write. It uses an explicit stack, not recursion, so a long
//! `a OR b OR ...` chain cannot overflow the stack.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments,
    ObjectName, Query, Subscript, Visit, Visitor, WindowType,
};

use super::functions::{function_name, reads_only, AGGREGATES};

/// What a walk over some expressions found.
#[derive(Debug, Default)]
pub(crate) struct ExprScan<'q> {
    /// Subqueries directly inside the expressions (not those nested in them).
    pub subqueries: Vec<&'q Query>,
    /// An aggregate call (known aggregate name, `FILTER` or `WITHIN GROUP`).
    pub aggregate: bool,
    /// A window function call (`OVER`).
    pub window: bool,
    /// A function that may write or that we cannot see into (user functions, `nextval`...).
    pub writes: bool,
    /// A construct this walk does not know that holds a query: its tables cannot be placed.
    pub opaque_query: bool,
}

impl<'q> ExprScan<'q> {
    /// Walks one expression.
    pub(crate) fn expr(&mut self, root: &'q Expr) {
        let mut stack: Vec<&'q Expr> = vec![root];
        while let Some(e) = stack.pop() {
            self.step(e, &mut stack);
        }
    }

    /// Walks several expressions.
    pub(crate) fn exprs<I: IntoIterator<Item = &'q Expr>>(&mut self, exprs: I) {
        for e in exprs {
            self.expr(e);
        }
    }

    fn step(&mut self, e: &'q Expr, stack: &mut Vec<&'q Expr>) {
        match e {
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Value(_)
            | Expr::TypedString(_)
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(..) => {}
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => self.subqueries.push(q),
            Expr::InSubquery { expr, subquery, .. } => {
                stack.push(expr);
                self.subqueries.push(subquery);
            }
            Expr::IsFalse(x)
            | Expr::IsNotFalse(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x)
            | Expr::Nested(x)
            | Expr::OuterJoin(x)
            | Expr::Prior(x)
            | Expr::UnaryOp { expr: x, .. }
            | Expr::Cast { expr: x, .. }
            | Expr::Collate { expr: x, .. }
            | Expr::Extract { expr: x, .. }
            | Expr::Ceil { expr: x, .. }
            | Expr::Floor { expr: x, .. }
            | Expr::IsNormalized { expr: x, .. }
            | Expr::Named { expr: x, .. }
            | Expr::Prefixed { value: x, .. } => stack.push(x),
            Expr::IsDistinctFrom(a, b)
            | Expr::IsNotDistinctFrom(a, b)
            | Expr::BinaryOp {
                left: a, right: b, ..
            }
            | Expr::AnyOp {
                left: a, right: b, ..
            }
            | Expr::AllOp {
                left: a, right: b, ..
            }
            | Expr::Like {
                expr: a,
                pattern: b,
                ..
            }
            | Expr::ILike {
                expr: a,
                pattern: b,
                ..
            }
            | Expr::SimilarTo {
                expr: a,
                pattern: b,
                ..
            }
            | Expr::RLike {
                expr: a,
                pattern: b,
                ..
            }
            | Expr::InUnnest {
                expr: a,
                array_expr: b,
                ..
            }
            | Expr::AtTimeZone {
                timestamp: a,
                time_zone: b,
            }
            | Expr::Position { expr: a, r#in: b } => {
                stack.push(b);
                stack.push(a);
            }
            Expr::InList { expr, list, .. } => {
                stack.extend(list.iter().rev());
                stack.push(expr);
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                stack.push(high);
                stack.push(low);
                stack.push(expr);
            }
            Expr::Convert { expr, styles, .. } => {
                stack.extend(styles.iter().rev());
                stack.push(expr);
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                stack.extend(substring_for.as_deref());
                stack.extend(substring_from.as_deref());
                stack.push(expr);
            }
            Expr::Trim {
                expr,
                trim_what,
                trim_characters,
                ..
            } => {
                stack.extend(trim_characters.iter().flatten());
                stack.extend(trim_what.as_deref());
                stack.push(expr);
            }
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => {
                stack.extend(overlay_for.as_deref());
                stack.push(overlay_from);
                stack.push(overlay_what);
                stack.push(expr);
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                stack.extend(else_result.as_deref());
                for when in conditions.iter().rev() {
                    stack.push(&when.result);
                    stack.push(&when.condition);
                }
                stack.extend(operand.as_deref());
            }
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                stack.extend(sets.iter().flatten());
            }
            Expr::Tuple(items) => stack.extend(items.iter().rev()),
            Expr::Array(array) => stack.extend(array.elem.iter().rev()),
            Expr::Interval(interval) => stack.push(&interval.value),
            Expr::CompoundFieldAccess { root, access_chain } => {
                for access in access_chain {
                    match access {
                        AccessExpr::Dot(x) => stack.push(x),
                        AccessExpr::Subscript(Subscript::Index { index }) => stack.push(index),
                        AccessExpr::Subscript(Subscript::Slice {
                            lower_bound,
                            upper_bound,
                            stride,
                        }) => {
                            stack.extend(lower_bound.iter());
                            stack.extend(upper_bound.iter());
                            stack.extend(stride.iter());
                        }
                    }
                }
                stack.push(root);
            }
            Expr::Function(f) => {
                self.function(&f.name, f.filter.is_some() || !f.within_group.is_empty());
                if let Some(over) = &f.over {
                    self.window = true;
                    if let WindowType::WindowSpec(spec) = over {
                        stack.extend(spec.partition_by.iter());
                        stack.extend(spec.order_by.iter().map(|o| &o.expr));
                    }
                }
                stack.extend(f.filter.as_deref());
                stack.extend(f.within_group.iter().map(|o| &o.expr));
                for args in [&f.args, &f.parameters] {
                    match args {
                        FunctionArguments::None => {}
                        FunctionArguments::Subquery(q) => self.subqueries.push(q),
                        FunctionArguments::List(list) => {
                            for arg in &list.args {
                                let (FunctionArg::Named { arg, .. }
                                | FunctionArg::ExprNamed { arg, .. }
                                | FunctionArg::Unnamed(arg)) = arg;
                                if let FunctionArgExpr::Expr(x) = arg {
                                    stack.push(x);
                                }
                            }
                            for clause in &list.clauses {
                                match clause {
                                    FunctionArgumentClause::OrderBy(items) => {
                                        stack.extend(items.iter().map(|o| &o.expr));
                                    }
                                    FunctionArgumentClause::Limit(x) => stack.push(x),
                                    other => self.opaque(other),
                                }
                            }
                        }
                    }
                }
            }
            other => self.opaque(other),
        }
    }

    /// Something this walk does not look into: if it holds a query, say so.
    fn opaque<T: Visit>(&mut self, node: &T) {
        if contains_query(node) {
            self.opaque_query = true;
        }
    }

    /// Notes a call of function `name` (a set-returning function in FROM, say).
    pub(crate) fn call(&mut self, name: &ObjectName) {
        self.function(name, false);
    }

    fn function(&mut self, name: &ObjectName, aggregate_syntax: bool) {
        let (schema, base) = function_name(name);
        let catalog = schema.as_deref().is_none_or(|s| s == "pg_catalog");
        if aggregate_syntax || (catalog && AGGREGATES.contains(&base.as_str())) {
            self.aggregate = true;
        }
        if !catalog || !reads_only(&base) {
            self.writes = true;
        }
    }
}

/// True when a syntax tree node holds a query anywhere inside.
pub(crate) fn contains_query<T: Visit>(node: &T) -> bool {
    struct FindQuery;
    impl Visitor for FindQuery {
        type Break = ();
        fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    node.visit(&mut FindQuery).is_break()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{SetExpr, Statement};
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn projection(sql: &str) -> Vec<Expr> {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let Statement::Query(q) = &stmts[0] else {
            panic!()
        };
        let SetExpr::Select(s) = q.body.as_ref() else {
            panic!()
        };
        s.projection
            .iter()
            .map(|i| match i {
                sqlparser::ast::SelectItem::UnnamedExpr(e) => e.clone(),
                sqlparser::ast::SelectItem::ExprWithAlias { expr, .. } => expr.clone(),
                _ => panic!(),
            })
            .collect()
    }

    fn scan(sql: &str) -> (usize, bool, bool, bool) {
        let exprs = projection(sql);
        let mut s = ExprScan::default();
        s.exprs(&exprs);
        (s.subqueries.len(), s.aggregate, s.window, s.writes)
    }

    #[test]
    fn finds_subqueries_aggregates_windows_and_writes() {
        assert_eq!(scan("SELECT count(*) + 1"), (0, true, false, false));
        assert_eq!(
            scan("SELECT row_number() OVER (PARTITION BY (SELECT 1))"),
            (1, false, true, false)
        );
        assert_eq!(
            scan("SELECT CASE WHEN EXISTS (SELECT 1 FROM t WHERE x IN (SELECT 2)) THEN 1 END"),
            (1, false, false, false)
        );
        assert_eq!(scan("SELECT nextval('s')"), (0, false, false, true));
        assert_eq!(scan("SELECT my_func(1)"), (0, false, false, true));
        assert_eq!(
            scan("SELECT pg_catalog.format_type(1, 2), lower('A')"),
            (0, false, false, false)
        );
        assert_eq!(
            scan("SELECT sum(x) FILTER (WHERE x > 0)"),
            (0, true, false, false)
        );
    }

    #[test]
    fn long_chains_do_not_recurse() {
        let sql = format!(
            "SELECT {}",
            (0..300)
                .map(|i| format!("{i}"))
                .collect::<Vec<_>>()
                .join(" + ")
        );
        let (subqueries, ..) = scan(&sql);
        assert_eq!(subqueries, 0);
    }
}
