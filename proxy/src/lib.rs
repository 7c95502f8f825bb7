//! shardproxy: a PostgreSQL sharding proxy.
//!
//! Data path: client socket -> [`protocol`] (codec) -> [`client`] session -> router
//! (`shard-router`) -> [`backend`] connections -> execute -> client. See ARCHITECTURE.md.
//! Beside it: the admin HTTP API (`admin` crate, fed by [`control`]), hot [`reload`], and
//! [`twopc`] (atomic multi-shard commits and their crash recovery).

pub mod admin_cli;
pub mod auth;
pub mod backend;
pub mod cancel;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod context;
pub mod control;
pub mod demo;
pub mod launcher;
pub mod merge;
pub mod protocol;
pub mod reload;
pub mod server;
pub mod twopc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::context::ProxyContext;
use crate::control::ProxyControlImpl;

/// How often the config file is checked for edits by default.
pub const CONFIG_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How long the admin server gets to finish its requests once the proxy has stopped.
const ADMIN_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of [`start_with`] that `shardproxy run` leaves at their defaults.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// How often to check the config file for edits; `None` turns the file watch off (SIGHUP
    /// and `POST /api/v1/reload` still reload).
    pub config_poll: Option<Duration>,
}

impl Default for StartOptions {
    fn default() -> StartOptions {
        StartOptions {
            config_poll: Some(CONFIG_POLL_INTERVAL),
        }
    }
}

/// A proxy started in this process (by `shardproxy run`, the demo, or tests).
pub struct RunningProxy {
    /// The bound PostgreSQL-protocol address (the real port when the config said port 0).
    pub addr: SocketAddr,
    /// The bound admin HTTP address (the real port when the config said port 0).
    pub admin_addr: Option<SocketAddr>,
    /// Shared state (for tests and the admin API).
    pub ctx: Arc<ProxyContext>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl RunningProxy {
    /// Stops accepting, lets clients finish (with a timeout), closes backends, then stops the
    /// admin server.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
    }

    /// Waits until the proxy has stopped (after `shutdown` from elsewhere).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }

    /// A handle that triggers shutdown (e.g. from a signal handler).
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Starts the proxy with a validated config. `config_path` is the file it came from: with one,
/// edits to it (file watch, SIGHUP, `POST /api/v1/reload`) take effect without a restart.
pub async fn start(
    config: config::Config,
    config_path: Option<PathBuf>,
) -> anyhow::Result<RunningProxy> {
    start_with(config, config_path, StartOptions::default()).await
}

/// [`start`] with explicit [`StartOptions`].
pub async fn start_with(
    config: config::Config,
    config_path: Option<PathBuf>,
    options: StartOptions,
) -> anyhow::Result<RunningProxy> {
    let listen = config.proxy.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("could not listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let admin_listen = config.proxy.admin_listen;
    let admin_listener = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("could not listen on {admin_listen} (admin_listen)"))?;
    let admin_addr = admin_listener.local_addr()?;
    let watched = config_path.is_some();
    let ctx = ProxyContext::new(config).with_config_path(config_path);
    // Opening the decision log reads and may repair a file: keep it off the async workers.
    let ctx = tokio::task::spawn_blocking(move || ctx.with_twopc_opened())
        .await
        .context("opening the 2PC state panicked")??;
    let ctx = Arc::new(ctx);
    let (tx, rx) = watch::channel(false);
    let (admin_stop, admin_stopped) = oneshot::channel::<()>();
    let admin = tokio::spawn(serve_admin(admin_listener, ctx.clone(), admin_stopped));
    let watchers =
        watched.then(|| reload::spawn_watchers(ctx.clone(), options.config_poll, rx.clone()));
    let recovery = twopc::recovery::spawn(ctx.clone(), rx.clone());
    let proxy = tokio::spawn(server::run(listener, ctx.clone(), rx));
    let twopc = ctx.twopc.clone();
    let server = tokio::spawn(async move {
        let _ = proxy.await;
        // Recovery sees the same shutdown signal and stops between statements.
        let _ = recovery.await;
        // The admin API outlives the client drain, so /metrics can watch a shutdown.
        drop(admin_stop);
        stop_admin(admin).await;
        if let Some(watchers) = watchers {
            let _ = watchers.await;
        }
        // DONE records are written without a sync; make them durable before exiting.
        if let Err(e) = twopc.flush().await {
            tracing::warn!(error = %e, "could not flush the 2PC decision log");
        }
    });
    tracing::info!(%addr, %admin_addr, "shardproxy listening");
    Ok(RunningProxy {
        addr,
        admin_addr: Some(admin_addr),
        ctx,
        shutdown: tx,
        server,
    })
}

/// Runs the admin HTTP server until `stop` resolves (sent or dropped).
async fn serve_admin(
    listener: tokio::net::TcpListener,
    ctx: Arc<ProxyContext>,
    stop: oneshot::Receiver<()>,
) {
    let metrics = ctx.metrics.clone();
    let control = Arc::new(ProxyControlImpl(ctx));
    let stop = async move {
        let _ = stop.await;
    };
    if let Err(e) = admin::serve(listener, control, metrics, stop).await {
        tracing::error!(error = %e, "admin server failed");
    }
}

/// Waits for the admin server to finish its requests, for a bounded time.
async fn stop_admin(mut admin: JoinHandle<()>) {
    if tokio::time::timeout(ADMIN_STOP_TIMEOUT, &mut admin)
        .await
        .is_err()
    {
        tracing::warn!("admin server did not stop in time; closing its connections");
        admin.abort();
    }
}
