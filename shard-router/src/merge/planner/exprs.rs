//! Expression helpers of the merge planner: PostgreSQL's identifier folding and expression
//! equality, output column names, constants, and finding aggregate and window calls.

use std::ops::ControlFlow;

pub(super) use crate::analyze::functions::function_name;
use crate::analyze::functions::AGGREGATES;
pub(super) use crate::analyze::names::fold;

use sqlparser::ast::{
    Expr, Function, Ident, ObjectName, ObjectNamePart, Query, SelectItem, UnaryOperator, Value,
    Visit, VisitMut, Visitor, VisitorMut,
};

/// True for a call of a built-in aggregate (or any call with FILTER / WITHIN GROUP, which
/// only aggregates take), not used as a window function.
pub(super) fn is_aggregate(f: &Function) -> bool {
    if f.over.is_some() {
        return false;
    }
    if f.filter.is_some() || !f.within_group.is_empty() {
        return true;
    }
    match function_name(&f.name) {
        (None, name) => AGGREGATES.contains(&name.as_str()),
        (Some(schema), name) => schema == "pg_catalog" && AGGREGATES.contains(&name.as_str()),
    }
}

/// Aggregate and window calls of an expression, outside its subqueries (which are computed
/// on each shard by themselves).
#[derive(Debug, Default)]
pub(super) struct Calls {
    /// Aggregate calls, outermost first.
    pub aggregates: Vec<Function>,
    /// A window function call (`OVER`).
    pub window: bool,
    depth: usize,
}

impl Calls {
    /// The calls in `expr`.
    pub(super) fn of(expr: &Expr) -> Calls {
        let mut calls = Calls::default();
        calls.add(expr);
        calls
    }

    /// Adds the calls in `expr`.
    pub(super) fn add(&mut self, expr: &Expr) {
        let _ = Visit::visit(expr, self);
    }
}

impl Visitor for Calls {
    type Break = ();

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            if let Expr::Function(f) = expr {
                if f.over.is_some() {
                    self.window = true;
                } else if is_aggregate(f) {
                    self.aggregates.push(f.clone());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites an expression to the form PostgreSQL compares: identifiers folded, parentheses
/// dropped (the tree already holds the precedence).
struct Normalizer;

impl VisitorMut for Normalizer {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Nested(inner) => {
                let inner = std::mem::replace(&mut **inner, Expr::value(Value::Null));
                *expr = inner;
            }
            Expr::Identifier(i) => fold_ident(i),
            Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(fold_ident),
            Expr::Function(f) => fold_name(&mut f.name),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
        fold_name(name);
        ControlFlow::Continue(())
    }
}

fn fold_ident(ident: &mut Ident) {
    ident.value = fold(ident);
    ident.quote_style = None;
}

fn fold_name(name: &mut ObjectName) {
    for part in &mut name.0 {
        if let ObjectNamePart::Identifier(i) = part {
            fold_ident(i);
        }
    }
}

/// `expr` in the form PostgreSQL compares (see [`same`]).
pub(super) fn normalized(expr: &Expr) -> Expr {
    let mut copy = expr.clone();
    let _ = VisitMut::visit(&mut copy, &mut Normalizer);
    copy
}

/// `expr` without the parentheses around it.
pub(super) fn unparen(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

/// The name PostgreSQL gives the output column of a select item, when it can be told without
/// a catalog (an alias, a column's own name, a function's name).
pub(super) fn output_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(fold(alias)),
        SelectItem::UnnamedExpr(expr) => expr_name(expr),
        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => None,
    }
}

fn expr_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(fold(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(fold),
        Expr::Function(f) => Some(function_name(&f.name).1),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => expr_name(expr),
        _ => None,
    }
}

/// A bare (unqualified) identifier's folded name.
pub(super) fn bare_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(fold(i)),
        _ => None,
    }
}

/// An integer constant as PostgreSQL reads a position (`ORDER BY 2`): digits only.
pub(super) fn position(expr: &Expr) -> Option<Result<usize, ()>> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) if n.bytes().all(|b| b.is_ascii_digit()) => {
                Some(n.parse::<usize>().map_err(|_| ()))
            }
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } if position(expr).is_some() => Some(Err(())),
        _ => None,
    }
}

/// The index of a `$n` placeholder (`$1` is 0).
pub(super) fn placeholder(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1),
            _ => None,
        },
        _ => None,
    }
}
