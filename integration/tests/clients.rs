//! tokio-postgres through the proxy: prepared statements under transaction pooling, binary
//! values, COPY, pipelining, errors in transactions, client and backend auth, session and
//! startup parameters. Everything goes to the default shard (one shard per test).
//! Statement names reused by different clients are tested in robustness.rs with raw messages:
//! tokio-postgres numbers statements process-wide, so its clients never repeat a name.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::pin::pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::join_all;
use futures::{SinkExt, TryStreamExt};
use integration::util::{bounded, code, count, exec, proxy_with_pool, show};
use integration::{config_toml, connect, connect_url, fresh_dbs, start_proxy, try_connect};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_are_reused_across_transactions_and_clients() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(2, 20_000).await;
        let setup = connect(proxy.addr, "app", None, &dbs.name).await;
        setup
            .batch_execute(
                "CREATE TABLE items (client int NOT NULL, n int NOT NULL, label text NOT NULL)",
            )
            .await
            .unwrap();
        let workers = (0..6).map(|c| {
            let (addr, db) = (proxy.addr, dbs.name.clone());
            tokio::spawn(async move { prepared_workload(addr, &db, c).await })
        });
        for w in join_all(workers).await {
            w.unwrap();
        }
        let row = setup
            .query_one("SELECT count(*), count(DISTINCT client) FROM items", &[])
            .await
            .unwrap();
        // 40 iterations per client, one in four rolled back.
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (6 * 30, 6));
        proxy.shutdown().await;
    })
    .await;
}

/// One client: statements prepared once, executed in many transactions on whatever backend.
async fn prepared_workload(addr: SocketAddr, db: &str, c: i32) {
    let mut client = connect(addr, "app", None, db).await;
    let insert = client
        .prepare("INSERT INTO items (client, n, label) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    let totals_sql = "SELECT count(*), coalesce(sum(n), 0)::bigint FROM items WHERE client = $1";
    // The same text twice on one client: two statements, both must keep working.
    let totals = [
        client.prepare(totals_sql).await.unwrap(),
        client.prepare(totals_sql).await.unwrap(),
    ];
    let label = client
        .prepare("SELECT label FROM items WHERE client = $1 AND n = $2")
        .await
        .unwrap();
    let (mut rows, mut sum) = (0i64, 0i64);
    for n in 1..=40i32 {
        let text = format!("c{c}-n{n}");
        match n % 4 {
            0 => {
                let tx = client.transaction().await.unwrap();
                assert_eq!(tx.execute(&insert, &[&c, &n, &text]).await.unwrap(), 1);
                tx.rollback().await.unwrap();
                assert!(client.query_opt(&label, &[&c, &n]).await.unwrap().is_none());
                continue;
            }
            1 => {
                let tx = client.transaction().await.unwrap();
                assert_eq!(tx.execute(&insert, &[&c, &n, &text]).await.unwrap(), 1);
                let got: String = tx.query_one(&label, &[&c, &n]).await.unwrap().get(0);
                assert_eq!(got, text);
                tx.commit().await.unwrap();
            }
            _ => {
                assert_eq!(client.execute(&insert, &[&c, &n, &text]).await.unwrap(), 1);
                let got: String = client.query_one(&label, &[&c, &n]).await.unwrap().get(0);
                assert_eq!(got, text);
            }
        }
        rows += 1;
        sum += i64::from(n);
        let row = client
            .query_one(&totals[n as usize % 2], &[&c])
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            (rows, sum),
            "client {c} after n={n}"
        );
    }
}

/// Every value type the test round-trips in binary format.
#[derive(Debug, Default, PartialEq)]
struct Vals {
    a: Option<i16>,
    b: Option<i32>,
    c: Option<i64>,
    d: Option<f64>,
    k: Option<f32>,
    e: Option<String>,
    f: Option<Vec<u8>>,
    g: Option<bool>,
    h: Option<SystemTime>,
    m: Option<SystemTime>,
    i: Option<Vec<Option<i32>>>,
    n: Option<Vec<Option<String>>>,
    j: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_parameters_and_results_round_trip() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let client = connect(proxy.addr, "app", None, &dbs.name).await;
        client
            .batch_execute(
                "CREATE TABLE vals (id int4 PRIMARY KEY, a int2, b int4, c int8, d float8, k float4, \
                 e text, f bytea, g bool, h timestamp, m timestamptz, i int4[], n text[], j numeric)",
            )
            .await
            .unwrap();
        let rows = [
            Vals {
                a: Some(i16::MIN),
                b: Some(i32::MAX),
                c: Some(i64::MIN),
                d: Some(-1.5e300),
                k: Some(3.25),
                e: Some("héllo, 世界 \t\"quoted\"\n\\".into()),
                f: Some(vec![0, 1, 2, 0x5c, 0xff]),
                g: Some(true),
                h: Some(UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456)),
                m: Some(UNIX_EPOCH - Duration::from_secs(1_000_000_000)),
                i: Some(vec![Some(1), None, Some(-3)]),
                n: Some(vec![Some("a".into()), Some(String::new()), None, Some("x,{y}".into())]),
                j: Some("12345678901234567890.000000001".into()),
            },
            Vals {
                a: Some(i16::MAX),
                b: Some(i32::MIN),
                c: Some(i64::MAX),
                d: Some(f64::INFINITY),
                k: Some(f32::NEG_INFINITY),
                e: Some(String::new()),
                f: Some(Vec::new()),
                g: Some(false),
                h: Some(UNIX_EPOCH),
                m: Some(UNIX_EPOCH + Duration::from_secs(4_102_444_800)),
                i: Some(Vec::new()),
                n: Some(Vec::new()),
                j: Some("-0.5".into()),
            },
            Vals::default(),
        ];
        let insert = client
            .prepare(
                "INSERT INTO vals (id, a, b, c, d, k, e, f, g, h, m, i, n, j) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::text::numeric)",
            )
            .await
            .unwrap();
        for (id, v) in (1i32..).zip(&rows) {
            let n = client
                .execute(&insert, &[&id, &v.a, &v.b, &v.c, &v.d, &v.k, &v.e, &v.f, &v.g, &v.h, &v.m, &v.i, &v.n, &v.j])
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
        let select = "SELECT a, b, c, d, k, e, f, g, h, m, i, n, j::text FROM vals WHERE id = $1";
        for (id, want) in (1i32..).zip(&rows) {
            let r = client.query_one(select, &[&id]).await.unwrap();
            let (a, b, c, d, k, e) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let (f, g, h, m, i, n, j) = (r.get(6), r.get(7), r.get(8), r.get(9), r.get(10), r.get(11), r.get(12));
            let got = Vals { a, b, c, d, k, e, f, g, h, m, i, n, j };
            assert_eq!(&got, want, "row {id}");
        }
        // What PostgreSQL stored, in its own text form.
        let r = client
            .query_one("SELECT c::text, h::text, i::text, encode(f, 'hex') FROM vals WHERE id = 1", &[])
            .await
            .unwrap();
        let text: Vec<String> = (0..4).map(|i| r.get(i)).collect();
        assert_eq!(text, ["-9223372036854775808", "2023-11-14 22:13:20.123456", "{1,NULL,-3}", "0001025cff"]);
        let r = client
            .query_one("SELECT $1::float8, $2::int8 + 1, $3::bool IS NULL", &[&f64::NAN, &41i64, &None::<bool>])
            .await
            .unwrap();
        assert!(r.get::<_, f64>(0).is_nan());
        assert_eq!((r.get::<_, i64>(1), r.get::<_, bool>(2)), (42, true));
        proxy.shutdown().await;
    })
    .await;
}

/// The COPY text of rows 1..=n of `big`: every 1000th name NULL, the others with a tab.
fn big_rows(ids: std::ops::RangeInclusive<i32>) -> String {
    ids.map(|id| match id % 1000 {
        0 => format!("{id}\t\\N\n"),
        _ => format!("{id}\tn{id}\\tx\n"),
    })
    .collect()
}

async fn big_table(proxy: &proxy::RunningProxy, db: &str) -> Client {
    let client = connect(proxy.addr, "app", None, db).await;
    exec(&client, "CREATE TABLE big (id int PRIMARY KEY, name text)").await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_loads_rows_and_the_connection_goes_on() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let client = big_table(&proxy, &dbs.name).await;
        let copy = client.copy_in::<_, Bytes>("COPY big (id, name) FROM STDIN");
        let mut sink = pin!(copy.await.unwrap());
        for chunk in 0..10 {
            let rows = big_rows(chunk * 1000 + 1..=(chunk + 1) * 1000);
            sink.send(Bytes::from(rows)).await.unwrap();
        }
        assert_eq!(sink.as_mut().finish().await.unwrap(), 10_000);
        let sql = "SELECT count(*), count(name), sum(id)::bigint, max(name) FILTER (WHERE id = 7) FROM big";
        let r = client.query_one(sql, &[]).await.unwrap();
        assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)), (10_000, 9_990, 50_005_000));
        assert_eq!(r.get::<_, String>(3), "n7\tx");
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_out_returns_the_rows_as_text() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let client = big_table(&proxy, &dbs.name).await;
        client
            .batch_execute(
                "INSERT INTO big SELECT g, CASE WHEN g % 1000 = 0 THEN NULL ELSE 'n' || g || E'\\tx' END \
                 FROM generate_series(1, 10000) g",
            )
            .await
            .unwrap();
        let out = client.copy_out("COPY (SELECT id, name FROM big ORDER BY id) TO STDOUT");
        let chunks: Vec<Bytes> = out.await.unwrap().try_collect().await.unwrap();
        assert_eq!(String::from_utf8(chunks.concat()).unwrap(), big_rows(1..=10_000));
        let sql = "COPY (SELECT id, name FROM big WHERE id IN (1, 1000) ORDER BY id) TO STDOUT (FORMAT csv, HEADER)";
        let chunks: Vec<Bytes> = client.copy_out(sql).await.unwrap().try_collect().await.unwrap();
        assert_eq!(chunks.concat(), b"id,name\n1,n1\tx\n1000,\n");
        assert_eq!(count(&client, "SELECT count(*) FROM big").await, 10_000);
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_abandoned_copy_in_leave_the_connection_usable() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(4, 5_000).await;
        let client = big_table(&proxy, &dbs.name).await;
        let copy = "COPY big (id, name) FROM STDIN";
        // A bad row midway: the server's error reaches the client, nothing is inserted.
        let mut sink = pin!(client.copy_in::<_, Bytes>(copy).await.unwrap());
        let result = async {
            sink.send(Bytes::from("20001\tok\n")).await?;
            sink.send(Bytes::from("not-a-number\tbad\n")).await?;
            for id in 20_002..22_000 {
                sink.send(Bytes::from(format!("{id}\tmore\n"))).await?;
            }
            sink.as_mut().finish().await
        }
        .await;
        let err = result.unwrap_err();
        assert_eq!(code(&err), Some("22P02"), "{err:?}");
        assert_eq!(count(&client, "SELECT count(*) FROM big").await, 0);
        // Abandoned by the client (the dropped sink sends CopyFail): nothing inserted either.
        {
            let mut sink = pin!(client.copy_in::<_, Bytes>(copy).await.unwrap());
            sink.send(Bytes::from("30001\tabandoned\n")).await.unwrap();
        }
        assert_eq!(count(&client, "SELECT count(*) FROM big").await, 0);
        let mut sink = pin!(client.copy_in::<_, Bytes>(copy).await.unwrap());
        sink.send(Bytes::from("40001\tafter\n40002\tafter\n"))
            .await
            .unwrap();
        assert_eq!(sink.as_mut().finish().await.unwrap(), 2);
        assert_eq!(count(&client, "SELECT count(*) FROM big").await, 2);
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_on_one_client_match_their_inputs() {
    bounded(async {
        // Pool size 1: two pipelining clients must share the one backend.
        let (dbs, proxy) = proxy_with_pool(1, 20_000).await;
        let a = connect(proxy.addr, "app", None, &dbs.name).await;
        let b = connect(proxy.addr, "app", None, &dbs.name).await;
        let stmt = a.prepare("SELECT $1::int4 * 3, $2::text").await.unwrap();
        let inputs: Vec<(i32, String)> = (0..50).map(|i| (i, format!("v{i}"))).collect();
        let divisors: Vec<i32> = (0..50)
            .map(|i| if i % 10 == 5 { 0 } else { i + 1 })
            .collect();
        // The futures borrow their parameter slices, so those must outlive them.
        let params_a: Vec<[&(dyn ToSql + Sync); 2]> =
            inputs.iter().map(|(i, s)| [i as _, s as _]).collect();
        let params_b: Vec<[&(dyn ToSql + Sync); 1]> = divisors.iter().map(|d| [d as _]).collect();
        let batch_a = join_all(params_a.iter().map(|p| a.query_one(&stmt, p)));
        // Unprepared text: tokio-postgres prepares each one, all in flight together.
        let batch_b = join_all(
            params_b
                .iter()
                .map(|p| b.query_one("SELECT 1000 / $1::int4, $1::int4", p)),
        );
        let (rows_a, rows_b) = tokio::join!(batch_a, batch_b);
        for ((i, s), r) in inputs.iter().zip(rows_a) {
            let r = r.unwrap();
            assert_eq!(
                (r.get::<_, i32>(0), r.get::<_, String>(1)),
                (i * 3, s.clone())
            );
        }
        for (d, r) in divisors.iter().zip(rows_b) {
            match r {
                Ok(r) => assert_eq!((r.get::<_, i32>(0), r.get::<_, i32>(1)), (1000 / d, *d)),
                Err(e) => assert_eq!((*d, code(&e)), (0, Some("22012")), "{e:?}"),
            }
        }
        assert_eq!(count(&a, "SELECT 5::int8").await, 5);
        assert_eq!(count(&b, "SELECT 6::int8").await, 6);
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_rolls_back_and_the_client_goes_on() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(1, 20_000).await;
        let mut client = connect(proxy.addr, "app", None, &dbs.name).await;
        let other = connect(proxy.addr, "app", None, &dbs.name).await;
        exec(&client, "CREATE TABLE t5 (id int PRIMARY KEY)").await;
        // Extended protocol.
        let tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO t5 VALUES (1)", &[]).await.unwrap();
        let err = tx
            .execute("INSERT INTO t5 VALUES (1)", &[])
            .await
            .unwrap_err();
        assert_eq!(code(&err), Some("23505"));
        let err = tx.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        tx.rollback().await.unwrap();
        assert_eq!(count(&client, "SELECT count(*) FROM t5").await, 0);
        // Simple protocol.
        exec(&client, "BEGIN; INSERT INTO t5 VALUES (2)").await;
        let err = client.batch_execute("SELECT 1/0").await.unwrap_err();
        assert_eq!(code(&err), Some("22012"));
        let err = client.simple_query("SELECT 1").await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
        exec(&client, "ROLLBACK").await;
        // The backend went back to the pool clean: the other client can use it.
        assert_eq!(count(&other, "SELECT count(*) FROM t5").await, 0);
        exec(&client, "BEGIN; INSERT INTO t5 VALUES (3); COMMIT").await;
        assert_eq!(
            count(&client, "SELECT count(*) FROM t5 WHERE id = 3").await,
            1
        );
        assert_eq!(count(&other, "SELECT count(*) FROM t5").await, 1);
        proxy.shutdown().await;
    })
    .await;
}

fn auth_toml(method: &str) -> String {
    format!("[auth]\nmethod = \"{method}\"\nusers = [ {{ name = \"app\", password = \"app-secret\" }} ]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_auth_scram_md5_and_trust() {
    bounded(async {
        let dbs = fresh_dbs(1).await;
        for method in ["scram-sha-256", "md5"] {
            let proxy = start_proxy(&config_toml(&dbs, &auth_toml(method), "")).await;
            let client = try_connect(proxy.addr, "app", Some("app-secret"), &dbs.name)
                .await
                .unwrap_or_else(|e| panic!("{method}: right password refused: {e:?}"));
            assert_eq!(count(&client, "SELECT 7::int8").await, 7);
            for (user, pw) in [
                ("app", Some("wrong")),
                ("nobody", Some("app-secret")),
                ("app", None),
            ] {
                let err = try_connect(proxy.addr, user, pw, &dbs.name).await.err();
                let err = err.unwrap_or_else(|| panic!("{method}: {user}/{pw:?} was let in"));
                // Without a password tokio-postgres gives up itself, before the server decides.
                if pw.is_some() {
                    assert_eq!(
                        err.code(),
                        Some(&SqlState::INVALID_PASSWORD),
                        "{method} {user}: {err:?}"
                    );
                }
            }
            proxy.shutdown().await;
        }
        for auth in [
            "",
            "[auth]\nmethod = \"trust\"\nusers = [ { name = \"app\" } ]",
        ] {
            let proxy = start_proxy(&config_toml(&dbs, auth, "")).await;
            let client = connect(proxy.addr, "app", None, &dbs.name).await;
            assert_eq!(count(&client, "SELECT 8::int8").await, 8);
            proxy.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_that_require_a_password() {
    bounded(async {
        let dbs = fresh_dbs(1).await;
        let suffix = dbs.name.trim_start_matches("t_");
        let scram_role = format!("scram_{suffix}");
        let md5_role = format!("md5_{suffix}");
        let admin = connect_url(&dbs.shard_urls[0]).await;
        admin
            .batch_execute(&format!(
                "CREATE ROLE {scram_role} LOGIN PASSWORD 'scram-pw-1';\n\
                 SET password_encryption = 'md5';\n\
                 CREATE ROLE {md5_role} LOGIN PASSWORD 'md5-pw-2';\n\
                 GRANT ALL ON SCHEMA public TO {scram_role}, {md5_role};"
            ))
            .await
            .unwrap();
        let base = &dbs.shard_urls[0];
        assert!(base.starts_with("postgres://postgres@"), "{base}");
        for (role, pw) in [(&scram_role, "scram-pw-1"), (&md5_role, "md5-pw-2")] {
            let mut role_dbs = dbs.clone();
            role_dbs.shard_urls[0] = base.replacen(
                "postgres://postgres@",
                &format!("postgres://{role}:{pw}@"),
                1,
            );
            let proxy = start_proxy(&config_toml(&role_dbs, &auth_toml("scram-sha-256"), "")).await;
            let client = connect(proxy.addr, "app", Some("app-secret"), &dbs.name).await;
            let who: String = client
                .query_one("SELECT current_user::text", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(&who, role);
            let table = format!("owned_by_{role}");
            client
                .batch_execute(&format!(
                    "CREATE TABLE {table} (v int); INSERT INTO {table} VALUES (1), (2)"
                ))
                .await
                .unwrap();
            assert_eq!(
                count(&client, &format!("SELECT sum(v)::int8 FROM {table}")).await,
                3
            );
            proxy.shutdown().await;
        }
        let stored: String = admin
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&md5_role],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            stored.starts_with("md5"),
            "{md5_role} would not use md5: {stored}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_parameters_follow_their_client() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(1, 20_000).await;
        let direct = connect_url(&dbs.shard_urls[0]).await;
        let (default_path, default_tz) = (show(&direct, "search_path").await, show(&direct, "TimeZone").await);
        assert_ne!(default_tz, "Asia/Seoul");
        let a = connect(proxy.addr, "app", None, &dbs.name).await;
        let b = connect(proxy.addr, "app", None, &dbs.name).await;
        a.batch_execute("CREATE SCHEMA only_a; CREATE TABLE only_a.t7 (v int); INSERT INTO only_a.t7 VALUES (7)")
            .await
            .unwrap();
        a.batch_execute("SET search_path TO only_a, public; SET TIME ZONE 'Asia/Seoul'")
            .await
            .unwrap();
        for _ in 0..5 {
            assert_eq!(show(&a, "search_path").await, "only_a, public");
            assert_eq!(show(&b, "search_path").await, default_path);
            assert_eq!(show(&a, "TimeZone").await, "Asia/Seoul");
            assert_eq!(show(&b, "TimeZone").await, default_tz);
            assert_eq!(a.query_one("SELECT v FROM t7", &[]).await.unwrap().get::<_, i32>(0), 7);
            let err = b.simple_query("SELECT v FROM t7").await.unwrap_err();
            assert_eq!(code(&err), Some("42P01"));
        }
        exec(&b, "SET TIME ZONE 'America/New_York'").await;
        assert_eq!(show(&a, "TimeZone").await, "Asia/Seoul");
        assert_eq!(show(&b, "TimeZone").await, "America/New_York");
        // A SET in a rolled-back transaction is undone, in a committed one it stays.
        exec(&a, "BEGIN").await;
        exec(&a, "SET TIME ZONE 'UTC'").await;
        assert_eq!(show(&a, "TimeZone").await, "UTC");
        exec(&a, "ROLLBACK").await;
        assert_eq!(show(&b, "TimeZone").await, "America/New_York");
        assert_eq!(show(&a, "TimeZone").await, "Asia/Seoul");
        exec(&a, "BEGIN").await;
        exec(&a, "SET search_path TO public").await;
        exec(&a, "COMMIT").await;
        assert_eq!(show(&b, "search_path").await, default_path);
        assert_eq!(show(&a, "search_path").await, "public");
        // SET LOCAL ends with its transaction; RESET goes back to the server default.
        exec(&b, "BEGIN; SET LOCAL TimeZone = 'UTC'").await;
        assert_eq!(show(&b, "TimeZone").await, "UTC");
        exec(&b, "COMMIT").await;
        assert_eq!(show(&a, "TimeZone").await, "Asia/Seoul");
        assert_eq!(show(&b, "TimeZone").await, "America/New_York");
        exec(&a, "RESET TimeZone").await;
        assert_eq!(show(&a, "TimeZone").await, default_tz);
        assert_eq!(show(&b, "TimeZone").await, "America/New_York");
        // The same with BEGIN and SET in one simple-protocol message.
        exec(&a, "BEGIN; SET TIME ZONE 'UTC'").await;
        assert_eq!(show(&a, "TimeZone").await, "UTC");
        exec(&a, "ROLLBACK").await;
        assert_eq!(show(&b, "TimeZone").await, "America/New_York");
        assert_eq!(show(&a, "TimeZone").await, default_tz);
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_apply_to_the_session() {
    bounded(async {
        let (dbs, proxy) = proxy_with_pool(1, 20_000).await;
        let mut config = tokio_postgres::Config::new();
        config
            .host(proxy.addr.ip().to_string())
            .port(proxy.addr.port())
            .user("app")
            .dbname(&dbs.name)
            .options("-c statement_timeout=1234 --lock-timeout=4321")
            .application_name("clients_app");
        let (a, connection) = config.connect(NoTls).await.unwrap();
        assert_eq!(
            connection.parameter("application_name"),
            Some("clients_app")
        );
        tokio::spawn(connection);
        let b = connect(proxy.addr, "app", None, &dbs.name).await;
        for _ in 0..3 {
            assert_eq!(show(&a, "statement_timeout").await, "1234ms");
            assert_eq!(show(&b, "statement_timeout").await, "0");
            assert_eq!(show(&a, "lock_timeout").await, "4321ms");
            assert_eq!(show(&a, "application_name").await, "clients_app");
            assert_ne!(show(&b, "application_name").await, "clients_app");
        }
        // The timeout really applies: a 3 s sleep is cut off at 1.234 s; B has no limit.
        let err = a.simple_query("SELECT pg_sleep(3)").await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
        b.simple_query("SELECT pg_sleep(1.5)").await.unwrap();
        assert_eq!(show(&a, "statement_timeout").await, "1234ms");
        proxy.shutdown().await;
    })
    .await;
}
