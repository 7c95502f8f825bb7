//! Builds a [`MergePlan`] from the exact text of a multi-shard SELECT (pure; cached by text).

mod aggs;
mod exprs;
mod groups;
mod having;
mod limit;
mod rows;

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, OrderByKind, Query, Select, SelectFlavor, SelectItem, SetExpr,
    SetQuantifier, Statement, Values,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::MergePlan;
use crate::analyze::{MAX_OPERATORS, RECURSION_LIMIT};
use crate::RouteError;
use exprs::{unparen, Calls};

/// Capacity of the merge-plan cache (distinct texts).
const CAPACITY: usize = 1024;

/// Longer texts are planned every time instead of cached (bounds the cache's memory).
const MAX_CACHED_SQL_BYTES: usize = 64 * 1024;

/// Texts with up to this many operators are planned on the caller's stack. Planning clones and
/// walks expressions recursively, an operator chain nests one level per operator, and
/// sqlparser's derived `Clone` takes kilobytes of stack per level in debug builds: deeper
/// trees than this would not fit a 2 MiB thread stack (tokio's default) with room to spare.
const INLINE_OPERATORS: usize = 128;

/// The stack of the thread that plans texts with more operators (up to the analyzer's bound).
const DEEP_PLAN_STACK: usize = 32 << 20;

type Entry = Result<Arc<MergePlan>, RouteError>;

/// Merge plans by (exact SQL text, local grouping), refusals included.
pub(crate) struct MergePlanCache {
    entries: Mutex<LruCache<(String, bool), Entry>>,
}

impl MergePlanCache {
    /// An empty cache.
    pub(crate) fn new() -> MergePlanCache {
        let capacity = NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN);
        MergePlanCache {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The plan for `sql`, from the cache or made now.
    pub(crate) fn get(&self, sql: &str, local_groups: bool) -> Entry {
        let key = (sql.to_owned(), local_groups);
        if let Some(hit) = self.lock().get(&key) {
            return hit.clone();
        }
        let made = plan(sql, local_groups).map(Arc::new);
        if sql.len() <= MAX_CACHED_SQL_BYTES {
            self.lock().put(key, made.clone());
        }
        made
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<(String, bool), Entry>> {
        // The cache holds no invariant a panicking thread could break halfway.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Plans the merge of `sql` (one SELECT). `local_groups`: GROUP BY / DISTINCT groups never span
/// shards (they include the shard key), so the shards group and the proxy only merges rows.
pub(crate) fn plan(sql: &str, local_groups: bool) -> Result<MergePlan, RouteError> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| unreadable(&e))?;
    let operators = crate::analyze::names::operator_count(&tokens);
    if operators > MAX_OPERATORS {
        return Err(refuse(
            "the query is too long to plan a merge across shards (use IN (...) or = ANY($1) \
             instead of long OR chains)",
        ));
    }
    if operators <= INLINE_OPERATORS {
        return plan_tokens(tokens, local_groups).and_then(renumber);
    }
    // A deep expression tree: plan it on a thread whose stack has room for the recursion
    // (rare: plans are cached by text).
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("merge-planner".to_owned())
            .stack_size(DEEP_PLAN_STACK)
            .spawn_scoped(scope, move || plan_tokens(tokens, local_groups))
            .map_err(|e| RouteError::new("53000", format!("cannot plan this merge now: {e}")))?;
        worker
            .join()
            .unwrap_or_else(|_| Err(RouteError::new("XX000", "merge planning failed")))
    })
    .and_then(renumber)
}

/// The shard SQL with only the parameters it uses, renumbered from `$1`.
fn renumber(mut plan: MergePlan) -> Result<MergePlan, RouteError> {
    let (sql, used) = crate::analyze::split::renumber_params(&plan.shard_sql).ok_or_else(|| {
        RouteError::new(
            "XX000",
            "the merged query's shard text could not be tokenized",
        )
    })?;
    plan.shard_sql = sql;
    plan.shard_params = used;
    Ok(plan)
}

/// [`plan`] for a text's tokens.
fn plan_tokens(tokens: Vec<TokenWithSpan>, local_groups: bool) -> Result<MergePlan, RouteError> {
    let mut query = parse(tokens)?;
    unwrap_parenthesized(&mut query)?;
    check_query(&query)?;
    let counts = limit::read(&query)?;
    let select = select_of(&query)?;
    check_select(select, local_groups)?;
    let mut calls = Calls::default();
    for item in &select.projection {
        if let Some(expr) = item_expr(item) {
            calls.add(expr);
        }
    }
    let mut order_calls = Calls::default();
    for key in order_keys(&query) {
        order_calls.add(&key.expr);
    }
    if calls.window || order_calls.window {
        return Err(refuse(
            "window functions (OVER) across shards are not supported",
        ));
    }
    if let Some(having) = &select.having {
        calls.add(having);
    }
    let group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => !exprs.is_empty() || !modifiers.is_empty(),
        GroupByExpr::All(_) => true,
    };
    let grouped = group_by
        || select.having.is_some()
        || !calls.aggregates.is_empty()
        || !order_calls.aggregates.is_empty();
    // Without GROUP BY an aggregate makes one group of all shards' rows, never a local one.
    if grouped && !(local_groups && group_by) {
        groups::plan(query, &counts)
    } else {
        rows::plan(query, &counts, local_groups)
    }
}

/// A refusal: this cannot be merged exactly (SQLSTATE 0A000).
pub(super) fn refuse(message: impl Into<String>) -> RouteError {
    RouteError::new("0A000", message)
}

/// The refusal of a text the SQL parser cannot read.
fn unreadable(e: &dyn std::fmt::Display) -> RouteError {
    refuse(format!(
        "cannot plan a merge of a query the SQL parser cannot read ({e})"
    ))
}

/// Parses the one SELECT of a text's tokens (bounded nesting).
fn parse(tokens: Vec<TokenWithSpan>) -> Result<Query, RouteError> {
    let using = order_by_using(&tokens);
    let parsed = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
        .parse_statements();
    let mut stmts = match parsed {
        Ok(stmts) => stmts,
        Err(_) if using => return Err(refuse("ORDER BY ... USING across shards is not supported")),
        Err(e) => return Err(unreadable(&e)),
    };
    match (stmts.pop(), stmts.is_empty()) {
        (Some(Statement::Query(q)), true) => Ok(*q),
        (Some(_), true) => Err(refuse("only a SELECT can be merged across shards")),
        _ => Err(refuse("cannot plan a merge of several statements")),
    }
}

/// True when `USING` follows `ORDER BY` (PostgreSQL's sort operator, which the parser lacks).
fn order_by_using(tokens: &[TokenWithSpan]) -> bool {
    let mut words = tokens.iter().filter_map(|t| match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        Token::Whitespace(_) => None,
        _ => Some(Keyword::NoKeyword),
    });
    let mut previous = Keyword::NoKeyword;
    let mut ordered = false;
    for word in words.by_ref() {
        if previous == Keyword::ORDER && word == Keyword::BY {
            ordered = true;
        }
        if ordered && word == Keyword::USING {
            return true;
        }
        previous = word;
    }
    false
}

/// `(SELECT ...) ORDER BY ...`: the parenthesized query's clauses move to the outer query.
fn unwrap_parenthesized(query: &mut Query) -> Result<(), RouteError> {
    for _ in 0..RECURSION_LIMIT {
        let SetExpr::Query(inner) = query.body.as_mut() else {
            return Ok(());
        };
        let movable = inner.order_by.is_none()
            && inner.limit_clause.is_none()
            && inner.fetch.is_none()
            && inner.locks.is_empty()
            && (inner.with.is_none() || query.with.is_none());
        if !movable {
            return Err(refuse(
                "a parenthesized SELECT with its own ORDER BY, LIMIT or locking clause across \
                 shards is not supported",
            ));
        }
        let with = inner.with.take();
        let body = std::mem::replace(
            &mut inner.body,
            Box::new(SetExpr::Values(Values {
                explicit_row: false,
                rows: Vec::new(),
            })),
        );
        query.body = body;
        if with.is_some() {
            query.with = with;
        }
    }
    Err(refuse("too many parentheses around the SELECT"))
}

/// Clauses of the query around its SELECT that no merge handles.
fn check_query(query: &Query) -> Result<(), RouteError> {
    match query.body.as_ref() {
        SetExpr::Select(_) => {}
        SetExpr::SetOperation {
            op, set_quantifier, ..
        } => {
            let all = match set_quantifier {
                SetQuantifier::None => String::new(),
                q => format!(" {q}"),
            };
            return Err(refuse(format!("{op}{all} across shards is not supported")));
        }
        SetExpr::Values(_) => return Err(refuse("VALUES across shards is not supported")),
        SetExpr::Table(_) => {
            return Err(refuse(
                "TABLE ... across shards is not supported: write SELECT * FROM ...",
            ))
        }
        _ => return Err(refuse("only a SELECT can be merged across shards")),
    }
    if query.for_clause.is_some()
        || query.settings.is_some()
        || query.format_clause.is_some()
        || !query.pipe_operators.is_empty()
    {
        return Err(refuse("this query form across shards is not supported"));
    }
    if let Some(order_by) = &query.order_by {
        let OrderByKind::Expressions(keys) = &order_by.kind else {
            return Err(refuse("ORDER BY ALL across shards is not supported"));
        };
        if order_by.interpolate.is_some() || keys.iter().any(|k| k.with_fill.is_some()) {
            return Err(refuse(
                "this form of ORDER BY across shards is not supported",
            ));
        }
        if keys
            .iter()
            .any(|k| matches!(unparen(&k.expr), Expr::Collate { .. }))
        {
            return Err(refuse(
                "ORDER BY ... COLLATE across shards is not supported",
            ));
        }
    }
    if let Some(fetch) = &query.fetch {
        if fetch.with_ties {
            return Err(refuse("FETCH ... WITH TIES across shards is not supported"));
        }
        if fetch.percent {
            return Err(refuse("FETCH ... PERCENT across shards is not supported"));
        }
    }
    Ok(())
}

/// Clauses of the SELECT itself that no merge handles.
fn check_select(select: &Select, local_groups: bool) -> Result<(), RouteError> {
    if select.into.is_some() {
        return Err(refuse("SELECT INTO across shards is not supported"));
    }
    if select.top.is_some()
        || select.exclude.is_some()
        || !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || select.qualify.is_some()
        || select.connect_by.is_some()
        || select.value_table_mode.is_some()
        || !matches!(select.flavor, SelectFlavor::Standard)
    {
        return Err(refuse("this SELECT form across shards is not supported"));
    }
    if matches!(select.distinct, Some(Distinct::On(_))) && !local_groups {
        return Err(refuse("DISTINCT ON across shards is not supported"));
    }
    match &select.group_by {
        GroupByExpr::All(_) => Err(refuse("GROUP BY ALL across shards is not supported")),
        GroupByExpr::Expressions(exprs, modifiers) => {
            let sets = exprs
                .iter()
                .any(|e| matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)));
            if sets || !modifiers.is_empty() {
                return Err(refuse(
                    "GROUPING SETS, ROLLUP and CUBE across shards are not supported",
                ));
            }
            Ok(())
        }
    }
}

/// The SELECT of a query whose body [`check_query`] accepted.
pub(super) fn select_of(query: &Query) -> Result<&Select, RouteError> {
    match query.body.as_ref() {
        SetExpr::Select(select) => Ok(select),
        _ => Err(refuse("only a SELECT can be merged across shards")),
    }
}

/// The SELECT of a query, to rewrite it.
pub(super) fn select_mut(query: &mut Query) -> Result<&mut Select, RouteError> {
    match query.body.as_mut() {
        SetExpr::Select(select) => Ok(select),
        _ => Err(refuse("only a SELECT can be merged across shards")),
    }
}

/// The expression of a select item (None for `*` and `t.*`).
pub(super) fn item_expr(item: &SelectItem) -> Option<&Expr> {
    match item {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => Some(expr),
        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => None,
    }
}

/// The ORDER BY keys of a query.
pub(super) fn order_keys(query: &Query) -> &[sqlparser::ast::OrderByExpr] {
    match query.order_by.as_ref().map(|o| &o.kind) {
        Some(OrderByKind::Expressions(keys)) => keys,
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
