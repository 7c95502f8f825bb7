//! Hot reload: re-read the config file and swap in the new maps and tables atomically.
//!
//! Three triggers share [`reload`]: the file watch and SIGHUP ([`spawn_watchers`]) and
//! `POST /api/v1/reload` (through `control`). Statements in flight keep the `Arc<Router>` they
//! loaded; the next statement sees the new one. A rejected file changes nothing.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use config::{Config, ConfigErrors};
use shard_router::Router;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use crate::context::ProxyContext;

/// Why a reload was refused; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The proxy was started from config text, not a file.
    #[error("the proxy was started without a config file, so there is nothing to reload")]
    NoConfigFile,
    /// The file does not parse or validate; each error carries file:line:col.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// Shard pools are built at start, so the shard list cannot change underneath them.
    #[error("changing [[shards]] needs a restart (or POST /api/v1/shards)")]
    ShardsChanged,
    /// The blocking load task died.
    #[error("reload failed: {0}")]
    Internal(String),
}

/// Identifies one version of the config file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    // Editors that save by rename-over give a new inode even when mtime and length repeat.
    inode: u64,
}

/// Reload bookkeeping of one proxy: one reload at a time, and the file version last read.
#[derive(Debug, Default)]
pub struct ReloadState {
    running: tokio::sync::Mutex<()>,
    attempted: Mutex<Option<FileStamp>>,
}

impl ReloadState {
    /// The file version the last reload read (valid or not).
    fn attempted(&self) -> Option<FileStamp> {
        *self
            .attempted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_attempted(&self, stamp: Option<FileStamp>) {
        *self
            .attempted
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = stamp;
    }

    /// Records the version the proxy started with, unless a reload already recorded one.
    fn init_attempted(&self, stamp: Option<FileStamp>) {
        let mut attempted = self
            .attempted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if attempted.is_none() {
            *attempted = stamp;
        }
    }
}

/// Re-reads `ctx.config_path`. Ok(summary of what changed) when swapped; Err(text, with
/// file:line:col for invalid files) when rejected. Logs the outcome (info / warn).
pub async fn reload(ctx: &ProxyContext) -> Result<String, String> {
    let result = try_reload(ctx).await;
    let path = ctx
        .config_path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match &result {
        Ok(summary) => tracing::info!(%path, %summary, "config reloaded"),
        Err(error) => {
            tracing::warn!(%path, %error, "config reload rejected; the running config stays")
        }
    }
    result.map_err(|e| e.to_string())
}

/// [`reload`] with a typed error and no logging.
async fn try_reload(ctx: &ProxyContext) -> Result<String, ReloadError> {
    let path = ctx.config_path.clone().ok_or(ReloadError::NoConfigFile)?;
    let _one_at_a_time = ctx.reload_state.running.lock().await;
    // Taken before reading: an edit racing the read leaves a newer stamp, so the watch reloads again.
    ctx.reload_state.set_attempted(file_stamp(&path).await);
    let old = ctx.config.load_full();
    let prepared = tokio::task::spawn_blocking(move || {
        let new = Config::load(&path).map_err(ReloadError::Invalid)?;
        prepare(&old, new, &path)
    })
    .await
    .map_err(|e| ReloadError::Internal(e.to_string()))??;
    ctx.router.store(Arc::new(prepared.router));
    ctx.config.store(Arc::new(prepared.config));
    Ok(prepared.summary)
}

/// A checked new config, its router, and what changed.
struct Prepared {
    config: Config,
    router: Router,
    summary: String,
}

/// Checks `new` against the running `old` and builds what will be swapped in. Settings that are
/// only read at start keep their running values in the stored config (so the admin API shows what
/// is in effect) and are named in the summary.
fn prepare(old: &Config, mut new: Config, path: &Path) -> Result<Prepared, ReloadError> {
    if new.shards != old.shards {
        return Err(ReloadError::ShardsChanged);
    }
    let mut changes = routing_changes(old, &new);
    if new.proxy.admin_token != old.proxy.admin_token {
        changes.push("admin_token changed".to_owned());
    }
    let pending = restart_only_changes(old, &new);
    let admin_token = new.proxy.admin_token.take();
    new.proxy = old.proxy.clone();
    new.proxy.admin_token = admin_token;
    new.auth = old.auth.clone();
    new.pool = old.pool.clone();
    let router = Router::new(&new);
    let mut summary = format!("{}: ", path.display());
    if changes.is_empty() {
        summary.push_str("no routing changes");
    } else {
        summary.push_str(&changes.join("; "));
    }
    if !pending.is_empty() {
        summary.push_str(&format!(
            "; not applied until restart: {}",
            pending.join(", ")
        ));
    }
    Ok(Prepared {
        config: new,
        router,
        summary,
    })
}

/// "map region changed", "table t added"... in name order.
fn routing_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();
    let names = old.maps.keys().chain(new.maps.keys());
    let mut names: Vec<&String> = names.collect();
    names.sort();
    names.dedup();
    for name in names {
        if let Some(what) = change(old.maps.get(name), new.maps.get(name)) {
            changes.push(format!("map {name} {what}"));
        }
    }
    let mut names: Vec<&String> = old.tables.keys().chain(new.tables.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        if let Some(what) = change(old.tables.get(name), new.tables.get(name)) {
            changes.push(format!("table {name} {what}"));
        }
    }
    changes
}

/// How one named entry changed, if it did.
fn change<T: PartialEq>(old: Option<&T>, new: Option<&T>) -> Option<&'static str> {
    match (old, new) {
        (None, Some(_)) => Some("added"),
        (Some(_), None) => Some("removed"),
        (Some(a), Some(b)) if a != b => Some("changed"),
        _ => None,
    }
}

/// Edited settings that are read only at start (listeners, pools, client auth).
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.proxy, &new.proxy);
    [
        ("listen", a.listen != b.listen),
        ("admin_listen", a.admin_listen != b.admin_listen),
        ("state_dir", a.state_dir != b.state_dir),
        ("proxy_id", a.proxy_id != b.proxy_id),
        ("workers", a.workers != b.workers),
        (
            "max_client_connections",
            a.max_client_connections != b.max_client_connections,
        ),
        (
            "max_message_bytes",
            a.max_message_bytes != b.max_message_bytes,
        ),
        ("[auth]", old.auth != new.auth),
        ("[pool]", old.pool != new.pool),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// The current version of the file, or None when it cannot be seen (e.g. mid-replace).
async fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Starts the reload triggers of a proxy run from a file: SIGHUP, and (with `poll`) a check of
/// the file every `poll`. Both stop when `shutdown` turns true or its sender goes away.
///
/// The file watch polls (mtime, length, inode) rather than using inotify: it needs no new
/// dependency, one stat() twice a second costs nothing, and it also sees edits that inotify
/// misses (network filesystems, editors and ConfigMaps that replace the file instead of writing it).
/// A change is reloaded once, when the same new version is seen on two polls in a row, so a
/// file caught half-written is not reported as an error.
pub fn spawn_watchers(
    ctx: Arc<ProxyContext>,
    poll: Option<Duration>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let Some(path) = ctx.config_path.clone() else {
        return tokio::spawn(async {});
    };
    // Installed here, not in the task: once this returns, a SIGHUP no longer kills the process.
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP; reload by file watch or the admin API");
            None
        }
    };
    tokio::spawn(async move {
        let mut poller = poll.map(|every| {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        let mut previous = file_stamp(&path).await;
        ctx.reload_state.init_attempted(previous);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = next_hangup(&mut hangup) => {
                    tracing::info!("SIGHUP: reloading the config");
                    let _ = reload(&ctx).await;
                }
                () = next_tick(&mut poller) => {
                    let current = file_stamp(&path).await;
                    let settled = current.is_some() && current == previous;
                    if settled && current != ctx.reload_state.attempted() {
                        tracing::info!(path = %path.display(), "config file changed: reloading");
                        let _ = reload(&ctx).await;
                    }
                    previous = current;
                }
            }
        }
    })
}

/// The next SIGHUP; never resolves without a handler. Cancel safe.
async fn next_hangup(hangup: &mut Option<Signal>) -> Option<()> {
    match hangup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The next poll; never resolves when polling is off. Cancel safe.
async fn next_tick(poller: &mut Option<Interval>) {
    match poller {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const BASE: &str = r#"
[proxy]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_token = "t1"

[[shards]]
name = "s0"
url = "postgres://u@127.0.0.1:1/db"

[[shards]]
name = "s1"
url = "postgres://u@127.0.0.1:2/db"

[maps.region]
strategy = "list"
key_type = "text"
lists = [ { values = ["KR"], shard = "s0" }, { values = ["US"], shard = "s1" } ]
default = "s0"

[tables]
customers = { map = "region", key = "country" }
"#;

    fn parse(text: &str) -> Config {
        Config::parse(text, "f.toml").unwrap()
    }

    fn shard_of(router: &Router, country: &str) -> Vec<usize> {
        let plan = router
            .route_sql(&format!(
                "SELECT * FROM customers WHERE country = '{country}'"
            ))
            .unwrap();
        plan.shards(router.shard_names().len())
    }

    #[test]
    fn map_edit_is_summarised_and_routes() {
        let old = parse(BASE);
        let new = parse(&BASE.replace(r#"["US"]"#, r#"["US", "FR"]"#));
        let p = prepare(&old, new, Path::new("f.toml")).unwrap();
        assert_eq!(p.summary, "f.toml: map region changed");
        assert_eq!(shard_of(&p.router, "FR"), vec![1]);
    }

    #[test]
    fn shard_changes_are_refused() {
        let old = parse(BASE);
        let new = parse(&BASE.replace("127.0.0.1:2/db", "127.0.0.1:3/db"));
        let err = prepare(&old, new, Path::new("f.toml"))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "changing [[shards]] needs a restart (or POST /api/v1/shards)"
        );
    }

    #[test]
    fn restart_only_settings_keep_running_values() {
        let old = parse(BASE);
        let text = BASE
            .replace(
                "admin_token = \"t1\"",
                "admin_token = \"t2\"\nmax_client_connections = 7",
            )
            .replace("[tables]", "[tables]\ncountries = { reference = true }");
        let text = format!("{text}\n[pool]\nsize = 3\n");
        let p = prepare(&old, parse(&text), Path::new("f.toml")).unwrap();
        assert_eq!(
            p.summary,
            "f.toml: table countries added; admin_token changed; \
             not applied until restart: max_client_connections, [pool]"
        );
        assert_eq!(p.config.proxy.admin_token.as_deref(), Some("t2"));
        assert_eq!(
            p.config.proxy.max_client_connections,
            old.proxy.max_client_connections
        );
        assert_eq!(p.config.pool, old.pool);
        assert!(p.config.tables.contains_key("countries"));
    }

    #[test]
    fn unchanged_file() {
        let p = prepare(&parse(BASE), parse(BASE), Path::new("f.toml")).unwrap();
        assert_eq!(p.summary, "f.toml: no routing changes");
    }

    fn context(dir: &tempfile::TempDir, text: &str) -> (Arc<ProxyContext>, std::path::PathBuf) {
        let path = dir.path().join("shardproxy.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap();
        let ctx = ProxyContext::new(config).with_config_path(Some(path.clone()));
        (Arc::new(ctx), path)
    }

    #[tokio::test]
    async fn reload_swaps_or_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, path) = context(&dir, BASE);
        assert_eq!(shard_of(&ctx.router.load(), "FR"), vec![0]);

        std::fs::write(&path, BASE.replace(r#"["US"]"#, r#"["US", "FR"]"#)).unwrap();
        let summary = reload(&ctx).await.unwrap();
        assert!(summary.ends_with("map region changed"), "{summary}");
        assert_eq!(shard_of(&ctx.router.load(), "FR"), vec![1]);

        // Invalid: FR listed on two shards. The error names the place; nothing is swapped.
        let before = ctx.router.load_full();
        let invalid = BASE
            .replace(r#"["US"]"#, r#"["US", "FR"]"#)
            .replace(r#"["KR"]"#, r#"["KR", "FR"]"#);
        std::fs::write(&path, invalid).unwrap();
        let err = reload(&ctx).await.unwrap_err();
        let place = format!("{}:", path.display());
        assert!(err.contains(&place), "{err}");
        assert!(Arc::ptr_eq(&before, &ctx.router.load_full()));

        std::fs::write(&path, "[[shards]\n").unwrap();
        let err = reload(&ctx).await.unwrap_err();
        assert!(err.starts_with(&format!("{place}1:")), "{err}");
        assert!(Arc::ptr_eq(&before, &ctx.router.load_full()));
    }

    #[tokio::test]
    async fn reload_without_a_file() {
        let ctx = ProxyContext::new(parse(BASE));
        let err = reload(&ctx).await.unwrap_err();
        assert!(err.contains("without a config file"), "{err}");
    }

    /// Polls until `f` holds or about five seconds pass.
    async fn eventually(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..250 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn file_watch_reloads_each_change_once() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, path) = context(&dir, BASE);
        let (tx, rx) = watch::channel(false);
        let task = spawn_watchers(ctx.clone(), Some(Duration::from_millis(10)), rx);
        // Let the watcher record the starting version before editing.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = ctx.router.load_full();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            Arc::ptr_eq(&start, &ctx.router.load_full()),
            "reloaded without a change"
        );

        std::fs::write(&path, BASE.replace(r#"["US"]"#, r#"["US", "FR"]"#)).unwrap();
        assert!(eventually(|| shard_of(&ctx.router.load(), "FR") == vec![1]).await);
        let after = ctx.router.load_full();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            Arc::ptr_eq(&after, &ctx.router.load_full()),
            "reloaded twice"
        );

        // A rename-over save is seen too.
        let tmp = dir.path().join("new.toml");
        std::fs::write(&tmp, BASE.replace(r#"["KR"]"#, r#"["KR", "FR"]"#)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(eventually(|| shard_of(&ctx.router.load(), "FR") == vec![0]).await);

        tx.send(true).unwrap();
        task.await.unwrap();
    }
}
