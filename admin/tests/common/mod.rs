//! Test harness: a fake `ProxyControl` built from config text, the admin server on 127.0.0.1:0,
//! and a tiny HTTP/1.0 client over a TcpStream (no PostgreSQL, no extra dependencies).

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use admin::{
    HostStatus, InDoubt, ProxyControl, ProxyMetrics, ResolveAction, ResolveError, ShardRowCount,
    ShardStatus,
};
use futures::future::BoxFuture;
use serde_json::Value;
use shard_router::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The file name used in config error positions.
pub const FILE: &str = "shardproxy.toml";

/// A three-shard config with hash, range and list maps and a reference table.
pub const CONFIG: &str = r#"[proxy]
admin_token = "secret-token"

[[shards]]
name = "s0"
url = "postgres://app:pw0@10.0.0.5:5432/appdb"
replicas = ["postgres://app:pw0@10.0.0.6:5432/appdb"]

[[shards]]
name = "s1"
url = "postgres://app:pw1@10.0.0.7:5432/appdb"

[[shards]]
name = "s2"
url = "postgres://app:pw2@10.0.0.8:5432/appdb"

[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 12

[maps.events]
strategy = "range"
key_type = "bigint"
ranges = [ { from = 0, to = 1000, shard = "s0" }, { from = 1000, to = 2000, shard = "s1" }, { from = 2000, shard = "s2" } ]

[maps.region]
strategy = "list"
key_type = "text"
lists = [ { values = ["KR", "JP"], shard = "s0" }, { values = ["US", "DE"], shard = "s1" } ]
default = "s2"

[tables]
users = { map = "users", key = "id" }
orders = { map = "users", key = "user_id" }
events = { map = "events", key = "event_id" }
customers = { map = "region", key = "country" }
countries = { reference = true }
"#;

/// What the fake proxy currently runs.
struct Live {
    config: Arc<config::Config>,
    router: Arc<Router>,
}

/// A `ProxyControl` over parsed config text; `reload` re-parses `file`.
pub struct FakeControl {
    live: Mutex<Live>,
    /// The "config file" `reload` reads.
    pub file: Mutex<String>,
    /// What `transactions` lists; `resolve` removes from it.
    pub in_doubt: Mutex<Vec<InDoubt>>,
    /// Every resolve call, in order.
    pub resolved: Mutex<Vec<(String, ResolveAction)>>,
}

impl FakeControl {
    /// A fake running `text`.
    pub fn new(text: &str) -> FakeControl {
        let config = config::Config::parse(text, FILE).unwrap();
        FakeControl {
            live: Mutex::new(Live {
                router: Arc::new(Router::new(&config)),
                config: Arc::new(config),
            }),
            file: Mutex::new(text.to_owned()),
            in_doubt: Mutex::new(Vec::new()),
            resolved: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the "file" the next reload reads.
    pub fn edit_file(&self, text: &str) {
        *self.file.lock().unwrap() = text.to_owned();
    }
}

impl ProxyControl for FakeControl {
    fn shards(&self) -> Vec<ShardStatus> {
        let config = self.config();
        config
            .shards
            .iter()
            .enumerate()
            .map(|(i, shard)| {
                let host = |url: &config::ShardUrl, role: &str| HostStatus {
                    url: url.to_string(),
                    role: role.to_owned(),
                    healthy: i != 2,
                    circuit: "closed".to_owned(),
                    pool_size: 20,
                    pool_in_use: i + 1,
                    pool_idle: 2,
                    pool_waiting: i,
                };
                let mut hosts = vec![host(&shard.url, admin::ROLE_PRIMARY)];
                hosts.extend(shard.replicas.iter().map(|r| host(r, admin::ROLE_REPLICA)));
                ShardStatus {
                    name: shard.name.clone(),
                    hosts,
                }
            })
            .collect()
    }

    fn router(&self) -> Arc<Router> {
        self.live.lock().unwrap().router.clone()
    }

    fn config(&self) -> Arc<config::Config> {
        self.live.lock().unwrap().config.clone()
    }

    fn row_counts(&self, map: &str) -> BoxFuture<'_, Result<Vec<ShardRowCount>, String>> {
        let map = map.to_owned();
        Box::pin(async move {
            if map == "events" {
                return Err("s1: connection refused".to_owned());
            }
            let config = self.config();
            let tables: Vec<String> = config
                .tables
                .iter()
                .filter(
                    |(_, t)| matches!(t, config::TableConfig::Sharded { map: m, .. } if *m == map),
                )
                .map(|(name, _)| name.clone())
                .collect();
            let mut counts = Vec::new();
            for (i, shard) in config.shards.iter().enumerate() {
                for table in &tables {
                    counts.push(ShardRowCount {
                        shard: shard.name.clone(),
                        table: table.clone(),
                        rows: 10 * (i as i64 + 1),
                    });
                }
            }
            Ok(counts)
        })
    }

    fn transactions(&self) -> Vec<InDoubt> {
        self.in_doubt.lock().unwrap().clone()
    }

    /// Known gids resolve; "sp_busy" conflicts, "sp_down" fails on a shard, others are unknown.
    fn resolve(&self, gid: &str, action: ResolveAction) -> BoxFuture<'_, Result<(), ResolveError>> {
        let gid = gid.to_owned();
        Box::pin(async move {
            self.resolved.lock().unwrap().push((gid.clone(), action));
            match gid.as_str() {
                "sp_busy" => return Err(ResolveError::Conflict("still committing".to_owned())),
                "sp_down" => {
                    return Err(ResolveError::Backend("s1: connection refused".to_owned()))
                }
                _ => {}
            }
            let mut list = self.in_doubt.lock().unwrap();
            let before = list.len();
            list.retain(|t| t.gid != gid);
            if list.len() == before {
                return Err(ResolveError::NotFound(format!(
                    "no prepared transaction {gid}"
                )));
            }
            Ok(())
        })
    }

    fn reload(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let text = self.file.lock().unwrap().clone();
            let config = config::Config::parse(&text, FILE).map_err(|e| e.to_string())?;
            let summary = config.summary();
            let mut live = self.live.lock().unwrap();
            live.router = Arc::new(Router::new(&config));
            live.config = Arc::new(config);
            Ok(summary)
        })
    }
}

/// A running admin server; stopped (and awaited) by `stop`, or aborted on drop.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The fake proxy behind it.
    pub control: Arc<FakeControl>,
    /// The metrics it renders.
    pub metrics: Arc<ProxyMetrics>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts the server for a fake running `text`.
    pub async fn start(text: &str) -> Server {
        let control = Arc::new(FakeControl::new(text));
        let names: Vec<String> = control
            .config()
            .shards
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let metrics = Arc::new(ProxyMetrics::new(&names));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(admin::serve(
            listener,
            control.clone(),
            metrics.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            addr,
            control,
            metrics,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// One request; `token` adds `Authorization: Bearer <token>`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Response {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", self.addr);
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.unwrap_or("");
        if method != "GET" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        Response::parse(&raw)
    }

    /// GET with the configured token.
    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, Some("secret-token"), None).await
    }

    /// POST with the configured token.
    pub async fn post(&self, path: &str, body: &str) -> Response {
        self.request("POST", path, Some("secret-token"), Some(body))
            .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `error` field of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {}", self.body))
            .to_owned()
    }
}
