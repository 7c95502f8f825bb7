//! Merged multi-shard reads at the protocol level: simple and extended protocol, statement
//! reuse with LIMIT/OFFSET parameters, Describe of a merged portal, an error on one shard in the
//! middle of a merge (also inside a transaction), LIMIT stopping early with the connection still
//! in step, and a portal fetched in parts (Execute with a row limit) across shards.
//! Broad value-by-value correctness is scatter_diff.rs; this file is about the plumbing.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use integration::raw::{cstr, first_error, frame, Raw};
use integration::util::{bounded, code};
use integration::{config_toml, connect, connect_url, fresh_dbs, start_proxy, TestDbs};
use proxy::RunningProxy;
use tokio_postgres::{Client, SimpleQueryMessage};

const MAPS: &str = "[maps.m]\nstrategy = \"hash\"\nkey_type = \"bigint\"\nbuckets = 16\n\n\
                    [tables]\nt = { map = \"m\", key = \"id\" }\n";

const SCHEMA: &str = "CREATE TABLE t (id bigint PRIMARY KEY, v int, s text)";

/// 300 rows: v = id % 7 (so `1 / (v - 3)` fails on some rows), s = 'x' || id % 10 or NULL.
const ROWS: &str =
    "INSERT INTO t SELECT g, g % 7, CASE WHEN g % 11 = 0 THEN NULL ELSE 'x' || g % 10 END \
                    FROM generate_series(1, 300) g";

/// Three shards behind a proxy and the oracle with the same rows.
async fn setup() -> (TestDbs, RunningProxy, Client, Client) {
    let dbs = fresh_dbs(3).await;
    for url in &dbs.shard_urls {
        connect_url(url).await.batch_execute(SCHEMA).await.unwrap();
    }
    let oracle = connect_url(&dbs.oracle_url).await;
    oracle.batch_execute(SCHEMA).await.unwrap();
    oracle.batch_execute(ROWS).await.unwrap();
    let proxy = start_proxy(&config_toml(&dbs, "", MAPS)).await;
    let client = connect(proxy.addr, "app", None, &dbs.name).await;
    // Through the proxy: the rows are split by key over the three shards.
    let rows: Vec<String> = (1..=300)
        .map(|g| {
            let s = if g % 11 == 0 {
                "NULL".to_string()
            } else {
                format!("'x{}'", g % 10)
            };
            format!("({g}, {}, {s})", g % 7)
        })
        .collect();
    client
        .batch_execute(&format!(
            "INSERT INTO t (id, v, s) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
    for url in &dbs.shard_urls {
        let n: i64 = connect_url(url)
            .await
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert!(n > 50, "rows are spread over the shards ({n} on {url})");
    }
    (dbs, proxy, client, oracle)
}

/// Rows of a simple query as text, plus its command tag count.
async fn simple(client: &Client, sql: &str) -> (Vec<Vec<Option<String>>>, u64) {
    let mut rows = Vec::new();
    let mut tag = None;
    for m in client.simple_query(sql).await.unwrap() {
        match m {
            SimpleQueryMessage::Row(r) => {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            SimpleQueryMessage::CommandComplete(n) => tag = Some(n),
            _ => {}
        }
    }
    (rows, tag.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_merges_match_the_oracle() {
    bounded(async {
        let (_dbs, _proxy, client, oracle) = setup().await;
        for sql in [
            "SELECT id, v, s FROM t ORDER BY v DESC, s NULLS FIRST, id LIMIT 17 OFFSET 5",
            "SELECT s, count(*), sum(v), avg(v), min(id), max(s) FROM t GROUP BY s ORDER BY 2 DESC, 1",
            "SELECT count(*) FROM t",
            "SELECT DISTINCT v FROM t ORDER BY v",
        ] {
            let want = simple(&oracle, sql).await;
            assert_eq!(simple(&client, sql).await, want, "simple protocol: {sql}");
        }
        // One prepared statement executed with different LIMIT/OFFSET parameters (binary results).
        let sql = "SELECT id, v FROM t WHERE v <> $1 ORDER BY v, id DESC LIMIT $2 OFFSET $3";
        let mine = client.prepare(sql).await.unwrap();
        let theirs = oracle.prepare(sql).await.unwrap();
        for (v, limit, offset) in [(1i32, 10i64, 0i64), (2, 3, 100), (0, 1000, 250), (3, 0, 0)] {
            let got: Vec<(i64, i32)> = client
                .query(&mine, &[&v, &limit, &offset])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let want: Vec<(i64, i32)> = oracle
                .query(&theirs, &[&v, &limit, &offset])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            assert_eq!(got, want, "v <> {v} LIMIT {limit} OFFSET {offset}");
        }
        // Aggregates in binary format: types and values as one server gives them.
        let sql = "SELECT count(*), sum(v), avg(v), sum(id) FROM t WHERE v > $1";
        let row = client.query_one(sql, &[&2i32]).await.unwrap();
        let want = oracle.query_one(sql, &[&2i32]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), want.get::<_, i64>(0));
        assert_eq!(row.get::<_, i64>(1), want.get::<_, i64>(1));
        for i in 2..4 {
            assert_eq!(row.columns()[i].type_(), want.columns()[i].type_(), "column {i}");
        }
    })
    .await;
}

/// Parse, Bind, Describe portal, Execute, Sync by hand: the RowDescription of a merged portal is
/// the client's (avg is numeric, hidden columns are not shown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_of_a_merged_portal() {
    bounded(async {
        let (dbs, proxy, _client, _oracle) = setup().await;
        let mut raw = Raw::login(proxy.addr, &dbs.name).await;
        let mut bytes = Vec::new();
        let mut parse = Vec::new();
        cstr(&mut parse, "");
        cstr(
            &mut parse,
            "SELECT v, avg(id) AS a FROM t GROUP BY v ORDER BY sum(id) DESC",
        );
        parse.extend_from_slice(&0i16.to_be_bytes());
        bytes.extend(frame(b'P', &parse));
        let mut bind = Vec::new();
        cstr(&mut bind, "");
        cstr(&mut bind, "");
        bind.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        bytes.extend(frame(b'B', &bind));
        bytes.extend(frame(b'D', b"P\0"));
        bytes.extend(frame(b'E', b"\0\0\0\0\0"));
        bytes.extend(frame(b'S', b""));
        let msgs = raw.round_trip(&bytes).await;
        assert_eq!(first_error(&msgs), None, "{msgs:?}");
        let tags: Vec<u8> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(&tags[..3], b"12T", "{tags:?}");
        let desc = &msgs[2].1;
        assert_eq!(
            i16::from_be_bytes([desc[0], desc[1]]),
            2,
            "two visible columns"
        );
        // second field: name "a\0", table oid, attnum, type oid...
        let a = desc.windows(2).position(|w| w == b"a\0").unwrap() + 2;
        let oid = u32::from_be_bytes(desc[a + 6..a + 10].try_into().unwrap());
        assert_eq!(oid, 1700, "avg(bigint) is numeric");
        let rows = msgs.iter().filter(|m| m.0 == b'D').count();
        assert_eq!(rows, 7, "one row per v");
        let complete = msgs.iter().find(|m| m.0 == b'C').unwrap();
        assert_eq!(complete.1, b"SELECT 7\0");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_on_one_shard_mid_merge() {
    bounded(async {
        let (_dbs, _proxy, client, _oracle) = setup().await;
        let sql = "SELECT id, 1 / (v - 3) FROM t ORDER BY id";
        let err = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&err), Some("22012"), "{err}");
        let err = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(code(&err), Some("22012"), "{err}");
        // Still in step afterwards.
        assert_eq!(simple(&client, "SELECT count(*) FROM t").await.1, 1);
        // Inside a transaction the error aborts it, as on one server.
        client.batch_execute("BEGIN").await.unwrap();
        assert!(client.simple_query(sql).await.is_err());
        let err = client.simple_query("SELECT 1").await.unwrap_err();
        assert_eq!(code(&err), Some("25P02"), "{err}");
        client.batch_execute("ROLLBACK").await.unwrap();
        let (rows, n) = simple(&client, "SELECT id FROM t ORDER BY id LIMIT 3").await;
        assert_eq!((rows.len(), n), (3, 3));
        assert_eq!(rows[0][0].as_deref(), Some("1"));
    })
    .await;
}

/// LIMIT met early: the shards' remaining rows are dropped, and the next statements on the same
/// connection (and on the same backends) get their own answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_stops_early_and_the_session_stays_in_step() {
    bounded(async {
        let (_dbs, _proxy, client, _oracle) = setup().await;
        for round in 0..20 {
            let (rows, n) = simple(&client, "SELECT id FROM t ORDER BY id DESC LIMIT 2").await;
            assert_eq!(n, 2);
            assert_eq!(rows[0][0].as_deref(), Some("300"), "round {round}");
            let (rows, _) = simple(&client, "SELECT id FROM t WHERE id = 42").await;
            assert_eq!(rows, vec![vec![Some("42".to_string())]]);
        }
        // Pipelined: several merged queries in flight at once.
        let (a, b, c) = tokio::join!(
            client.query("SELECT id FROM t ORDER BY id LIMIT 1", &[]),
            client.query("SELECT count(*) FROM t", &[]),
            client.query("SELECT max(id) FROM t", &[]),
        );
        assert_eq!(a.unwrap()[0].get::<_, i64>(0), 1);
        assert_eq!(b.unwrap()[0].get::<_, i64>(0), 300);
        assert_eq!(c.unwrap()[0].get::<_, i64>(0), 300);
    })
    .await;
}

/// A portal over several shards fetched in parts (Execute with a row limit, as JDBC does with
/// a fetch size inside a transaction): each part continues the merged order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_portal_fetched_in_parts() {
    bounded(async {
        let (_dbs, _proxy, mut client, mut oracle) = setup().await;
        let sql = "SELECT id, v FROM t WHERE id > $1 ORDER BY v, id";
        let mut parts = Vec::new();
        for c in [&mut client, &mut oracle] {
            let mut c_rows = Vec::new();
            let txn = c.transaction().await.unwrap();
            let stmt = txn.prepare(sql).await.unwrap();
            let portal = txn.bind(&stmt, &[&10i64]).await.unwrap();
            loop {
                let batch = txn.query_portal(&portal, 37).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                c_rows.push(
                    batch
                        .iter()
                        .map(|r| (r.get::<_, i64>(0), r.get::<_, i32>(1)))
                        .collect::<Vec<_>>(),
                );
            }
            txn.commit().await.unwrap();
            parts.push(c_rows);
        }
        let sizes: Vec<usize> = parts[0].iter().map(Vec::len).collect();
        assert_eq!(parts[0].len(), 8, "290 rows in parts of 37: {sizes:?}");
        assert_eq!(parts[0], parts[1]);
    })
    .await;
}
