//! The real `psql` client through the proxy (scram-sha-256 login, transaction pooling).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashSet;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::{config_toml, connect, connect_url, fresh_dbs, pg_tool, start_proxy, TestDbs};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::timeout;

/// The proxy login used by every test here.
const USER: &str = "app";
/// Its password.
const PASSWORD: &str = "app-secret";
/// Upper bound for anything that could hang.
const LIMIT: Duration = Duration::from_secs(30);

/// An `[auth]` section with one scram user.
fn scram_auth() -> String {
    format!(
        "[auth]\nmethod = \"scram-sha-256\"\nusers = [ {{ name = \"{USER}\", password = \"{PASSWORD}\" }} ]\n"
    )
}

/// A proxy config for `dbs` with scram auth and `pool_size` backends per shard.
fn proxy_config(dbs: &TestDbs, pool_size: usize) -> String {
    let toml = config_toml(dbs, &scram_auth(), "");
    assert!(
        toml.contains("\nsize = 4\n"),
        "harness pool layout changed:\n{toml}"
    );
    toml.replacen("\nsize = 4\n", &format!("\nsize = {pool_size}\n"), 1)
}

/// The `postgres://` URL psql uses to reach the proxy.
fn proxy_url(proxy: &proxy::RunningProxy, db: &str) -> String {
    format!(
        "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{db}",
        proxy.addr.port()
    )
}

/// A psql command for `url`: no psqlrc, connect timeout, no password prompt, clean environment.
fn psql_command(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(pg_tool("psql"));
    cmd.arg("-X")
        .arg("-w")
        .args(args)
        .arg("-d")
        .arg(url)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .env("PAGER", "cat")
        .env("PSQL_PAGER", "cat")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs psql reading `script` from stdin; returns (status success, stdout, stderr).
async fn psql_script(url: &str, args: &[&str], script: &str) -> (bool, String, String) {
    let mut cmd = psql_command(url, args);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let script = script.to_owned();
    let writer = tokio::spawn(async move {
        stdin.write_all(script.as_bytes()).await.unwrap();
        // Dropping stdin closes it: psql ends after the last line.
    });
    let output: Output = timeout(LIMIT, child.wait_with_output())
        .await
        .expect("psql did not finish in time")
        .unwrap();
    writer.await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Lines of `text`, trimmed at the end, without empty ones.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_rows_describe_and_timing() {
    let dbs = fresh_dbs(1).await;
    let proxy = start_proxy(&proxy_config(&dbs, 4)).await;
    let url = proxy_url(&proxy, &dbs.name);

    let script = "\
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty integer DEFAULT 0);
CREATE INDEX items_name_idx ON items (name);
CREATE TABLE tags (item_id int REFERENCES items (id), label varchar(20));
INSERT INTO items VALUES (1, 'apple', 3), (2, 'banana', 5), (3, 'cherry', 7);
INSERT INTO tags VALUES (1, 'red'), (3, 'red');
\\echo ==rows
SELECT id, name, qty FROM items ORDER BY id;
SELECT i.name, t.label FROM items i JOIN tags t ON t.item_id = i.id ORDER BY i.id;
\\echo ==describe
\\d items
\\echo ==tables
\\dt
\\echo ==timing
\\timing on
SELECT sum(qty) AS total FROM items;
SELECT count(*) AS n FROM tags;
";
    let (ok, out, err) = psql_script(&url, &["-v", "ON_ERROR_STOP=1"], script).await;
    assert!(ok, "psql failed\n--- stdout\n{out}\n--- stderr\n{err}");
    assert!(err.trim().is_empty(), "unexpected stderr: {err}");

    let rows = out
        .split_once("==rows")
        .and_then(|(_, rest)| rest.split_once("==describe"))
        .map(|(rows, _)| rows)
        .unwrap();
    let rows = lines(rows);
    assert_eq!(
        rows,
        vec![
            " id |  name  | qty",
            "----+--------+-----",
            "  1 | apple  |   3",
            "  2 | banana |   5",
            "  3 | cherry |   7",
            "(3 rows)",
            "  name  | label",
            "--------+-------",
            " apple  | red",
            " cherry | red",
            "(2 rows)",
        ],
        "{out}"
    );

    let describe = out
        .split_once("==describe")
        .and_then(|(_, rest)| rest.split_once("==tables"))
        .map(|(d, _)| d)
        .unwrap();
    assert!(describe.contains("Table \"public.items\""), "{describe}");
    let describe_lines = lines(describe);
    for (column, ty, extra) in [
        ("id", "integer", "not null"),
        ("name", "text", "not null"),
        ("qty", "integer", "0"),
    ] {
        assert!(
            describe_lines.iter().any(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                cells.first() == Some(&column)
                    && cells.get(1) == Some(&ty)
                    && cells.contains(&extra)
            }),
            "column {column} {ty} {extra} missing from \\d:\n{describe}"
        );
    }
    assert!(
        describe.contains("\"items_pkey\" PRIMARY KEY, btree (id)"),
        "{describe}"
    );
    assert!(
        describe.contains("\"items_name_idx\" btree (name)"),
        "{describe}"
    );
    assert!(describe.contains("Referenced by:"), "{describe}");

    let tables = out
        .split_once("==tables")
        .and_then(|(_, rest)| rest.split_once("==timing"))
        .map(|(t, _)| t)
        .unwrap();
    assert!(tables.contains("List of relations"), "{tables}");
    let listed: Vec<Vec<&str>> = lines(tables)
        .into_iter()
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        .filter(|cells| cells.len() == 4 && cells[0] == "public")
        .collect();
    assert_eq!(
        listed.iter().map(|c| (c[1], c[2])).collect::<Vec<_>>(),
        vec![("items", "table"), ("tags", "table")],
        "{tables}"
    );
    assert!(tables.contains("(2 rows)"), "{tables}");

    let timing = out.split_once("==timing").map(|(_, t)| t).unwrap();
    assert!(timing.contains("Timing is on."), "{timing}");
    let time_lines = lines(timing)
        .into_iter()
        .filter(|l| l.starts_with("Time: ") && l.ends_with(" ms"))
        .count();
    assert!(
        time_lines >= 2,
        "expected a Time: line per query:\n{timing}"
    );
    let timing_lines = lines(timing);
    assert!(
        timing_lines.contains(&"    15"),
        "sum(qty) missing:\n{timing}"
    );
    assert!(timing_lines.contains(&" 2"), "count(*) missing:\n{timing}");

    // The tables really exist on the shard.
    let shard = connect_url(&dbs.shard_urls[0]).await;
    let n: i64 = shard
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_show_sqlstate_and_session_survives() {
    let dbs = fresh_dbs(1).await;
    let proxy = start_proxy(&proxy_config(&dbs, 2)).await;
    let url = proxy_url(&proxy, &dbs.name);

    let script = "\
\\set VERBOSITY verbose
CREATE TABLE u (id int PRIMARY KEY);
INSERT INTO u VALUES (1);
SELEC 1;
SELECT * FROM no_such_table;
SELECT 1 / 0;
INSERT INTO u VALUES (1);
BEGIN;
SELECT 1 / 0;
SELECT 'inside aborted';
ROLLBACK;
SELECT 'after ' || 'errors' AS still_alive, count(*) AS n FROM u;
";
    let (ok, out, err) = psql_script(&url, &["-A", "-t", "-v", "ON_ERROR_STOP=0"], script).await;
    // psql exits 0 when ON_ERROR_STOP is off, whatever the statements did.
    assert!(ok, "psql failed\n--- stdout\n{out}\n--- stderr\n{err}");
    for expected in [
        "ERROR:  42601: syntax error at or near \"SELEC\"",
        "ERROR:  42P01: relation \"no_such_table\" does not exist",
        "ERROR:  22012: division by zero",
        "ERROR:  23505: duplicate key value violates unique constraint \"u_pkey\"",
        "DETAIL:  Key (id)=(1) already exists.",
        "ERROR:  25P02: current transaction is aborted",
    ] {
        assert!(
            err.contains(expected),
            "missing {expected:?} in stderr:\n{err}"
        );
    }
    assert_eq!(
        err.matches("ERROR:  22012").count(),
        2,
        "one division by zero outside and one inside the transaction:\n{err}"
    );
    assert_eq!(err.matches("ERROR:").count(), 6, "{err}");
    assert_eq!(
        lines(&out),
        vec![
            "CREATE TABLE",
            "INSERT 0 1",
            "BEGIN",
            "ROLLBACK",
            "after errors|1"
        ],
        "{out}"
    );
    proxy.shutdown().await;
}

/// Backends on the shard running the test's `pg_sleep` right now.
async fn active_sleeps(shard: &tokio_postgres::Client, db: &str) -> i64 {
    shard
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND state = 'active' AND query LIKE '%pg_sleep(30)%' \
             AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_the_running_query() {
    let dbs = fresh_dbs(1).await;
    let proxy = start_proxy(&proxy_config(&dbs, 2)).await;
    let url = proxy_url(&proxy, &dbs.name);
    let shard = connect_url(&dbs.shard_urls[0]).await;

    let child = psql_command(&url, &["-c", "SELECT pg_sleep(30)"])
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();

    let started = Instant::now();
    while active_sleeps(&shard, &dbs.name).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pg_sleep never showed up in pg_stat_activity on the shard"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let kill = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(kill.success(), "kill -INT {pid} failed");
    let sent = Instant::now();
    let output = timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("psql did not exit within 5 s of SIGINT")
        .unwrap();
    assert!(sent.elapsed() < Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "psql should fail: {stderr}");
    assert!(
        stderr.contains("canceling statement due to user request"),
        "stderr: {stderr}"
    );

    // The backend stopped sleeping: it is not just psql that gave up.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = active_sleeps(&shard, &dbs.name).await;
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} pg_sleep(30) still running on the shard after the cancel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The proxy still serves a new psql afterwards.
    let (ok, out, err) = psql_script(&url, &["-A", "-t"], "SELECT 40 + 2;\n").await;
    assert!(ok, "{err}");
    assert_eq!(lines(&out), vec!["42"]);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_is_kept_per_client_on_a_shared_pool() {
    let dbs = fresh_dbs(1).await;
    // One backend for both clients: every statement of each runs on the same server process.
    let proxy = start_proxy(&proxy_config(&dbs, 1)).await;
    let url = proxy_url(&proxy, &dbs.name);

    let other = connect(proxy.addr, USER, Some(PASSWORD), &dbs.name).await;
    let stop = Arc::new(AtomicBool::new(false));
    let other_task = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            other
                .batch_execute("SET application_name = 'intruder'; SET statement_timeout = '3s'")
                .await
                .unwrap();
            let mut pids = HashSet::new();
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let row = other
                    .query_one(
                        "SELECT current_setting('application_name'), \
                         current_setting('statement_timeout'), pg_backend_pid()",
                        &[],
                    )
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, String>(0), "intruder");
                assert_eq!(row.get::<_, String>(1), "3s");
                pids.insert(row.get::<_, i32>(2));
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (rounds, pids)
        })
    };

    let mut script = String::from(
        "SET application_name = 'x';\nSET statement_timeout = '7s';\n\
         SELECT 'pid=' || pg_backend_pid();\n",
    );
    for i in 0..15 {
        script.push_str(&format!(
            "SELECT pg_sleep(0.02);\nSHOW application_name;\nSELECT 'timeout=' || current_setting('statement_timeout');\nSELECT {i};\n"
        ));
    }
    let (ok, out, err) = psql_script(&url, &["-A", "-t", "-v", "ON_ERROR_STOP=1"], &script).await;
    stop.store(true, Ordering::Relaxed);
    let (rounds, other_pids) = timeout(LIMIT, other_task).await.unwrap().unwrap();
    assert!(ok, "psql failed\n--- stdout\n{out}\n--- stderr\n{err}");

    let out_lines = lines(&out);
    assert_eq!(
        out_lines.iter().filter(|l| **l == "x").count(),
        15,
        "every SHOW must print the client's own application_name:\n{out}"
    );
    assert_eq!(
        out_lines.iter().filter(|l| **l == "timeout=7s").count(),
        15,
        "{out}"
    );
    assert!(!out.contains("intruder") && !out.contains("3s"), "{out}");
    assert!(
        rounds >= 10,
        "the concurrent client barely ran ({rounds} rounds): no real interleaving"
    );
    let psql_pid: i32 = out_lines
        .iter()
        .find_map(|l| l.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        other_pids.contains(&psql_pid),
        "with pool size 1 both clients must share the backend: psql {psql_pid}, other {other_pids:?}"
    );

    // A client that never said SET sees the server default, not a neighbour's value.
    let fresh = connect(proxy.addr, USER, Some(PASSWORD), &dbs.name).await;
    let timeout_setting: String = fresh
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout_setting, "0");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_transaction_leaves_no_row() {
    let dbs = fresh_dbs(1).await;
    let proxy = start_proxy(&proxy_config(&dbs, 1)).await;
    let url = proxy_url(&proxy, &dbs.name);

    let script = "\
CREATE TABLE notes (id int PRIMARY KEY, body text);
BEGIN;
INSERT INTO notes VALUES (1, 'draft');
SELECT 'in tx: ' || body FROM notes WHERE id = 1;
ROLLBACK;
SELECT 'after rollback: ' || count(*) FROM notes;
BEGIN;
INSERT INTO notes VALUES (2, 'kept');
COMMIT;
SELECT 'after commit: ' || string_agg(body, ',') FROM notes;
";
    let (ok, out, err) = psql_script(&url, &["-A", "-t", "-v", "ON_ERROR_STOP=1"], script).await;
    assert!(ok, "psql failed\n--- stdout\n{out}\n--- stderr\n{err}");
    assert_eq!(
        lines(&out),
        vec![
            "CREATE TABLE",
            "BEGIN",
            "INSERT 0 1",
            "in tx: draft",
            "ROLLBACK",
            "after rollback: 0",
            "BEGIN",
            "INSERT 0 1",
            "COMMIT",
            "after commit: kept",
        ],
        "{out}"
    );

    let shard = connect_url(&dbs.shard_urls[0]).await;
    let ids: Vec<i32> = shard
        .query("SELECT id FROM notes ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![2]);
    proxy.shutdown().await;
}
