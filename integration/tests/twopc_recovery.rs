//! 2PC recovery against real PostgreSQL: transactions prepared by hand with our gid format
//! (decided in the decision log, undecided, of an earlier boot or of this one, another
//! proxy's, not ours at all), then a proxy started on that state_dir. Checks what recovery
//! commits and rolls back, that pg_prepared_xacts ends empty, the in-doubt listing while a shard
//! is stopped, and the operator's resolve through the admin API and the CLI.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use integration::util::bounded;
use integration::{connect_url, fresh_dbs, private_server, scratch_dir, start_proxy, ADMIN_TOKEN};
use proxy::twopc::{Gid, TwoPc};
use proxy::RunningProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long recovery gets to reach an expected state.
const SETTLE: Duration = Duration::from_secs(30);

/// A state_dir of this test's own.
fn state_dir(name: &str) -> PathBuf {
    scratch_dir().join(format!("{name}-{:08x}", rand::random::<u32>()))
}

/// A proxy config over `urls` (shards s0, s1, ...) with fast recovery.
fn config(urls: &[String], state: &Path, proxy_id: &str, in_doubt_after_ms: u64) -> String {
    let mut toml = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         admin_token = \"{ADMIN_TOKEN}\"\nstate_dir = \"{}\"\nproxy_id = \"{proxy_id}\"\n\
         recovery_interval_ms = 200\nin_doubt_after_ms = {in_doubt_after_ms}\n\n\
         [pool]\nsize = 2\n\n",
        state.display()
    );
    for (i, url) in urls.iter().enumerate() {
        toml.push_str(&format!("[[shards]]\nname = \"s{i}\"\nurl = \"{url}\"\n\n"));
    }
    toml
}

/// Writes COMMIT decisions into the decision log of `state`, as an earlier boot would have.
async fn log_decisions(state: &Path, proxy_id: &str, decisions: &[(&str, &[&str])]) {
    let metrics = Arc::new(admin::ProxyMetrics::new(&[]));
    let twopc = TwoPc::open(state, Some(proxy_id), metrics).unwrap();
    for (gid, shards) in decisions {
        let shards: Vec<String> = shards.iter().map(|s| (*s).to_owned()).collect();
        twopc.log_commit(gid, &shards).await.unwrap();
    }
}

/// `CREATE TABLE t (id bigint)` on every url.
async fn create_tables(urls: &[String]) {
    for url in urls {
        connect_url(url)
            .await
            .batch_execute("CREATE TABLE t (id bigint)")
            .await
            .unwrap();
    }
}

/// Inserts `id` into t and prepares it as `gid`, by hand.
async fn prepare(url: &str, gid: &str, id: i64) {
    let client = connect_url(url).await;
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("INSERT INTO t VALUES ($1)", &[&id])
        .await
        .unwrap();
    client
        .batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
        .await
        .unwrap();
}

/// Gids prepared in the database of `url`.
async fn prepared(url: &str) -> BTreeSet<String> {
    connect_url(url)
        .await
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Ids in t on `url`, sorted.
async fn ids(url: &str) -> Vec<i64> {
    connect_url(url)
        .await
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Polls `check` every 100 ms until it holds; panics with `what` after [`SETTLE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached within {SETTLE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One admin HTTP request (HTTP/1.0, token sent); (status, body).
async fn http(proxy: &RunningProxy, method: &str, path: &str, body: &str) -> (u16, String) {
    let addr = proxy.admin_addr.unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The value of one metric series in /metrics.
async fn metric(proxy: &RunningProxy, series: &str) -> f64 {
    let (_, text) = http(proxy, "GET", "/metrics", "").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

/// `shardproxy admin ARGS` against the proxy; (exit code, stdout, stderr).
async fn cli(proxy: &RunningProxy, args: &[&str]) -> (i32, String, String) {
    let url = format!("http://{}", proxy.admin_addr.unwrap());
    let mut all = vec!["--url", url.as_str(), "--token", ADMIN_TOKEN];
    all.extend_from_slice(args);
    let args = proxy::admin_cli::parse_args(all).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = proxy::admin_cli::run(args, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_commits_decided_and_rolls_back_the_rest() {
    bounded(async {
        let dbs = fresh_dbs(2).await;
        let urls = dbs.shard_urls.clone();
        create_tables(&urls).await;
        let id = "rec1";
        let old_boot = 1_000_000;
        let decided = Gid::format(id, old_boot, 1);
        let undecided = Gid::format(id, old_boot, 2);
        let half_done = Gid::format(id, old_boot, 3);
        let finished = Gid::format(id, old_boot, 4);
        let other_proxy = Gid::format("someone_else", old_boot, 1);
        let not_ours = "an_application_xact".to_owned();
        for (i, url) in urls.iter().enumerate() {
            let base = 10 * i as i64;
            prepare(url, &decided, base + 1).await;
            prepare(url, &undecided, base + 2).await;
        }
        // Committed on s1 already before the crash; still prepared on s0.
        prepare(&urls[0], &half_done, 3).await;
        prepare(&urls[1], &other_proxy, 14).await;
        prepare(&urls[1], &not_ours, 15).await;
        let state = state_dir("recovery");
        let both: &[&str] = &["s0", "s1"];
        log_decisions(
            &state,
            id,
            &[(&decided, both), (&half_done, both), (&finished, both)],
        )
        .await;

        let proxy = start_proxy(&config(&urls, &state, id, 60_000)).await;
        let foreign: BTreeSet<String> = [other_proxy.clone(), not_ours.clone()].into();
        eventually("only foreign gids stay prepared", || async {
            prepared(&urls[0]).await.is_empty() && prepared(&urls[1]).await == foreign
        })
        .await;
        // Decided: committed on both; undecided: rolled back (presumed abort).
        assert_eq!(ids(&urls[0]).await, vec![1, 3]);
        assert_eq!(ids(&urls[1]).await, vec![11]);
        eventually("every decision finished (DONE)", || async {
            proxy.ctx.twopc.decisions().is_empty()
        })
        .await;
        let recovered = r#"shardproxy_2pc_recovered_total{action="commit"}"#;
        assert_eq!(metric(&proxy, recovered).await, 3.0);
        let rolled = r#"shardproxy_2pc_recovered_total{action="rollback"}"#;
        assert_eq!(metric(&proxy, rolled).await, 2.0);
        assert_eq!(metric(&proxy, "shardproxy_2pc_in_doubt").await, 0.0);
        let (status, body) = http(&proxy, "GET", "/api/v1/transactions", "").await;
        assert_eq!((status, body.as_str()), (200, r#"{"transactions":[]}"#));
        // Other proxies' and applications' prepared transactions are never resolved by us.
        let (status, body) = http(
            &proxy,
            "POST",
            &format!("/api/v1/transactions/{other_proxy}/resolve"),
            r#"{"action": "rollback"}"#,
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("not a transaction of this proxy"), "{body}");
        proxy.shutdown().await;

        // The DONE records survived the shutdown: a restart finds nothing to do.
        let again = start_proxy(&config(&urls, &state, id, 60_000)).await;
        assert!(again.ctx.twopc.decisions().is_empty());
        assert!(again.ctx.twopc.boot() > old_boot);
        again.shutdown().await;

        let cleanup = connect_url(&urls[1]).await;
        for gid in [&other_proxy, &not_ours] {
            cleanup
                .batch_execute(&format!("ROLLBACK PREPARED '{gid}'"))
                .await
                .unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_shard_leaves_it_in_doubt_until_it_is_back() {
    bounded(async {
        let dbs = fresh_dbs(1).await;
        let mut s1 = tokio::task::spawn_blocking(private_server).await.unwrap();
        connect_url(&s1.url("postgres"))
            .await
            .batch_execute(&format!("CREATE DATABASE {}", dbs.name))
            .await
            .unwrap();
        let urls = vec![dbs.shard_urls[0].clone(), s1.url(&dbs.name)];
        create_tables(&urls).await;
        let id = "rec2";
        let decided = Gid::format(id, 7, 1);
        let undecided = Gid::format(id, 7, 2);
        for url in &urls {
            prepare(url, &decided, 1).await;
        }
        prepare(&urls[1], &undecided, 2).await;
        let state = state_dir("indoubt");
        log_decisions(&state, id, &[(&decided, &["s0", "s1"])]).await;
        tokio::task::block_in_place(|| s1.stop()).unwrap();

        let proxy = start_proxy(&config(&urls, &state, id, 0)).await;
        // s0 is finished at once; s1 cannot be reached: in doubt, with the decision known.
        eventually("listed as in-doubt", || async {
            let (_, body) = http(&proxy, "GET", "/api/v1/transactions", "").await;
            body.contains(&decided) && body.contains(r#""pending_shards":["s1"]"#)
        })
        .await;
        assert!(prepared(&urls[0]).await.is_empty());
        assert_eq!(ids(&urls[0]).await, vec![1]);
        let (_, body) = http(&proxy, "GET", "/api/v1/transactions", "").await;
        assert!(body.contains(r#""decision":"commit""#), "{body}");
        assert!(body.contains(r#""shards":["s0","s1"]"#), "{body}");
        assert!(
            body.contains(r#""last_error":"shard s1: cannot connect"#),
            "{body}"
        );
        assert_eq!(metric(&proxy, "shardproxy_2pc_in_doubt").await, 1.0);
        // Other shards keep serving meanwhile.
        let client = integration::connect(proxy.addr, "app", None, &dbs.name).await;
        client.batch_execute("SELECT 1").await.unwrap();
        // The CLI shows it.
        let (code, out, err) = cli(&proxy, &["transactions"]).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&decided) && out.contains("commit"), "{out}");

        let resolve = format!("/api/v1/transactions/{decided}/resolve");
        let (status, body) = http(&proxy, "POST", &resolve, r#"{"action": "rollback"}"#).await;
        assert_eq!(status, 409, "a logged commit cannot be rolled back: {body}");
        let (status, body) = http(&proxy, "POST", &resolve, r#"{"action": "commit"}"#).await;
        assert_eq!(status, 502, "s1 is down: {body}");
        assert!(body.contains("recovery finishes it"), "{body}");
        let (status, _) = http(&proxy, "POST", &resolve, r#"{"action": "maybe"}"#).await;
        assert_eq!(status, 400);

        tokio::task::block_in_place(|| s1.restart()).unwrap();
        eventually("recovery finished it on s1", || async {
            prepared(&urls[1]).await.is_empty()
        })
        .await;
        assert_eq!(ids(&urls[1]).await, vec![1]);
        eventually("in-doubt list empty", || async {
            let (_, body) = http(&proxy, "GET", "/api/v1/transactions", "").await;
            body == r#"{"transactions":[]}"#
        })
        .await;
        eventually("decision DONE", || async {
            proxy.ctx.twopc.decisions().is_empty()
        })
        .await;
        let (status, body) = http(&proxy, "POST", &resolve, r#"{"action": "commit"}"#).await;
        assert_eq!(status, 404, "nothing left to resolve: {body}");
        proxy.shutdown().await;
        tokio::task::block_in_place(|| s1.stop()).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_resolve_transactions_of_this_boot() {
    bounded(async {
        let dbs = fresh_dbs(2).await;
        let urls = dbs.shard_urls.clone();
        create_tables(&urls).await;
        let id = "rec3";
        let state = state_dir("resolve");
        let proxy = start_proxy(&config(&urls, &state, id, 0)).await;
        // Gids of this boot that no commit claims: recovery waits (they might be in flight),
        // so they show as in-doubt with an unknown decision until an operator decides.
        let boot = proxy.ctx.twopc.boot();
        let to_commit = Gid::format(id, boot, 1_000_001);
        let to_roll_back = Gid::format(id, boot, 1_000_002);
        for (i, url) in urls.iter().enumerate() {
            prepare(url, &to_commit, 100 + i as i64).await;
            prepare(url, &to_roll_back, 200 + i as i64).await;
        }
        // (a recovery pass may run between the PREPAREs on s0 and s1: wait for one that saw both)
        eventually("both listed on both shards", || async {
            let (_, body) = http(&proxy, "GET", "/api/v1/transactions", "").await;
            body.contains(&to_commit)
                && body.contains(&to_roll_back)
                && body.matches(r#""pending_shards":["s0","s1"]"#).count() == 2
        })
        .await;
        let (_, body) = http(&proxy, "GET", "/api/v1/transactions", "").await;
        assert!(body.contains(r#""decision":"unknown""#), "{body}");
        assert!(body.contains(r#""pending_shards":["s0","s1"]"#), "{body}");

        let (code, out, err) = cli(&proxy, &["resolve", &to_commit, "commit"]).await;
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, format!("transaction {to_commit}: committed\n"));
        let path = format!("/api/v1/transactions/{to_roll_back}/resolve");
        let (status, body) = http(&proxy, "POST", &path, r#"{"action": "rollback"}"#).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            format!(r#"{{"action":"rollback","gid":"{to_roll_back}","status":"rolled back"}}"#)
        );
        for (i, url) in urls.iter().enumerate() {
            assert!(prepared(url).await.is_empty());
            assert_eq!(ids(url).await, vec![100 + i as i64]);
        }
        // The operator's commit was logged and, finished everywhere, marked DONE.
        assert!(proxy.ctx.twopc.decisions().is_empty());
        let (_, body) = http(&proxy, "GET", "/api/v1/transactions", "").await;
        assert_eq!(body, r#"{"transactions":[]}"#);
        let recovered = r#"shardproxy_2pc_recovered_total{action="commit"}"#;
        assert_eq!(metric(&proxy, recovered).await, 2.0);
        let (code, _, err) = cli(&proxy, &["resolve", &to_commit, "rollback"]).await;
        assert_eq!(code, 1);
        assert!(
            err.contains(&format!("no shard holds {to_commit} prepared")),
            "{err}"
        );
        proxy.shutdown().await;
    })
    .await;
}

/// The shard (0 or 1) `POST /api/v1/route` names for `u.id = id`.
async fn shard_of(proxy: &RunningProxy, id: i64) -> usize {
    let body = format!(r#"{{"sql": "SELECT * FROM u WHERE id = {id}"}}"#);
    let (status, answer) = http(proxy, "POST", "/api/v1/route", &body).await;
    assert_eq!(status, 200, "{answer}");
    usize::from(answer.contains(r#""shards":["s1"]"#))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_shard_commits_go_through_two_phase_commit() {
    bounded(async {
        let dbs = fresh_dbs(2).await;
        let urls = dbs.shard_urls.clone();
        for url in &urls {
            connect_url(url)
                .await
                .batch_execute(
                    "CREATE TABLE u (id bigint PRIMARY KEY, k int, \
                     CONSTRAINT k_unique UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)",
                )
                .await
                .unwrap();
        }
        let state = state_dir("commit");
        let maps = "[maps.m]\nstrategy = \"hash\"\nkey_type = \"bigint\"\nbuckets = 2\n\n\
                    [tables]\nu = { map = \"m\", key = \"id\" }\n";
        let proxy = start_proxy(&format!("{}{maps}", config(&urls, &state, "rec4", 60_000))).await;
        // Two ids on different shards.
        let a = 1;
        let mut b = 2;
        while shard_of(&proxy, b).await == shard_of(&proxy, a).await {
            b += 1;
        }
        let (sa, sb) = (shard_of(&proxy, a).await, shard_of(&proxy, b).await);
        let client = integration::connect(proxy.addr, "app", None, &dbs.name).await;
        for sql in [
            "BEGIN".to_owned(),
            format!("INSERT INTO u (id, k) VALUES ({a}, 1)"),
            format!("INSERT INTO u (id, k) VALUES ({b}, 2)"),
            "COMMIT".to_owned(),
        ] {
            client.batch_execute(&sql).await.unwrap();
        }
        assert_eq!(ids_in_u(&urls[sa]).await, vec![a]);
        assert_eq!(ids_in_u(&urls[sb]).await, vec![b]);
        assert_eq!(metric(&proxy, "shardproxy_2pc_commits_total").await, 1.0);
        // A deferred unique violation on b's shard fails its PREPARE: nothing commits anywhere,
        // and the client gets that shard's error.
        let mut a2 = 1000;
        while shard_of(&proxy, a2).await != sa {
            a2 += 1;
        }
        let mut b2 = 2000;
        while shard_of(&proxy, b2).await != sb {
            b2 += 1;
        }
        client.batch_execute("BEGIN").await.unwrap();
        for (id, k) in [(a2, 7), (b2, 2)] {
            client
                .batch_execute(&format!("INSERT INTO u (id, k) VALUES ({id}, {k})"))
                .await
                .unwrap();
        }
        let err = client.batch_execute("COMMIT").await.unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
        assert_eq!(db.code().code(), "23505", "{db:?}");
        assert!(db.message().contains("k_unique"), "{db:?}");
        // Only the first transaction's rows exist.
        let mut all: Vec<i64> = ids_in_u(&urls[0]).await;
        all.extend(ids_in_u(&urls[1]).await);
        all.sort_unstable();
        assert_eq!(all, {
            let mut v = vec![a, b];
            v.sort_unstable();
            v
        });
        for url in &urls {
            assert!(prepared(url).await.is_empty());
        }
        assert_eq!(metric(&proxy, "shardproxy_2pc_aborts_total").await, 1.0);
        // The session is usable afterwards.
        client.batch_execute("SELECT 1").await.unwrap();
        proxy.shutdown().await;
    })
    .await;
}

/// Ids in u on `url`, sorted.
async fn ids_in_u(url: &str) -> Vec<i64> {
    connect_url(url)
        .await
        .query("SELECT id FROM u ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_without_prepared_transactions_is_named() {
    bounded(async {
        let dbs = fresh_dbs(1).await;
        let mut s1 = tokio::task::spawn_blocking(private_server).await.unwrap();
        let admin_url = s1.url("postgres");
        let setup = connect_url(&admin_url).await;
        setup
            .batch_execute("ALTER SYSTEM SET max_prepared_transactions = 0")
            .await
            .unwrap();
        setup
            .batch_execute(&format!("CREATE DATABASE {}", dbs.name))
            .await
            .unwrap();
        drop(setup);
        tokio::task::block_in_place(|| s1.stop().and_then(|()| s1.restart())).unwrap();
        let urls = vec![dbs.shard_urls[0].clone(), s1.url(&dbs.name)];
        for url in &urls {
            connect_url(url)
                .await
                .batch_execute("CREATE TABLE u (id bigint PRIMARY KEY, k int)")
                .await
                .unwrap();
        }
        let maps = "[maps.m]\nstrategy = \"hash\"\nkey_type = \"bigint\"\nbuckets = 2\n\n\
                    [tables]\nu = { map = \"m\", key = \"id\" }\n";
        let state = state_dir("disabled");
        let proxy = start_proxy(&format!("{}{maps}", config(&urls, &state, "rec5", 60_000))).await;
        eventually("recovery noticed max_prepared_transactions = 0", || async {
            proxy.ctx.twopc.prepared_disabled("s1") && !proxy.ctx.twopc.prepared_disabled("s0")
        })
        .await;
        let a = 1;
        let mut b = 2;
        while shard_of(&proxy, b).await == shard_of(&proxy, a).await {
            b += 1;
        }
        let client = integration::connect(proxy.addr, "app", None, &dbs.name).await;
        client.batch_execute("BEGIN").await.unwrap();
        for id in [a, b] {
            client
                .batch_execute(&format!("INSERT INTO u (id, k) VALUES ({id}, 1)"))
                .await
                .unwrap();
        }
        let err = client.batch_execute("COMMIT").await.unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
        assert_eq!(db.code().code(), "55000");
        assert_eq!(
            db.message(),
            "shard s1 has max_prepared_transactions = 0; writes to several shards need \
             two-phase commit: set max_prepared_transactions > 0 there"
        );
        for url in &urls {
            assert!(ids_in_u(url).await.is_empty());
            assert!(prepared(url).await.is_empty());
        }
        // Writes to one shard still commit with one phase.
        client
            .batch_execute(&format!("INSERT INTO u (id, k) VALUES ({b}, 2)"))
            .await
            .unwrap();
        assert_eq!(ids_in_u(&urls[shard_of(&proxy, b).await]).await, vec![b]);
        proxy.shutdown().await;
        tokio::task::block_in_place(|| s1.stop()).unwrap();
    })
    .await;
}
