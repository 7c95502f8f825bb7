//! Row merges: every shard returns its rows already in the client's order (sort keys the
//! client did not select added as hidden columns), the proxy merges the sorted streams and
//! applies OFFSET/LIMIT; SELECT DISTINCT also sorts by every column so duplicates meet.

use sqlparser::ast::{
    Distinct, Expr, Ident, OrderBy, OrderByExpr, OrderByKind, OrderByOptions, Query, SelectItem,
    Value,
};

use super::exprs::{bare_name, normalized, output_name, position};
use super::limit::{self, Counts};
use super::{item_expr, order_keys, refuse, select_mut};
use crate::merge::{Col, MergePlan, Shape, SortKey};
use crate::RouteError;

/// Where an ORDER BY key's value is in the shard row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// A select item (its index; never a `*`).
    Item(usize),
    /// The n-th output column (0-based), from `ORDER BY n`.
    Output(usize),
    /// The k-th hidden column.
    Hidden(usize),
}

/// Plans a row merge. `local`: GROUP BY / DISTINCT groups live on one shard, so the shards'
/// grouping and DISTINCT are already the final ones.
pub(super) fn plan(
    mut query: Query,
    counts: &Counts,
    local: bool,
) -> Result<MergePlan, RouteError> {
    let keys = order_keys(&query).to_vec();
    let select = select_mut(&mut query)?;
    // DISTINCT ON compares only its own expressions: hidden sort columns do not change it.
    let distinct = matches!(select.distinct, Some(Distinct::Distinct));
    let dedupe = distinct && !local;
    let wildcards: Vec<bool> = select
        .projection
        .iter()
        .map(|item| item_expr(item).is_none())
        .collect();
    let any_wildcard = wildcards.contains(&true);
    if dedupe && any_wildcard {
        return Err(refuse(
            "SELECT DISTINCT * across shards is not supported: list the columns",
        ));
    }
    let items = select.projection.len();
    // An item's column can be located when no `*` precedes it (counted from the start) or
    // none follows it (counted from the end).
    let locatable = |i: usize| {
        !wildcards.get(..i).unwrap_or(&[]).contains(&true)
            || !wildcards.get(i + 1..).unwrap_or(&[]).contains(&true)
    };
    let names: Vec<Option<String>> = select.projection.iter().map(output_name).collect();
    let exprs: Vec<Option<Expr>> = select
        .projection
        .iter()
        .map(|item| item_expr(item).map(normalized))
        .collect();

    let mut hidden: Vec<(Expr, Expr)> = Vec::new();
    let mut resolved = Vec::with_capacity(keys.len());
    for key in &keys {
        let target = match position(&key.expr) {
            Some(Ok(n)) if n >= 1 && (any_wildcard || n <= items) => Key::Output(n - 1),
            Some(_) => {
                return Err(RouteError::new(
                    "42P10",
                    format!("ORDER BY position {} is not in select list", key.expr),
                ))
            }
            None => {
                let by_name = bare_name(&key.expr)
                    .and_then(|name| names.iter().position(|n| n.as_deref() == Some(&name)));
                let norm = normalized(&key.expr);
                let by_expr = || exprs.iter().position(|e| e.as_ref() == Some(&norm));
                match by_name.or_else(by_expr).filter(|&i| locatable(i)) {
                    Some(i) => Key::Item(i),
                    None if distinct && !any_wildcard => {
                        return Err(refuse(format!(
                            "for SELECT DISTINCT across shards, ORDER BY {} must name a select \
                             list item (by position, name or the same expression)",
                            key.expr
                        )))
                    }
                    None => match hidden.iter().position(|(n, _)| *n == norm) {
                        Some(k) => Key::Hidden(k),
                        None => {
                            hidden.push((norm, key.expr.clone()));
                            Key::Hidden(hidden.len() - 1)
                        }
                    },
                }
            }
        };
        let descending = key.options.asc == Some(false);
        resolved.push((
            target,
            descending,
            key.options.nulls_first.unwrap_or(descending),
        ));
    }

    let width = items + hidden.len();
    let column = |key: Key| match key {
        Key::Output(i) => Col::Start(i),
        Key::Item(i) if locatable_from_start(&wildcards, i) => Col::Start(i),
        Key::Item(i) => Col::End(width.saturating_sub(i + 1)),
        Key::Hidden(k) if any_wildcard => Col::End(hidden.len().saturating_sub(k + 1)),
        Key::Hidden(k) => Col::Start(items + k),
    };
    let mut shard_order: Vec<SortKey> = resolved
        .iter()
        .map(|&(key, descending, nulls_first)| SortKey {
            column: column(key),
            descending,
            nulls_first,
        })
        .collect();
    let hidden_count = hidden.len();
    for (k, (_, expr)) in hidden.into_iter().enumerate() {
        select.projection.push(SelectItem::ExprWithAlias {
            expr,
            alias: Ident::new(format!("_sp_o{}", k + 1)),
        });
    }
    if dedupe {
        // Sorting by every column makes equal rows adjacent on every shard and in the merge.
        let mut extra = Vec::new();
        for i in 0..items {
            let covered = resolved
                .iter()
                .any(|&(key, _, _)| key == Key::Item(i) || key == Key::Output(i));
            if !covered {
                extra.push(OrderByExpr {
                    expr: Expr::value(Value::Number((i + 1).to_string(), false)),
                    options: OrderByOptions {
                        asc: None,
                        nulls_first: None,
                    },
                    with_fill: None,
                });
                shard_order.push(SortKey {
                    column: Col::Start(i),
                    descending: false,
                    nulls_first: false,
                });
            }
        }
        let mut all = keys;
        all.extend(extra);
        if !all.is_empty() {
            query.order_by = Some(OrderBy {
                kind: OrderByKind::Expressions(all),
                interpolate: None,
            });
        }
    }
    limit::push_down(&mut query, counts);
    Ok(MergePlan {
        shard_sql: query.to_string(),
        shard_params: Vec::new(),
        shape: Shape::Rows {
            hidden: hidden_count,
            distinct: dedupe,
        },
        shard_order,
        final_order: Vec::new(),
        needs_sort: false,
        having: None,
        limit: counts.limit,
        offset: counts.offset,
    })
}

/// True when no `*` precedes item `i`.
fn locatable_from_start(wildcards: &[bool], i: usize) -> bool {
    !wildcards.get(..i).unwrap_or(&[]).contains(&true)
}
