//! shardproxy: a PostgreSQL sharding proxy.
//!
//! Data path: client socket -> [`protocol`] (codec) -> [`client`] session -> router
//! (`shard-router`) -> [`backend`] connections -> execute -> client. See ARCHITECTURE.md.

pub mod auth;
pub mod backend;
pub mod cancel;
pub mod client;
pub mod context;
pub mod demo;
pub mod launcher;
pub mod protocol;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::context::ProxyContext;

/// A proxy started in this process (by `shardproxy run`, the demo, or tests).
pub struct RunningProxy {
    /// The bound PostgreSQL-protocol address (the real port when the config said port 0).
    pub addr: SocketAddr,
    /// The bound admin HTTP address, once the admin server exists.
    pub admin_addr: Option<SocketAddr>,
    /// Shared state (for tests and the admin API).
    pub ctx: Arc<ProxyContext>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningProxy {
    /// Stops accepting, lets clients finish (with a timeout), closes backends.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
    }

    /// Waits until the server task ends (after `shutdown` from elsewhere).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }

    /// A handle that triggers shutdown (e.g. from a signal handler).
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Starts the proxy with a validated config. `config_path` is the file it came from (for reload).
pub async fn start(
    config: config::Config,
    config_path: Option<PathBuf>,
) -> anyhow::Result<RunningProxy> {
    let _ = config_path;
    let listen = config.proxy.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("could not listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let ctx = Arc::new(ProxyContext::new(config));
    let (tx, rx) = watch::channel(false);
    let server = tokio::spawn(server::run(listener, ctx.clone(), rx));
    tracing::info!(%addr, "shardproxy listening");
    Ok(RunningProxy {
        addr,
        admin_addr: None,
        ctx,
        shutdown: tx,
        server,
    })
}
