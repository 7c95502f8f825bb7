//! Bad input and failures: garbage on raw sockets, SSL/GSS negotiation, statement names reused
//! across clients (raw protocol), backends killed under clients, cancel, pool exhaustion and
//! graceful shutdown.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use integration::raw::{exec_msgs, first_error, frame, parse_msg, query_msg, startup_packet, Raw};
use integration::util::{bounded, code, exec, proxy_with_pool};
use integration::{connect, connect_url, try_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// One round of bad clients; every case must end in an error and/or EOF, never a hang.
async fn bad_clients(addr: SocketAddr, db: &str) {
    // Not a startup packet at all: "GET " read as a length is ~1.2 GB.
    let msgs = Raw::open(addr)
        .await
        .send_until_eof(b"GET / HTTP/1.1\r\nHost: shardproxy\r\n\r\n")
        .await;
    assert!(msgs.iter().all(|(t, _)| *t == b'E'), "{msgs:?}");
    // A well-sized packet with an unknown protocol code, and one with a length below 8.
    for packet in [
        [0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78],
        [0, 0, 0, 2, 1, 2, 3, 4],
    ] {
        let msgs = Raw::open(addr).await.send_until_eof(&packet).await;
        assert!(msgs.iter().all(|(t, _)| *t == b'E'), "{msgs:?}");
    }
    // After login: an unknown message type, a length below 4, a length of 2 GiB.
    let bad: [&[u8]; 3] = [b"z\0\0\0\x04", b"Q\0\0\0\x02", b"Q\x7f\xff\xff\xffSELECT 1"];
    for bytes in bad {
        let msgs = Raw::login(addr, db).await.send_until_eof(bytes).await;
        assert_eq!(
            first_error(&msgs).as_deref(),
            Some("08P01"),
            "after {bytes:02x?}: {msgs:?}"
        );
    }
    // Gone mid-message: half a startup packet, half a Query, half a Parse/Bind/Sync batch.
    let mut batch = parse_msg("half", "SELECT $1::int4");
    batch.extend(exec_msgs("half", &["1"]));
    let startup = startup_packet("app", db);
    let halves = [
        &startup[..9],
        &query_msg("SELECT 12345")[..9],
        &batch[..batch.len() - 7],
    ];
    for (i, half) in halves.into_iter().enumerate() {
        let mut raw = match i {
            0 => Raw::open(addr).await,
            _ => Raw::login(addr, db).await,
        };
        raw.stream.write_all(half).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_broken_clients_do_not_disturb_others() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = (0..3).map(|_| {
            let (addr, db, stop) = (proxy.addr, dbs.name.clone(), stop.clone());
            tokio::spawn(async move {
                let client = connect(addr, "app", None, &db).await;
                let mut n = 0i32;
                while !stop.load(Ordering::Relaxed) {
                    let row = client
                        .query_one("SELECT $1::int4 + 1", &[&n])
                        .await
                        .unwrap();
                    assert_eq!(row.get::<_, i32>(0), n + 1);
                    n += 1;
                }
                n
            })
        });
        let load: Vec<_> = load.collect();
        for _ in 0..3 {
            bad_clients(proxy.addr, &dbs.name).await;
        }
        stop.store(true, Ordering::Relaxed);
        for done in join_all(load).await {
            assert!(done.unwrap() > 0, "a well-behaved client made no progress");
        }
        let client = connect(proxy.addr, "app", None, &dbs.name).await;
        let v: i32 = client.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0);
        assert_eq!(v, 42);
        // No backend stays checked out by a client that went away.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = proxy.ctx.pools[0].status();
            if status.available == status.size {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "backends still in use: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_gss_requests_are_declined_then_startup_works() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let (ssl, gss) = (80_877_103u32, 80_877_104u32);
        for requests in [vec![ssl], vec![gss], vec![gss, ssl]] {
            let mut raw = Raw::open(proxy.addr).await;
            for request in requests {
                let mut packet = 8u32.to_be_bytes().to_vec();
                packet.extend(request.to_be_bytes());
                raw.stream.write_all(&packet).await.unwrap();
                let mut answer = [0u8; 1];
                raw.stream.read_exact(&mut answer).await.unwrap();
                assert_eq!(answer, *b"N", "answer to request {request}");
            }
            let msgs = raw.round_trip(&startup_packet("app", &dbs.name)).await;
            assert_eq!(msgs.first(), Some(&(b'R', vec![0, 0, 0, 0])), "{msgs:?}");
            let msgs = raw.round_trip(&query_msg("SELECT 6 * 7")).await;
            let row = msgs.iter().find(|(t, _)| *t == b'D').unwrap();
            assert_eq!(&row.1[6..], b"42");
        }
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_statement_names_from_different_clients_share_one_backend() {
    // tokio-postgres names statements process-wide (s0, s1, ... never repeat between clients of
    // one process), so the clashing names are sent by hand.
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(1, 20_000).await;
        let mut a = Raw::login(proxy.addr, &dbs.name).await;
        let mut b = Raw::login(proxy.addr, &dbs.name).await;
        let msgs = a.round_trip(&parse_msg("s0", "SELECT $1::int4 * 2")).await;
        assert_eq!(first_error(&msgs), None);
        let msgs = b
            .round_trip(&parse_msg("s0", "SELECT $1::text || '!'"))
            .await;
        assert_eq!(first_error(&msgs), None);
        for i in 0..10 {
            assert_eq!(
                a.exec("s0", &[&i.to_string()]).await,
                Ok((i * 2).to_string())
            );
            assert_eq!(
                b.exec("s0", &[&format!("x{i}")]).await,
                Ok(format!("x{i}!"))
            );
        }
        // Like PostgreSQL: a second Parse of a live name fails and keeps the old definition.
        let msgs = a.round_trip(&parse_msg("s0", "SELECT 1")).await;
        assert_eq!(first_error(&msgs).as_deref(), Some("42P05"));
        assert_eq!(a.exec("s0", &["5"]).await, Ok("10".into()));
        // Closed and re-parsed with another text: the new one runs, B's s0 is untouched.
        let mut msg = frame(b'C', b"Ss0\0");
        msg.extend(parse_msg("s0", "SELECT $1::int4 + 100"));
        let msgs = a.round_trip(&msg).await;
        assert_eq!(first_error(&msgs), None);
        assert!(
            msgs.iter().any(|(t, _)| *t == b'3'),
            "no CloseComplete: {msgs:?}"
        );
        assert_eq!(a.exec("s0", &["7"]).await, Ok("107".into()));
        assert_eq!(b.exec("s0", &["y"]).await, Ok("y!".into()));
        // A's first text, now prepared by B under another name.
        let msgs = b.round_trip(&parse_msg("s1", "SELECT $1::int4 * 2")).await;
        assert_eq!(first_error(&msgs), None);
        assert_eq!(b.exec("s1", &["21"]).await, Ok("42".into()));
        assert_eq!(b.exec("s9", &[]).await, Err("26000".into()));
        assert_eq!(b.exec("s0", &["z"]).await, Ok("z!".into()));
        assert_eq!(a.exec("s1", &["1"]).await, Err("26000".into()));
        proxy.shutdown().await;
    })
    .await;
}

/// The pid of the backend in `db` running exactly `sql`, once it runs.
async fn active_backend(admin: &Client, db: &str, sql: &str) -> i32 {
    loop {
        let row = admin
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = $2",
                &[&db, &sql],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Terminates backend `pid` and waits until it is gone.
async fn terminate(admin: &Client, pid: i32) {
    let done: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(done, "pg_terminate_backend({pid})");
    let gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1";
    while admin
        .query_one(gone, &[&pid])
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Terminates the backend running `sql` once it runs; returns its pid.
async fn kill_when_active(admin: &Client, db: &str, sql: &str) -> i32 {
    let pid = active_backend(admin, db, sql).await;
    terminate(admin, pid).await;
    pid
}

/// The backend's pid, by simple query: unlike `query_one` this leaves no Close in flight.
async fn backend_pid(client: &Client) -> i32 {
    let msgs = client
        .simple_query("SELECT pg_backend_pid()")
        .await
        .unwrap();
    let row = msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    });
    row.unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_during_a_query() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(2, 5_000).await;
        let admin = connect_url(&dbs.shard_urls[0]).await;
        let client = connect(proxy.addr, "app", None, &dbs.name).await;
        let sql = "SELECT pg_sleep(60)";
        // Odd rounds send the next query at once, racing the proxy's read of the dead backend's
        // EOF; even rounds pause first.
        for round in 0..4 {
            let (result, killed) = tokio::join!(
                tokio::time::timeout(Duration::from_secs(20), client.simple_query(sql)),
                kill_when_active(&admin, &dbs.name, sql),
            );
            let result =
                result.unwrap_or_else(|_| panic!("no answer after the backend was killed"));
            let err = result.unwrap_err();
            assert!(err.as_db_error().is_some(), "{err:?}");
            if round % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // The same client goes on, on a fresh backend.
            assert_ne!(backend_pid(&client).await, killed);
        }
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_while_the_client_is_idle() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(1, 5_000).await;
        let admin = connect_url(&dbs.shard_urls[0]).await;
        let client = connect(proxy.addr, "app", None, &dbs.name).await;
        let stmt = client.prepare("SELECT $1::int4 * 10").await.unwrap();
        let mut pid = backend_pid(&client).await;
        for round in 0..3 {
            // Pool size 1: the idle backend is the one the client just used.
            let idle: i32 = admin
                .query_one(
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'shardproxy'",
                    &[&dbs.name],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(idle, pid);
            terminate(&admin, pid).await;
            // No error: the proxy notices the dead backend and takes a fresh one.
            let row = client.query_one(&stmt, &[&round]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), round * 10);
            let new_pid = backend_pid(&client).await;
            assert_ne!(new_pid, pid);
            pid = new_pid;
        }
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_inside_a_transaction() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(1, 5_000).await;
        let admin = connect_url(&dbs.shard_urls[0]).await;
        let client = connect(proxy.addr, "app", None, &dbs.name).await;
        exec(&client, "CREATE TABLE k (v int)").await;
        // Killed while the client is idle in the transaction.
        exec(&client, "BEGIN; INSERT INTO k VALUES (1)").await;
        let pid = backend_pid(&client).await;
        terminate(&admin, pid).await;
        let err = client
            .batch_execute("INSERT INTO k VALUES (2)")
            .await
            .unwrap_err();
        assert!(err.as_db_error().is_some(), "{err:?}");
        // What a driver does after an error in a transaction.
        exec(&client, "ROLLBACK").await;
        exec(&client, "BEGIN; INSERT INTO k VALUES (3); COMMIT").await;
        // Killed while a statement of the transaction runs: the transaction is gone, so the
        // next statement must fail too, not run on a fresh backend outside any transaction.
        exec(&client, "BEGIN; INSERT INTO k VALUES (4)").await;
        let sql = "SELECT pg_sleep(60)";
        let (result, _) = tokio::join!(
            client.simple_query(sql),
            kill_when_active(&admin, &dbs.name, sql)
        );
        assert!(result.is_err());
        // A client that pauses: by then the proxy has seen the dead backend's EOF.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let next = client.batch_execute("INSERT INTO k VALUES (5)").await;
        let err = next.expect_err("a statement of the lost transaction ran outside it");
        assert_eq!(code(&err), Some("25P02"), "{err:?}");
        exec(&client, "ROLLBACK").await;
        let rows = admin
            .query("SELECT v FROM k ORDER BY v", &[])
            .await
            .unwrap();
        let values: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(values, [3]);
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_running_query_only() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let admin = connect_url(&dbs.shard_urls[0]).await;
        let client = connect(proxy.addr, "app", None, &dbs.name).await;
        let token = client.cancel_token();
        let sql = "SELECT pg_sleep(30)";
        let started = Instant::now();
        let (result, ()) = tokio::join!(client.simple_query(sql), async {
            active_backend(&admin, &dbs.name, sql).await;
            token.cancel_query(NoTls).await.unwrap();
        });
        assert_eq!(result.unwrap_err().code(), Some(&SqlState::QUERY_CANCELED));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            client
                .query_one("SELECT 1", &[])
                .await
                .unwrap()
                .get::<_, i32>(0),
            1
        );
        // A cancel while idle must not hit the client's next query.
        token.cancel_query(NoTls).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.simple_query("SELECT pg_sleep(0.5)").await.unwrap();
        // Extended protocol inside a transaction: cancelled, then the transaction is aborted.
        exec(&client, "BEGIN").await;
        let (result, ()) = tokio::join!(client.query(sql, &[]), async {
            active_backend(&admin, &dbs.name, sql).await;
            token.cancel_query(NoTls).await.unwrap();
        });
        assert_eq!(result.unwrap_err().code(), Some(&SqlState::QUERY_CANCELED));
        let err = client.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        exec(&client, "ROLLBACK").await;
        assert_eq!(
            client
                .query_one("SELECT 2", &[])
                .await
                .unwrap()
                .get::<_, i32>(0),
            2
        );
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_times_out_then_recovers() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(1, 300).await;
        let a = connect(proxy.addr, "app", None, &dbs.name).await;
        let b = connect(proxy.addr, "app", None, &dbs.name).await;
        exec(&a, "BEGIN").await;
        a.simple_query("SELECT 1").await.unwrap();
        for _ in 0..2 {
            let started = Instant::now();
            let err = b.query_one("SELECT 2", &[]).await.unwrap_err();
            let elapsed = started.elapsed();
            assert!(
                elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
                "{elapsed:?}"
            );
            let message = err
                .as_db_error()
                .map(|e| e.message().to_lowercase())
                .unwrap_or_default();
            assert!(
                message.contains("timed out") || message.contains("timeout"),
                "{err:?}"
            );
            assert_eq!(code(&err), Some("53300"), "{err:?}");
        }
        exec(&a, "COMMIT").await;
        assert_eq!(
            b.query_one("SELECT 2", &[]).await.unwrap().get::<_, i32>(0),
            2
        );
        assert_eq!(
            a.query_one("SELECT 3", &[]).await.unwrap().get::<_, i32>(0),
            3
        );
        proxy.shutdown().await;
    })
    .await;
}

/// A client plus its connection task, whose result says why the connection ended.
async fn connect_watched(
    addr: SocketAddr,
    db: &str,
) -> (
    Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("app")
        .dbname(db);
    let (client, connection) = config.connect(NoTls).await.unwrap();
    (client, tokio::spawn(connection))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_clients_with_57p01() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let addr = proxy.addr;
        let (client, connection) = connect_watched(addr, &dbs.name).await;
        client.simple_query("SELECT 1").await.unwrap();
        // This one still has a Close (of its dropped statement) in flight when shutdown starts.
        let (busy, busy_connection) = connect_watched(addr, &dbs.name).await;
        assert_eq!(
            busy.query_one("SELECT 2", &[])
                .await
                .unwrap()
                .get::<_, i32>(0),
            2
        );
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), proxy.shutdown())
            .await
            .unwrap_or_else(|_| panic!("shutdown with idle clients took over 5 s"));
        let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
        let err = ended.unwrap().unwrap().unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err:?}");
        assert!(client.simple_query("SELECT 1").await.is_err());
        let ended = tokio::time::timeout(Duration::from_secs(5), busy_connection).await;
        assert!(ended.unwrap().unwrap().is_err());
        assert!(busy.simple_query("SELECT 1").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(try_connect(addr, "app", None, &dbs.name).await.is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_open_transaction_finish() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let addr = proxy.addr;
        let (client, connection) = connect_watched(addr, &dbs.name).await;
        exec(
            &client,
            "CREATE TABLE d (v int); BEGIN; INSERT INTO d VALUES (1)",
        )
        .await;
        let shutdown = tokio::spawn(proxy.shutdown());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !shutdown.is_finished(),
            "shutdown did not wait for the open transaction"
        );
        assert!(
            try_connect(addr, "app", None, &dbs.name).await.is_err(),
            "still accepting"
        );
        exec(&client, "INSERT INTO d VALUES (2); COMMIT").await;
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .unwrap_or_else(|_| panic!("shutdown did not end after the transaction"))
            .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
        let err = ended.unwrap().unwrap().unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err:?}");
        let admin = connect_url(&dbs.shard_urls[0]).await;
        let n: i64 = admin
            .query_one("SELECT count(*) FROM d", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_queries_still_running_after_the_drain_timeout() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(2, 5_000).await;
        let admin = connect_url(&dbs.shard_urls[0]).await;
        let client = connect(proxy.addr, "app", None, &dbs.name).await;
        let sql = "SELECT pg_sleep(60)";
        let running = tokio::spawn(async move { client.simple_query(sql).await });
        active_backend(&admin, &dbs.name, sql).await;
        let started = Instant::now();
        proxy.shutdown().await;
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        // The sleep was cancelled on the shard, not left running for nobody.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let still: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = $2",
                    &[&dbs.name, &sql],
                )
                .await
                .unwrap()
                .get(0);
            if still == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the query still runs after shutdown");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(running.await.unwrap().is_err());
    })
    .await;
}
