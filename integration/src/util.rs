//! Small helpers shared by the integration suites.
#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::future::Future;
use std::time::Duration;

use proxy::RunningProxy;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::{config_toml, fresh_dbs, start_proxy, TestDbs};

/// Upper bound for a whole test, so a hang fails instead of blocking the suite.
pub const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Runs a test body with a time limit and the proxy's log (RUST_LOG) in the test output.
pub async fn bounded<F: Future<Output = ()>>(test: F) {
    // RUST_LOG=debug shows the proxy's log with the test output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {TEST_LIMIT:?}"));
}

/// A fresh database on one shard and a proxy over it (trust) with this `[pool]` size and
/// checkout timeout.
pub async fn proxy_with_pool(size: usize, checkout_ms: u64) -> (TestDbs, RunningProxy) {
    let dbs = fresh_dbs(1).await;
    let toml = config_toml(&dbs, "", "");
    let default = "[pool]\nsize = 4\nmode = \"transaction\"\ncheckout_timeout_ms = 5000\n";
    assert!(toml.contains(default), "harness [pool] changed:\n{toml}");
    let pool = format!(
        "[pool]\nsize = {size}\nmode = \"transaction\"\ncheckout_timeout_ms = {checkout_ms}\n"
    );
    let proxy = start_proxy(&toml.replace(default, &pool)).await;
    (dbs, proxy)
}

/// The SQLSTATE of a client error.
pub fn code(err: &tokio_postgres::Error) -> Option<&str> {
    err.code().map(SqlState::code)
}

/// `SHOW name`.
pub async fn show(client: &Client, name: &str) -> String {
    client
        .query_one(&format!("SHOW {name}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Runs SQL (simple protocol), panicking on error.
pub async fn exec(client: &Client, sql: &str) {
    client.batch_execute(sql).await.unwrap();
}

/// The single bigint a query returns.
pub async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}
