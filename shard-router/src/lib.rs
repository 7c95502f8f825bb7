//! Pure routing logic: given a statement (and its bound parameters), decide which shards it runs
//! on. No I/O, no clock, no files: deterministic and unit-testable.
//!
//! - [`placement`]: runtime shard maps and where a key lives (INTERFACE.md section 3).
//! - [`keys`]: canonical key values from SQL literals and bind parameters (text/binary).
//! - [`copy`]: reading the key field out of COPY text/CSV rows.
//! - `analyze`: SQL analysis with sqlparser into a cached [`Statement`].
//! - `plan`: a [`Plan`] from a statement and its parameters.

pub mod copy;
pub mod keys;
pub mod placement;
mod tables;

mod analyze;
pub mod merge;
mod plan;

use std::sync::Arc;

use config::Config;

pub use analyze::{CopyIn, ParseCacheStats, Prepared, Statement};
pub use placement::ShardMap;
pub use tables::{TableRule, Tables};

/// What a statement does (decides pass-through vs. merge vs. two-phase commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT / VALUES / TABLE / SHOW without side effects.
    Read,
    /// INSERT, UPDATE, DELETE, MERGE, SELECT ... FOR UPDATE/SHARE, and functions we cannot see into.
    Write,
    /// CREATE / ALTER / DROP / TRUNCATE / CREATE INDEX / COMMENT ...
    Ddl,
    /// COPY ... FROM STDIN.
    CopyIn,
    /// COPY ... TO STDOUT.
    CopyOut,
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT / RELEASE / ROLLBACK TO.
    Savepoint,
    /// PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED.
    TwoPhase,
    /// SET / SHOW / RESET / DISCARD / LISTEN / VACUUM ... (session or maintenance).
    Utility,
}

/// Where a statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The default (first) shard: unlisted tables, catalog and utility statements.
    Default,
    /// These shards (sorted, no duplicates; one element = a single-shard statement).
    Shards(Vec<usize>),
    /// Every shard (no usable key; DDL and maintenance on sharded/reference tables).
    All,
    /// A read of reference tables only: any one shard can answer (the proxy picks).
    ReferenceRead,
    /// A write to reference tables: every shard, atomically once 2PC exists.
    ReferenceWrite,
    /// An INSERT whose rows live on different shards: each part is the statement for one shard.
    Split(Vec<ShardPart>),
}

/// The part of a split INSERT for one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPart {
    /// Shard index.
    pub shard: usize,
    /// The rewritten statement (only this shard's rows; parameters renumbered $1..).
    pub sql: String,
    /// For each `$k` of `sql` (k = i + 1), the index of the original parameter it takes.
    pub params: Vec<usize>,
}

/// The routing decision for one execution of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Where it runs.
    pub target: Target,
    /// What it is.
    pub kind: StatementKind,
    /// Why (for `POST /api/v1/route` and logs), e.g. "users.id = 5 -> bucket 17 -> s1".
    pub reason: String,
}

impl Plan {
    /// The route kind of INTERFACE.md section 5: single|multi|all|reference|default.
    pub fn route_kind(&self) -> &'static str {
        match &self.target {
            Target::Default => "default",
            Target::Shards(s) if s.len() == 1 => "single",
            Target::Shards(_) => "multi",
            Target::Split(p) if p.len() == 1 => "single",
            Target::Split(_) => "multi",
            Target::All => "all",
            Target::ReferenceRead | Target::ReferenceWrite => "reference",
        }
    }

    /// The shard indexes it touches, given the shard count (ReferenceRead reports the default shard).
    pub fn shards(&self, shard_count: usize) -> Vec<usize> {
        match &self.target {
            Target::Default | Target::ReferenceRead => vec![0],
            Target::Shards(s) => s.clone(),
            Target::All | Target::ReferenceWrite => (0..shard_count).collect(),
            Target::Split(parts) => parts.iter().map(|p| p.shard).collect(),
        }
    }
}

/// Bound parameter values from a Bind message (empty for the simple protocol).
#[derive(Debug, Clone, Copy, Default)]
pub struct Params<'a> {
    /// One per parameter; None is SQL NULL.
    pub values: &'a [Option<&'a [u8]>],
    /// Format per parameter (0 text, 1 binary), already expanded to one per value.
    pub formats: &'a [i16],
    /// Type OIDs declared at Parse (may be shorter than `values`; 0 = unspecified).
    pub types: &'a [u32],
}

/// A statement the router refuses, with the SQLSTATE the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RouteError {
    /// SQLSTATE, e.g. "0A000" (cannot be done across shards), "22023" (bad key value),
    /// "23502" (NULL shard key), "42601" (syntax), "08P01" (missing parameter).
    pub code: &'static str,
    /// Human-readable reason naming the table/column/value.
    pub message: String,
}

impl RouteError {
    /// A refusal with this SQLSTATE and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> RouteError {
        RouteError {
            code,
            message: message.into(),
        }
    }
}

/// Routing state built from one validated config; immutable, swapped whole on reload.
pub struct Router {
    shard_names: Vec<String>,
    maps: Vec<ShardMap>,
    tables: Tables,
    cache: analyze::ParseCache,
    merges: merge::MergePlanCache,
}

impl Router {
    /// Builds the router for `config` (maps, table rules, an empty parse cache).
    pub fn new(config: &Config) -> Router {
        Router {
            shard_names: config.shards.iter().map(|s| s.name.clone()).collect(),
            maps: config.maps.values().map(ShardMap::new).collect(),
            tables: Tables::new(config),
            cache: analyze::ParseCache::new(analyze::PARSE_CACHE_CAPACITY),
            merges: merge::MergePlanCache::new(),
        }
    }

    /// Shard names in config order.
    pub fn shard_names(&self) -> &[String] {
        &self.shard_names
    }

    /// The runtime shard maps.
    pub fn maps(&self) -> &[ShardMap] {
        &self.maps
    }

    /// A shard map by name.
    pub fn map(&self, name: &str) -> Option<&ShardMap> {
        self.maps.iter().find(|m| m.name() == name)
    }

    /// The table rules.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Analyses a statement text, once per distinct text (bounded LRU cache).
    pub fn prepare(&self, sql: &str) -> Result<Arc<Statement>, RouteError> {
        analyze::prepare(self, sql)
    }

    /// How to merge the shards' answers to the SELECT `sql` (exact text, as sent to shards)
    /// into one PostgreSQL's answer; `local_groups`: its GROUP BY / DISTINCT groups never span
    /// shards. Cached by text; refusals (0A000) name what cannot be merged.
    pub fn merge_plan(
        &self,
        sql: &str,
        local_groups: bool,
    ) -> Result<Arc<merge::MergePlan>, RouteError> {
        self.merges.get(sql, local_groups)
    }

    /// The plan for one execution of `stmt` with these parameters.
    pub fn plan(&self, stmt: &Statement, params: &Params<'_>) -> Result<Plan, RouteError> {
        plan::plan(self, stmt, params)
    }

    /// Prepares a simple-protocol query (no parameters): texts that differ only in their
    /// constants (`... WHERE aid = 17` / `= 18`) share one analysis, cached by normalized text.
    pub fn prepare_query(&self, sql: &str) -> Result<Prepared, RouteError> {
        analyze::prepare_query(self, sql)
    }

    /// The plan of a query from `prepare_query`: the same plan `prepare` + `plan` give its text.
    pub fn plan_query(&self, prepared: &Prepared) -> Result<Plan, RouteError> {
        analyze::plan_query(self, prepared)
    }

    /// `prepare_query` + `plan_query` (simple protocol).
    pub fn route_sql(&self, sql: &str) -> Result<Plan, RouteError> {
        let prepared = self.prepare_query(sql)?;
        self.plan_query(&prepared)
    }

    /// Counters of the parse cache (analyses made, normalized-text hits and fallbacks).
    pub fn parse_cache_stats(&self) -> ParseCacheStats {
        self.cache.stats()
    }
}
