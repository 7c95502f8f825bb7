//! SQL analysis: a statement text is tokenized, split into statements, parsed (sqlparser,
//! PostgreSQL dialect, bounded recursion) and analysed once into a [`Statement`], which the
//! router caches by text. `plan` then only places parameter values.
//!
//! Simple-protocol texts differ in their constants from query to query (`... WHERE aid = 17`),
//! so [`prepare_query`] first normalizes them (`normalize`: constants become pseudo-parameters)
//! and caches the analysis by the normalized text; `plan::plan_constants` then places the
//! constants as the analysis would have placed the literals.

mod analyzer;
mod copy_stmt;
mod dml;
mod exprs;
mod from;
pub(crate) mod functions;
mod level;
pub(crate) mod names;
pub(crate) mod normalize;
mod predicate;
mod query;
pub(crate) mod split;
mod statement;
mod utility;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;
use sqlparser::ast::Statement as SqlStatement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::copy::CopyFormat;
use crate::plan::Route;
use crate::{Params, Plan, RouteError, Router, StatementKind, Target};

/// Capacity of the parse cache (distinct statement texts).
pub(crate) const PARSE_CACHE_CAPACITY: usize = 4096;

/// sqlparser's recursion limit (nesting of subqueries and parenthesised expressions).
pub(crate) const RECURSION_LIMIT: usize = 64;

/// Statements with more operators than this are not parsed: operator chains nest one level
/// each, and deep trees would overflow the stack when walked, cloned or dropped.
pub(crate) const MAX_OPERATORS: usize = 1000;

/// Longer texts are analysed every time instead of cached (bounds the cache's memory).
const MAX_CACHED_SQL_BYTES: usize = 64 * 1024;

/// An analysed statement text (one or more SQL statements), cached by text.
#[derive(Debug)]
pub struct Statement {
    kind: StatementKind,
    kinds: Vec<StatementKind>,
    route: Route,
    param_count: usize,
    copy_in: Option<CopyIn>,
    merge: Option<&'static str>,
}

impl Statement {
    /// What the statement does (for a multi-statement text: the strongest of its statements).
    pub fn kind(&self) -> StatementKind {
        self.kind
    }

    /// The kind of each statement of the text, in order.
    pub fn statement_kinds(&self) -> &[StatementKind] {
        &self.kinds
    }

    /// The number of parameters (`$n`) the text uses: the largest n.
    pub fn param_count_hint(&self) -> usize {
        self.param_count
    }

    /// For `COPY ... FROM STDIN` into a sharded table: how to split its rows.
    pub fn copy_in(&self) -> Option<&CopyIn> {
        self.copy_in.as_ref()
    }

    /// `None` when concatenating the shards' results is exactly the answer; otherwise what
    /// would need merging (ORDER BY, LIMIT, aggregates...). Only matters on several shards.
    pub fn merge_requirement(&self) -> Option<&'static str> {
        self.merge
    }

    /// For a statement whose multi-shard results need merging: `Some(local_groups)` when a
    /// merge plan can answer it, where `local_groups` says its GROUP BY / DISTINCT groups never
    /// span shards (they include the shard key); `None` when no merge can (rows every shard
    /// would repeat: reference tables or constants next to sharded rows).
    pub fn merge_groups_local(&self) -> Option<bool> {
        match self.merge? {
            query::REPEATED_ROWS => None,
            "aggregates or GROUP BY" | "DISTINCT" | "DISTINCT ON" => Some(false),
            _ => Some(true),
        }
    }

    /// How it is routed.
    pub(crate) fn route(&self) -> &Route {
        &self.route
    }
}

/// How to split the rows of `COPY ... FROM STDIN` into a sharded table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyIn {
    /// The table.
    pub table: String,
    /// Its shard key column.
    pub column: String,
    /// Index of its shard map in `Router::maps()`.
    pub map: usize,
    /// The key's position among the copied columns; `None` when the statement has no column
    /// list (all columns in table order: the position comes from the table's catalog).
    pub key_index: Option<usize>,
    /// Number of copied columns, when the statement lists them.
    pub column_count: Option<usize>,
    /// Data format (text or CSV, with options).
    pub format: CopyFormat,
}

/// The analysis of one SQL statement of a text.
#[derive(Debug)]
pub(crate) struct Part {
    /// What it does.
    pub kind: StatementKind,
    /// How it is routed.
    pub route: Route,
    /// COPY FROM STDIN into a sharded table.
    pub copy_in: Option<CopyIn>,
    /// Why per-shard results would need merging.
    pub merge: Option<&'static str>,
}

impl Part {
    /// A part with a fixed target.
    pub(crate) fn fixed(kind: StatementKind, target: Target, reason: String) -> Part {
        Part {
            kind,
            route: Route::Fixed { target, reason },
            copy_in: None,
            merge: None,
        }
    }
}

type Cached = Result<Arc<Statement>, RouteError>;

/// Bounded LRU caches of analysed statements: by exact SQL text (refusals included), and by
/// normalized text (the decision whether its analysis stands for the texts it normalizes).
pub(crate) struct ParseCache {
    entries: Mutex<LruCache<String, Cached>>,
    normalized: Mutex<LruCache<String, normalize::verify::Decision>>,
    analyses: AtomicU64,
    template_hits: AtomicU64,
    fallbacks: AtomicU64,
}

/// Counters of the parse cache (since the router was built).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseCacheStats {
    /// Texts analysed with the SQL parser (cache misses, uncached texts, normalization checks).
    pub analyses: u64,
    /// Simple-protocol queries planned from the analysis of their normalized text.
    pub template_hits: u64,
    /// Simple-protocol queries whose normalized text must be analysed as the exact text.
    pub fallbacks: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The caches hold no invariant a panicking thread could break halfway.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ParseCache {
    /// Empty caches holding up to `capacity` texts each.
    pub(crate) fn new(capacity: usize) -> ParseCache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        ParseCache {
            entries: Mutex::new(LruCache::new(capacity)),
            normalized: Mutex::new(LruCache::new(capacity)),
            analyses: AtomicU64::new(0),
            template_hits: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, Cached>> {
        lock(&self.entries)
    }

    /// The counters.
    pub(crate) fn stats(&self) -> ParseCacheStats {
        ParseCacheStats {
            analyses: self.analyses.load(Ordering::Relaxed),
            template_hits: self.template_hits.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }
}

/// The analysis of `sql`, from the cache or made now (and cached, refusals included).
pub(crate) fn prepare(router: &Router, sql: &str) -> Result<Arc<Statement>, RouteError> {
    if let Some(hit) = router.cache.lock().get(sql) {
        return hit.clone();
    }
    let result = analyze_text(router, sql).map(Arc::new);
    if sql.len() <= MAX_CACHED_SQL_BYTES {
        router.cache.lock().put(sql.to_owned(), result.clone());
    }
    result
}

/// A simple-protocol query ready to plan: its analysis, and when that is the analysis of its
/// normalized text, the text whose constants the plan places.
#[derive(Debug, Clone)]
pub struct Prepared {
    stmt: Arc<Statement>,
    constants: Option<Constants>,
}

/// The text of a normalized query and its constants (`$k` is `list[k - 1]`).
#[derive(Debug, Clone)]
struct Constants {
    sql: String,
    list: Vec<normalize::Constant>,
}

impl Prepared {
    /// The analysis (kinds, merge requirement, COPY split) to use for this query. For a
    /// normalized query it is shared by all texts that differ only in their constants; plan it
    /// with `Router::plan_query`, not `Router::plan`.
    pub fn statement(&self) -> &Arc<Statement> {
        &self.stmt
    }

    /// True when the analysis is that of the normalized text.
    pub fn is_normalized(&self) -> bool {
        self.constants.is_some()
    }

    fn exact(stmt: Arc<Statement>) -> Prepared {
        Prepared {
            stmt,
            constants: None,
        }
    }
}

/// `prepare` for a simple-protocol text, through its normalized text when it has one.
pub(crate) fn prepare_query(router: &Router, sql: &str) -> Result<Prepared, RouteError> {
    let norm = match normalize::normalize(sql) {
        Some(norm) if sql.len() <= MAX_CACHED_SQL_BYTES => norm,
        _ => return prepare(router, sql).map(Prepared::exact),
    };
    let cache = &router.cache;
    let cached = lock(&cache.normalized).get(&norm.key).cloned();
    let decision = match cached {
        Some(decision) => decision,
        None => {
            let exact = prepare(router, sql)?;
            let decision = normalize::verify::decide(router, sql, &norm, &exact);
            lock(&cache.normalized).put(norm.key, decision.clone());
            if matches!(decision, normalize::verify::Decision::Fallback) {
                cache.fallbacks.fetch_add(1, Ordering::Relaxed);
                return Ok(Prepared::exact(exact));
            }
            decision
        }
    };
    match decision {
        normalize::verify::Decision::Template(stmt) => {
            cache.template_hits.fetch_add(1, Ordering::Relaxed);
            Ok(Prepared {
                stmt,
                constants: Some(Constants {
                    sql: sql.to_owned(),
                    list: norm.constants,
                }),
            })
        }
        normalize::verify::Decision::Fallback => {
            cache.fallbacks.fetch_add(1, Ordering::Relaxed);
            prepare(router, sql).map(Prepared::exact)
        }
    }
}

/// The plan of a prepared simple-protocol query. An error from placing the constants is
/// answered by the exact text's own analysis, so errors read exactly as without normalization.
pub(crate) fn plan_query(router: &Router, prepared: &Prepared) -> Result<Plan, RouteError> {
    let Some(constants) = &prepared.constants else {
        return crate::plan::plan(router, &prepared.stmt, &Params::default());
    };
    crate::plan::plan_constants(router, &prepared.stmt, &constants.sql, &constants.list).or_else(
        |_| {
            let stmt = prepare(router, &constants.sql)?;
            crate::plan::plan(router, &stmt, &Params::default())
        },
    )
}

/// Analyses a whole text: each statement, then all together.
fn analyze_text(router: &Router, sql: &str) -> Result<Statement, RouteError> {
    router.cache.analyses.fetch_add(1, Ordering::Relaxed);
    let Some(tokens) = names::tokenize(sql) else {
        // Not even tokens (an unclosed quote, say): PostgreSQL will reject it; just make sure
        // it does not touch sharded tables on one shard only.
        let named = names::named_tables_in_text(router, sql);
        if let Some(name) = named.first() {
            return Err(RouteError::new(
                "0A000",
                format!(
                    "cannot route this statement: it names {} and the router cannot read it",
                    names::describe_table(router, name)
                ),
            ));
        }
        let part = Part::fixed(
            StatementKind::Write,
            Target::Default,
            "unreadable statement naming no sharded or reference table -> default shard".into(),
        );
        return combine(router, vec![part], 0);
    };
    let param_count = names::max_placeholder(&tokens);
    let pieces = names::split_statements(sql, &tokens)
        .ok_or_else(|| RouteError::new("XX000", "cannot split the statement text"))?;
    let mut parts = Vec::with_capacity(pieces.len());
    for piece in &pieces {
        parts.push(analyze_piece(router, piece)?);
    }
    combine(router, parts, param_count)
}

/// Analyses one statement of a text.
fn analyze_piece(router: &Router, piece: &names::Piece<'_, '_>) -> Result<Part, RouteError> {
    if names::operator_count(piece.tokens) > MAX_OPERATORS {
        return utility::token_rule(
            router,
            piece.tokens,
            "it is too long for the router to analyse (use IN (...) or = ANY($1) instead of \
             long OR chains)",
        );
    }
    let words = names::leading_words(piece.tokens, 2);
    let word = |i: usize| words.get(i).map_or("", String::as_str);
    if word(0) == "COPY" && !word(1).is_empty() {
        if let Some(copy) = copy_stmt::parse_copy(piece.sql) {
            return copy_stmt::copy_table(router, copy);
        }
    }
    let rewritten;
    let sql = match (
        word(0),
        piece.sql.trim_start().get(..5),
        piece.sql.trim_start().get(5..),
    ) {
        ("TABLE", Some(_), Some(rest)) => {
            rewritten = format!("SELECT * FROM {rest}");
            rewritten.as_str()
        }
        _ => piece.sql,
    };
    let parsed = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    match parsed {
        Ok(mut stmts) if stmts.len() == 1 => match stmts.first_mut() {
            Some(stmt) => statement(router, stmt, piece),
            None => Err(RouteError::new("XX000", "statement vanished")),
        },
        Ok(_) => utility::token_rule(
            router,
            piece.tokens,
            "the SQL parser reads it as several statements",
        ),
        Err(e) => utility::token_rule(
            router,
            piece.tokens,
            &format!("the SQL parser cannot read it ({e})"),
        ),
    }
}

/// Analyses one parsed statement (and prepares the split of a multi-row INSERT).
fn statement(
    router: &Router,
    stmt: &mut SqlStatement,
    piece: &names::Piece<'_, '_>,
) -> Result<Part, RouteError> {
    let mut part = statement::analyze_statement(router, stmt, piece)?;
    if let Route::Insert(route) = &mut part.route {
        if route.rows.len() > 1 && matches!(stmt, SqlStatement::Insert(_)) {
            route.split = split::template(stmt);
        }
    }
    Ok(part)
}

/// The statement for a whole text: one part as is; several must run on the same target.
fn combine(router: &Router, parts: Vec<Part>, param_count: usize) -> Result<Statement, RouteError> {
    if parts.len() <= 1 {
        let part = parts.into_iter().next().unwrap_or_else(|| {
            Part::fixed(
                StatementKind::Utility,
                Target::Default,
                "empty query -> default shard".to_owned(),
            )
        });
        return Ok(Statement {
            kind: part.kind,
            kinds: vec![part.kind],
            route: part.route,
            param_count,
            copy_in: part.copy_in,
            merge: part.merge,
        });
    }
    if param_count > 0 {
        return Err(RouteError::new(
            "42601",
            "cannot insert multiple commands into a prepared statement",
        ));
    }
    let kinds: Vec<StatementKind> = parts.iter().map(|p| p.kind).collect();
    let mut target: Option<(Target, String)> = None;
    let mut reasons = Vec::new();
    let mut merge = None;
    for part in &parts {
        if matches!(part.kind, StatementKind::CopyIn | StatementKind::CopyOut) {
            return Err(RouteError::new(
                "0A000",
                "COPY cannot be combined with other statements in one query string",
            ));
        }
        if utility::is_transaction_control(part.kind) {
            continue;
        }
        let plan = crate::plan::resolve(router, &part.route, part.kind, &Params::default())?;
        merge = merge.or(part.merge);
        let next =
            match (target.take(), plan.target) {
                (_, Target::Split(_)) => return Err(RouteError::new(
                    "0A000",
                    "a multi-statement query cannot contain an INSERT whose rows go to several \
                     shards: send it separately",
                )),
                (None, t) => (t, plan.reason.clone()),
                (Some((a, why)), b) => match merge_targets(&a, &b) {
                    Some(t) => (t, why),
                    None => {
                        return Err(RouteError::new(
                            "0A000",
                            format!(
                                "a multi-statement query whose statements need different shards \
                             ({why} / {}): send them separately",
                                plan.reason
                            ),
                        ))
                    }
                },
            };
        reasons.push(plan.reason);
        target = Some(next);
    }
    let kind = parts
        .iter()
        .map(|p| p.kind)
        .filter(|k| !utility::is_transaction_control(*k))
        .max_by_key(|k| match k {
            StatementKind::Ddl => 4,
            StatementKind::Write => 3,
            StatementKind::Utility => 2,
            _ => 1,
        })
        .or(kinds.first().copied())
        .unwrap_or(StatementKind::Utility);
    let target = target.map_or(Target::Default, |(t, _)| t);
    let reason = if reasons.is_empty() {
        "transaction control".to_owned()
    } else {
        format!("{} statements: {}", parts.len(), reasons.join("; "))
    };
    Ok(Statement {
        kind,
        kinds,
        route: Route::Fixed { target, reason },
        param_count: 0,
        copy_in: None,
        merge,
    })
}

/// Where two statements of one text can both run, if anywhere.
fn merge_targets(a: &Target, b: &Target) -> Option<Target> {
    match (a, b) {
        (a, b) if a == b => Some(a.clone()),
        (Target::ReferenceRead, Target::Shards(s)) | (Target::Shards(s), Target::ReferenceRead)
            if s.len() == 1 =>
        {
            Some(Target::Shards(s.clone()))
        }
        (Target::ReferenceRead, Target::Default) | (Target::Default, Target::ReferenceRead) => {
            Some(Target::Default)
        }
        (Target::ReferenceWrite, Target::All) | (Target::All, Target::ReferenceWrite) => {
            Some(Target::All)
        }
        _ => None,
    }
}
