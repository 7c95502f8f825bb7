//! Smoke tests of the harness itself: no proxy involved.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use integration::{
    config_toml, connect_url, fresh_dbs, pg_tool, private_server, servers, SHARD_SERVERS,
};

#[tokio::test]
async fn servers_start_on_distinct_ports() {
    let s = tokio::task::spawn_blocking(servers).await.unwrap();
    assert_eq!(s.shards.len(), SHARD_SERVERS);
    let mut ports: Vec<u16> = s.shards.iter().map(|p| p.port()).collect();
    ports.push(s.oracle.port());
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), SHARD_SERVERS + 1);
    for server in s.shards.iter().chain([&s.oracle]) {
        let client = connect_url(&server.url("postgres")).await;
        let row = client
            .query_one("SHOW max_prepared_transactions", &[])
            .await
            .unwrap();
        assert_ne!(row.get::<_, String>(0), "0");
        let row = client.query_one("SHOW fsync", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "off");
    }
}

#[tokio::test]
async fn fresh_dbs_are_distinct_and_exist_everywhere() {
    let a = fresh_dbs(3).await;
    let b = fresh_dbs(2).await;
    assert_ne!(a.name, b.name);
    assert_eq!(a.shard_urls.len(), 3);
    assert_eq!(b.shard_urls.len(), 2);
    for url in a.shard_urls.iter().chain([&a.oracle_url]) {
        let client = connect_url(url).await;
        let row = client
            .query_one("SELECT current_database()", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), a.name);
        // Each test's tables are its own.
        client
            .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
            .await
            .unwrap();
    }
    for url in b.shard_urls.iter().chain([&b.oracle_url]) {
        let client = connect_url(url).await;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 't'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
    }
}

#[tokio::test]
async fn stop_and_restart_keep_port_and_data() {
    let mut pg = tokio::task::spawn_blocking(private_server).await.unwrap();
    let port = pg.port();
    let url = pg.url("postgres");
    pg.psql(
        "postgres",
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42);",
    )
    .unwrap();
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop().unwrap();
        pg
    })
    .await
    .unwrap();
    assert!(tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .is_err());
    let pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();
    assert_eq!(pg.port(), port);
    let client = connect_url(&url).await;
    let v: i32 = client
        .query_one("SELECT v FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 42);
    let data_dir = pg.data_dir().to_path_buf();
    assert!(data_dir.exists());
    drop(client);
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
    assert!(!data_dir.exists(), "data dir not removed on drop");
}

#[tokio::test]
async fn psql_runs_statements_one_by_one() {
    let s = tokio::task::spawn_blocking(servers).await.unwrap();
    let oracle = &s.oracle;
    // CREATE DATABASE cannot run in a transaction block: each statement must run on its own.
    let out = oracle
        .psql(
            "postgres",
            "CREATE DATABASE psql_smoke; SELECT 1 + 1; DROP DATABASE psql_smoke;",
        )
        .unwrap();
    assert_eq!(out.trim(), "2");
    let err = oracle
        .psql("postgres", "SELECT * FROM no_such_table")
        .unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");
    assert!(pg_tool("psql").exists());
    assert!(pg_tool("pgbench").exists());
}

#[tokio::test]
async fn passwords_are_required_except_for_postgres() {
    let dbs = fresh_dbs(1).await;
    let s = tokio::task::spawn_blocking(servers).await.unwrap();
    let shard = &s.shards[0];
    shard
        .psql(
            &dbs.name,
            "CREATE ROLE scram_u LOGIN PASSWORD 'pw1';\n\
             SET password_encryption = 'md5';\n\
             CREATE ROLE md5user_a LOGIN PASSWORD 'pw2';",
        )
        .unwrap();
    let port = shard.port();
    let url =
        |user: &str, pw: &str| format!("postgres://{user}:{pw}@127.0.0.1:{port}/{}", dbs.name);
    let ok = tokio_postgres::connect(&url("scram_u", "pw1"), tokio_postgres::NoTls).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    let bad = tokio_postgres::connect(&url("scram_u", "nope"), tokio_postgres::NoTls).await;
    assert!(bad.is_err());
    let ok = tokio_postgres::connect(&url("md5user_a", "pw2"), tokio_postgres::NoTls).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    let stored: String = connect_url(&shard.url(&dbs.name))
        .await
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'md5user_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("md5"), "{stored}");
}

#[tokio::test]
async fn config_toml_lists_every_shard() {
    let dbs = fresh_dbs(2).await;
    let toml = config_toml(&dbs, "", "[tables]\ncountries = { reference = true }\n");
    assert!(toml.contains("listen = \"127.0.0.1:0\""));
    assert!(toml.contains("name = \"s1\""));
    assert!(toml.contains(&dbs.shard_urls[1]));
    assert!(toml.ends_with("countries = { reference = true }\n"));
    let with_auth = config_toml(
        &dbs,
        "[auth]\nmethod = \"md5\"\nusers = [ { name = \"app\", password = \"x\" } ]",
        "",
    );
    assert!(with_auth.contains("method = \"md5\""));
    for text in [&toml, &with_auth] {
        if let Err(e) = config::Config::parse(text, "test.toml") {
            panic!("{e}\n{text}");
        }
    }
}
