//! Grouped merges: every shard groups its own rows and returns partial aggregates sorted by
//! all group keys; the proxy combines adjacent rows with equal keys, finishes the aggregates,
//! evaluates HAVING and sorts when the client orders by something else than the keys.

use sqlparser::ast::{
    Expr, GroupByExpr, Ident, OrderBy, OrderByExpr, OrderByKind, OrderByOptions, Query, SelectItem,
    Value,
};

use super::aggs::{self, AggCall};
use super::exprs::{
    bare_name, fold, is_aggregate, normalized, output_name, position, unparen, Calls,
};
use super::limit::Counts;
use super::{having, item_expr, order_keys, refuse, select_mut};
use crate::merge::{AggFunc, Col, FinalColumn, MergePlan, Shape, SortKey};
use crate::RouteError;

/// A select item the client sees.
#[derive(Debug)]
struct Visible {
    /// As written.
    expr: Expr,
    /// As compared.
    norm: Expr,
    /// Its folded alias.
    alias: Option<String>,
    /// Its output column name.
    name: Option<String>,
    /// An aggregate (finished at the proxy) rather than a per-group value.
    aggregate: bool,
}

/// The shard projection and final columns of a grouped merge, built item by item.
#[derive(Debug, Default)]
pub(super) struct Builder {
    /// The shard query's select list: visible items, then hidden ones.
    items: Vec<SelectItem>,
    /// Final columns, the visible ones first (visible item `i` is shard column `i`).
    finals: Vec<FinalColumn>,
    visible: Vec<Visible>,
    /// Group keys (as compared) and their shard columns.
    keys: Vec<(Expr, usize)>,
    /// Aggregate final columns by call.
    aggs: Vec<((AggFunc, Expr), usize)>,
    /// Hidden per-group expressions (as compared) and their shard columns.
    exprs: Vec<(Expr, usize)>,
    /// Hidden final columns passing a shard column through: (shard column, final column).
    passed: Vec<(usize, usize)>,
    /// Counters of hidden names by kind: group keys, aggregates, avg counts, expressions.
    named: [usize; 4],
}

/// Plans a grouped merge.
pub(super) fn plan(mut query: Query, counts: &Counts) -> Result<MergePlan, RouteError> {
    let order = order_keys(&query).to_vec();
    let select = select_mut(&mut query)?;
    if select.distinct.is_some() {
        return Err(refuse(
            "SELECT DISTINCT with aggregates or GROUP BY across shards is not supported",
        ));
    }
    if select.projection.iter().any(|i| item_expr(i).is_none()) {
        return Err(refuse(
            "SELECT * with aggregates or GROUP BY across shards is not supported: list the \
             columns",
        ));
    }
    // `GROUP BY (a, b)` groups by a and b; `GROUP BY ()` is the one group of all rows.
    let group_by: Vec<Expr> = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs
            .iter()
            .flat_map(|e| match e {
                Expr::Tuple(parts) => parts.clone(),
                other => vec![other.clone()],
            })
            .collect(),
        GroupByExpr::All(_) => return Err(refuse("GROUP BY ALL across shards is not supported")),
    };
    let mut b = Builder::default();
    let mut avg_counts = Vec::new();
    for item in std::mem::take(&mut select.projection) {
        b.visible_item(item, &mut avg_counts)?;
    }
    for (fin, count) in avg_counts {
        let col = b.hidden(2, "_sp_c", Expr::Function(count));
        if let Some(FinalColumn::Agg { count, .. }) = b.finals.get_mut(fin) {
            *count = Some(Col::Start(col));
        }
    }
    let mut key_exprs = Vec::with_capacity(group_by.len());
    for g in &group_by {
        if let Some(expr) = b.group_key(g)? {
            key_exprs.push(expr);
        }
    }
    let having = match select.having.take() {
        Some(h) => Some(having::filter(&h, &mut b)?),
        None => None,
    };
    let mut final_order = Vec::with_capacity(order.len());
    for key in &order {
        let descending = key.options.asc == Some(false);
        final_order.push(SortKey {
            column: Col::Start(b.order_key(&key.expr)?),
            descending,
            nulls_first: key.options.nulls_first.unwrap_or(descending),
        });
    }

    let implicit = b.keys.is_empty();
    let key_cols: Vec<usize> = b.keys.iter().map(|&(_, col)| col).collect();
    let (shard_order, needs_sort) = if implicit {
        (Vec::new(), false)
    } else {
        shard_order(&b, &key_cols, &final_order)
    };
    select.projection = std::mem::take(&mut b.items);
    select.group_by = GroupByExpr::Expressions(key_exprs, Vec::new());
    query.order_by = (!shard_order.is_empty()).then(|| OrderBy {
        kind: OrderByKind::Expressions(shard_order.iter().map(ordinal).collect()),
        interpolate: None,
    });
    query.limit_clause = None;
    query.fetch = None;
    let visible = b.visible.len();
    Ok(MergePlan {
        shard_sql: query.to_string(),
        shard_params: Vec::new(),
        shape: Shape::Groups {
            keys: key_cols.into_iter().map(Col::Start).collect(),
            columns: b.finals,
            visible,
            implicit,
        },
        shard_order,
        final_order,
        needs_sort,
        having,
        limit: counts.limit,
        offset: counts.offset,
    })
}

/// The shards sort by every group key (so equal keys meet in the merge), led by the client's
/// ORDER BY when it only names group keys: then no final sort is needed.
fn shard_order(b: &Builder, key_cols: &[usize], final_order: &[SortKey]) -> (Vec<SortKey>, bool) {
    let key_col = |column: Col| match column {
        Col::Start(fin) => match b.finals.get(fin) {
            Some(FinalColumn::Shard(Col::Start(c))) if key_cols.contains(c) => Some(*c),
            _ => None,
        },
        Col::End(_) => None,
    };
    let ascending = |c: usize| SortKey {
        column: Col::Start(c),
        descending: false,
        nulls_first: false,
    };
    let direct: Option<Vec<SortKey>> = final_order
        .iter()
        .map(|k| {
            key_col(k.column).map(|c| SortKey {
                column: Col::Start(c),
                ..*k
            })
        })
        .collect();
    match direct {
        Some(keys) => {
            let mut order: Vec<SortKey> = Vec::with_capacity(key_cols.len());
            for k in keys {
                if !order.iter().any(|o| o.column == k.column) {
                    order.push(k);
                }
            }
            for &c in key_cols {
                if !order.iter().any(|o| o.column == Col::Start(c)) {
                    order.push(ascending(c));
                }
            }
            (order, false)
        }
        None => (
            key_cols.iter().map(|&c| ascending(c)).collect(),
            !final_order.is_empty(),
        ),
    }
}

/// `ORDER BY n DESC NULLS FIRST` for a shard sort key.
fn ordinal(key: &SortKey) -> OrderByExpr {
    let n = match key.column {
        Col::Start(c) | Col::End(c) => c + 1,
    };
    OrderByExpr {
        expr: Expr::value(Value::Number(n.to_string(), false)),
        options: OrderByOptions {
            asc: Some(!key.descending),
            nulls_first: Some(key.nulls_first),
        },
        with_fill: None,
    }
}

impl Builder {
    /// Adds a visible select item: a per-group value as written, or one aggregate's partial.
    fn visible_item(
        &mut self,
        item: SelectItem,
        avg_counts: &mut Vec<(usize, sqlparser::ast::Function)>,
    ) -> Result<(), RouteError> {
        let name = output_name(&item);
        let (expr, alias) = match &item {
            SelectItem::UnnamedExpr(expr) => (expr.clone(), None),
            SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                return Err(refuse(
                    "SELECT * with aggregates across shards is not supported",
                ))
            }
        };
        let calls = Calls::of(&expr);
        let found: Vec<AggCall> = calls
            .aggregates
            .iter()
            .map(aggs::parse)
            .collect::<Result<_, _>>()?;
        let index = self.finals.len();
        let visible = Visible {
            norm: normalized(&expr),
            alias: alias.as_ref().map(fold),
            name,
            aggregate: !found.is_empty(),
            expr: expr.clone(),
        };
        match found.as_slice() {
            [] => {
                self.items.push(item);
                self.finals.push(FinalColumn::Shard(Col::Start(index)));
            }
            [agg] if matches!(unparen(&expr), Expr::Function(f) if calls.aggregates.first() == Some(f)) =>
            {
                let alias = alias.unwrap_or_else(|| Ident::with_quote('"', agg.name.as_str()));
                self.items.push(SelectItem::ExprWithAlias {
                    expr: Expr::Function(agg.partial.clone()),
                    alias,
                });
                self.finals.push(FinalColumn::Agg {
                    func: agg.func,
                    arg: Col::Start(index),
                    count: None,
                });
                if let Some(count) = &agg.count {
                    avg_counts.push((index, count.clone()));
                }
                self.aggs.push((agg.key.clone(), index));
            }
            _ => return Err(over_aggregate(&expr, "the select list")),
        }
        self.visible.push(visible);
        Ok(())
    }

    /// Adds a hidden shard column `expr AS <prefix><k>` (k counted per `kind`).
    fn hidden(&mut self, kind: usize, prefix: &str, expr: Expr) -> usize {
        let k = match self.named.get_mut(kind) {
            Some(k) => {
                *k += 1;
                *k
            }
            None => 0,
        };
        self.items.push(SelectItem::ExprWithAlias {
            expr,
            alias: Ident::new(format!("{prefix}{k}")),
        });
        self.items.len() - 1
    }

    /// Resolves one GROUP BY item to its key expression and gives it a shard column; None
    /// when it repeats an earlier key.
    fn group_key(&mut self, item: &Expr) -> Result<Option<Expr>, RouteError> {
        let expr = match position(item) {
            Some(Ok(n)) if n >= 1 && n <= self.visible.len() => self
                .visible
                .get(n - 1)
                .map_or_else(|| item.clone(), |v| v.expr.clone()),
            Some(_) => {
                return Err(RouteError::new(
                    "42P10",
                    format!("GROUP BY position {item} is not in select list"),
                ))
            }
            None => {
                // An output name counts only when it is not a selected input column itself.
                let norm = normalized(item);
                let aliased = bare_name(item)
                    .filter(|_| !self.visible.iter().any(|v| v.norm == norm))
                    .and_then(|name| {
                        self.visible
                            .iter()
                            .find(|v| v.alias.as_deref() == Some(name.as_str()))
                    });
                aliased.map_or_else(|| item.clone(), |v| v.expr.clone())
            }
        };
        let calls = Calls::of(&expr);
        if !calls.aggregates.is_empty() {
            return Err(RouteError::new(
                "42803",
                "aggregate functions are not allowed in GROUP BY",
            ));
        }
        if calls.window {
            return Err(refuse(
                "window functions (OVER) across shards are not supported",
            ));
        }
        let norm = normalized(&expr);
        if self.keys.iter().any(|(k, _)| *k == norm) {
            return Ok(None);
        }
        let col = match self
            .visible
            .iter()
            .position(|v| !v.aggregate && v.norm == norm)
        {
            Some(i) => i,
            None => self.hidden(0, "_sp_g", expr.clone()),
        };
        self.keys.push((norm, col));
        Ok(Some(expr))
    }

    /// The final column an ORDER BY key sorts by.
    fn order_key(&mut self, expr: &Expr) -> Result<usize, RouteError> {
        match position(expr) {
            Some(Ok(n)) if n >= 1 && n <= self.visible.len() => return Ok(n - 1),
            Some(_) => {
                return Err(RouteError::new(
                    "42P10",
                    format!("ORDER BY position {expr} is not in select list"),
                ))
            }
            None => {}
        }
        if let Expr::Value(v) = unparen(expr) {
            if !matches!(v.value, Value::Placeholder(_)) {
                return Err(RouteError::new("42601", "non-integer constant in ORDER BY"));
            }
        }
        if let Some(name) = bare_name(expr) {
            if let Some(i) = self
                .visible
                .iter()
                .position(|v| v.name.as_deref() == Some(name.as_str()))
            {
                return Ok(i);
            }
        }
        self.operand(expr, "ORDER BY")
    }

    /// The final column holding `expr`'s value per group: an aggregate (existing or hidden),
    /// a selected per-group value, a group key, or a hidden per-group expression the shards
    /// compute (PostgreSQL checks there that it is one).
    pub(super) fn operand(&mut self, expr: &Expr, clause: &str) -> Result<usize, RouteError> {
        let expr = unparen(expr);
        if let Expr::Function(f) = expr {
            if is_aggregate(f) {
                let agg = aggs::parse(f)?;
                return Ok(self.aggregate(agg));
            }
        }
        let calls = Calls::of(expr);
        for f in &calls.aggregates {
            aggs::parse(f)?;
        }
        if !calls.aggregates.is_empty() {
            return Err(over_aggregate(expr, clause));
        }
        if calls.window {
            return Err(refuse(
                "window functions (OVER) across shards are not supported",
            ));
        }
        let norm = normalized(expr);
        if let Some(i) = self
            .visible
            .iter()
            .position(|v| !v.aggregate && v.norm == norm)
        {
            return Ok(i);
        }
        let known = self
            .keys
            .iter()
            .chain(&self.exprs)
            .find(|(k, _)| *k == norm);
        let col = match known {
            Some(&(_, col)) => col,
            None => {
                let col = self.hidden(3, "_sp_e", expr.clone());
                self.exprs.push((norm, col));
                col
            }
        };
        Ok(self.pass(col))
    }

    /// The final column of an aggregate call, adding hidden partials the first time.
    fn aggregate(&mut self, agg: AggCall) -> usize {
        if let Some(&(_, fin)) = self.aggs.iter().find(|(k, _)| *k == agg.key) {
            return fin;
        }
        let arg = self.hidden(1, "_sp_a", Expr::Function(agg.partial));
        let count = agg
            .count
            .map(|c| Col::Start(self.hidden(2, "_sp_c", Expr::Function(c))));
        self.finals.push(FinalColumn::Agg {
            func: agg.func,
            arg: Col::Start(arg),
            count,
        });
        let fin = self.finals.len() - 1;
        self.aggs.push((agg.key, fin));
        fin
    }

    /// The final column passing shard column `col` through.
    fn pass(&mut self, col: usize) -> usize {
        if col < self.visible.len() {
            return col;
        }
        if let Some(&(_, fin)) = self.passed.iter().find(|&&(c, _)| c == col) {
            return fin;
        }
        self.finals.push(FinalColumn::Shard(Col::Start(col)));
        let fin = self.finals.len() - 1;
        self.passed.push((col, fin));
        fin
    }
}

/// The refusal of an expression computed from aggregates.
fn over_aggregate(expr: &Expr, clause: &str) -> RouteError {
    refuse(format!(
        "an expression over an aggregate ({expr}) in {clause} across shards is not supported: \
         select the aggregate itself"
    ))
}
