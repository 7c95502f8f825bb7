//! The admin HTTP API (`GET /health`, `GET /metrics`, `/api/v1/*`) and the proxy's metrics.
//!
//! admin never depends on the proxy: what it needs from the running proxy is the
//! [`ProxyControl`] trait, which the proxy implements and hands to [`server::serve`].
//!
//! - [`metrics`]: every metric, on a per-proxy Prometheus registry.
//! - [`server`]: the axum server, bearer-token check and small handlers.
//! - `maps_json`: the JSON view of the live shard maps.
//! - `route_api`: `POST /api/v1/route` (how a statement would be routed).
//! - `error`: the JSON error responses.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;

mod error;
mod maps_json;
pub mod metrics;
mod route_api;
pub mod server;

pub use error::ApiError;
pub use metrics::{Outcome, ProxyMetrics, RecoveryAction, RouteKind};
pub use server::serve;

/// `HostStatus::role` of a shard's primary.
pub const ROLE_PRIMARY: &str = "primary";
/// `HostStatus::role` of a read replica.
pub const ROLE_REPLICA: &str = "replica";

/// What the admin API needs from the running proxy.
pub trait ProxyControl: Send + Sync + 'static {
    /// Shards with hosts, role ("primary"/"replica"), health and pool use.
    fn shards(&self) -> Vec<ShardStatus>;
    /// The live routing state (maps, tables) — swapped on reload.
    fn router(&self) -> Arc<shard_router::Router>;
    /// The live config.
    fn config(&self) -> Arc<config::Config>;
    /// Row counts per shard of every table on `map` (the proxy runs count(*) on each shard).
    fn row_counts(&self, map: &str) -> BoxFuture<'_, Result<Vec<ShardRowCount>, String>>;
    /// Re-reads the config file; Ok(summary) when swapped, Err(error text with file:line:col) when
    /// rejected (the running config stays).
    fn reload(&self) -> BoxFuture<'_, Result<String, String>>;
    /// Two-phase transactions recovery could not finish for longer than `in_doubt_after`.
    fn transactions(&self) -> Vec<InDoubt>;
    /// Runs an operator's decision for `gid` on every shard that holds it prepared (a commit is
    /// logged as the decision first). Ok once it ran everywhere it was needed.
    fn resolve(&self, gid: &str, action: ResolveAction) -> BoxFuture<'_, Result<(), ResolveError>>;
}

/// One in-doubt two-phase transaction, as `GET /api/v1/transactions` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InDoubt {
    /// The global transaction id (`sp_<proxy_id>_<boot>_<seq>`).
    pub gid: String,
    /// "commit" when a commit decision is logged, else "unknown" (recovery will roll it back).
    pub decision: String,
    /// Participant shards (from the decision log, or where it was found prepared).
    pub shards: Vec<String>,
    /// Shards where it may still be prepared (holding locks).
    pub pending_shards: Vec<String>,
    /// When it was first seen or decided (RFC 3339, UTC).
    pub first_seen: String,
    /// The last error recovery got for it (e.g. a shard that cannot be reached).
    pub last_error: Option<String>,
}

/// An operator's decision for an in-doubt transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveAction {
    /// COMMIT PREPARED everywhere (the decision is logged first).
    Commit,
    /// ROLLBACK PREPARED everywhere.
    Rollback,
}

impl ResolveAction {
    /// The action as the API spells it: "commit" | "rollback".
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveAction::Commit => "commit",
            ResolveAction::Rollback => "rollback",
        }
    }

    /// The `status` of a successful resolve: "committed" | "rolled back".
    pub fn done_status(self) -> &'static str {
        match self {
            ResolveAction::Commit => "committed",
            ResolveAction::Rollback => "rolled back",
        }
    }
}

/// Why a resolve did not (fully) happen; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No shard holds the gid and it is not in doubt (404).
    #[error("{0}")]
    NotFound(String),
    /// The action conflicts with the transaction's state, e.g. a rollback after a logged commit
    /// decision, or a commit still running (409).
    #[error("{0}")]
    Conflict(String),
    /// A shard could not be reached or refused the statement (502).
    #[error("{0}")]
    Backend(String),
}

/// One shard and its hosts, as `GET /api/v1/shards` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    /// Shard name from the config.
    pub name: String,
    /// The primary first, then the replicas.
    pub hosts: Vec<HostStatus>,
}

/// One backend host of a shard.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    /// The host's URL with the password hidden.
    pub url: String,
    /// [`ROLE_PRIMARY`] or [`ROLE_REPLICA`].
    pub role: String,
    /// Whether the proxy can currently reach it.
    pub healthy: bool,
    /// Circuit-breaker state ("closed" for now).
    pub circuit: String,
    /// Pool capacity.
    pub pool_size: usize,
    /// Connections checked out.
    pub pool_in_use: usize,
    /// Connections open and idle.
    pub pool_idle: usize,
    /// Clients waiting for a connection.
    pub pool_waiting: usize,
}

/// Rows of one table on one shard (for `?counts=true`).
#[derive(Debug, Clone, Serialize)]
pub struct ShardRowCount {
    /// Shard name.
    pub shard: String,
    /// Table name.
    pub table: String,
    /// `count(*)` on that shard.
    pub rows: i64,
}
