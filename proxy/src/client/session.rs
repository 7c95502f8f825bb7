//! The request/response loop of one logged-in client: reads client messages, attaches a pooled
//! backend when a request needs one, forwards, matches answers through the [`Pipeline`], and
//! returns the backend to its pool at transaction boundaries (transaction pooling).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use config::PoolMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::params::{ParamSet, SessionEffects};
use super::pipeline::{Action, Kind, Mode, Pending, Pipeline};
use super::statements::ClientStatements;
use crate::backend::conn::MAX_BACKEND_MESSAGE;
use crate::backend::pool::discard;
use crate::backend::PooledBackend;
use crate::cancel::CancelRegistration;
use crate::context::ProxyContext;
use crate::protocol::backend::{self as be, TransactionStatus};
use crate::protocol::encode;
use crate::protocol::frontend;

/// How long a backend reset (DISCARD ALL) may take before the backend is dropped instead.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the loop stopped.
pub(crate) enum Stop {
    /// Terminate, EOF, or a fatal error already reported.
    Client,
    /// Proxy shutdown.
    Shutdown,
}

/// One client's state.
pub struct Session {
    pub(crate) ctx: Arc<ProxyContext>,
    client: TcpStream,
    /// Bytes from the client not yet decoded.
    cin: BytesMut,
    /// Bytes for the client not yet written.
    pub(crate) cout: BytesMut,
    /// Bytes for the backend not yet written.
    pub(crate) bout: BytesMut,
    /// The attached backend, if any.
    pub(crate) backend: Option<PooledBackend>,
    /// Requests awaiting answers.
    pub(crate) pipeline: Pipeline,
    /// Session parameters the client wants on every backend it uses.
    pub(crate) params: ParamSet,
    /// Parameters before the first SET in the current transaction (restored on rollback).
    params_snapshot: Option<ParamSet>,
    /// The client's prepared statements.
    pub(crate) stmts: ClientStatements,
    /// Session effects of statements bound to portals (only non-empty ones).
    pub(crate) portal_effects: HashMap<String, Box<SessionEffects>>,
    /// Discard client messages until Sync (after an error the proxy produced itself).
    pub(crate) skip_until_sync: bool,
    /// Transaction status the client last saw.
    pub(crate) status: TransactionStatus,
    /// The backend stays with this client (session pooling or unreplayable session state).
    pub(crate) pinned: bool,
    /// A backend was lost while the client had a transaction open on it; the message reported
    /// on the client's next request.
    pub(crate) lost_in_transaction: Option<String>,
    /// In a lost transaction, the portal just bound ends the transaction (extended ROLLBACK).
    pub(crate) lost_portal_ends: bool,
    cancel: CancelRegistration,
    shutdown: watch::Receiver<bool>,
    shutting_down: bool,
}

impl Session {
    /// A session for a client that has just logged in; `cin` holds any bytes already read.
    pub fn new(
        ctx: Arc<ProxyContext>,
        client: TcpStream,
        cin: BytesMut,
        params: ParamSet,
        shutdown: watch::Receiver<bool>,
    ) -> Session {
        let cancel = ctx.cancels.register();
        let pinned = ctx.pool_mode == PoolMode::Session;
        Session {
            ctx,
            client,
            cin,
            cout: BytesMut::with_capacity(16 * 1024),
            bout: BytesMut::with_capacity(4 * 1024),
            backend: None,
            pipeline: Pipeline::default(),
            params,
            params_snapshot: None,
            stmts: ClientStatements::default(),
            portal_effects: HashMap::new(),
            skip_until_sync: false,
            status: TransactionStatus::Idle,
            pinned,
            lost_in_transaction: None,
            lost_portal_ends: false,
            cancel,
            shutdown,
            shutting_down: false,
        }
    }

    /// Runs until the client leaves or the proxy shuts down.
    pub async fn run(mut self) {
        encode::backend_key_data(&mut self.cout, self.cancel.key.0, self.cancel.key.1);
        encode::ready_for_query(&mut self.cout, TransactionStatus::Idle);
        let stop = self.main_loop().await;
        if let Stop::Shutdown = stop {
            self.cout.clear();
            encode::error_response(
                &mut self.cout,
                "FATAL",
                "57P01",
                "terminating connection due to administrator command",
            );
            let _ = self.client.write_all(&self.cout).await;
        }
        self.finish().await;
    }

    async fn main_loop(&mut self) -> Stop {
        loop {
            if !self.cout.is_empty() {
                if self.client.write_all(&self.cout).await.is_err() {
                    return Stop::Client;
                }
                self.cout.clear();
            }
            let idle = self.backend.is_none()
                || (self.pipeline.is_empty() && self.status == TransactionStatus::Idle);
            if (*self.shutdown.borrow() || self.shutting_down) && idle {
                return Stop::Shutdown;
            }
            let has_backend = self.backend.is_some();
            tokio::select! {
                // cancel safe: read_buf reads nothing when dropped before completion
                r = read_backend(&mut self.backend), if has_backend => {
                    match r {
                        Ok(0) => self.backend_lost("the server closed the connection"),
                        Ok(_) => self.process_backend(),
                        Err(e) => self.backend_lost(&e.to_string()),
                    }
                }
                // cancel safe, as above
                r = self.client.read_buf(&mut self.cin) => {
                    match r {
                        Ok(0) | Err(_) => return Stop::Client,
                        Ok(_) => {
                            if let Err(stop) = self.process_client().await {
                                return stop;
                            }
                        }
                    }
                }
                _ = self.shutdown.changed(), if !self.shutting_down => {
                    self.shutting_down = true;
                }
            }
        }
    }

    /// Decodes and handles every complete client message, then sends what the backend needs.
    async fn process_client(&mut self) -> Result<(), Stop> {
        loop {
            let msg = match frontend::decode(&mut self.cin, self.ctx.max_message_bytes) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(error = %e, "invalid message from client");
                    encode::error_response(
                        &mut self.cout,
                        "FATAL",
                        "08P01",
                        &format!("invalid frontend message: {e}"),
                    );
                    let _ = self.client.write_all(&self.cout).await;
                    self.cout.clear();
                    return Err(Stop::Client);
                }
            };
            self.on_message(msg).await?;
        }
        self.flush_backend().await;
        Ok(())
    }

    /// Writes `bout` to the backend. While the backend does not accept more, keeps reading its
    /// answers into its buffer so that neither side can block the other.
    async fn flush_backend(&mut self) {
        while !self.bout.is_empty() {
            let Some(b) = self.backend.as_mut() else {
                self.bout.clear();
                return;
            };
            match b.stream.try_write(&self.bout) {
                Ok(n) => self.bout.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let conn = &mut **b;
                    let interest = tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE;
                    let lost = match conn.stream.ready(interest).await {
                        Ok(r) if r.is_readable() => {
                            match conn.stream.try_read_buf(&mut conn.read_buf) {
                                Ok(0) => Some("the server closed the connection".to_string()),
                                Ok(_) => None,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                                Err(e) => Some(e.to_string()),
                            }
                        }
                        Ok(_) => None,
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(reason) = lost {
                        self.backend_lost(&reason);
                    }
                }
                Err(e) => self.backend_lost(&e.to_string()),
            }
        }
    }

    /// Handles every complete message in the backend's buffer.
    fn process_backend(&mut self) {
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        let mut consumed = 0;
        let mut desync = None;
        loop {
            let rest = &b.read_buf[consumed..];
            match be::frame_len(rest, MAX_BACKEND_MESSAGE) {
                Ok(Some((_, len))) => {
                    if let Err(e) = self.pipeline.handle(&rest[..len], &mut self.cout) {
                        desync = Some(e.to_string());
                        break;
                    }
                    consumed += len;
                }
                Ok(None) => break,
                Err(e) => {
                    desync = Some(e.to_string());
                    break;
                }
            }
        }
        b.read_buf.advance(consumed);
        self.apply_completed();
        if let Some(status) = self.pipeline.status.take() {
            self.on_ready(status);
        }
        if let Some(reason) = desync {
            tracing::error!(%reason, "backend protocol desynchronised; dropping it");
            self.backend_lost(&reason);
            return;
        }
        if self.pipeline.fatal {
            // The server is going away: drop it now, so that a request the client pipelines
            // right behind is not written to a dying connection.
            let reason = self
                .pipeline
                .fatal_message
                .clone()
                .unwrap_or_else(|| "the server terminated the connection".into());
            self.backend_lost(&reason);
            return;
        }
        if self.pipeline.ready_and_empty && self.status == TransactionStatus::Idle && !self.pinned {
            self.release_backend();
        }
    }

    /// A ReadyForQuery reached the client: track the status and SET rollback semantics.
    fn on_ready(&mut self, status: TransactionStatus) {
        self.status = status;
        if let Some(b) = self.backend.as_mut() {
            b.status = status;
        }
        if status == TransactionStatus::Idle {
            if self.pipeline.saw_rollback {
                self.restore_params_after_rollback();
            }
            self.params_snapshot = None;
        }
        self.pipeline.saw_rollback = false;
    }

    /// The transaction rolled back: parameters SET inside it revert.
    pub(crate) fn restore_params_after_rollback(&mut self) {
        if let Some(snapshot) = self.params_snapshot.take() {
            self.params = snapshot;
            if let Some(b) = self.backend.as_mut() {
                b.applied_params = self.params.clone();
            }
        }
    }

    /// Bookkeeping for answered requests.
    fn apply_completed(&mut self) {
        let mut done = std::mem::take(&mut self.pipeline.completed);
        for c in done.drain(..) {
            match c.action {
                Action::Parsed { def, .. } if c.ok => {
                    def.validated
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Action::Parsed {
                    def,
                    unnamed,
                    client_name,
                } => {
                    let id = def.id;
                    if let Some(b) = self.backend.as_mut() {
                        if unnamed {
                            if b.unnamed == Some(id) {
                                b.unnamed = None;
                            }
                        } else {
                            b.prepared.remove(&id);
                        }
                    }
                    if let Some(name) = client_name {
                        self.stmts.forget(&name, id);
                    }
                }
                Action::Effects(fx) if c.ok => self.apply_effects(&fx),
                Action::ParamSync if !c.ok => {
                    if let Some(b) = self.backend.as_mut() {
                        b.broken = true;
                    }
                }
                _ => {}
            }
        }
        self.pipeline.completed = done;
    }

    /// Applies a succeeded statement's session effects. `self.status` is still the status from
    /// before it ran, so changes made inside a transaction keep a snapshot to restore on rollback.
    fn apply_effects(&mut self, fx: &SessionEffects) {
        let in_transaction = self.status != TransactionStatus::Idle;
        if (in_transaction && !fx.changes.is_empty()) || !fx.block_changes.is_empty() {
            self.params_snapshot
                .get_or_insert_with(|| self.params.clone());
        }
        if !fx.changes.is_empty() || !fx.block_changes.is_empty() {
            for change in fx.changes.iter().chain(&fx.block_changes) {
                self.params.apply(change);
            }
            if let Some(b) = self.backend.as_mut() {
                b.applied_params = self.params.clone();
            }
        }
        if fx.pins && !self.pinned {
            tracing::debug!("session state that cannot move between backends: pinning the backend");
            self.pinned = true;
        }
        if fx.drops_prepared {
            if let Some(b) = self.backend.as_mut() {
                b.prepared.clear();
                b.unnamed = None;
            }
            self.stmts.clear();
        }
    }

    /// Returns the backend to its pool (or drops it when broken).
    pub(crate) fn release_backend(&mut self) {
        if let Some(b) = self.backend.take() {
            self.cancel.target.detach(&b.cancel_key);
            if b.broken {
                discard(b);
            }
        }
    }

    /// Attaches a backend of `shard` (a no-op when one is attached); on failure returns the
    /// client-facing error (SQLSTATE, message).
    pub(crate) async fn ensure_backend(
        &mut self,
        shard: usize,
    ) -> Result<(), (&'static str, String)> {
        if let Some(b) = &self.backend {
            if b.shard == shard {
                return Ok(());
            }
            return Err((
                "0A000",
                "statements of one transaction must stay on one shard until cross-shard transactions are supported".into(),
            ));
        }
        let Some(pool) = self.ctx.pools.get(shard) else {
            return Err(("XX000", format!("no shard with index {shard}")));
        };
        let mut b = pool.get().await.map_err(|e| {
            tracing::warn!(shard = %pool.name, error = %e, "no backend");
            ("08006", e.to_string())
        })?;
        self.cancel.target.attach(b.cancel_key);
        if let Some(sql) = self.params.sync_sql(&b.applied_params) {
            encode::query(&mut self.bout, &sql);
            b.applied_params = self.params.clone();
            b.unnamed = None;
            self.pipeline.push(
                Pending {
                    kind: Kind::Query,
                    mode: Mode::Swallow,
                    action: Action::ParamSync,
                },
                &mut self.cout,
            );
        }
        self.backend = Some(b);
        Ok(())
    }

    /// The backend failed: answer every outstanding request with an error, drop the backend,
    /// and let the client continue on a fresh one. A transaction that was open is gone: the
    /// client is left in an aborted transaction (25P02 until it ends it), as PostgreSQL would,
    /// so that its next statements never silently run outside the transaction.
    pub(crate) fn backend_lost(&mut self, reason: &str) {
        let Some(b) = self.backend.take() else { return };
        let shard = self
            .ctx
            .pools
            .get(b.shard)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        tracing::warn!(%shard, %reason, "backend connection lost");
        self.cancel.target.detach(&b.cancel_key);
        discard(b);
        self.bout.clear();
        let message = format!("connection to shard \"{shard}\" was lost: {reason}");
        let mut error_sent = self.pipeline.fatal;
        let entries = self.pipeline.take_all();
        let in_transaction = self.status != TransactionStatus::Idle;
        let after = if in_transaction {
            TransactionStatus::Failed
        } else {
            TransactionStatus::Idle
        };
        self.status = after;
        if entries.is_empty() {
            if in_transaction {
                self.lost_in_transaction = Some(message);
            }
            return;
        }
        let mut group_open = false;
        for p in entries {
            if let Action::Parsed {
                def,
                client_name: Some(name),
                ..
            } = &p.action
            {
                self.stmts.forget(name, def.id);
            }
            if matches!(p.kind, Kind::Sync | Kind::Query | Kind::FunctionCall) {
                if !error_sent {
                    encode::error_response(&mut self.cout, "ERROR", "08006", &message);
                }
                encode::ready_for_query(&mut self.cout, after);
                error_sent = false;
                group_open = false;
            } else {
                group_open = true;
            }
        }
        if group_open {
            if !error_sent {
                encode::error_response(&mut self.cout, "ERROR", "08006", &message);
            }
            self.skip_until_sync = true;
        }
    }

    /// Client is gone: return a clean backend (reset if it carries session state), else drop it.
    async fn finish(&mut self) {
        let Some(mut b) = self.backend.take() else {
            return;
        };
        self.cancel.target.detach(&b.cancel_key);
        let clean = self.pipeline.is_empty() && b.status == TransactionStatus::Idle && !b.broken;
        if !clean {
            // Whatever the backend is still running was the client's; stop it rather than let
            // it run to completion for nobody.
            if !self.pipeline.is_empty() {
                let key = b.cancel_key;
                tokio::spawn(async move {
                    let _ = crate::cancel::send_cancel(&key).await;
                });
            }
            discard(b);
            return;
        }
        if self.pinned {
            let reset = tokio::time::timeout(RESET_TIMEOUT, reset_backend(&mut b)).await;
            if !matches!(reset, Ok(Ok(()))) {
                discard(b);
            }
        }
    }
}

/// Reads more bytes from the attached backend. Cancel safe.
async fn read_backend(backend: &mut Option<PooledBackend>) -> std::io::Result<usize> {
    match backend.as_mut() {
        Some(b) => {
            let conn = &mut **b;
            conn.stream.read_buf(&mut conn.read_buf).await
        }
        None => std::future::pending().await,
    }
}

/// Runs DISCARD ALL so the next client finds a fresh session. Not cancel safe.
async fn reset_backend(b: &mut PooledBackend) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    encode::query(&mut out, "DISCARD ALL");
    b.stream.write_all(&out).await?;
    let conn = &mut **b;
    loop {
        match be::frame_len(&conn.read_buf, MAX_BACKEND_MESSAGE) {
            Ok(Some((tag, len))) => {
                let frame = conn.read_buf.split_to(len);
                match tag {
                    b'E' => return Err(std::io::Error::other("DISCARD ALL failed")),
                    b'Z' => {
                        conn.applied_params.clear();
                        conn.prepared.clear();
                        conn.unnamed = None;
                        let status = be::parse_ready_for_query(&frame[5..]);
                        return match status {
                            Ok(TransactionStatus::Idle) => Ok(()),
                            _ => Err(std::io::Error::other("backend not idle after reset")),
                        };
                    }
                    _ => {}
                }
            }
            Ok(None) => {
                if conn.stream.read_buf(&mut conn.read_buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
}
