//! Hot reload through a running proxy (issue 3, done-means 4): editing the config file moves
//! routing for new statements without a restart — by file watch, by SIGHUP and by
//! `POST /api/v1/reload` — while an invalid edit keeps the old routing and the reload call
//! answers 400 with the error's place. Also the admin API's token check and `/metrics`.
//!
//! Placement is checked on the shards themselves (direct connections), never through the proxy.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use integration::util::{bounded, count, exec};
use integration::{config_toml, connect, connect_url, fresh_dbs, TestDbs, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::Client;

/// The `lists` line the tests start from: KR -> s0, US -> s1, anything else -> default s2.
const START: &str =
    r#"lists = [ { values = ["KR"], shard = "s0" }, { values = ["US"], shard = "s1" } ]"#;
/// FR joins s1's list.
const FR_ON_S1: &str =
    r#"lists = [ { values = ["KR"], shard = "s0" }, { values = ["US", "FR"], shard = "s1" } ]"#;
/// FR joins s0's list.
const FR_ON_S0: &str =
    r#"lists = [ { values = ["KR", "FR"], shard = "s0" }, { values = ["US"], shard = "s1" } ]"#;
/// Invalid: FR listed on two shards.
const FR_TWICE: &str = r#"lists = [ { values = ["KR", "FR"], shard = "s0" }, { values = ["US", "FR"], shard = "s1" } ]"#;

/// How long a reload may take to show in routing.
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// A SIGHUP reaches every proxy of this test process: the file-watch test holds this so that a
/// reload it sees can only come from its own file watch.
static SIGNALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Row ids unique across the tests of this binary.
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

/// Three shards, a list map `region` over `customers`, the config written to a file.
struct Setup {
    dbs: TestDbs,
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// The whole config text as first written; edits replace its `lists` line.
    text: String,
}

impl Setup {
    async fn new() -> Setup {
        let dbs = fresh_dbs(3).await;
        for url in &dbs.shard_urls {
            let shard = connect_url(url).await;
            exec(
                &shard,
                "CREATE TABLE customers (id bigint PRIMARY KEY, country text NOT NULL)",
            )
            .await;
        }
        let maps = format!(
            "[maps.region]\nstrategy = \"list\"\nkey_type = \"text\"\n{START}\ndefault = \"s2\"\n\n\
             [tables]\ncustomers = {{ map = \"region\", key = \"country\" }}\n"
        );
        let text = config_toml(&dbs, "", &maps);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardproxy.toml");
        std::fs::write(&path, &text).unwrap();
        Setup {
            dbs,
            _dir: dir,
            path,
            text,
        }
    }

    /// Rewrites the file with another `lists` line.
    fn edit_lists(&self, lists: &str) {
        assert!(self.text.contains(START));
        std::fs::write(&self.path, self.text.replace(START, lists)).unwrap();
    }

    /// Rewrites the file with arbitrary text.
    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    async fn start(&self, options: proxy::StartOptions) -> (proxy::RunningProxy, Client) {
        let config = config::Config::load(&self.path).unwrap_or_else(|e| panic!("{e}"));
        let proxy = proxy::start_with(config, Some(self.path.clone()), options)
            .await
            .unwrap();
        let client = connect(proxy.addr, "app", None, &self.dbs.name).await;
        (proxy, client)
    }

    /// Inserts a new `country` row through the proxy; returns the shards that hold it.
    async fn insert(&self, client: &Client, country: &str) -> Vec<usize> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        exec(
            client,
            &format!("INSERT INTO customers (id, country) VALUES ({id}, '{country}')"),
        )
        .await;
        let mut holders = Vec::new();
        for (i, url) in self.dbs.shard_urls.iter().enumerate() {
            let shard = connect_url(url).await;
            let n = count(
                &shard,
                &format!("SELECT count(*) FROM customers WHERE id = {id}"),
            )
            .await;
            if n > 0 {
                holders.push(i);
            }
        }
        holders
    }

    /// Inserts `country` rows until one lands on `shard`; panics after [`RELOAD_WAIT`].
    async fn lands_on_eventually(&self, client: &Client, country: &str, shard: usize) {
        let deadline = Instant::now() + RELOAD_WAIT;
        loop {
            let holders = self.insert(client, country).await;
            if holders == [shard] {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{country} still lands on {holders:?}, expected s{shard}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One HTTP/1.1 request to the admin API; returns (status, body).
async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (status, body.to_owned())
}

/// The admin address of a running proxy.
fn admin(proxy: &proxy::RunningProxy) -> SocketAddr {
    proxy.admin_addr.unwrap()
}

/// Sends SIGHUP to this process (every proxy in it reloads its own file).
fn sighup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The `file:` prefix of errors about `path`.
fn place(path: &Path) -> String {
    format!("{}:", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_watch_moves_routing() {
    bounded(async {
        let _no_sighup = SIGNALS.lock().await;
        let setup = Setup::new().await;
        let (proxy, client) = setup.start(proxy::StartOptions::default()).await;
        assert_eq!(
            setup.insert(&client, "FR").await,
            [2],
            "FR starts on the default"
        );
        assert_eq!(setup.insert(&client, "US").await, [1]);

        setup.edit_lists(FR_ON_S1);
        setup.lands_on_eventually(&client, "FR", 1).await;
        // The open session keeps working and other keys did not move.
        assert_eq!(setup.insert(&client, "KR").await, [0]);

        // An invalid edit is ignored: give the watch several polls, routing stays.
        setup.edit_lists(FR_TWICE);
        tokio::time::sleep(proxy::CONFIG_POLL_INTERVAL * 4).await;
        assert_eq!(setup.insert(&client, "FR").await, [1]);

        // Fixing the file is picked up again.
        setup.edit_lists(FR_ON_S0);
        setup.lands_on_eventually(&client, "FR", 0).await;
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_admin_reload() {
    bounded(async {
        let _signals = SIGNALS.lock().await;
        let setup = Setup::new().await;
        // No file watch: only SIGHUP and the admin API can reload.
        let options = proxy::StartOptions { config_poll: None };
        let (proxy, client) = setup.start(options).await;
        assert_eq!(setup.insert(&client, "FR").await, [2]);

        setup.edit_lists(FR_ON_S0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            setup.insert(&client, "FR").await,
            [2],
            "reloaded without a trigger"
        );
        sighup();
        setup.lands_on_eventually(&client, "FR", 0).await;

        // POST /api/v1/reload swaps before it answers.
        setup.edit_lists(FR_ON_S1);
        let (status, body) = http(admin(&proxy), "POST", "/api/v1/reload", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"reloaded\""), "{body}");
        assert!(body.contains("map region changed"), "{body}");
        assert_eq!(setup.insert(&client, "FR").await, [1]);

        // Invalid edits: 400 with the error's file:line:col, routing unchanged.
        setup.edit_lists(FR_TWICE);
        let (status, body) = http(admin(&proxy), "POST", "/api/v1/reload", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 400, "{body}");
        let line = setup
            .text
            .lines()
            .position(|l| l == START)
            .map(|i| i + 1)
            .unwrap();
        let here = format!("{}{line}:", place(&setup.path));
        assert!(body.contains(&here), "expected {here} in {body}");
        assert!(body.contains("FR"), "{body}");
        assert_eq!(setup.insert(&client, "FR").await, [1]);

        setup.write(&setup.text.replace("[tables]", "[tables"));
        let (status, body) = http(admin(&proxy), "POST", "/api/v1/reload", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(&place(&setup.path)), "{body}");
        assert_eq!(setup.insert(&client, "FR").await, [1]);

        // A rejected SIGHUP reload also leaves routing alone.
        sighup();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(setup.insert(&client, "FR").await, [1]);

        // Changing [[shards]] needs a restart.
        setup.write(
            &setup
                .text
                .replace("name = \"s2\"", "name = \"s9\"")
                .replace("default = \"s2\"", "default = \"s9\""),
        );
        let (status, body) = http(admin(&proxy), "POST", "/api/v1/reload", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("needs a restart"), "{body}");
        proxy.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_token_metrics_and_counts() {
    bounded(async {
        let setup = Setup::new().await;
        let options = proxy::StartOptions { config_poll: None };
        let (proxy, client) = setup.start(options).await;
        let addr = admin(&proxy);
        assert_ne!(addr.port(), 0);

        for (method, path) in [
            ("POST", "/api/v1/reload"),
            ("GET", "/api/v1/shards"),
            ("GET", "/api/v1/maps"),
        ] {
            let (status, body) = http(addr, method, path, None).await;
            assert_eq!(status, 401, "{method} {path}: {body}");
            assert!(body.contains("\"error\""), "{body}");
            let (status, _) = http(addr, method, path, Some("wrong-token")).await;
            assert_eq!(status, 401, "{method} {path} with a wrong token");
        }

        let (status, body) = http(addr, "GET", "/health", None).await;
        assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
        let (status, body) = http(addr, "GET", "/metrics", None).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("# TYPE shardproxy_statements_total counter"),
            "{body}"
        );
        assert!(
            body.contains(r#"shardproxy_pool_in_use{shard="s2"}"#),
            "{body}"
        );

        let (status, body) = http(addr, "GET", "/api/v1/shards", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""name":"s2""#), "{body}");

        // Row counts per shard come from the shards themselves.
        assert_eq!(setup.insert(&client, "KR").await, [0]);
        assert_eq!(setup.insert(&client, "DE").await, [2]);
        assert_eq!(setup.insert(&client, "CL").await, [2]);
        let (status, body) = http(
            addr,
            "GET",
            "/api/v1/maps/region?counts=true",
            Some(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        for expected in [
            r#"{"shard":"s0","rows":1}"#,
            r#"{"shard":"s1","rows":0}"#,
            r#"{"shard":"s2","rows":2}"#,
        ] {
            assert!(body.contains(expected), "expected {expected} in {body}");
        }
        proxy.shutdown().await;
    })
    .await;
}
