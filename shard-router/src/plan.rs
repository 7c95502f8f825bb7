//! Plans from analysed statements and bound parameters: the per-query hot path. Everything that
//! does not depend on parameter values (parsing, literal keys, the INSERT split template) was done
//! once by `analyze`; here only parameters are read and placed.

use std::fmt::Write as _;

use config::KeyValue;

use crate::keys::{self, KeyContext, KeyError};
use crate::placement::show_key;
use crate::{Params, Plan, RouteError, Router, ShardPart, Statement, StatementKind, Target};

mod constants;
mod split;

pub(crate) use constants::plan_constants;
use split::{build_part, split_plan, split_template};

/// How an analysed statement is routed.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// The same target whatever the parameters.
    Fixed {
        /// where it runs
        target: Target,
        /// why
        reason: String,
    },
    /// Decided by shard-key values (literals placed already, parameters at plan time).
    Keyed(KeyRoute),
    /// An `INSERT ... VALUES` into a sharded table with a parameter key or rows on several shards.
    Insert(InsertRoute),
}

/// A route decided by key values.
#[derive(Debug, Clone)]
pub(crate) struct KeyRoute {
    /// The keys the statement is restricted to.
    pub keys: Keys,
    /// What the statement is about, for the all-shards reason (e.g. "users").
    pub subject: String,
}

/// The keys a statement's rows are restricted to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Keys {
    /// No restriction: every shard.
    Any,
    /// Only rows with one of these keys (none: no row can match).
    Terms(Vec<KeyTerm>),
}

impl Keys {
    /// Both restrictions hold: either one is a correct (superset) choice; take the narrower.
    pub(crate) fn and(self, other: Keys) -> Keys {
        match (self, other) {
            (Keys::Any, k) | (k, Keys::Any) => k,
            (Keys::Terms(a), Keys::Terms(b)) => {
                if b.len() < a.len() {
                    Keys::Terms(b)
                } else {
                    Keys::Terms(a)
                }
            }
        }
    }

    /// Either restriction may hold: the union, or none if one side is unrestricted.
    pub(crate) fn or(self, other: Keys) -> Keys {
        match (self, other) {
            (Keys::Terms(mut a), Keys::Terms(b)) => {
                a.extend(b);
                Keys::Terms(a)
            }
            _ => Keys::Any,
        }
    }

    /// True when the keys are known now to live on one shard, or are one scalar parameter.
    pub(crate) fn single_shard(&self) -> bool {
        let Keys::Terms(terms) = self else {
            return false;
        };
        let mut fixed = None;
        for term in terms {
            match term.expr {
                KeyExpr::Fixed { shard, .. } => {
                    if fixed.is_some_and(|s| s != shard) {
                        return false;
                    }
                    fixed = Some(shard);
                }
                KeyExpr::NoMatch { .. } => {}
                KeyExpr::Param { .. } => {
                    if terms.len() != 1 {
                        return false;
                    }
                }
                KeyExpr::ArrayParam { .. } => return false,
            }
        }
        true
    }
}

/// One key value a statement is restricted to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyTerm {
    /// Index of the shard map.
    pub map: usize,
    /// The key column, e.g. "users.id".
    pub column: String,
    /// The value.
    pub expr: KeyExpr,
}

/// A key value: placed at analysis time, or a parameter placed at plan time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyExpr {
    /// A literal, already placed.
    Fixed {
        /// its shard
        shard: usize,
        /// the key as SQL shows it
        shown: String,
        /// how it was placed, e.g. "bucket 87"
        how: String,
    },
    /// A literal no key equals (e.g. `5.5` for a bigint key, or NULL): matches no row.
    NoMatch {
        /// the value as written
        shown: String,
    },
    /// `$n` (0-based index) compared with the key, with the cast written on it (`$1::bigint`).
    Param {
        /// parameter index
        index: usize,
        /// the cast type name, lower-cased
        cast: Option<String>,
    },
    /// `key = ANY($n)` with an array parameter.
    ArrayParam {
        /// parameter index
        index: usize,
        /// array type OID implied by a cast, 0 if none
        type_oid: u32,
    },
}

/// An INSERT into a sharded table whose rows are placed at plan time.
#[derive(Debug, Clone)]
pub(crate) struct InsertRoute {
    /// Table name.
    pub table: String,
    /// Its key column.
    pub column: String,
    /// Its shard map.
    pub map: usize,
    /// The key of each VALUES row.
    pub rows: Vec<RowKey>,
    /// How to write a statement with a subset of the rows, or why that is not possible.
    pub split: Result<SplitTemplate, String>,
}

/// The shard key of one VALUES row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RowKey {
    /// A literal, already placed.
    Fixed {
        /// its shard
        shard: usize,
        /// the key as SQL shows it
        shown: String,
    },
    /// A parameter (0-based index), with the cast written on it.
    Param {
        /// parameter index
        index: usize,
        /// the cast type name, lower-cased
        cast: Option<String>,
    },
}

/// The text of an INSERT cut around its VALUES rows and parameters, so that a statement with any
/// subset of the rows is built by concatenation (verified by a parse round trip at analysis).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SplitTemplate {
    /// Everything before the first row.
    pub prefix: Vec<Segment>,
    /// Each row, `(...)`.
    pub rows: Vec<Vec<Segment>>,
    /// Everything after the last row (ON CONFLICT, RETURNING).
    pub suffix: Vec<Segment>,
}

/// A piece of SQL text: literal text or a parameter reference.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// Text as is.
    Text(String),
    /// `$n` of the original statement (0-based index).
    Param(usize),
}

/// The plan for `stmt` with these parameters. Only parameters that place a key are read (a
/// statement routed without them plans even before its Bind).
pub(crate) fn plan(
    router: &Router,
    stmt: &Statement,
    params: &Params<'_>,
) -> Result<Plan, RouteError> {
    resolve(router, stmt.route(), stmt.kind(), params)
}

/// The plan for one route with these parameters.
pub(crate) fn resolve(
    router: &Router,
    route: &Route,
    kind: StatementKind,
    params: &Params<'_>,
) -> Result<Plan, RouteError> {
    match route {
        Route::Fixed { target, reason } => Ok(Plan {
            target: target.clone(),
            kind,
            reason: reason.clone(),
        }),
        Route::Keyed(route) => keyed(router, route, kind, params),
        Route::Insert(route) => insert(router, route, kind, params),
    }
}

/// The name of shard `i` for reasons.
fn shard_name(router: &Router, i: usize) -> &str {
    router.shard_names().get(i).map_or("?", String::as_str)
}

/// Parameter `index` as a key source (type from Parse, or from a cast in the SQL).
fn param_source<'p>(
    params: &Params<'p>,
    index: usize,
    cast_oid: u32,
) -> Result<(Option<&'p [u8]>, i16, u32), RouteError> {
    let value = *params.values.get(index).ok_or_else(|| {
        RouteError::new(
            "08P01",
            format!(
                "bind message supplies {} parameters, but the shard key needs parameter ${}",
                params.values.len(),
                index + 1
            ),
        )
    })?;
    let format = params.formats.get(index).copied().unwrap_or(0);
    let declared = params.types.get(index).copied().unwrap_or(0);
    let type_oid = if declared == 0 { cast_oid } else { declared };
    Ok((value, format, type_oid))
}

fn placement_error(
    column: &str,
    key: &KeyValue,
    e: crate::placement::PlacementError,
) -> RouteError {
    RouteError::new(e.sqlstate(), format!("{column} = {}: {e}", show_key(key)))
}

fn key_error(column: &str, e: &KeyError) -> RouteError {
    let (table, col) = column.split_once('.').unwrap_or(("?", column));
    e.to_route_error(table, col)
}

/// A keyed route without key restriction: every shard.
fn all_shards(route: &KeyRoute, kind: StatementKind) -> Plan {
    Plan {
        target: Target::All,
        kind,
        reason: format!("{}: no shard key in WHERE -> all shards", route.subject),
    }
}

fn keyed(
    router: &Router,
    route: &KeyRoute,
    kind: StatementKind,
    params: &Params<'_>,
) -> Result<Plan, RouteError> {
    keyed_with(router, route, kind, |term, map, one, shards| {
        match &term.expr {
            KeyExpr::Param { index, cast } => {
                let (value, format, oid) = param_source(params, *index, 0)?;
                let key = match keys::cast_param_key(
                    KeyContext::Compare,
                    map.key_type(),
                    value,
                    format,
                    oid,
                    cast.as_deref(),
                ) {
                    Ok(key) => key,
                    Err(KeyError::NoMatch { .. } | KeyError::Null) => return Ok(None),
                    Err(e) => return Err(key_error(&term.column, &e)),
                };
                let shard = map
                    .place(&key)
                    .map_err(|e| placement_error(&term.column, &key, e))?;
                shards.push(shard);
                if !one {
                    return Ok(None);
                }
                let mut reason = String::with_capacity(64);
                let _ = write!(
                    reason,
                    "{} = ${} ({}) -> {}",
                    term.column,
                    index + 1,
                    show_key(&key),
                    shard_name(router, shard)
                );
                if let Some(bucket) = map.bucket(&key) {
                    let _ = write!(reason, " (bucket {bucket})");
                }
                Ok(Some(reason))
            }
            KeyExpr::ArrayParam { index, type_oid } => {
                let (value, format, oid) = param_source(params, *index, *type_oid)?;
                let keys = keys::keys_from_array_param(map.key_type(), value, format, oid)
                    .map_err(|e| key_error(&term.column, &e))?;
                for key in &keys {
                    shards.push(
                        map.place(key)
                            .map_err(|e| placement_error(&term.column, key, e))?,
                    );
                }
                Ok(None)
            }
            KeyExpr::Fixed { .. } | KeyExpr::NoMatch { .. } => Ok(None),
        }
    })
}

/// The shared walk over a keyed route's terms: fixed keys are placed at prepare time, keys that
/// never match add no shard, and `slot` places a parameter slot (`Param`/`ArrayParam`) from
/// wherever its values come from (bind parameters, or a normalised text's constants), pushing
/// its shards and returning the reason text when it is the only key (`one`).
pub(crate) fn keyed_with(
    router: &Router,
    route: &KeyRoute,
    kind: StatementKind,
    mut slot: impl FnMut(
        &KeyTerm,
        &crate::ShardMap,
        bool,
        &mut Vec<usize>,
    ) -> Result<Option<String>, RouteError>,
) -> Result<Plan, RouteError> {
    let terms = match &route.keys {
        Keys::Any => return Ok(all_shards(route, kind)),
        Keys::Terms(terms) => terms,
    };
    let mut shards: Vec<usize> = Vec::with_capacity(terms.len().min(8));
    // The reason for one key says exactly how it was placed; for several it lists the shards.
    let mut single: Option<String> = None;
    let one = terms.len() == 1;
    for term in terms {
        let map = router
            .maps()
            .get(term.map)
            .ok_or_else(|| RouteError::new("XX000", "shard map index out of range"))?;
        match &term.expr {
            KeyExpr::Fixed { shard, shown, how } => {
                shards.push(*shard);
                if one {
                    single = Some(format!(
                        "{} = {shown} -> {} ({how})",
                        term.column,
                        shard_name(router, *shard)
                    ));
                }
            }
            KeyExpr::NoMatch { .. } => {}
            KeyExpr::Param { .. } | KeyExpr::ArrayParam { .. } => {
                if let Some(reason) = slot(term, map, one, &mut shards)? {
                    single = Some(reason);
                }
            }
        }
    }
    Ok(keyed_plan(router, terms, shards, single, kind))
}

/// The plan of a keyed route from the shards its terms placed (`single`: the reason when one
/// term placed one key).
fn keyed_plan(
    router: &Router,
    terms: &[KeyTerm],
    mut shards: Vec<usize>,
    single: Option<String>,
    kind: StatementKind,
) -> Plan {
    shards.sort_unstable();
    shards.dedup();
    let column = terms.first().map_or("key", |t| t.column.as_str());
    if shards.is_empty() {
        // No row can match: any one shard gives the right (empty) answer.
        return Plan {
            target: Target::Shards(vec![0]),
            kind,
            reason: format!(
                "{column}: no key value can match -> {}",
                shard_name(router, 0)
            ),
        };
    }
    let reason = match single {
        Some(reason) if shards.len() == 1 => reason,
        _ => {
            let names: Vec<&str> = shards.iter().map(|s| shard_name(router, *s)).collect();
            format!("{column} in {} keys -> {}", terms.len(), names.join(", "))
        }
    };
    Plan {
        target: Target::Shards(shards),
        kind,
        reason,
    }
}

fn insert(
    router: &Router,
    route: &InsertRoute,
    kind: StatementKind,
    params: &Params<'_>,
) -> Result<Plan, RouteError> {
    let map = router
        .maps()
        .get(route.map)
        .ok_or_else(|| RouteError::new("XX000", "shard map index out of range"))?;
    let mut row_shards = Vec::with_capacity(route.rows.len());
    let mut last_key = None;
    for (n, row) in route.rows.iter().enumerate() {
        let shard = match row {
            RowKey::Fixed { shard, .. } => *shard,
            RowKey::Param { index, cast } => {
                let (value, format, oid) = param_source(params, *index, 0)?;
                let key = keys::cast_param_key(
                    KeyContext::Assign,
                    map.key_type(),
                    value,
                    format,
                    oid,
                    cast.as_deref(),
                )
                .map_err(|e| match e {
                    KeyError::Null => null_key_error(&route.table, &route.column, n, "NULL"),
                    other => other.to_route_error(&route.table, &route.column),
                })?;
                let shard = map.place(&key).map_err(|e| {
                    placement_error(&format!("{}.{}", route.table, route.column), &key, e)
                })?;
                last_key = Some(key);
                shard
            }
        };
        row_shards.push(shard);
    }
    let mut shards = row_shards.clone();
    shards.sort_unstable();
    shards.dedup();
    if shards.len() <= 1 {
        let shard = shards.first().copied().unwrap_or(0);
        let reason = match (route.rows.as_slice(), &last_key) {
            ([RowKey::Param { index, .. }], Some(key)) => {
                let mut reason = format!(
                    "{}.{} = ${} ({}) -> {}",
                    route.table,
                    route.column,
                    index + 1,
                    show_key(key),
                    shard_name(router, shard)
                );
                if let Some(bucket) = map.bucket(key) {
                    let _ = write!(reason, " (bucket {bucket})");
                }
                reason
            }
            _ => format!(
                "{} rows of {} -> {}",
                route.rows.len(),
                route.table,
                shard_name(router, shard)
            ),
        };
        return Ok(Plan {
            target: Target::Shards(vec![shard]),
            kind,
            reason,
        });
    }
    let template = split_template(route)?;
    let mut parts = Vec::with_capacity(shards.len());
    for &shard in &shards {
        let rows = row_shards
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == shard)
            .filter_map(|(i, _)| template.rows.get(i));
        let (sql, params) = build_part(template, rows, |_| None);
        parts.push(ShardPart { shard, sql, params });
    }
    Ok(split_plan(router, route, shards, parts, kind))
}

/// The 23502 error for a row whose key is NULL or DEFAULT.
pub(crate) fn null_key_error(table: &str, column: &str, row: usize, what: &str) -> RouteError {
    RouteError::new(
        "23502",
        format!(
            "null value in shard key column \"{column}\" of sharded table \"{table}\" \
             (row {} gives {what}): every row needs a shard key value",
            row + 1
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(expr: KeyExpr) -> KeyTerm {
        KeyTerm {
            map: 0,
            column: "users.id".into(),
            expr,
        }
    }

    #[test]
    fn and_or_of_keys() {
        let one = Keys::Terms(vec![term(KeyExpr::Param {
            index: 0,
            cast: None,
        })]);
        let two = Keys::Terms(vec![
            term(KeyExpr::NoMatch { shown: "a".into() }),
            term(KeyExpr::NoMatch { shown: "b".into() }),
        ]);
        assert_eq!(Keys::Any.and(one.clone()), one);
        assert_eq!(two.clone().and(one.clone()), one);
        assert_eq!(one.clone().or(Keys::Any), Keys::Any);
        let Keys::Terms(all) = one.clone().or(two) else {
            panic!()
        };
        assert_eq!(all.len(), 3);
        assert!(one.single_shard());
    }
}
