//! Whether the analysis of a normalized text may stand for the texts it normalizes: decided
//! once per normalized text (the first time it is seen), then cached with it.
//!
//! The analysis treats a literal and a parameter alike except where a key is read: a literal
//! key is placed during analysis, a parameter at plan time. `plan::constants` places the
//! constants of a normalized statement exactly as the analysis places literals, so the two agree
//! as long as every constant the analysis would have read as a key is still in the route (the
//! analysis drops some key terms, e.g. the wider side of an AND, after placing them, and placing
//! can fail). The checks below make sure of that, and that the texts parse to the same tree:
//! 1. the normalized text analyses without error and gives the same statement kinds and merge
//!    requirement as the text;
//! 2. sqlparser reads the text and the normalized text with the constants put back as the same
//!    tree (the scanner saw the constants sqlparser sees);
//! 3. every constant compared with a column that may be a shard key (`=`, `IN`, `= ANY`) is in
//!    the route;
//! 4. the plan, and for a multi-row INSERT its split template, equal the text's own.
//!
//! Anything else falls back to the exact-text path for this normalized text.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{
    BinaryOperator, Expr, Query, SelectItem, SetExpr, Statement as SqlStatement, TableFactor,
    UnaryOperator, Value, Visit, VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::{Constant, Normalized};
use crate::analyze::{analyze_text, names, split, Statement, MAX_OPERATORS, RECURSION_LIMIT};
use crate::plan::{self, KeyExpr, Keys, Route, RowKey, Segment};
use crate::{Params, Router, TableRule};

/// The cached decision for one normalized text.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    /// Plan with the constants of each text (`plan::constants`).
    Template(Arc<Statement>),
    /// Use the exact-text path.
    Fallback,
}

/// Decides for `norm`, the normalization of `sql`, whose own (successful) analysis is `exact`.
pub(crate) fn decide(router: &Router, sql: &str, norm: &Normalized, exact: &Statement) -> Decision {
    match template(router, sql, norm, exact) {
        Some(stmt) => Decision::Template(Arc::new(stmt)),
        None => Decision::Fallback,
    }
}

fn template(router: &Router, sql: &str, norm: &Normalized, exact: &Statement) -> Option<Statement> {
    let text = norm.text();
    // Deep operator chains are not parsed by the analysis either (and would be walked here).
    if names::operator_count(&names::tokenize(text)?) > MAX_OPERATORS {
        return None;
    }
    let mut stmt = analyze_text(router, text).ok()?;
    // The pseudo-parameters are not the client's: the statement takes none, like the text.
    stmt.param_count = exact.param_count;
    let same_shape = stmt.kind == exact.kind
        && stmt.kinds == exact.kinds
        && stmt.merge == exact.merge
        && stmt.copy_in.is_none()
        && exact.copy_in.is_none();
    if !same_shape {
        return None;
    }
    let original = parse_one(sql)?;
    let mut normalized = parse_one(text)?;
    let key_like = key_like_constants(router, &normalized);
    let mut put_back = PutBack {
        sql,
        constants: &norm.constants,
        failed: false,
    };
    let _ = VisitMut::visit(&mut normalized, &mut put_back);
    if put_back.failed || normalized != original {
        return None;
    }
    let in_route = route_constants(stmt.route())?;
    if !matches!(stmt.route(), Route::Fixed { .. })
        && !key_like.iter().all(|k| in_route.contains(k))
    {
        return None;
    }
    let planned = plan::plan_constants(router, &stmt, sql, &norm.constants);
    let expected = plan::plan(router, exact, &Params::default());
    match (planned, expected) {
        (Ok(a), Ok(b)) if a == b => {}
        (Err(_), Err(_)) => {}
        _ => return None,
    }
    if let Route::Insert(route) = stmt.route() {
        if route.rows.len() > 1 && !same_split(sql, norm, &route.split, original) {
            return None;
        }
    }
    Some(stmt)
}

/// The one statement of `sql`, as the analysis parses it.
fn parse_one(sql: &str) -> Option<SqlStatement> {
    let mut stmts = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .ok()?;
    (stmts.len() == 1).then(|| stmts.pop()).flatten()
}

/// The constant index of a pseudo-parameter `$k`.
fn pseudo_index(value: &Value) -> Option<usize> {
    match value {
        Value::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1),
        _ => None,
    }
}

/// Puts the constants back in place of the pseudo-parameters, as sqlparser reads them.
struct PutBack<'a> {
    sql: &'a str,
    constants: &'a [Constant],
    failed: bool,
}

impl VisitorMut for PutBack<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Value(v) = expr else {
            return ControlFlow::Continue(());
        };
        let Some(index) = pseudo_index(&v.value) else {
            return ControlFlow::Continue(());
        };
        let Some(c) = self.constants.get(index) else {
            self.failed = true;
            return ControlFlow::Break(());
        };
        let value = c.value(self.sql);
        *expr = if c.is_string {
            Expr::Value(Value::SingleQuotedString(value.to_owned()).with_empty_span())
        } else if let Some(digits) = value.strip_prefix('-') {
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: Box::new(Expr::Value(
                    Value::Number(digits.to_owned(), false).with_empty_span(),
                )),
            }
        } else {
            Expr::Value(Value::Number(value.to_owned(), false).with_empty_span())
        };
        ControlFlow::Continue(())
    }

    fn post_visit_value(&mut self, value: &mut Value) -> ControlFlow<()> {
        // A pseudo-parameter outside an expression position was not put back.
        if pseudo_index(value).is_some() {
            self.failed = true;
        }
        ControlFlow::Continue(())
    }
}

/// The constants the route places (and `None` for an array parameter, which a literal is not).
fn route_constants(route: &Route) -> Option<HashSet<usize>> {
    let mut found = HashSet::new();
    match route {
        Route::Fixed { .. } => {}
        Route::Keyed(keyed) => {
            if let Keys::Terms(terms) = &keyed.keys {
                for term in terms {
                    match term.expr {
                        KeyExpr::Param { index, .. } => {
                            found.insert(index);
                        }
                        KeyExpr::ArrayParam { .. } => return None,
                        KeyExpr::Fixed { .. } | KeyExpr::NoMatch { .. } => {}
                    }
                }
            }
        }
        Route::Insert(insert) => {
            for row in &insert.rows {
                if let RowKey::Param { index, .. } = row {
                    found.insert(*index);
                }
            }
        }
    }
    Some(found)
}

/// Constants compared (`=`, `IS NOT DISTINCT FROM`, `IN`, `= ANY`) with a column that may be a
/// shard key: one named like a key column of a sharded table or like any alias of the statement
/// (a derived table's key column can be renamed).
fn key_like_constants(router: &Router, stmt: &SqlStatement) -> HashSet<usize> {
    let mut scan = KeyLike::default();
    let _ = stmt.visit(&mut scan);
    for (_, rule) in router.tables().iter() {
        if let TableRule::Sharded { key, .. } = rule {
            scan.names.insert(key.clone());
        }
    }
    scan.candidates
        .into_iter()
        .filter(|(_, column)| {
            scan.any_column || column.as_ref().is_none_or(|c| scan.names.contains(c))
        })
        .map(|(index, _)| index)
        .collect()
}

#[derive(Default)]
struct KeyLike {
    /// (constant, compared column name) pairs.
    candidates: Vec<(usize, Option<String>)>,
    /// Column aliases of the statement.
    names: HashSet<String>,
    /// A FROM item whose column aliases are not read here: any column may be a key.
    any_column: bool,
}

/// The folded name of a column reference (what the analysis resolves as a key).
fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Nested(inner) => column_name(inner),
        Expr::Identifier(ident) => Some(names::fold(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(names::fold),
        _ => None,
    }
}

/// The pseudo-parameter a key value expression is (through parentheses, casts and signs).
fn value_constant(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Nested(inner)
        | Expr::Cast { expr: inner, .. }
        | Expr::UnaryOp { expr: inner, .. } => value_constant(inner),
        Expr::Value(v) => pseudo_index(&v.value),
        _ => None,
    }
}

/// Every pseudo-parameter inside an expression (for `= ANY (...)`).
fn all_constants(expr: &Expr, out: &mut Vec<usize>) {
    struct All<'o>(&'o mut Vec<usize>);
    impl Visitor for All<'_> {
        type Break = ();
        fn pre_visit_value(&mut self, value: &Value) -> ControlFlow<()> {
            if let Some(i) = pseudo_index(value) {
                self.0.push(i);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = expr.visit(&mut All(out));
}

impl KeyLike {
    fn compared(&mut self, column: &Expr, value: &Expr) {
        if let (Some(name), Some(index)) = (column_name(column), value_constant(value)) {
            self.candidates.push((index, Some(name)));
        }
    }

    fn select_aliases(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for item in &select.projection {
                    if let SelectItem::ExprWithAlias { alias, .. } = item {
                        self.names.insert(names::fold(alias));
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.select_aliases(left);
                self.select_aliases(right);
            }
            _ => {}
        }
    }
}

impl Visitor for KeyLike {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        for cte in query.with.iter().flat_map(|w| &w.cte_tables) {
            self.names
                .extend(cte.alias.columns.iter().map(|c| names::fold(&c.name)));
        }
        self.select_aliases(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let alias = match factor {
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::TableFunction { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::NestedJoin { alias, .. } => alias,
            _ => {
                self.any_column = true;
                return ControlFlow::Continue(());
            }
        };
        if let Some(alias) = alias {
            self.names
                .extend(alias.columns.iter().map(|c| names::fold(&c.name)));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            }
            | Expr::IsNotDistinctFrom(left, right) => {
                self.compared(left, right);
                self.compared(right, left);
            }
            Expr::InList { expr, list, .. } => {
                for item in list {
                    self.compared(expr, item);
                }
            }
            Expr::AnyOp { left, right, .. } => {
                if let Some(name) = column_name(left) {
                    let mut found = Vec::new();
                    all_constants(right, &mut found);
                    self.candidates
                        .extend(found.into_iter().map(|i| (i, Some(name.clone()))));
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The split template of a multi-row INSERT, with the constants written back, equals the one
/// the text itself gives (or both cannot be split).
fn same_split(
    sql: &str,
    norm: &Normalized,
    split: &Result<plan::SplitTemplate, String>,
    mut original: SqlStatement,
) -> bool {
    let exact = split::template(&mut original);
    match (split, exact) {
        (Err(_), Err(_)) => true,
        (Ok(t), Ok(e)) => {
            // The text's own template has no parameters; the normalized one's are constants.
            let render = |segments: &[Segment], constants: &[Constant]| -> Option<String> {
                let mut out = String::new();
                for segment in segments {
                    match segment {
                        Segment::Text(text) => out.push_str(text),
                        Segment::Param(i) => out.push_str(constants.get(*i)?.written(sql)),
                    }
                }
                Some(out)
            };
            let same = |a: &[Segment], b: &[Segment]| {
                render(a, &norm.constants).is_some_and(|a| Some(a) == render(b, &[]))
            };
            t.rows.len() == e.rows.len()
                && same(&t.prefix, &e.prefix)
                && same(&t.suffix, &e.suffix)
                && t.rows.iter().zip(&e.rows).all(|(a, b)| same(a, b))
        }
        _ => false,
    }
}
