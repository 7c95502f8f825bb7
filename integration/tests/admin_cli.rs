//! `shardproxy admin ...` against a real proxy's admin API: status and maps tables, `--json`,
//! a wrong token (401 sentence), an unreachable URL, and the endpoints this proxy does not
//! serve yet (jobs, moves, transactions) reported as 404 with exit code 1.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use integration::{config_toml, connect_url, fresh_dbs, start_proxy, TestDbs, ADMIN_TOKEN};
use proxy::admin_cli::{parse_args, run};

/// Maps and tables of the test config.
const MAPS: &str = r#"
[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 8

[maps.region]
strategy = "list"
key_type = "text"
lists = [ { values = ["KR", "JP"], shard = "s0" }, { values = ["US"], shard = "s1" } ]

[tables]
users = { map = "users", key = "id" }
orders = { map = "users", key = "user_id" }
customers = { map = "region", key = "country" }
countries = { reference = true }
"#;

/// Runs `shardproxy admin ARGS`; (exit code, stdout, stderr).
async fn admin(args: &[&str]) -> (i32, String, String) {
    let args = parse_args(args).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(args, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// A proxy over two shards; returns it, its admin URL and the shard databases.
async fn proxy() -> (proxy::RunningProxy, String, TestDbs) {
    let dbs = fresh_dbs(2).await;
    let proxy = start_proxy(&config_toml(&dbs, "", MAPS)).await;
    let url = format!("http://{}", proxy.admin_addr.unwrap());
    (proxy, url, dbs)
}

#[tokio::test]
async fn status_and_maps_tables() {
    let (proxy, url, _) = proxy().await;
    let (code, out, err) = admin(&["--url", &url, "--token", ADMIN_TOKEN, "status"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("SHARD") && lines[0].contains("POOL"),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("s0 ") && l.contains("primary")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("s1 ") && l.contains("primary")),
        "{out}"
    );

    let (code, out, err) = admin(&["--url", &url, "--token", ADMIN_TOKEN, "maps"]).await;
    assert_eq!(code, 0, "{err}");
    let users = out.lines().find(|l| l.starts_with("users ")).unwrap();
    for part in [
        "hash",
        "bigint",
        "orders(user_id), users(id)",
        "8 buckets: 0-3 -> s0, 4-7 -> s1",
    ] {
        assert!(users.contains(part), "{part:?} not in {users:?}");
    }
    let region = out.lines().find(|l| l.starts_with("region ")).unwrap();
    assert!(
        region.contains("JP,KR -> s0; US -> s1; others: error"),
        "{region}"
    );
    assert!(out.contains("reference tables: countries"), "{out}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn json_output_is_the_servers_json() {
    let (proxy, url, dbs) = proxy().await;
    // PostgreSQL's jsonb is the JSON parser at hand (this crate does not depend on serde_json).
    let pg = connect_url(&dbs.shard_urls[0]).await;
    for (command, key) in [("status", "shards"), ("maps", "maps")] {
        let (code, out, err) =
            admin(&["--url", &url, "--token", ADMIN_TOKEN, "--json", command]).await;
        assert_eq!(code, 0, "{err}");
        let row = pg
            .query_one(
                "SELECT jsonb_array_length(($1::text)::jsonb -> $2::text)",
                &[&out, &key],
            )
            .await
            .unwrap_or_else(|e| panic!("{command} --json is not JSON ({e}): {out}"));
        assert_eq!(row.get::<_, i32>(0), 2, "{out}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn wrong_token_is_explained() {
    let (proxy, url, _) = proxy().await;
    let (code, out, err) = admin(&["--url", &url, "--token", "wrong", "status"]).await;
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(err.starts_with("error: the admin API at "), "{err}");
    assert!(
        err.contains("rejected the admin token (401 Unauthorized)"),
        "{err}"
    );
    assert!(err.contains("--token"), "{err}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn endpoints_not_served_yet_report_404() {
    let (proxy, url, _) = proxy().await;
    let base = ["--url", url.as_str(), "--token", ADMIN_TOKEN];
    let commands: [&[&str]; 4] = [
        &["jobs"],
        &["job", "1", "--wait"],
        &["move", "users", "--buckets", "0-3", "--to", "s1"],
        &["rebalance", "users"],
    ];
    for command in commands {
        let args: Vec<&str> = base.iter().chain(command).copied().collect();
        let (code, _, err) = admin(&args).await;
        assert_eq!(code, 1, "{command:?}: {err}");
        assert!(
            err.starts_with("error: 404 Not Found: "),
            "{command:?}: {err}"
        );
        assert!(
            err.trim_end()
                .ends_with("(this proxy does not support this command yet)"),
            "{command:?}: {err}"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn unreachable_url_is_named() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = admin(&["--url", &url, "--token", "t", "status"]).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "error: could not connect to the admin API at {url}: "
        )),
        "{err}"
    );
}
