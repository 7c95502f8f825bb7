//! Differential test of scatter-gather SELECTs (issue 4): one oracle PostgreSQL holding all rows
//! and three shards behind the proxy holding the same seeded rows (table `t`, hash-sharded on
//! its bigint key; int, text, numeric, float8, bool and timestamp columns with NULLs), loaded
//! into the shards through the proxy. A seeded generator writes SELECTs over filters,
//! projections, ORDER BY, LIMIT/OFFSET, aggregates, GROUP BY, HAVING and DISTINCT; each runs on
//! the oracle and through the proxy, with the simple protocol (text results) and the extended
//! protocol (binary results, some with bind parameters; half of the queries also through
//! tokio-postgres, which uses named statements). Columns (name, type OID, length,
//! modifier, format), parameter types, command tags and every value must be equal, rows in the
//! same order as far as ORDER BY defines one. A 0A000 refusal counts as a refusal; anything
//! else that differs is a mismatch. There must be no mismatch, and refusals under 5%.
//!
//! `SCATTER_SEED=n` replays a run (the seed is printed and in every failure message);
//! `SCATTER_QUERIES=n` changes the number of queries (default 1200).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "scatter_diff/aggregates.rs"]
mod aggregates;
#[path = "scatter_diff/compare.rs"]
mod compare;
#[path = "scatter_diff/data.rs"]
mod data;
#[path = "scatter_diff/driver.rs"]
mod driver;
#[path = "scatter_diff/filters.rs"]
mod filters;
#[path = "scatter_diff/querygen.rs"]
mod querygen;
#[path = "scatter_diff/summary.rs"]
mod summary;
#[path = "scatter_diff/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use compare::{judge, Verdict};
use integration::{config_toml, connect_url, fresh_dbs, servers, start_proxy};
use querygen::Query;
use rand::rngs::StdRng;
use rand::SeedableRng;
use summary::{cause, report, QueryResult};
use wire::{Conn, ParamFormat};

/// Rows in `t`.
const ROWS: usize = 3000;
/// Queries generated unless SCATTER_QUERIES says otherwise.
const DEFAULT_QUERIES: usize = 1200;
/// Concurrent clients, each with its own connections to the oracle and the proxy.
const WORKERS: usize = 3;
/// Bound for the whole test.
const TEST_LIMIT: Duration = Duration::from_secs(240);
/// Bound for one query (all its protocol runs).
const QUERY_LIMIT: Duration = Duration::from_secs(30);

/// The seed of this run (printed, and in every failure message).
fn seed() -> u64 {
    let seed = std::env::var("SCATTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("scatter_diff seed: {seed} (SCATTER_SEED={seed} to replay)");
    seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_shard_selects_answer_exactly_as_one_postgresql() {
    // RUST_LOG=debug shows the proxy's log with the test output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let seed = seed();
    let queries = std::env::var("SCATTER_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_QUERIES);
    tokio::time::timeout(TEST_LIMIT, run(seed, queries))
        .await
        .unwrap_or_else(|_| panic!("did not finish within {TEST_LIMIT:?} (seed {seed})"));
}

async fn run(seed: u64, count: usize) {
    let started = Instant::now();
    let dbs = fresh_dbs(3).await;
    let proxy = start_proxy(&config_toml(&dbs, "", data::MAPS_TOML)).await;
    let oracle_addr = SocketAddr::from(([127, 0, 0, 1], servers().oracle.port()));
    let mut oracle = Conn::connect(oracle_addr, "postgres", &dbs.name)
        .await
        .unwrap();
    let mut through_proxy = Conn::connect(proxy.addr, "postgres", &dbs.name)
        .await
        .unwrap();
    let created = oracle.simple(data::SCHEMA).await.unwrap();
    assert!(created.is_ok(), "{created:?}");
    let created = through_proxy.simple(data::SCHEMA).await.unwrap();
    assert!(
        created.is_ok(),
        "CREATE TABLE through the proxy (seed {seed}): {created:?}"
    );
    let rows = data::rows(&mut StdRng::seed_from_u64(seed), ROWS);
    data::load(&mut oracle, &rows).await.unwrap();
    data::load(&mut through_proxy, &rows)
        .await
        .unwrap_or_else(|e| panic!("loading through the proxy (seed {seed}): {e}"));
    let mut per_shard = Vec::new();
    for url in &dbs.shard_urls {
        let shard = connect_url(url).await;
        let n: i64 = shard
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        per_shard.push(n);
    }
    assert_eq!(
        per_shard.iter().sum::<i64>(),
        ROWS as i64,
        "rows per shard {per_shard:?} (seed {seed})"
    );
    assert!(
        per_shard.iter().all(|n| *n > 0),
        "every shard holds rows: {per_shard:?} (seed {seed})"
    );
    eprintln!(
        "scatter_diff: {ROWS} rows loaded ({per_shard:?} per shard) in {:.1?}",
        started.elapsed()
    );

    let queries = querygen::generate(seed, count);
    let run_started = Instant::now();
    let workers = (0..WORKERS).map(|w| {
        let mine: Vec<(usize, Query)> = queries
            .iter()
            .cloned()
            .enumerate()
            .filter(|(i, _)| i % WORKERS == w)
            .collect();
        worker(mine, oracle_addr, proxy.addr, dbs.name.clone())
    });
    let mut results: Vec<QueryResult> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();
    results.sort_by_key(|r| r.index);
    eprintln!(
        "scatter_diff: {} queries in {:.1?} (total {:.1?})",
        results.len(),
        run_started.elapsed(),
        started.elapsed()
    );
    report(seed, &queries, &results);
    proxy.shutdown().await;
}

/// One worker's connections: raw frontends and tokio-postgres clients, to both sides.
struct Sides {
    oracle: Conn,
    proxy: Conn,
    oracle_driver: tokio_postgres::Client,
    proxy_driver: tokio_postgres::Client,
}

impl Sides {
    async fn open(oracle: SocketAddr, proxy: SocketAddr, db: &str) -> Result<Sides, String> {
        Ok(Sides {
            oracle: Conn::connect(oracle, "postgres", db).await?,
            proxy: Conn::connect(proxy, "postgres", db).await?,
            oracle_driver: driver::connect(oracle, db).await?,
            proxy_driver: driver::connect(proxy, db).await?,
        })
    }
}

/// Runs `queries` on its own connections; connections that fail are reopened.
async fn worker(
    queries: Vec<(usize, Query)>,
    oracle_addr: SocketAddr,
    proxy_addr: SocketAddr,
    db: String,
) -> Vec<QueryResult> {
    let mut out = Vec::new();
    let mut sides = None;
    for (index, query) in queries {
        if sides.is_none() {
            match Sides::open(oracle_addr, proxy_addr, &db).await {
                Ok(s) => sides = Some(s),
                Err(e) => {
                    out.push(QueryResult {
                        index,
                        kind: query.kind,
                        verdict: Verdict::Mismatch(format!("cannot connect: {e}")),
                        causes: vec!["cannot connect".into()],
                    });
                    continue;
                }
            }
        }
        let Some(s) = sides.as_mut() else {
            continue;
        };
        // Every other query also goes through a real driver (named statements).
        let with_driver = index % 2 == 0 && query.with_params.is_none();
        let checked = tokio::time::timeout(QUERY_LIMIT, check(s, &query, with_driver)).await;
        let (verdict, causes) = match checked {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                sides = None;
                let cause = format!("connection failed: {e}");
                (Verdict::Mismatch(cause.clone()), vec![cause])
            }
            Err(_) => {
                sides = None;
                let cause = format!("no answer within {QUERY_LIMIT:?}");
                (Verdict::Mismatch(cause.clone()), vec![cause])
            }
        };
        out.push(QueryResult {
            index,
            kind: query.kind,
            verdict,
            causes,
        });
    }
    out
}

/// Runs one query on both sides: simple protocol, extended protocol (binary results, with
/// the query's parameters if it has some) and, when asked, through tokio-postgres.
async fn check(
    s: &mut Sides,
    q: &Query,
    with_driver: bool,
) -> Result<(Verdict, Vec<String>), String> {
    let mut mismatches = Vec::new();
    let mut causes = Vec::new();
    let mut refusal = None;
    let mut record = |verdict: Verdict, mode: &str| match verdict {
        Verdict::Same => {}
        Verdict::Refused(why) => refusal = Some(why),
        Verdict::Mismatch(diff) => {
            causes.push(cause(mode, &diff));
            mismatches.push(format!("[{mode}] {diff}"));
        }
    };
    let oracle = |e: String| format!("oracle: {e}");
    let proxy = |e: String| format!("proxy: {e}");

    let o = s.oracle.simple(&q.sql).await.map_err(oracle)?;
    let p = s.proxy.simple(&q.sql).await.map_err(proxy)?;
    record(judge(&o, &p, &q.order), "simple protocol, text");

    let (sql, params, format) = match &q.with_params {
        Some((sql, params, format)) => (sql.as_str(), params.as_slice(), *format),
        None => (q.sql.as_str(), &[][..], ParamFormat::Text),
    };
    let o = s
        .oracle
        .extended(sql, params, format)
        .await
        .map_err(oracle)?;
    let p = s.proxy.extended(sql, params, format).await.map_err(proxy)?;
    let mode = if params.is_empty() {
        "extended protocol, binary".to_string()
    } else {
        format!("extended protocol, binary, {format:?} parameters {params:?}: {sql}")
    };
    record(judge(&o, &p, &q.order), &mode);

    if with_driver {
        let o = driver::run(&s.oracle_driver, &q.sql)
            .await
            .map_err(oracle)?;
        let p = driver::run(&s.proxy_driver, &q.sql).await.map_err(proxy)?;
        record(
            judge(&o, &p, &q.order),
            "tokio-postgres, named statement, binary",
        );
    }

    let verdict = if !mismatches.is_empty() {
        Verdict::Mismatch(mismatches.join("\n"))
    } else if let Some(why) = refusal {
        Verdict::Refused(why)
    } else {
        Verdict::Same
    };
    Ok((verdict, causes))
}
