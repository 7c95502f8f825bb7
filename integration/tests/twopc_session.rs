//! Two-phase commit from the session's side, without crashes (those are twopc_crash.rs): every
//! way a client can write on several shards commits on all of them or none, and leaves nothing
//! prepared behind — one statement in the simple and the extended protocol, an explicit
//! transaction committed with a simple or an extended COMMIT, a commit that fails at PREPARE
//! (deferred constraint) on one shard, pipelined multi-shard writes, and single-shard writes
//! that keep one phase.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use integration::util::{bounded, code};
use integration::{config_toml, connect, connect_url, fresh_dbs, start_proxy, TestDbs};
use proxy::RunningProxy;
use tokio_postgres::Client;

const MAPS: &str = "[maps.m]\nstrategy = \"hash\"\nkey_type = \"bigint\"\nbuckets = 16\n\n\
                    [tables]\nt = { map = \"m\", key = \"id\" }\n";

/// `u` is unique and checked only at commit (PREPARE): a duplicate fails the commit.
const SCHEMA: &str = "CREATE TABLE t (id bigint PRIMARY KEY, v int, \
                      u bigint UNIQUE DEFERRABLE INITIALLY DEFERRED)";

async fn setup() -> (TestDbs, RunningProxy, Client, Vec<Client>) {
    let dbs = fresh_dbs(3).await;
    let mut shards = Vec::new();
    for url in &dbs.shard_urls {
        let c = connect_url(url).await;
        c.batch_execute(SCHEMA).await.unwrap();
        shards.push(c);
    }
    let proxy = start_proxy(&config_toml(&dbs, "", MAPS)).await;
    let client = connect(proxy.addr, "app", None, &dbs.name).await;
    (dbs, proxy, client, shards)
}

/// Rows of `t` on each shard, and prepared transactions left on each.
async fn state(shards: &[Client]) -> (Vec<i64>, i64) {
    let mut rows = Vec::new();
    let mut prepared = 0;
    for c in shards {
        rows.push(
            c.query_one("SELECT count(*) FROM t", &[])
                .await
                .unwrap()
                .get(0),
        );
        let p: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        prepared += p;
    }
    (rows, prepared)
}

fn values(ids: std::ops::Range<i64>) -> String {
    ids.map(|i| format!("({i}, {i}, {i})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_shard_writes_commit_everywhere() {
    bounded(async {
        let (_dbs, proxy, client, shards) = setup().await;
        // One statement, simple protocol.
        client
            .batch_execute(&format!(
                "INSERT INTO t (id, v, u) VALUES {}",
                values(0..30)
            ))
            .await
            .unwrap();
        let (rows, prepared) = state(&shards).await;
        assert_eq!(rows.iter().sum::<i64>(), 30);
        assert!(
            rows.iter().all(|n| *n > 0),
            "every shard got rows: {rows:?}"
        );
        assert_eq!(prepared, 0);
        // One statement, extended protocol (split INSERT with parameters) and an UPDATE of all.
        let n = client
            .execute(
                "INSERT INTO t (id, v, u) VALUES ($1, 1, $1), ($2, 1, $2), ($3, 1, $3)",
                &[&100i64, &101i64, &102i64],
            )
            .await
            .unwrap();
        assert_eq!(n, 3);
        let n = client.execute("UPDATE t SET v = v + 1", &[]).await.unwrap();
        assert_eq!(n, 33);
        // RETURNING across shards: every shard's rows, once; the tags summed.
        let rows = client
            .query("UPDATE t SET v = v + 1 WHERE v > 0 RETURNING id", &[])
            .await
            .unwrap();
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 33);
        let msgs = client
            .simple_query("DELETE FROM t WHERE id >= 100 RETURNING id")
            .await
            .unwrap();
        let deleted = msgs
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        let tag = msgs.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        });
        assert_eq!((deleted, tag), (3, Some(3)));
        client
            .execute(
                "INSERT INTO t (id, v, u) VALUES ($1, 1, $1), ($2, 1, $2), ($3, 1, $3)",
                &[&100i64, &101i64, &102i64],
            )
            .await
            .unwrap();
        // An explicit transaction over several shards, simple COMMIT.
        client.batch_execute("BEGIN").await.unwrap();
        for i in 200..206i64 {
            client
                .execute("INSERT INTO t (id, v, u) VALUES ($1, 0, $1)", &[&i])
                .await
                .unwrap();
        }
        client.batch_execute("COMMIT").await.unwrap();
        // ... and an extended COMMIT.
        client.batch_execute("BEGIN").await.unwrap();
        client
            .batch_execute(&format!(
                "INSERT INTO t (id, v, u) VALUES {}",
                values(300..306)
            ))
            .await
            .unwrap();
        client.execute("COMMIT", &[]).await.unwrap();
        let (rows, prepared) = state(&shards).await;
        assert_eq!(rows.iter().sum::<i64>(), 45, "{rows:?}");
        assert_eq!(prepared, 0);
        let total: i64 = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(total, 45);
        // The commits went through the decision log (the metric counts them).
        let metrics = proxy.ctx.metrics.render(&[]);
        let line = metrics
            .lines()
            .find(|l| l.starts_with("shardproxy_2pc_commits_total"))
            .unwrap_or_else(|| panic!("no 2PC commit metric in:\n{metrics}"));
        let commits: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(commits >= 5.0, "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_failing_on_one_shard_commits_nowhere() {
    bounded(async {
        let (_dbs, _proxy, client, shards) = setup().await;
        client
            .batch_execute(&format!(
                "INSERT INTO t (id, v, u) VALUES {}",
                values(0..12)
            ))
            .await
            .unwrap();
        // u = 5 twice: the deferred unique check fails at PREPARE on the shard of id 100.
        client.batch_execute("BEGIN").await.unwrap();
        client
            .batch_execute(&format!(
                "INSERT INTO t (id, v, u) VALUES {}",
                values(20..32)
            ))
            .await
            .unwrap();
        // Another committed row on the shard of id 5: giving it u = 5 fails that shard's
        // deferred unique check at PREPARE.
        let mut other = None;
        for c in &shards {
            let ids: Vec<i64> = c
                .query("SELECT id FROM t WHERE id < 12 ORDER BY id", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            if ids.contains(&5) {
                other = ids.into_iter().find(|i| *i != 5);
            }
        }
        let other = other.expect("a second row on the shard of id 5");
        client
            .execute("UPDATE t SET u = 5 WHERE id = $1", &[&other])
            .await
            .unwrap();
        let err = client.batch_execute("COMMIT").await.unwrap_err();
        let (rows, prepared) = state(&shards).await;
        assert_eq!(prepared, 0, "nothing left prepared");
        assert_eq!(
            rows.iter().sum::<i64>(),
            12,
            "nothing of the transaction committed: {rows:?}"
        );
        assert_eq!(code(&err), Some("23505"), "{err}");
        let u: i64 = client
            .query_one("SELECT u FROM t WHERE id = $1", &[&other])
            .await
            .unwrap()
            .get(0);
        assert_eq!(u, other, "the update was rolled back");
        // The session goes on.
        let n: i64 = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 12);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_multi_shard_writes_and_one_phase_single_shard_ones() {
    bounded(async {
        let (_dbs, proxy, client, shards) = setup().await;
        let stmt = client
            .prepare("INSERT INTO t (id, v, u) VALUES ($1, 0, $1), ($2, 0, $2)")
            .await
            .unwrap();
        let futures: Vec<_> = (0..40i64)
            .map(|i| {
                let (client, stmt) = (&client, &stmt);
                async move { client.execute(stmt, &[&(2 * i), &(2 * i + 1)]).await }
            })
            .collect();
        for r in futures::future::join_all(futures).await {
            assert_eq!(r.unwrap(), 2);
        }
        let (rows, prepared) = state(&shards).await;
        assert_eq!((rows.iter().sum::<i64>(), prepared), (80, 0));
        // Single-shard writes: no two-phase commit.
        let before = proxy.ctx.metrics.render(&[]);
        for i in 500..510i64 {
            client
                .execute("INSERT INTO t (id, v, u) VALUES ($1, 0, $1)", &[&i])
                .await
                .unwrap();
        }
        let after = proxy.ctx.metrics.render(&[]);
        let commits = |m: &str| {
            m.lines()
                .find(|l| l.starts_with("shardproxy_2pc_commits_total"))
                .map(|l| l.to_string())
        };
        assert_eq!(commits(&before), commits(&after));
    })
    .await;
}
