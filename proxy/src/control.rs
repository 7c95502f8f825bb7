//! What the admin API sees of a running proxy: the `admin::ProxyControl` implementation.

use std::sync::Arc;
use std::time::Duration;

use admin::{
    HostStatus, InDoubt, ProxyControl, ResolveAction, ResolveError, ShardRowCount, ShardStatus,
    ROLE_PRIMARY, ROLE_REPLICA,
};
use config::{Config, ShardConfig, ShardUrl, TableConfig};
use futures::future::BoxFuture;
use shard_router::Router;

use crate::context::ProxyContext;

/// The `circuit` of every host until a circuit breaker exists.
const CIRCUIT_CLOSED: &str = "closed";

/// `application_name` of the admin API's own connections, so DBAs can tell them apart.
const APPLICATION_NAME: &str = "shardproxy-admin";

/// Why row counts could not be taken; the text is what the admin API answers.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No `[maps.NAME]` with that name.
    #[error("no shard map named {0:?}")]
    UnknownMap(String),
    /// The shard did not accept a connection. `url` hides the password.
    #[error("shard {shard}: cannot connect to {url}: {source}")]
    Connect {
        /// Shard name.
        shard: String,
        /// The shard's URL, password hidden.
        url: String,
        /// What the driver said.
        source: tokio_postgres::Error,
    },
    /// `count(*)` failed (e.g. the table does not exist on that shard).
    #[error("shard {shard}: count(*) on {table} failed: {source}")]
    Count {
        /// Shard name.
        shard: String,
        /// Table name.
        table: String,
        /// What the server said.
        source: tokio_postgres::Error,
    },
}

/// The admin API's handle on one running proxy.
pub struct ProxyControlImpl(pub Arc<ProxyContext>);

impl ProxyControl for ProxyControlImpl {
    fn shards(&self) -> Vec<ShardStatus> {
        shard_statuses(&self.0)
    }

    fn router(&self) -> Arc<Router> {
        self.0.router.load_full()
    }

    fn config(&self) -> Arc<Config> {
        self.0.config.load_full()
    }

    fn row_counts(&self, map: &str) -> BoxFuture<'_, Result<Vec<ShardRowCount>, String>> {
        let map = map.to_owned();
        Box::pin(async move { row_counts(&self.0, &map).await.map_err(|e| e.to_string()) })
    }

    fn reload(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(crate::reload::reload(&self.0))
    }

    fn transactions(&self) -> Vec<InDoubt> {
        self.0.twopc.in_doubt()
    }

    fn resolve(&self, gid: &str, action: ResolveAction) -> BoxFuture<'_, Result<(), ResolveError>> {
        let gid = gid.to_owned();
        Box::pin(async move { crate::twopc::resolve::resolve(&self.0, &gid, action).await })
    }
}

/// Every shard with its pool use. Health is always true for now: the pools do not record
/// failed checkouts yet, and replicas are not connected to at all.
pub fn shard_statuses(ctx: &ProxyContext) -> Vec<ShardStatus> {
    let config = ctx.config.load();
    config
        .shards
        .iter()
        .enumerate()
        .map(|(i, shard)| {
            let status = ctx.pools.get(i).map(|p| p.status());
            let primary = HostStatus {
                url: shard.url.to_string(),
                role: ROLE_PRIMARY.to_owned(),
                healthy: true,
                circuit: CIRCUIT_CLOSED.to_owned(),
                pool_size: status.map_or(0, |s| s.max_size),
                pool_in_use: status.map_or(0, |s| s.size.saturating_sub(s.available)),
                pool_idle: status.map_or(0, |s| s.available),
                pool_waiting: status.map_or(0, |s| s.waiting),
            };
            let replicas = shard.replicas.iter().map(|url| HostStatus {
                url: url.to_string(),
                role: ROLE_REPLICA.to_owned(),
                healthy: true,
                circuit: CIRCUIT_CLOSED.to_owned(),
                pool_size: 0,
                pool_in_use: 0,
                pool_idle: 0,
                pool_waiting: 0,
            });
            ShardStatus {
                name: shard.name.clone(),
                hosts: std::iter::once(primary).chain(replicas).collect(),
            }
        })
        .collect()
}

/// `count(*)` of every table on `map`, on every shard (shards in parallel), in shard order.
pub async fn row_counts(ctx: &ProxyContext, map: &str) -> Result<Vec<ShardRowCount>, ControlError> {
    let config = ctx.config.load_full();
    if !config.maps.contains_key(map) {
        return Err(ControlError::UnknownMap(map.to_owned()));
    }
    let tables = tables_on_map(&config, map);
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let timeout = config.pool.connect_timeout;
    let per_shard = config
        .shards
        .iter()
        .map(|shard| count_on_shard(shard, &tables, timeout));
    let mut counts = Vec::new();
    for shard_counts in futures::future::join_all(per_shard).await {
        counts.extend(shard_counts?);
    }
    Ok(counts)
}

/// Tables sharded by `map`, in name order.
fn tables_on_map(config: &Config, map: &str) -> Vec<String> {
    config
        .tables
        .iter()
        .filter(|(_, t)| matches!(t, TableConfig::Sharded { map: m, .. } if m == map))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Counts `tables` on one shard over one short-lived connection of its own, so the count never
/// takes a pooled backend away from clients.
async fn count_on_shard(
    shard: &ShardConfig,
    tables: &[String],
    connect_timeout: Duration,
) -> Result<Vec<ShardRowCount>, ControlError> {
    let (client, connection) = driver_config(&shard.url, connect_timeout)
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|source| ControlError::Connect {
            shard: shard.name.clone(),
            url: shard.url.to_string(),
            source,
        })?;
    // Ends by itself when `client` is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut counts = Vec::with_capacity(tables.len());
    for table in tables {
        let sql = format!("SELECT count(*) FROM {}", quote_ident(table));
        let count_failed = |source| ControlError::Count {
            shard: shard.name.clone(),
            table: table.clone(),
            source,
        };
        let row = client.query_one(&sql, &[]).await.map_err(count_failed)?;
        let rows: i64 = row.try_get(0).map_err(count_failed)?;
        counts.push(ShardRowCount {
            shard: shard.name.clone(),
            table: table.clone(),
            rows,
        });
    }
    Ok(counts)
}

/// tokio-postgres settings for a shard URL (no TLS: the URL parser refuses modes that need it).
pub(crate) fn driver_config(url: &ShardUrl, connect_timeout: Duration) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&url.host)
        .port(url.port)
        .user(&url.user)
        .dbname(&url.dbname)
        .application_name(APPLICATION_NAME)
        .connect_timeout(connect_timeout);
    if let Some(password) = &url.password {
        cfg.password(password);
    }
    cfg
}

/// A double-quoted identifier: config table names are already folded, so they are used verbatim.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const TEXT: &str = r#"
[pool]
size = 7

[[shards]]
name = "s0"
url = "postgres://u:secret@127.0.0.1:1/db"
replicas = ["postgres://u:secret@127.0.0.1:2/db"]

[[shards]]
name = "s1"
url = "postgres://u@127.0.0.1:3/db"

[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 4

[maps.empty]
strategy = "hash"
key_type = "bigint"
buckets = 4

[tables]
users = { map = "users", key = "id" }
orders = { map = "users", key = "user_id" }
countries = { reference = true }
"#;

    fn context() -> ProxyContext {
        ProxyContext::new(Config::parse(TEXT, "f.toml").unwrap())
    }

    #[tokio::test]
    async fn shards_with_hosts_and_pools() {
        let ctx = context();
        let shards = shard_statuses(&ctx);
        assert_eq!(shards.len(), 2);
        let s0 = &shards[0];
        assert_eq!(s0.name, "s0");
        assert_eq!(s0.hosts.len(), 2);
        assert_eq!(s0.hosts[0].role, ROLE_PRIMARY);
        assert_eq!(s0.hosts[0].pool_size, 7);
        assert_eq!(s0.hosts[0].pool_in_use, 0);
        assert!(!s0.hosts[0].url.contains("secret"), "{}", s0.hosts[0].url);
        assert_eq!(s0.hosts[1].role, ROLE_REPLICA);
        assert!(!s0.hosts[1].url.contains("secret"));
        assert_eq!(shards[1].hosts.len(), 1);
    }

    #[test]
    fn tables_of_a_map() {
        let config = Config::parse(TEXT, "f.toml").unwrap();
        assert_eq!(tables_on_map(&config, "users"), vec!["orders", "users"]);
        assert!(tables_on_map(&config, "empty").is_empty());
    }

    #[tokio::test]
    async fn counts_of_unknown_or_empty_maps() {
        let ctx = context();
        let err = row_counts(&ctx, "nope").await.unwrap_err();
        assert_eq!(err.to_string(), "no shard map named \"nope\"");
        assert!(row_counts(&ctx, "empty").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unreachable_shard_error_hides_the_password() {
        let ctx = context();
        let err = row_counts(&ctx, "users").await.unwrap_err().to_string();
        assert!(err.starts_with("shard s0: cannot connect to "), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("We\"ird"), "\"We\"\"ird\"");
    }
}
