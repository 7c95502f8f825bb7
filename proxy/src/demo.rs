//! `shardproxy demo`: local PostgreSQL shards, a sample schema and the proxy, with zero setup.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::launcher::{LocalPostgres, PgBinaries, ServerOptions, Template};

/// Where clients connect to the demo proxy.
pub const DEMO_LISTEN: &str = "127.0.0.1:6432";
/// Where the demo's admin API listens.
pub const DEMO_ADMIN_LISTEN: &str = "127.0.0.1:9187";
/// The admin API token of the demo.
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";
/// The database created on every shard.
pub const DEMO_DB: &str = "shardproxy";
/// The demo's client login.
pub const DEMO_USER: (&str, &str) = ("app", "app-secret");

/// Most shards the demo starts (each is a full PostgreSQL server).
const MAX_SHARDS: usize = 16;

/// Buckets of the demo's hash map.
const HASH_BUCKETS: usize = 1024;

/// Width of each shard's slice of the `events` key space.
const EVENT_RANGE: i64 = 1000;

/// Country pairs for the `region` list map: pair `i` lives on shard `i`, the last shard is default.
const COUNTRY_GROUPS: [[&str; 2]; MAX_SHARDS - 1] = [
    ["KR", "JP"],
    ["US", "DE"],
    ["FR", "GB"],
    ["BR", "IN"],
    ["CN", "AU"],
    ["CA", "MX"],
    ["IT", "ES"],
    ["NL", "SE"],
    ["PL", "NO"],
    ["TR", "EG"],
    ["ZA", "NG"],
    ["AR", "CL"],
    ["TH", "VN"],
    ["ID", "PH"],
    ["SG", "NZ"],
];

/// The sample schema, created (empty) on every shard.
const SCHEMA_SQL: &str = "\
CREATE TABLE users (id bigint PRIMARY KEY, name text, email text, created_at timestamptz DEFAULT now());
CREATE TABLE orders (id bigserial, user_id bigint, amount numeric(12,2), created_at timestamptz DEFAULT now(), PRIMARY KEY (user_id, id));
CREATE TABLE events (event_id bigint PRIMARY KEY, kind text, payload jsonb, at timestamptz DEFAULT now());
CREATE TABLE customers (country text, id bigint, name text, PRIMARY KEY (country, id));
CREATE TABLE countries (code text PRIMARY KEY, name text);
";

/// Options of `shardproxy demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Number of local PostgreSQL servers (shards).
    pub shards: usize,
    /// Directory for the config, the servers' data and proxy state (default `./demo-data`).
    pub dir: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            shards: 3,
            dir: None,
        }
    }
}

/// Starts N local servers, writes DIR/shardproxy.toml, runs the proxy until Ctrl-C or SIGTERM,
/// then shuts the proxy down and stops every server it started.
///
/// Missing PostgreSQL binaries give an error whose Display is one sentence naming what to install.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    if !(1..=MAX_SHARDS).contains(&opts.shards) {
        anyhow::bail!("--shards must be between 1 and {MAX_SHARDS}");
    }
    let bins = PgBinaries::find()?;
    let dir = opts.dir.unwrap_or_else(|| PathBuf::from("demo-data"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolve {}", dir.display()))?;
    // State of an earlier run refers to servers that no longer exist.
    let state_dir = dir.join("state");
    remove_dir_if_exists(&state_dir)?;

    println!(
        "shardproxy demo: starting {} PostgreSQL servers...",
        opts.shards
    );
    let pg_dir = dir.join("pg");
    let n = opts.shards;
    let servers = tokio::task::spawn_blocking(move || start_servers(&bins, &pg_dir, n))
        .await
        .context("server start-up task")??;

    let urls: Vec<String> = servers.iter().map(|s| s.url(DEMO_DB)).collect();
    let toml = demo_config(&urls, &state_dir);
    let config_path = dir.join("shardproxy.toml");
    std::fs::write(&config_path, &toml)
        .with_context(|| format!("write {}", config_path.display()))?;
    let config = config::Config::parse(&toml, &config_path.display().to_string())
        .map_err(|e| anyhow::anyhow!("the generated demo config is invalid:\n{e}"))?;
    let proxy = crate::start(config, Some(config_path.clone())).await?;
    load_sample_data(proxy.addr)
        .await
        .context("loading the sample rows through the proxy")?;

    print!("{}", banner(&servers, &dir, &config_path, &proxy));
    wait_for_stop_signal().await?;

    println!("\nshardproxy demo: stopping...");
    proxy.shutdown().await;
    tokio::task::spawn_blocking(move || drop(servers))
        .await
        .context("server shut-down task")?;
    remove_dir_if_exists(&state_dir)?;
    println!("shardproxy demo: stopped.");
    Ok(())
}

/// Inserts the sample rows THROUGH the proxy, so they land where the maps say (multi-row
/// INSERTs are split per shard, reference rows go to every shard).
async fn load_sample_data(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let url = format!(
        "host={} port={} user=app password=app-secret dbname={DEMO_DB}",
        addr.ip(),
        addr.port()
    );
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(conn);
    let rows = |n: i64, f: &dyn Fn(i64) -> String| (1..=n).map(f).collect::<Vec<_>>().join(",");
    let statements = [
        "INSERT INTO countries (code, name) VALUES ('KR','Korea'),('JP','Japan'),\
         ('US','United States'),('DE','Germany'),('FR','France'),('BR','Brazil')"
            .to_string(),
        format!(
            "INSERT INTO users (id, name, email) VALUES {}",
            rows(200, &|i| format!(
                "({i}, 'user {i}', 'user{i}@example.com')"
            ))
        ),
        format!(
            "INSERT INTO orders (user_id, amount) VALUES {}",
            rows(600, &|i| format!(
                "({}, {}.{:02})",
                (i * 7) % 200 + 1,
                i % 90 + 10,
                i % 100
            ))
        ),
        format!(
            "INSERT INTO events (event_id, kind) VALUES {}",
            rows(300, &|i| format!(
                "({}, '{}')",
                i * 10,
                ["click", "view", "buy"][(i % 3) as usize]
            ))
        ),
        format!(
            "INSERT INTO customers (country, id, name) VALUES {}",
            rows(120, &|i| {
                let c = ["KR", "JP", "US", "DE", "FR", "BR"][(i % 6) as usize];
                format!("('{c}', {i}, 'customer {i}')")
            })
        ),
    ];
    for sql in &statements {
        client.batch_execute(sql).await?;
    }
    drop(client);
    let _ = conn.await;
    Ok(())
}

/// Starts the servers (durable: people may keep data in a demo) and creates the schema.
fn start_servers(bins: &PgBinaries, pg_dir: &Path, n: usize) -> anyhow::Result<Vec<LocalPostgres>> {
    let template = Template::create(bins)?;
    let opts = ServerOptions {
        fsync: true,
        ..ServerOptions::default()
    };
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        let server = LocalPostgres::start(bins, &template, Some(pg_dir), &opts)?;
        server.psql("postgres", &format!("CREATE DATABASE {DEMO_DB};"))?;
        server.psql(DEMO_DB, SCHEMA_SQL)?;
        servers.push(server);
    }
    Ok(servers)
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("wait for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Removes a directory left by an earlier run.
fn remove_dir_if_exists(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// What the user sees once everything runs.
fn banner(
    servers: &[LocalPostgres],
    dir: &Path,
    config_path: &Path,
    proxy: &crate::RunningProxy,
) -> String {
    let (user, password) = DEMO_USER;
    let admin = proxy
        .admin_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| DEMO_ADMIN_LISTEN.to_string());
    let mut out = String::new();
    let _ = writeln!(out, "\n  shardproxy demo is running\n");
    let _ = writeln!(
        out,
        "  shards (data in {}, removed on exit):",
        dir.join("pg").display()
    );
    for (i, server) in servers.iter().enumerate() {
        let _ = writeln!(out, "    s{i}  {}", server.url(DEMO_DB));
    }
    let _ = writeln!(out, "  config:  {}", config_path.display());
    let _ = writeln!(
        out,
        "  tables:  users, orders (hash on user id), events (range on event_id),\n           \
         customers (list on country), countries (reference, on every shard)\n"
    );
    let _ = writeln!(out, "  connect:");
    let _ = writeln!(
        out,
        "    psql \"postgres://{user}:{password}@{}/{DEMO_DB}\"\n",
        proxy.addr
    );
    let _ = writeln!(
        out,
        "  try (sample rows were inserted through the proxy):\n    \
         SELECT * FROM users WHERE id = 42;            -- one shard\n    \
         SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 8;\n    \
         SELECT * FROM customers WHERE country IN ('KR', 'US');   -- two shards\n    \
         UPDATE events SET kind = 'seen' WHERE event_id < 1500;   -- ranges on two shards\n"
    );
    let _ = writeln!(
        out,
        "  admin API:  http://{admin}/  (token: {DEMO_ADMIN_TOKEN})"
    );
    let _ = writeln!(
        out,
        "    curl -H 'Authorization: Bearer {DEMO_ADMIN_TOKEN}' http://{admin}/api/v1/shards\n"
    );
    let _ = writeln!(out, "  Press Ctrl-C to stop everything.");
    out
}

/// The demo config for shards at `urls` (named s0, s1, ...), same shape as config/shardproxy.toml.
pub fn demo_config(urls: &[String], state_dir: &Path) -> String {
    let n = urls.len().max(1);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by `shardproxy demo`; rewritten on every run. See config/shardproxy.toml for\n\
         # a commented version of this file.\n"
    );
    let _ = writeln!(t, "[proxy]");
    let _ = writeln!(t, "listen = {}", toml_string(DEMO_LISTEN));
    let _ = writeln!(t, "admin_listen = {}", toml_string(DEMO_ADMIN_LISTEN));
    let _ = writeln!(t, "admin_token = {}", toml_string(DEMO_ADMIN_TOKEN));
    let _ = writeln!(
        t,
        "state_dir = {}\n",
        toml_string(&state_dir.display().to_string())
    );
    let _ = writeln!(t, "[auth]\nmethod = \"scram-sha-256\"");
    let _ = writeln!(
        t,
        "users = [ {{ name = {}, password = {} }} ]\n",
        toml_string(DEMO_USER.0),
        toml_string(DEMO_USER.1)
    );
    let _ = writeln!(
        t,
        "[pool]\nsize = 20\nmode = \"transaction\"\ncheckout_timeout_ms = 5000\nconnect_timeout_ms = 5000\n"
    );
    for (i, url) in urls.iter().enumerate() {
        let _ = writeln!(
            t,
            "[[shards]]\nname = \"s{i}\"\nurl = {}\n",
            toml_string(url)
        );
    }

    let _ = writeln!(
        t,
        "[maps.users]\nstrategy = \"hash\"\nkey_type = \"bigint\""
    );
    let _ = writeln!(t, "buckets = {HASH_BUCKETS}\nassign = [");
    for (i, (from, to)) in bucket_runs(HASH_BUCKETS, n).into_iter().enumerate() {
        let _ = writeln!(t, "  {{ buckets = \"{from}-{to}\", shard = \"s{i}\" }},");
    }
    let _ = writeln!(t, "]\n");

    let _ = writeln!(
        t,
        "[maps.events]\nstrategy = \"range\"\nkey_type = \"bigint\"\nranges = ["
    );
    for i in 0..n {
        let mut bounds = String::new();
        if i > 0 {
            let _ = write!(bounds, "from = {}, ", EVENT_RANGE * i as i64);
        }
        if i + 1 < n {
            let _ = write!(bounds, "to = {}, ", EVENT_RANGE * (i as i64 + 1));
        }
        let _ = writeln!(t, "  {{ {bounds}shard = \"s{i}\" }},");
    }
    let _ = writeln!(t, "]\n");

    let _ = writeln!(
        t,
        "[maps.region]\nstrategy = \"list\"\nkey_type = \"text\"\nlists = ["
    );
    let listed = (n - 1).max(1);
    for (i, group) in COUNTRY_GROUPS.iter().take(listed).enumerate() {
        let _ = writeln!(
            t,
            "  {{ values = [\"{}\", \"{}\"], shard = \"s{}\" }},",
            group[0],
            group[1],
            i % n
        );
    }
    let _ = writeln!(t, "]\ndefault = \"s{}\"\n", n - 1);

    let _ = writeln!(
        t,
        "[tables]\n\
         users     = {{ map = \"users\",  key = \"id\" }}\n\
         orders    = {{ map = \"users\",  key = \"user_id\" }}\n\
         events    = {{ map = \"events\", key = \"event_id\" }}\n\
         customers = {{ map = \"region\", key = \"country\" }}\n\
         countries = {{ reference = true }}"
    );
    t
}

/// Contiguous bucket runs `(first, last)` per shard; the first `buckets % shards` get one more.
fn bucket_runs(buckets: usize, shards: usize) -> Vec<(usize, usize)> {
    let shards = shards.max(1);
    let (base, extra) = (buckets / shards, buckets % shards);
    let mut start = 0;
    (0..shards)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let run = (start, start + len.saturating_sub(1));
            start += len;
            run
        })
        .collect()
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
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

    fn urls(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("postgres://postgres@127.0.0.1:{}/shardproxy", 15432 + i))
            .collect()
    }

    #[test]
    fn bucket_runs_split_evenly() {
        assert_eq!(
            bucket_runs(1024, 3),
            vec![(0, 341), (342, 682), (683, 1023)]
        );
        assert_eq!(bucket_runs(1024, 1), vec![(0, 1023)]);
        assert_eq!(bucket_runs(1024, 2), vec![(0, 511), (512, 1023)]);
    }

    #[test]
    fn three_shard_config_matches_the_documented_layout() {
        let t = demo_config(&urls(3), Path::new("/tmp/state"));
        for needle in [
            "listen = \"127.0.0.1:6432\"",
            "admin_listen = \"127.0.0.1:9187\"",
            "method = \"scram-sha-256\"",
            "users = [ { name = \"app\", password = \"app-secret\" } ]",
            "url = \"postgres://postgres@127.0.0.1:15434/shardproxy\"",
            "{ buckets = \"683-1023\", shard = \"s2\" },",
            "{ to = 1000, shard = \"s0\" },",
            "{ from = 1000, to = 2000, shard = \"s1\" },",
            "{ from = 2000, shard = \"s2\" },",
            "{ values = [\"KR\", \"JP\"], shard = \"s0\" },",
            "{ values = [\"US\", \"DE\"], shard = \"s1\" },",
            "default = \"s2\"",
            "countries = { reference = true }",
        ] {
            assert!(t.contains(needle), "missing {needle} in\n{t}");
        }
        assert!(!t.contains("FR"));
    }

    #[test]
    fn one_shard_config_has_unbounded_range() {
        let t = demo_config(&urls(1), Path::new("/tmp/state"));
        assert!(t.contains("  { shard = \"s0\" },"));
        assert!(t.contains("default = \"s0\""));
        assert!(t.contains("{ buckets = \"0-1023\", shard = \"s0\" },"));
    }

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny"), r#""x\u000Ay""#);
    }

    #[test]
    fn three_shard_config_equals_the_shipped_example() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/shardproxy.toml");
        let shipped = config::Config::load(&path).unwrap();
        let ours = demo_config(&urls(3), Path::new("./shardproxy-state"));
        let ours = config::Config::parse(&ours, "demo.toml").unwrap();
        // The example's admin token may come from the environment; everything else must match.
        assert_eq!(ours.proxy.admin_token.as_deref(), Some(DEMO_ADMIN_TOKEN));
        let shipped = config::Config {
            proxy: config::ProxyConfig {
                admin_token: ours.proxy.admin_token.clone(),
                ..shipped.proxy
            },
            ..shipped
        };
        assert_eq!(ours, shipped);
    }

    #[test]
    fn configs_validate_for_every_shard_count() {
        for n in 1..=MAX_SHARDS {
            let t = demo_config(&urls(n), Path::new("/tmp/state"));
            if let Err(e) = config::Config::parse(&t, "demo.toml") {
                panic!("{n} shards: {e}\n{t}");
            }
        }
    }
}
