//! The PostgreSQL-protocol listener: accepts clients (capped by a semaphore whose permit moves
//! into each task) and drains them in order on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::client::handle_connection;
use crate::context::ProxyContext;

/// How long clients get to finish their transactions once shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts clients until `shutdown` turns true, then waits (up to [`DRAIN_TIMEOUT`]) for
/// sessions to end at their next transaction boundary, cancels the queries of the rest and
/// closes them, and closes the pools.
pub async fn run(
    listener: TcpListener,
    ctx: Arc<ProxyContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(
        ctx.config.load().proxy.max_client_connections,
    ));
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // e.g. EMFILE: back off instead of spinning
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "too many client connections");
                    sessions.spawn(refuse_too_many(stream));
                    continue;
                };
                let ctx = ctx.clone();
                let shutdown = shutdown.clone();
                sessions.spawn(async move {
                    handle_connection(ctx, stream, shutdown).await;
                    drop(permit);
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tracing::info!(
        clients = sessions.len(),
        "shutting down: waiting for clients to finish"
    );
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            clients = sessions.len(),
            "drain timeout: cancelling their queries and closing them"
        );
        ctx.cancels.cancel_all().await;
        sessions.shutdown().await;
    }
    for pool in &ctx.pools {
        pool.close();
    }
}

async fn refuse_too_many(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut out = bytes::BytesMut::new();
    crate::protocol::encode::error_response(
        &mut out,
        "FATAL",
        "53300",
        "sorry, too many clients already",
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&out)).await;
}
