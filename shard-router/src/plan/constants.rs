//! Plans for normalized statements (simple protocol): their pseudo-parameters are the constants
//! of the text, placed exactly as the analysis places literal keys (`analyze::predicate::term`
//! and `analyze::dml`): same conversion rules (a literal, not a bind parameter), same shards,
//! same reasons. A split INSERT writes the constants back into each part's text.
//!
//! Errors need not match the analysis' word for word: the caller answers any error here by
//! analysing the exact text (errors are rare; their exact wording is then the text's own).

use std::fmt::Write as _;

use config::KeyValue;

use crate::analyze::normalize::Constant;
use crate::keys::{self, KeyContext, KeyError};
use crate::placement::show_key;
use crate::plan::{
    build_part, key_error, keyed_with, placement_error, shard_name, split_plan, split_template,
    InsertRoute, KeyExpr, KeyRoute, Route, RowKey,
};
use crate::{Plan, RouteError, Router, ShardPart, Statement, StatementKind, Target};

/// The plan of normalized statement `stmt` for text `sql`, whose constants are `constants`.
pub(crate) fn plan_constants(
    router: &Router,
    stmt: &Statement,
    sql: &str,
    constants: &[Constant],
) -> Result<Plan, RouteError> {
    let kind = stmt.kind();
    match stmt.route() {
        Route::Fixed { target, reason } => Ok(Plan {
            target: target.clone(),
            kind,
            reason: reason.clone(),
        }),
        Route::Keyed(route) => keyed(router, route, kind, sql, constants),
        Route::Insert(route) => insert(router, route, kind, sql, constants),
    }
}

fn constant(constants: &[Constant], index: usize) -> Result<&Constant, RouteError> {
    constants
        .get(index)
        .ok_or_else(|| RouteError::new("XX000", "normalized statement without its constant"))
}

fn keyed(
    router: &Router,
    route: &KeyRoute,
    kind: StatementKind,
    sql: &str,
    constants: &[Constant],
) -> Result<Plan, RouteError> {
    keyed_with(router, route, kind, |term, map, one, shards| {
        match &term.expr {
            KeyExpr::Param { index, cast } => {
                let c = constant(constants, *index)?;
                let key = match keys::key_from_literal(
                    map.key_type(),
                    c.value(sql),
                    c.is_string,
                    cast.as_deref(),
                ) {
                    Ok(key) => key,
                    Err(KeyError::NoMatch { .. } | KeyError::Null) => return Ok(None),
                    Err(e) => return Err(key_error(&term.column, &e)),
                };
                let (how, shard) = map
                    .explain(&key)
                    .map_err(|e| placement_error(&term.column, &key, e))?;
                shards.push(shard);
                if !one {
                    return Ok(None);
                }
                // Worded as for a literal, so the reason matches the exact-text analysis.
                let mut reason = String::with_capacity(64);
                let _ = match &key {
                    KeyValue::Int(v) => write!(reason, "{} = {v}", term.column),
                    other => write!(reason, "{} = {}", term.column, show_key(other)),
                };
                let _ = write!(reason, " -> {} ({how})", shard_name(router, shard));
                Ok(Some(reason))
            }
            KeyExpr::ArrayParam { .. } => Err(RouteError::new(
                "XX000",
                "a normalized statement with an array parameter",
            )),
            KeyExpr::Fixed { .. } | KeyExpr::NoMatch { .. } => Ok(None),
        }
    })
}

fn insert(
    router: &Router,
    route: &InsertRoute,
    kind: StatementKind,
    sql: &str,
    constants: &[Constant],
) -> Result<Plan, RouteError> {
    let map = router
        .maps()
        .get(route.map)
        .ok_or_else(|| RouteError::new("XX000", "shard map index out of range"))?;
    let mut row_shards = Vec::with_capacity(route.rows.len());
    let mut first = None;
    for row in &route.rows {
        match row {
            RowKey::Fixed { shard, .. } => row_shards.push(*shard),
            RowKey::Param { index, cast } => {
                let c = constant(constants, *index)?;
                let key = keys::literal_key(
                    KeyContext::Assign,
                    map.key_type(),
                    c.value(sql),
                    c.is_string,
                    cast.as_deref(),
                )
                .map_err(|e| e.to_route_error(&route.table, &route.column))?;
                let (how, shard) = map.explain(&key).map_err(|e| {
                    placement_error(&format!("{}.{}", route.table, route.column), &key, e)
                })?;
                if first.is_none() {
                    first = Some((show_key(&key), how));
                }
                row_shards.push(shard);
            }
        }
    }
    let mut shards = row_shards.clone();
    shards.sort_unstable();
    shards.dedup();
    if let [shard] = shards.as_slice() {
        // As the analysis routes rows whose literal keys all live on one shard.
        let name = shard_name(router, *shard);
        let reason = match (route.rows.as_slice(), first) {
            ([RowKey::Param { .. }], Some((shown, how))) => {
                format!(
                    "{}.{} = {shown} -> {name} ({how})",
                    route.table, route.column
                )
            }
            _ => format!("{} rows of {} -> {name}", route.rows.len(), route.table),
        };
        return Ok(Plan {
            target: Target::Shards(vec![*shard]),
            kind,
            reason,
        });
    }
    let template = split_template(route)?;
    let written = |index: usize| constants.get(index).map(|c| c.written(sql));
    let mut parts = Vec::with_capacity(shards.len());
    for &shard in &shards {
        let rows = row_shards
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == shard)
            .filter_map(|(i, _)| template.rows.get(i));
        let (sql, params) = build_part(template, rows, written);
        parts.push(ShardPart { shard, sql, params });
    }
    Ok(split_plan(router, route, shards, parts, kind))
}
