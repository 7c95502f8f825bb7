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
pub use metrics::{Outcome, ProxyMetrics, RouteKind};
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
