//! Two-phase commit when the proxy dies: a real `shardproxy` process (the `sp-under-test`
//! binary) is SIGKILLed at each failpoint of the commit protocol and started again; afterwards
//! every shard committed or none did, nothing stays in `pg_prepared_xacts`, and what a client
//! saw committed is there. Also a shard that is down between PREPARE and COMMIT PREPARED.
//! Every effect is checked on the shards directly.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use config::KeyValue;
use integration::process::{json_strings, metric_sum, with_proxy_keys_if_known, ProxyProcess};
use integration::{config_toml, connect, connect_url, fresh_dbs, private_server, TestDbs};
use shard_router::ShardMap;
use tokio_postgres::Client;

/// The proxy under test, as a real process.
const BIN: &str = env!("CARGO_BIN_EXE_sp-under-test");

/// Upper bound for one crash test.
const TEST_LIMIT: Duration = Duration::from_secs(150);

/// How long a failpoint may take to be reached, and a client to see the proxy die.
const MARKER_LIMIT: Duration = Duration::from_secs(20);

/// How long recovery may take after a restart to leave the shards clean.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

const MAPS: &str = r#"
[maps.items]
strategy = "hash"
key_type = "bigint"
buckets = 64

[tables]
items = { map = "items", key = "id" }
"#;

/// Runs a test body bounded in time.
async fn bounded<F: Future<Output = ()>>(limit: Duration, test: F) {
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {limit:?}"));
}

/// A test's databases, its config and direct connections to each shard.
struct Fixture {
    dbs: TestDbs,
    toml: String,
    proxy_id: String,
    shards: Vec<Client>,
    /// `keys[s]`: keys 1.. that the `items` map places on shard `s`, ascending.
    keys: Vec<Vec<i64>>,
}

impl Fixture {
    /// Three shards with an empty `items` table, recovery every 200 ms and a short in-doubt
    /// time where the config knows those keys.
    async fn new() -> Fixture {
        Fixture::over(fresh_dbs(3).await).await
    }

    async fn over(dbs: TestDbs) -> Fixture {
        let proxy_id = format!("c{:08x}", rand::random::<u32>());
        let toml = config_toml(&dbs, "", MAPS).replacen(
            "[proxy]\n",
            &format!("[proxy]\nproxy_id = \"{proxy_id}\"\n"),
            1,
        );
        let toml = with_proxy_keys_if_known(
            &toml,
            &[
                ("recovery_interval_ms", "200"),
                ("in_doubt_after_ms", "1000"),
            ],
        );
        let config = config::Config::parse(&toml, "test.toml").unwrap();
        let map = ShardMap::new(&config.maps["items"]);
        let mut keys = vec![Vec::new(); dbs.shard_urls.len()];
        for k in 1..2000i64 {
            keys[map.place(&KeyValue::Int(k)).unwrap()].push(k);
        }
        let mut shards = Vec::new();
        for url in &dbs.shard_urls {
            let shard = connect_url(url).await;
            shard
                .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL)")
                .await
                .unwrap();
            shards.push(shard);
        }
        Fixture {
            dbs,
            toml,
            proxy_id,
            shards,
            keys,
        }
    }

    /// Our gids prepared on each shard.
    async fn prepared(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.push(prepared_on(shard).await);
        }
        out
    }

    /// The ids in `items` on each shard, ascending.
    async fn rows(&self) -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.push(ids_on(shard).await);
        }
        out
    }

    /// A client of the test's database through the proxy.
    async fn client(&self, proc: &ProxyProcess) -> Client {
        connect(proc.addr, "app", None, &self.dbs.name).await
    }

    /// Waits (bounded) until no shard holds a prepared transaction of this database.
    async fn wait_no_prepared(&self, proc: &ProxyProcess, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let prepared = self.prepared().await;
            if prepared.iter().all(Vec::is_empty) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still prepared after {limit:?} (recovery did not finish them): {prepared:?}\n{}",
                proc.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Our gids prepared on one shard, ascending.
async fn prepared_on(shard: &Client) -> Vec<String> {
    let rows = shard
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// The ids in `items` on one shard, ascending.
async fn ids_on(shard: &Client) -> Vec<i64> {
    let rows = shard
        .query("SELECT id FROM items ORDER BY id", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// The keys among `keys` that a client finds through the proxy, one single-shard lookup each.
async fn found_through(client: &Client, keys: &[i64]) -> Vec<i64> {
    let mut found = Vec::new();
    for k in keys {
        let row = client
            .query_opt("SELECT v FROM items WHERE id = $1", &[k])
            .await
            .unwrap();
        if let Some(row) = row {
            assert_eq!(row.get::<_, String>(0), format!("v{k}"));
            found.push(*k);
        }
    }
    found
}

/// How the multi-shard write reaches COMMIT.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// BEGIN; one INSERT on shard 0; one on shard 1; COMMIT (shard 2 is not touched).
    Transaction,
    /// One multi-row INSERT outside a transaction, with rows for all three shards.
    Statement,
}

impl Write {
    /// The shards that take part.
    fn participants(self) -> usize {
        match self {
            Write::Transaction => 2,
            Write::Statement => 3,
        }
    }
}

/// The rows each shard holds once the write committed: two keys per participant.
fn written(fx: &Fixture, write: Write) -> Vec<Vec<i64>> {
    (0..fx.shards.len())
        .map(|s| match s < write.participants() {
            true => fx.keys[s][..2].to_vec(),
            false => Vec::new(),
        })
        .collect()
}

/// `INSERT INTO items` of these keys.
fn insert_sql(keys: &[i64]) -> String {
    let values: Vec<String> = keys.iter().map(|k| format!("({k}, 'v{k}')")).collect();
    format!("INSERT INTO items (id, v) VALUES {}", values.join(", "))
}

/// Sends the write; for a transaction the statements before COMMIT run (and must succeed)
/// here. The returned task ends with the answer to the final COMMIT or statement.
async fn send_write(
    client: Client,
    fx: &Fixture,
    write: Write,
) -> tokio::task::JoinHandle<Result<(), tokio_postgres::Error>> {
    let want = written(fx, write);
    let last = match write {
        Write::Transaction => {
            client.batch_execute("BEGIN").await.unwrap();
            client.batch_execute(&insert_sql(&want[0])).await.unwrap();
            client.batch_execute(&insert_sql(&want[1])).await.unwrap();
            "COMMIT".to_owned()
        }
        Write::Statement => insert_sql(&want.concat()),
    };
    tokio::spawn(async move { client.batch_execute(&last).await })
}

/// Starts the proxy with `failpoints` (`SHARDPROXY_FAILPOINTS`) and sends the write through it.
async fn start_and_send(
    fx: &Fixture,
    failpoints: &str,
    write: Write,
) -> (
    ProxyProcess,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let proc = ProxyProcess::start(BIN, &fx.toml, &[("SHARDPROXY_FAILPOINTS", failpoints)]).await;
    let client = fx.client(&proc).await;
    let answer = send_write(client, fx, write).await;
    (proc, answer)
}

/// What a failpoint leaves on the shards while the proxy waits at it: how many participants
/// hold the transaction prepared (at least, at most).
fn prepared_at(failpoint: &str, participants: usize) -> (usize, usize) {
    match failpoint {
        "after_some_prepares" | "after_some_commits" => (1, participants - 1),
        _ => (participants, participants),
    }
}

/// Whether the write must be there after recovery: yes once the decision was logged.
fn committed_after(failpoint: &str) -> bool {
    matches!(failpoint, "after_decision" | "after_some_commits")
}

/// The whole crash scenario for one failpoint and one kind of write.
async fn crash_at(failpoint: &str, write: Write) {
    let fx = Fixture::new().await;
    let (mut proc, answer) = start_and_send(&fx, &format!("{failpoint}=pause"), write).await;
    proc.wait_for_failpoint(failpoint, MARKER_LIMIT).await;

    // Paused: the shards show exactly how far the protocol got.
    let prepared = fx.prepared().await;
    let gids: Vec<&String> = prepared.iter().flatten().collect();
    let (min, max) = prepared_at(failpoint, write.participants());
    assert!(
        (min..=max).contains(&gids.len()),
        "at {failpoint} ({write:?}) expected {min}..={max} shards with the transaction prepared, got {prepared:?}"
    );
    let prefix = format!("sp_{}_", fx.proxy_id);
    for gid in &gids {
        assert!(
            gid.starts_with(&prefix),
            "gid {gid} is not sp_<proxy_id>_..."
        );
        assert!(gid.len() < 200, "gid {gid} is too long for PostgreSQL");
        assert_eq!(*gid, gids[0], "one gid per transaction on every shard");
    }
    for (s, held) in prepared.iter().enumerate().skip(write.participants()) {
        assert!(held.is_empty(), "shard {s} does not take part: {held:?}");
    }
    assert!(
        !answer.is_finished(),
        "the client got an answer while the proxy waits at {failpoint}"
    );

    proc.kill();
    let answer = tokio::time::timeout(MARKER_LIMIT, answer).await;
    let answer = answer.unwrap_or_else(|_| panic!("the client hangs after the proxy died"));
    assert!(
        answer.unwrap().is_err(),
        "the client got COMMIT OK from a proxy stopped at {failpoint}"
    );

    proc.restart(&[]).await;
    fx.wait_no_prepared(&proc, RECOVERY_LIMIT).await;
    let want = match committed_after(failpoint) {
        true => written(&fx, write),
        false => vec![Vec::new(); fx.shards.len()],
    };
    assert_eq!(
        fx.rows().await,
        want,
        "after a kill at {failpoint} ({write:?})"
    );
    // The same answer through the restarted proxy.
    let client = fx.client(&proc).await;
    let found = found_through(&client, &written(&fx, write).concat()).await;
    assert_eq!(found, want.concat());
    let (status, metrics) = proc.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let recovered = metric_sum(&metrics, "shardproxy_2pc_recovered_total").unwrap_or(0.0);
    assert!(
        recovered >= 1.0,
        "no recovery counted after {failpoint}:\n{metrics}"
    );
}

/// The crash scenario at one failpoint, for a transaction and then for a statement.
async fn crash_at_both(failpoint: &str) {
    bounded(TEST_LIMIT, async {
        crash_at(failpoint, Write::Transaction).await;
        crash_at(failpoint, Write::Statement).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_some_prepares_rolls_back_everywhere() {
    crash_at_both("after_some_prepares").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_all_prepares_rolls_back_everywhere() {
    crash_at_both("after_all_prepares").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_decision_commits_everywhere() {
    crash_at_both("after_decision").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_some_commits_commits_everywhere() {
    crash_at_both("after_some_commits").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_failpoint_raises_sigkill_and_the_decision_survives() {
    bounded(TEST_LIMIT, async {
        let fx = Fixture::new().await;
        let (mut proc, answer) =
            start_and_send(&fx, "after_decision=kill", Write::Transaction).await;
        let status = proc.wait_exit(MARKER_LIMIT).await;
        assert_eq!(
            status.signal(),
            Some(9),
            "{status:?}\n{}",
            proc.stderr_tail()
        );
        assert!(answer.await.unwrap().is_err());
        proc.restart(&[]).await;
        fx.wait_no_prepared(&proc, RECOVERY_LIMIT).await;
        assert_eq!(fx.rows().await, written(&fx, Write::Transaction));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_ok_means_the_rows_are_there() {
    bounded(TEST_LIMIT, async {
        let fx = Fixture::new().await;
        let proc = ProxyProcess::start(BIN, &fx.toml, &[]).await;
        let metric = |text: &str| metric_sum(text, "shardproxy_2pc_commits_total").unwrap_or(0.0);
        // One shard: one phase, no 2PC commit counted.
        let client = fx.client(&proc).await;
        let one = &fx.keys[2][..2];
        client.batch_execute("BEGIN").await.unwrap();
        client.batch_execute(&insert_sql(one)).await.unwrap();
        client.batch_execute("COMMIT").await.unwrap();
        assert_eq!(metric(&proc.admin_get("/metrics").await.1), 0.0);
        // Two shards in a transaction, then three in one statement: COMMIT OK each time.
        let answer = send_write(client, &fx, Write::Transaction).await;
        answer.await.unwrap().unwrap();
        let client = fx.client(&proc).await;
        let stmt_keys: Vec<i64> = fx.keys.iter().map(|k| k[2]).collect();
        client.batch_execute(&insert_sql(&stmt_keys)).await.unwrap();
        // A new connection sees every row; no shard keeps anything prepared.
        let reader = fx.client(&proc).await;
        let mut want = written(&fx, Write::Transaction).concat();
        want.extend(one);
        want.extend(&stmt_keys);
        want.sort();
        assert_eq!(found_through(&reader, &want).await, want);
        assert!(fx.prepared().await.iter().all(Vec::is_empty));
        let per_shard = fx.rows().await;
        assert_eq!(per_shard[0], [fx.keys[0][0], fx.keys[0][1], fx.keys[0][2]]);
        assert_eq!(per_shard[1], [fx.keys[1][0], fx.keys[1][1], fx.keys[1][2]]);
        assert_eq!(per_shard[2], [fx.keys[2][0], fx.keys[2][1], fx.keys[2][2]]);
        assert_eq!(metric(&proc.admin_get("/metrics").await.1), 2.0);
    })
    .await;
}

/// Our gids in `GET /api/v1/transactions`, with the raw body.
async fn in_doubt(proc: &ProxyProcess) -> (Vec<String>, String) {
    let (status, body) = proc.admin_get("/api/v1/transactions").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"transactions\""), "{body}");
    (json_strings(&body, "gid"), body)
}

/// Polls `check` every 100 ms until it is true; panics with `what` after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, proc: &ProxyProcess, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            proc.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until `gid` is in the in-doubt list (`want_listed`) or is no longer there.
async fn wait_in_doubt(
    proc: &ProxyProcess,
    gid: &str,
    want_listed: bool,
    limit: Duration,
    what: &str,
) {
    wait_until(limit, what, proc, move || async move {
        in_doubt(proc).await.0.iter().any(|g| g == gid) == want_listed
    })
    .await;
}

/// Waits (bounded) until `shard` holds no prepared transaction of this database.
async fn wait_none_prepared_on(shard: &Client, proc: &ProxyProcess, what: &str) {
    wait_until(RECOVERY_LIMIT, what, proc, move || async move {
        prepared_on(shard).await.is_empty()
    })
    .await;
}

/// Runs `op` on `server` on a blocking thread (PostgreSQL stops and starts synchronously) and
/// hands the server back.
async fn on_blocking_thread<T: Send + 'static>(
    mut server: T,
    op: impl FnOnce(&mut T) + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(move || {
        op(&mut server);
        server
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_down_between_prepare_and_commit_prepared() {
    bounded(Duration::from_secs(240), async {
        // Shard s1 is a server of this test's own, so stopping it disturbs no other test.
        let one = fresh_dbs(1).await;
        let mut b = tokio::task::spawn_blocking(private_server).await.unwrap();
        let create = format!("CREATE DATABASE {}", one.name);
        connect_url(&b.url("postgres"))
            .await
            .batch_execute(&create)
            .await
            .unwrap();
        let dbs = TestDbs {
            shard_urls: vec![one.shard_urls[0].clone(), b.url(&one.name)],
            ..one
        };
        let fx = Fixture::over(dbs).await;
        let knows_in_doubt = fx.toml.contains("in_doubt_after_ms");
        let (mut proc, answer) =
            start_and_send(&fx, "after_decision=pause", Write::Transaction).await;
        proc.wait_for_failpoint("after_decision", MARKER_LIMIT)
            .await;
        let gid = fx.prepared().await[0].first().cloned().unwrap();
        proc.kill();
        assert!(answer.await.unwrap().is_err());
        b = on_blocking_thread(b, |b| b.stop().unwrap()).await;

        proc.restart(&[]).await;
        // s0 is finished; s1 waits for its server.
        let a = &fx.shards[0];
        wait_none_prepared_on(a, &proc, "recovery commits s0's part").await;
        assert_eq!(ids_on(a).await, fx.keys[0][..2]);
        // s0 keeps serving reads and writes through the proxy.
        let client = fx.client(&proc).await;
        let k = fx.keys[0][5];
        client.batch_execute(&insert_sql(&[k])).await.unwrap();
        let v: String = client
            .query_one("SELECT v FROM items WHERE id = $1", &[&fx.keys[0][0]])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, format!("v{}", fx.keys[0][0]));
        // Listed as in-doubt, with its decision and its shards.
        let listed = match knows_in_doubt {
            true => RECOVERY_LIMIT,
            false => Duration::from_secs(90), // the default in-doubt time is 60 s
        };
        wait_in_doubt(&proc, &gid, true, listed, "the gid is listed as in-doubt").await;
        let body = in_doubt(&proc).await.1;
        assert!(
            json_strings(&body, "decision").contains(&"commit".to_owned()),
            "{body}"
        );
        assert!(body.contains("\"s1\""), "{body}");

        // s1 is back: recovery commits its part and the list empties.
        b = on_blocking_thread(b, |b| b.restart().unwrap()).await;
        let b_client = &connect_url(&fx.dbs.shard_urls[1]).await;
        wait_none_prepared_on(b_client, &proc, "recovery commits s1's part").await;
        wait_in_doubt(
            &proc,
            &gid,
            false,
            RECOVERY_LIMIT,
            "the in-doubt list empties",
        )
        .await;
        assert_eq!(ids_on(b_client).await, fx.keys[1][..2]);
        drop(proc);
        tokio::task::spawn_blocking(move || drop(b)).await.unwrap();
    })
    .await;
}
