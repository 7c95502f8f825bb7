//! Harness for the end-to-end tests: real PostgreSQL servers and the proxy in-process.
//!
//! Each test binary starts its servers once (initdb once, then copies of that data directory)
//! and shares them between its tests, which run in parallel: every test works in its own
//! databases ([`fresh_dbs`]) and gets its own proxy on port 0 ([`start_proxy`]). Nothing here is
//! tied to a tokio runtime, since every `#[tokio::test]` has its own. Servers are never dropped
//! (statics are not); their watchdogs stop them and remove their directories when the test
//! process exits, SIGKILL included.
//!
//! These are test helpers: they panic with a clear message instead of returning errors.

pub mod process;
pub mod raw;
pub mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use proxy::launcher::{LocalPostgres, PgBinaries, ServerOptions, Template, Watchdog};
use tempfile::TempDir;

/// Shard servers started per test binary.
pub const SHARD_SERVERS: usize = 3;

/// N PostgreSQL servers shared by a test binary's tests: 3 shards + 1 oracle.
#[derive(Debug)]
pub struct Servers {
    /// Shard servers; a test uses the first `n` through [`fresh_dbs`].
    pub shards: Vec<LocalPostgres>,
    /// One server holding all rows, to compare the proxy's answers with.
    pub oracle: LocalPostgres,
}

/// Everything started once per test binary.
struct Harness {
    bins: PgBinaries,
    template: Template,
    scratch: TempDir,
    _scratch_watchdog: Watchdog,
    servers: Servers,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// The binary-wide harness, started on first use.
fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let bins = PgBinaries::find().unwrap_or_else(|e| panic!("{e}"));
        let template = Template::create(&bins).unwrap_or_else(|e| panic!("initdb: {e}"));
        let scratch = tempfile::Builder::new()
            .prefix("shardproxy-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a scratch dir: {e}"));
        let scratch_watchdog = Watchdog::remove_on_exit(scratch.path())
            .unwrap_or_else(|e| panic!("arm the scratch dir watchdog: {e}"));
        // Started in parallel: each `pg_ctl -w start` mostly waits.
        let mut started: Vec<LocalPostgres> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..=SHARD_SERVERS)
                .map(|_| scope.spawn(|| start_server(&bins, &template)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| panic!("server start panicked")))
                .collect()
        });
        let oracle = started
            .pop()
            .unwrap_or_else(|| panic!("no oracle server started"));
        Harness {
            bins,
            template,
            scratch,
            _scratch_watchdog: scratch_watchdog,
            servers: Servers {
                shards: started,
                oracle,
            },
        }
    })
}

/// Starts one test server (fsync off) from the shared template.
fn start_server(bins: &PgBinaries, template: &Template) -> LocalPostgres {
    LocalPostgres::start(bins, template, None, &ServerOptions::default())
        .unwrap_or_else(|e| panic!("start PostgreSQL: {e}"))
}

/// The servers of this test binary, started on first call (thread-safe, runtime-independent).
pub fn servers() -> &'static Servers {
    &harness().servers
}

/// A server of this test's own, e.g. to stop and restart without disturbing other tests.
pub fn private_server() -> LocalPostgres {
    let h = harness();
    start_server(&h.bins, &h.template)
}

/// A directory removed when the test process exits (for proxy state dirs and such).
pub fn scratch_dir() -> &'static Path {
    harness().scratch.path()
}

/// A test's own databases: one fresh database on each used shard and on the oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDbs {
    /// The database name (the same on every server).
    pub name: String,
    /// `postgres://postgres@127.0.0.1:PORT/NAME` of each shard used.
    pub shard_urls: Vec<String>,
    /// The same database on the oracle.
    pub oracle_url: String,
}

/// A name no other test of this binary gets.
fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{n}_{:08x}", rand::random::<u32>())
}

/// Creates a fresh database (same unique name) on the first `n_shards` shards and the oracle.
pub async fn fresh_dbs(n_shards: usize) -> TestDbs {
    assert!(
        (1..=SHARD_SERVERS).contains(&n_shards),
        "fresh_dbs: n_shards must be 1..={SHARD_SERVERS}, got {n_shards}"
    );
    // Server start-up blocks: keep it off the test's runtime threads.
    let servers = tokio::task::spawn_blocking(servers)
        .await
        .unwrap_or_else(|e| panic!("start servers: {e}"));
    let name = unique_name("t");
    let targets: Vec<&LocalPostgres> = servers
        .shards
        .iter()
        .take(n_shards)
        .chain(std::iter::once(&servers.oracle))
        .collect();
    let creates = targets.iter().map(|server| {
        let admin_url = server.url("postgres");
        let sql = format!("CREATE DATABASE {name}");
        async move {
            let client = connect_url(&admin_url).await;
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql} on {admin_url}: {e}"));
        }
    });
    futures::future::join_all(creates).await;
    TestDbs {
        shard_urls: servers
            .shards
            .iter()
            .take(n_shards)
            .map(|s| s.url(&name))
            .collect(),
        oracle_url: servers.oracle.url(&name),
        name,
    }
}

/// A tokio-postgres client for `url` (no TLS), connection task spawned on the current runtime.
pub async fn connect_url(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A config for `dbs`' shards (named s0, s1, ...) with the proxy and admin API on 127.0.0.1:0,
/// state_dir in a scratch dir, pool size 4, then `auth_toml` and `extra_toml` (maps/tables).
///
/// `auth_toml` is a whole `[auth]` section; empty leaves `[auth]` out, which means trust with
/// any user name. Shards are reached as the trusted superuser `postgres`.
pub fn config_toml(dbs: &TestDbs, auth_toml: &str, extra_toml: &str) -> String {
    let state_dir = scratch_dir().join(unique_name("state"));
    let mut toml = format!(
        "[proxy]\n\
         listen = \"127.0.0.1:0\"\n\
         admin_listen = \"127.0.0.1:0\"\n\
         admin_token = \"test-token\"\n\
         state_dir = {}\n\n",
        toml_string(&state_dir.display().to_string())
    );
    if auth_toml.trim().is_empty() {
        toml.push_str("# [auth] omitted: trust, any user name is accepted\n\n");
    } else {
        toml.push_str(auth_toml.trim());
        toml.push_str("\n\n");
    }
    toml.push_str("[pool]\nsize = 4\nmode = \"transaction\"\ncheckout_timeout_ms = 5000\n\n");
    for (i, url) in dbs.shard_urls.iter().enumerate() {
        toml.push_str(&format!(
            "[[shards]]\nname = \"s{i}\"\nurl = {}\n\n",
            toml_string(url)
        ));
    }
    toml.push_str(extra_toml);
    if !toml.ends_with('\n') {
        toml.push('\n');
    }
    toml
}

/// The admin token [`config_toml`] writes.
pub const ADMIN_TOKEN: &str = "test-token";

/// Starts the proxy in-process from config text; panics with the config errors if invalid.
pub async fn start_proxy(toml: &str) -> proxy::RunningProxy {
    let config = config::Config::parse(toml, "test.toml")
        .unwrap_or_else(|e| panic!("invalid test config:\n{e}\n--- config ---\n{toml}"));
    proxy::start(config, None)
        .await
        .unwrap_or_else(|e| panic!("start the proxy: {e:#}"))
}

/// tokio-postgres client to the proxy (user/password), connection task spawned.
pub async fn connect(
    addr: SocketAddr,
    user: &str,
    password: Option<&str>,
    db: &str,
) -> tokio_postgres::Client {
    try_connect(addr, user, password, db)
        .await
        .unwrap_or_else(|e| panic!("connect to the proxy at {addr} as {user}: {e}"))
}

/// Like [`connect`], returning the error (for tests of refused logins).
pub async fn try_connect(
    addr: SocketAddr,
    user: &str,
    password: Option<&str>,
    db: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(user)
        .dbname(db);
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Paths of psql/pgbench binaries (next to the server binaries, PATH or /usr/lib/postgresql/*/bin).
pub fn pg_tool(name: &str) -> PathBuf {
    PgBinaries::find()
        .ok()
        .and_then(|bins| bins.tool(name))
        .or_else(|| proxy::launcher::find_tool(name))
        .unwrap_or_else(|| panic!("`{name}` not found on PATH or under /usr/lib/postgresql/*/bin"))
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
        assert!(unique_name("t").starts_with("t_"));
    }
}
