//! The real `pgbench` through the proxy: initialisation (COPY, VACUUM, DDL), read-only runs in
//! every query mode with more clients than backends, and a TPC-B-like run checked for consistency.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::Stdio;
use std::time::Duration;

use integration::{config_toml, connect, connect_url, fresh_dbs, pg_tool, start_proxy, TestDbs};
use tokio::process::Command;
use tokio::time::timeout;

/// The proxy login used by every test here.
const USER: &str = "bench";
/// Its password.
const PASSWORD: &str = "bench-secret";
/// Upper bound for one pgbench run (init or a 3 s benchmark).
const LIMIT: Duration = Duration::from_secs(60);

/// A proxy config for `dbs` with scram auth and `pool_size` backends per shard.
fn proxy_config(dbs: &TestDbs, pool_size: usize) -> String {
    let auth = format!(
        "[auth]\nmethod = \"scram-sha-256\"\nusers = [ {{ name = \"{USER}\", password = \"{PASSWORD}\" }} ]\n"
    );
    let toml = config_toml(dbs, &auth, "");
    assert!(
        toml.contains("\nsize = 4\n"),
        "harness pool layout changed:\n{toml}"
    );
    toml.replacen("\nsize = 4\n", &format!("\nsize = {pool_size}\n"), 1)
}

/// The proxy's connection string for pgbench.
fn proxy_url(proxy: &proxy::RunningProxy, db: &str) -> String {
    format!(
        "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}?connect_timeout=10",
        proxy.addr.port()
    )
}

/// Runs pgbench with `args` then the connection string; panics with its output if it fails.
async fn pgbench(url: &str, args: &[&str]) -> String {
    let child = Command::new(pg_tool("pgbench"))
        .args(args)
        .arg(url)
        .env_remove("PGPASSWORD")
        .env_remove("PGOPTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("pgbench {args:?} did not finish in time"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pgbench {args:?} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    format!("{stdout}\n{stderr}")
}

/// The integer after `label` in pgbench's report (e.g. "number of failed transactions: ").
fn report_number(report: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in pgbench output:\n{report}"));
    let digits: String = line
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|e| panic!("bad number after {label:?} ({e}):\n{report}"))
}

/// Transactions pgbench reports as processed and as failed.
fn processed_and_failed(report: &str) -> (u64, u64) {
    (
        report_number(report, "number of transactions actually processed:"),
        report_number(report, "number of failed transactions:"),
    )
}

/// `pgbench -i -s 1` through the proxy; returns the proxy client it checks with.
async fn init_through_proxy(proxy: &proxy::RunningProxy, db: &str) -> tokio_postgres::Client {
    let url = proxy_url(proxy, db);
    let out = pgbench(&url, &["-i", "-s", "1", "-q"]).await;
    assert!(out.contains("done in"), "{out}");
    connect(proxy.addr, USER, Some(PASSWORD), db).await
}

/// A single count(*) through `client`.
async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_and_loads_the_tables() {
    let dbs = fresh_dbs(1).await;
    let proxy = start_proxy(&proxy_config(&dbs, 4)).await;
    let client = init_through_proxy(&proxy, &dbs.name).await;

    assert_eq!(count(&client, "pgbench_accounts").await, 100_000);
    assert_eq!(count(&client, "pgbench_branches").await, 1);
    assert_eq!(count(&client, "pgbench_tellers").await, 10);
    assert_eq!(count(&client, "pgbench_history").await, 0);
    let row = client
        .query_one(
            "SELECT min(aid), max(aid), count(DISTINCT aid), sum(abalance) FROM pgbench_accounts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, i32>(1), 100_000);
    assert_eq!(row.get::<_, i64>(2), 100_000);
    assert_eq!(row.get::<_, i64>(3), 0);

    // The load landed on the shard, primary keys (the "p" init step) included.
    let shard = connect_url(&dbs.shard_urls[0]).await;
    assert_eq!(count(&shard, "pgbench_accounts").await, 100_000);
    let pkeys: i64 = shard
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'p' \
             AND conrelid::regclass::text LIKE 'pgbench_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        pkeys, 3,
        "pgbench_branches, _tellers and _accounts get primary keys"
    );
    // The "v" step ran VACUUM through the proxy.
    let vacuumed: i64 = shard
        .query_one(
            "SELECT count(*) FROM pg_stat_user_tables \
             WHERE relname LIKE 'pgbench_%' AND last_vacuum IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(vacuumed, 4, "every pgbench table vacuumed");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_only_in_every_query_mode_with_shared_backends() {
    let dbs = fresh_dbs(1).await;
    // 8 clients on 4 backends: statements prepared by one client run on backends others used.
    let proxy = start_proxy(&proxy_config(&dbs, 4)).await;
    let _client = init_through_proxy(&proxy, &dbs.name).await;
    let url = proxy_url(&proxy, &dbs.name);

    for mode in ["simple", "extended", "prepared"] {
        let report = pgbench(
            &url,
            &["-n", "-S", "-T", "3", "-c", "8", "-j", "2", "-M", mode],
        )
        .await;
        assert!(report.contains(&format!("query mode: {mode}")), "{report}");
        assert_eq!(report_number(&report, "number of clients:"), 8, "{report}");
        let (processed, failed) = processed_and_failed(&report);
        assert_eq!(failed, 0, "-M {mode}:\n{report}");
        assert!(
            processed > 0,
            "-M {mode}: no transaction processed:\n{report}"
        );
    }

    // The shard never had more than the pool's 4 backends for this database (2PC recovery's
    // own connection is not one of them).
    let shard = connect_url(&dbs.shard_urls[0]).await;
    let backends: i64 = shard
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() \
             AND application_name <> 'shardproxy-2pc-recovery'",
            &[&dbs.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(backends <= 4, "{backends} backends for a pool of 4");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpcb_like_run_stays_consistent() {
    let dbs = fresh_dbs(1).await;
    // 4 clients on 2 backends: transactions must keep their backend from BEGIN to END. All
    // clients share ONE pgbench thread (-j 1): pgbench prepares with a blocking PQprepare, so a
    // Parse that waited for a backend would stall the neighbour holding it mid-transaction
    // until the checkout timed out. The proxy answers Parses of known statements without a
    // backend, which this run proves.
    let proxy = start_proxy(&proxy_config(&dbs, 2)).await;
    let client = init_through_proxy(&proxy, &dbs.name).await;
    let url = proxy_url(&proxy, &dbs.name);

    let report = pgbench(
        &url,
        &["-n", "-T", "3", "-c", "4", "-j", "1", "-M", "prepared"],
    )
    .await;
    assert!(report.contains("TPC-B (sort of)"), "{report}");
    let (processed, failed) = processed_and_failed(&report);
    assert_eq!(failed, 0, "{report}");
    assert!(processed > 0, "no transaction processed:\n{report}");

    let row = client
        .query_one(
            "SELECT (SELECT sum(bbalance) FROM pgbench_branches), \
                    (SELECT sum(tbalance) FROM pgbench_tellers), \
                    (SELECT sum(abalance) FROM pgbench_accounts), \
                    (SELECT sum(delta) FROM pgbench_history), \
                    (SELECT count(*) FROM pgbench_history)",
            &[],
        )
        .await
        .unwrap();
    let branches: i64 = row.get(0);
    let tellers: i64 = row.get(1);
    let accounts: i64 = row.get(2);
    let history: i64 = row.get(3);
    let history_rows: i64 = row.get(4);
    assert_eq!(branches, history, "sum(bbalance) vs sum(delta)");
    assert_eq!(tellers, history, "sum(tbalance) vs sum(delta)");
    assert_eq!(accounts, history, "sum(abalance) vs sum(delta)");
    // Each counted transaction committed exactly one history row, and nothing else did.
    assert_eq!(
        u64::try_from(history_rows).unwrap(),
        processed,
        "history rows vs transactions pgbench counted:\n{report}"
    );
    proxy.shutdown().await;
}
