//! The bank test: accounts hash-sharded over three shards, clients moving money between
//! accounts on different shards while the proxy (a real `shardproxy` process) is SIGKILLed and
//! restarted several times. Money is neither created nor destroyed, and no prepared transaction
//! is left behind. Checked on the shards directly.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::KeyValue;
use integration::process::{metric_sum, with_proxy_keys_if_known, ProxyProcess};
use integration::{config_toml, connect_url, fresh_dbs, try_connect};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shard_router::ShardMap;
use tokio_postgres::Client;

/// The proxy under test, as a real process.
const BIN: &str = env!("CARGO_BIN_EXE_sp-under-test");

const ACCOUNTS: i64 = 200;
const INITIAL_BALANCE: i64 = 1_000;
const CLIENTS: u64 = 8;
/// How long the clients transfer; the proxy is killed [`KILLS`] times in that span.
const RUN: Duration = Duration::from_secs(20);
const KILLS: u32 = 3;
/// One transfer (four statements) may take this long before the client gives up on it.
const TRANSFER_LIMIT: Duration = Duration::from_secs(10);
/// After the run, recovery may take this long to leave no prepared transaction.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

const MAPS: &str = r#"
[maps.accounts]
strategy = "hash"
key_type = "bigint"
buckets = 128

[tables]
accounts = { map = "accounts", key = "id" }
"#;

/// Moves `amount` from account `from` to `to` in one transaction. The rows are locked in id
/// order, so concurrent transfers cannot deadlock across shards (which no shard could detect).
async fn transfer(client: &Client, from: i64, to: i64, amount: i64) -> Result<(), String> {
    let mut updates = [(from, -amount), (to, amount)];
    updates.sort();
    let steps = [
        "BEGIN".to_owned(),
        format!(
            "UPDATE accounts SET balance = balance + {} WHERE id = {}",
            updates[0].1, updates[0].0
        ),
        format!(
            "UPDATE accounts SET balance = balance + {} WHERE id = {}",
            updates[1].1, updates[1].0
        ),
        "COMMIT".to_owned(),
    ];
    for sql in &steps {
        client.batch_execute(sql).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Counters shared by the client tasks.
#[derive(Default)]
struct Tally {
    committed: AtomicU64,
    failed: AtomicU64,
    reconnects: AtomicU64,
}

/// One client: transfers between accounts on different shards until `stop`, reconnecting
/// whenever its connection breaks (the proxy died) or a transfer hangs.
async fn client_loop(
    seed: u64,
    addr: SocketAddr,
    by_shard: Arc<Vec<Vec<i64>>>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = client.as_ref().filter(|c| !c.is_closed()) else {
            match try_connect(addr, "app", None, "bank").await {
                Ok(c) => {
                    tally.reconnects.fetch_add(1, Ordering::Relaxed);
                    client = Some(c);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            continue;
        };
        let s1 = rng.random_range(0..by_shard.len());
        let s2 = (s1 + rng.random_range(1..by_shard.len())) % by_shard.len();
        let from = by_shard[s1][rng.random_range(0..by_shard[s1].len())];
        let to = by_shard[s2][rng.random_range(0..by_shard[s2].len())];
        let amount = rng.random_range(1..=100i64);
        match tokio::time::timeout(TRANSFER_LIMIT, transfer(c, from, to, amount)).await {
            Ok(Ok(())) => {
                tally.committed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                // A failed statement leaves an aborted transaction; a dead proxy, no client.
                if c.batch_execute("ROLLBACK").await.is_err() {
                    client = None;
                }
            }
            Err(_) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                client = None;
            }
        }
    }
}

/// sum(balance), count(*) and the number of our prepared transactions, on one shard.
async fn shard_totals(shard: &Client) -> (i64, i64, i64) {
    let row = shard
        .query_one(
            "SELECT coalesce(sum(balance), 0)::bigint, count(*), \
             (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()) \
             FROM accounts",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_survive_proxy_kills() {
    let test = async {
        let dbs = fresh_dbs(3).await;
        let proxy_id = format!("bank{:08x}", rand::random::<u32>());
        let default_pool = "[pool]\nsize = 4\n";
        let toml = config_toml(&dbs, "", MAPS)
            .replacen(
                "[proxy]\n",
                &format!("[proxy]\nproxy_id = \"{proxy_id}\"\n"),
                1,
            )
            .replacen(default_pool, "[pool]\nsize = 12\n", 1);
        assert!(
            toml.contains("size = 12"),
            "harness [pool] changed:\n{toml}"
        );
        let toml = with_proxy_keys_if_known(&toml, &[("recovery_interval_ms", "200")]);
        let config = config::Config::parse(&toml, "bank.toml").unwrap();
        let map = ShardMap::new(&config.maps["accounts"]);
        let mut by_shard = vec![Vec::new(); dbs.shard_urls.len()];
        for id in 1..=ACCOUNTS {
            by_shard[map.place(&KeyValue::Int(id)).unwrap()].push(id);
        }
        assert!(by_shard.iter().all(|ids| !ids.is_empty()), "{by_shard:?}");
        let mut shards = Vec::new();
        for (url, ids) in dbs.shard_urls.iter().zip(&by_shard) {
            let shard = connect_url(url).await;
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            shard
                .batch_execute(&format!(
                    "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
                     INSERT INTO accounts SELECT unnest(ARRAY[{}]::bigint[]), {INITIAL_BALANCE}",
                    ids.join(",")
                ))
                .await
                .unwrap();
            shards.push(shard);
        }

        let mut proc = ProxyProcess::start(BIN, &toml, &[]).await;
        let by_shard = Arc::new(by_shard);
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let clients: Vec<_> = (0..CLIENTS)
            .map(|seed| {
                tokio::spawn(client_loop(
                    seed,
                    proc.addr,
                    by_shard.clone(),
                    stop.clone(),
                    tally.clone(),
                ))
            })
            .collect();
        let slice = RUN / (KILLS + 1);
        let mut committed_before = Vec::new();
        for _ in 0..KILLS {
            tokio::time::sleep(slice).await;
            committed_before.push(tally.committed.load(Ordering::Relaxed));
            proc.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            proc.restart(&[]).await;
        }
        let at_last_restart = tally.committed.load(Ordering::Relaxed);
        tokio::time::sleep(slice).await;
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            let done = tokio::time::timeout(TRANSFER_LIMIT * 2, client).await;
            done.unwrap_or_else(|_| panic!("a client did not stop"))
                .unwrap();
        }
        let committed = tally.committed.load(Ordering::Relaxed);
        eprintln!(
            "bank: {committed} transfers committed, {} failed, {} connections; committed before each kill: {committed_before:?}",
            tally.failed.load(Ordering::Relaxed),
            tally.reconnects.load(Ordering::Relaxed),
        );
        assert!(
            committed_before[0] > 0,
            "no transfer committed before the first kill"
        );
        assert!(
            committed > at_last_restart,
            "no transfer committed after the last restart\n{}",
            proc.stderr_tail()
        );

        // The transfers really went through two-phase commit (counted since the last start).
        let (_, metrics) = proc.admin_get("/metrics").await;
        let two_phase = metric_sum(&metrics, "shardproxy_2pc_commits_total").unwrap_or(0.0);
        assert!(two_phase >= 1.0, "no 2PC commit counted:\n{metrics}");

        // Recovery finishes or undoes what the kills interrupted.
        let deadline = Instant::now() + RECOVERY_LIMIT;
        let totals = loop {
            let mut totals = Vec::new();
            for shard in &shards {
                totals.push(shard_totals(shard).await);
            }
            if totals.iter().all(|t| t.2 == 0) {
                break totals;
            }
            assert!(
                Instant::now() < deadline,
                "prepared transactions left after {RECOVERY_LIMIT:?}: {totals:?}\n{}",
                proc.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let sum: i64 = totals.iter().map(|t| t.0).sum();
        let rows: i64 = totals.iter().map(|t| t.1).sum();
        assert_eq!(rows, ACCOUNTS);
        assert_eq!(
            sum,
            ACCOUNTS * INITIAL_BALANCE,
            "money was created or destroyed; per shard (sum, rows, prepared): {totals:?}"
        );
    };
    tokio::time::timeout(Duration::from_secs(150), test)
        .await
        .unwrap_or_else(|_| panic!("the bank test did not finish within 150 s"));
}
