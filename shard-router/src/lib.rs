//! Pure routing logic: given a statement (and later its bound parameters), decide which shards
//! it runs on. No I/O, no clock, no files: deterministic and unit-testable.
//!
//! Today every statement goes to the default shard; shard maps, placement and SQL analysis
//! arrive with the routing issue and plug in behind [`Router::route_sql`].

use config::Config;

/// Where a statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The default (first) shard: unlisted tables, catalog and utility statements.
    Default,
    /// Exactly one shard (index into the config's shards).
    Shard(usize),
}

/// A statement the router refuses, with the SQLSTATE the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RouteError {
    /// SQLSTATE, e.g. "0A000".
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
}

/// Routing state built from one validated config; swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Router {
    shard_count: usize,
}

impl Router {
    /// Builds the router for `config`.
    pub fn new(config: &Config) -> Router {
        Router {
            shard_count: config.shards.len(),
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// Decides where a SQL text (simple Query or Parse) runs.
    pub fn route_sql(&self, _sql: &str) -> Result<Plan, RouteError> {
        Ok(Plan::Default)
    }
}

impl Plan {
    /// The single shard index this plan runs on.
    pub fn shard(&self) -> usize {
        match self {
            Plan::Default => 0,
            Plan::Shard(s) => *s,
        }
    }
}
