//! The request/response loop of one logged-in client: reads client messages, attaches pooled
//! backends when requests need them, forwards, matches answers through the [`Pipeline`], and
//! returns the backends to their pools at transaction boundaries (transaction pooling).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use config::PoolMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::backends::{read_backend, Attached};
use super::params::{ParamSet, SessionEffects};
use super::pipeline::{Action, Pipeline};
use super::statements::ClientStatements;
use crate::backend::conn::MAX_BACKEND_MESSAGE;
use crate::cancel::CancelRegistration;
use crate::context::ProxyContext;
use crate::protocol::backend::{self as be, TransactionStatus};
use crate::protocol::encode;
use crate::protocol::frontend;

/// Answers buffered beyond this many bytes go to the client even mid-result.
const CLIENT_FLUSH_BYTES: usize = 16 * 1024;

/// Why the loop stopped.
pub(crate) enum Stop {
    /// Terminate, EOF, or a fatal error already reported.
    Client,
    /// Proxy shutdown.
    Shutdown,
}

/// Where a portal's Bind went (Describe, Execute and Close of the portal go there too).
#[derive(Debug, Clone, Default)]
pub(crate) struct PortalRoute {
    /// Shards that hold the portal.
    pub shards: Vec<usize>,
    /// For COPY FROM STDIN into a sharded table: how to split its rows.
    pub copy: Option<shard_router::CopyIn>,
    /// Session effects of executing it (SET and friends), if any.
    pub effects: Option<Box<SessionEffects>>,
    /// How it was routed (for the metrics).
    pub route: Option<admin::RouteKind>,
    /// A reference-table write: one shard's answer stands for all.
    pub replicated: bool,
    /// A merged read: what each Execute (or Describe) of the portal merges with.
    pub merge: Option<Box<crate::merge::MergeInput>>,
    /// Executing it writes (it joins the two-phase commit of a multi-shard transaction).
    pub writes: bool,
    /// It is a COMMIT.
    pub commit: bool,
    /// It opens (BEGIN) or ends (COMMIT/ROLLBACK) a transaction block.
    pub block: Option<bool>,
}

/// One client's state.
pub struct Session {
    pub(crate) ctx: Arc<ProxyContext>,
    client: TcpStream,
    /// Bytes from the client not yet decoded.
    cin: BytesMut,
    /// Bytes for the client not yet written.
    pub(crate) cout: BytesMut,
    /// Attached backends by shard.
    pub(crate) backends: Attached,
    /// Requests awaiting answers.
    pub(crate) pipeline: Pipeline,
    /// Session parameters the client wants on every backend it uses.
    pub(crate) params: ParamSet,
    /// Parameters before the first SET in the current transaction (restored on rollback).
    params_snapshot: Option<ParamSet>,
    /// The client's prepared statements.
    pub(crate) stmts: ClientStatements,
    /// Where the unnamed portal and named portals were bound.
    pub(crate) portals: HashMap<String, PortalRoute>,
    /// Merged portals fetched in parts, suspended between the client's Executes.
    pub(crate) parked: HashMap<String, Box<super::merge_run::MergeRun>>,
    /// Discard client messages until Sync (after an error the proxy produced itself).
    pub(crate) skip_until_sync: bool,
    /// Transaction status the client last saw.
    pub(crate) status: TransactionStatus,
    /// The BEGIN text of the client's open transaction, replayed on shards that join it.
    pub(crate) txn_begin: Option<String>,
    /// The shards the current COPY statement went to (its data follows it there).
    pub(crate) copy_targets: Vec<usize>,
    /// COPY into a sharded table in progress: its rows are split among the shards.
    pub(crate) copy_split: Option<super::copy_split::CopySplit>,
    /// The backends stay with this client (session pooling or unreplayable session state).
    pub(crate) pinned: bool,
    /// The open transaction lost a backend: it is aborted until the client ends it.
    pub(crate) lost: bool,
    /// The message reported on the client's next request after a lost transaction.
    pub(crate) lost_in_transaction: Option<String>,
    /// In a lost transaction, the portal just bound ends the transaction (extended ROLLBACK).
    pub(crate) lost_portal_ends: bool,
    /// Shards the open transaction block wrote on (two-phase commit when several).
    pub(crate) txn_written: Vec<bool>,
    /// Shards the current extended-protocol group (up to Sync) wrote on, outside a block.
    pub(crate) group_written: Vec<bool>,
    /// Shards given a BEGIN for an implicit multi-shard transaction.
    pub(crate) begun: Vec<bool>,
    /// A request holding the end of an implicit multi-shard transaction is in flight: the next
    /// client request waits until it is committed.
    pub(crate) hold_pending: bool,
    /// A BEGIN (Some(true)) or COMMIT/ROLLBACK (Some(false)) was sent and its answer may not
    /// have arrived: the transaction state the backends will see (`Session::in_block`).
    pub(crate) block_sent: Option<bool>,
    pub(crate) cancel: CancelRegistration,
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
        let shards = ctx.pools.len();
        let backends = Attached::new(shards);
        Session {
            ctx,
            client,
            cin,
            cout: BytesMut::with_capacity(16 * 1024),
            backends,
            pipeline: Pipeline::default(),
            params,
            params_snapshot: None,
            stmts: ClientStatements::default(),
            portals: HashMap::new(),
            parked: HashMap::new(),
            skip_until_sync: false,
            status: TransactionStatus::Idle,
            txn_begin: None,
            copy_targets: Vec::new(),
            copy_split: None,
            pinned,
            lost: false,
            lost_in_transaction: None,
            lost_portal_ends: false,
            txn_written: vec![false; shards],
            group_written: vec![false; shards],
            begun: vec![false; shards],
            hold_pending: false,
            block_sent: None,
            cancel,
            shutdown,
            shutting_down: false,
        }
    }

    /// Runs until the client leaves or the proxy shuts down.
    pub async fn run(mut self) {
        self.ctx.metrics.client_connections(1);
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
        self.ctx.metrics.client_connections(-1);
    }

    async fn main_loop(&mut self) -> Stop {
        loop {
            if !self.cout.is_empty() && self.should_flush_client() {
                if self.client.write_all(&self.cout).await.is_err() {
                    return Stop::Client;
                }
                self.cout.clear();
            }
            let idle = self.pipeline.is_empty() && self.status == TransactionStatus::Idle;
            if (*self.shutdown.borrow() || self.shutting_down) && idle {
                return Stop::Shutdown;
            }
            let reader = self.pipeline.reader();
            tokio::select! {
                // cancel safe: read_buf reads nothing when dropped before completion
                (shard, r) = read_backend(&mut self.backends, reader) => {
                    if self.on_backend_read(shard, r) {
                        self.flush_backends().await;
                    }
                    if self.pipeline.held.is_some() {
                        self.complete_held().await;
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

    /// Like PostgreSQL, hold answers until the client has a reason to read them: nothing more
    /// is owed by a backend (the request group is answered), the buffer is large (results
    /// stream), or the client must act (COPY IN wants its data). One write per transaction
    /// instead of one per backend read saves a syscall and a client wake-up each time.
    fn should_flush_client(&self) -> bool {
        self.cout.len() >= CLIENT_FLUSH_BYTES
            || self.pipeline.reader().is_none()
            || self.pipeline.copy_in
            || ends_with_ready_for_query(&self.cout)
    }

    /// Decodes and handles every complete client message, then sends what backends need.
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
        self.flush_backends().await;
        Ok(())
    }

    /// The outcome of reading `shard`'s socket; true when requests the proxy makes itself
    /// (a merged portal's next rows) wait to be sent.
    pub(crate) fn on_backend_read(&mut self, shard: usize, r: std::io::Result<usize>) -> bool {
        match r {
            Ok(0) => {
                self.backend_lost(shard, "the server closed the connection");
                false
            }
            Ok(_) => self.process_backends(),
            Err(e) => {
                self.backend_lost(shard, &e.to_string());
                false
            }
        }
    }

    /// Handles the complete messages buffered from backends, following the pipeline's head
    /// from one owner to the next, as far as buffered bytes allow; true when it queued requests
    /// of its own for backends (see [`Session::on_backend_read`]).
    fn process_backends(&mut self) -> bool {
        while let Some(shard) = self.pipeline.reader() {
            let Some(b) = self.backends.get_mut(shard) else {
                self.backend_lost(shard, "no backend attached for an expected answer");
                return false;
            };
            let mut consumed = 0;
            let mut desync = None;
            let mut progressed = false;
            loop {
                if self.pipeline.reader() != Some(shard) {
                    break;
                }
                let rest = &b.read_buf[consumed..];
                match be::frame_len(rest, MAX_BACKEND_MESSAGE) {
                    Ok(Some((_, len))) => {
                        if let Err(e) = self.pipeline.handle(shard, &rest[..len], &mut self.cout) {
                            desync = Some(e.to_string());
                            break;
                        }
                        consumed += len;
                        progressed = true;
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
            if let Some(reason) = desync {
                tracing::error!(%reason, "backend protocol desynchronised; dropping it");
                self.backend_lost(shard, &reason);
                return false;
            }
            if let Some((fatal_shard, message)) = self.pipeline.fatal.clone() {
                // The server is going away: drop it now, so that a request the client pipelines
                // right behind is not written to a dying connection.
                self.backend_lost(fatal_shard, &message);
                return false;
            }
            if !progressed || self.pipeline.reader() == Some(shard) {
                break;
            }
        }
        let refills = std::mem::take(&mut self.pipeline.refills);
        let wrote = !refills.is_empty();
        for (shard, portal, max_rows) in refills {
            if let Some(b) = self.backends.get_mut(shard) {
                encode::execute(&mut b.write_buf, &portal, max_rows);
                encode::flush(&mut b.write_buf);
            }
        }
        if self.pipeline.ready_and_empty
            && self.status == TransactionStatus::Idle
            && !self.pinned
            && !self.backends.is_empty()
        {
            self.release_backends();
        }
        wrote
    }

    /// Bookkeeping for answered requests and ReadyForQuery statuses.
    fn apply_completed(&mut self) {
        // (before a ReadyForQuery below may end the portal's transaction and clear it)
        if let Some(run) = self.pipeline.parked.take() {
            if let Some(portal) = run.portal() {
                self.parked.insert(portal.to_string(), run);
            }
        }
        let mut done = std::mem::take(&mut self.pipeline.completed);
        for c in done.drain(..) {
            if let Some(stat) = c.stat {
                let outcome = if c.ok {
                    admin::Outcome::Ok
                } else {
                    admin::Outcome::Error
                };
                self.ctx.metrics.statement(stat.kind, outcome);
                if let Some(shard) = stat.shard {
                    self.ctx
                        .metrics
                        .shard_latency(shard, stat.started.elapsed().as_secs_f64());
                }
            }
            match c.action {
                Action::Parsed { def, .. } if c.ok => {
                    def.validated
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Action::Parsed {
                    def,
                    shard,
                    unnamed,
                    client_name,
                } => {
                    if let Some(b) = self.backends.get_mut(shard) {
                        if unnamed {
                            if b.unnamed == Some(def.id) {
                                b.unnamed = None;
                            }
                        } else {
                            b.prepared.remove(&def.id);
                        }
                    }
                    if let Some(name) = client_name {
                        self.stmts.forget(&name, def.id);
                    }
                }
                Action::Effects(fx, shards) if c.ok => self.apply_effects(&fx, &shards),
                Action::Effects(fx, shards) if shards.len() > 1 && !fx.is_empty() => {
                    // Some shards may have applied it before another failed: their parameters
                    // are unknown now, so they must not serve anyone else.
                    for s in shards {
                        if let Some(b) = self.backends.get_mut(s) {
                            b.broken = true;
                        }
                    }
                }
                Action::ParamSync(shard) if !c.ok => {
                    if let Some(b) = self.backends.get_mut(shard) {
                        b.broken = true;
                    }
                }
                _ => {}
            }
        }
        self.pipeline.completed = done;
        let statuses = std::mem::take(&mut self.pipeline.shard_status);
        for (shard, status) in &statuses {
            if let Some(b) = self.backends.get_mut(*shard) {
                b.status = *status;
            }
        }
        self.pipeline.shard_status = statuses;
        self.pipeline.shard_status.clear();
        if let Some(status) = self.pipeline.status.take() {
            self.on_ready(status);
        }
    }

    /// A ReadyForQuery reached the client: track the status and SET rollback semantics.
    fn on_ready(&mut self, status: TransactionStatus) {
        // A block the proxy failed stays failed for the client until it ends it.
        self.status = if self.lost && status != TransactionStatus::Idle {
            TransactionStatus::Failed
        } else {
            status
        };
        if self.pipeline.is_empty() {
            self.block_sent = None;
        }
        if status == TransactionStatus::Idle {
            let rolled_back = self.pipeline.saw_rollback;
            self.transaction_ended(!rolled_back);
            self.parked.clear(); // portals end with their transaction
            self.txn_written.iter_mut().for_each(|w| *w = false);
        }
        self.pipeline.saw_rollback = false;
    }

    /// A transaction ended: parameters SET inside it stay (committed) or revert.
    pub(crate) fn transaction_ended(&mut self, committed: bool) {
        if !committed {
            self.restore_params_after_rollback();
        }
        self.params_snapshot = None;
        self.txn_begin = None;
    }

    /// The transaction rolled back: parameters SET inside it revert.
    pub(crate) fn restore_params_after_rollback(&mut self) {
        if let Some(snapshot) = self.params_snapshot.take() {
            self.params = snapshot;
            let params = self.params.clone();
            for (_, b) in self.backends.iter_mut() {
                b.applied_params = params.clone();
            }
        }
    }

    /// Applies a succeeded statement's session effects. `self.status` is still the status from
    /// before it ran, so changes made inside a transaction keep a snapshot to restore on rollback.
    fn apply_effects(&mut self, fx: &SessionEffects, shards: &[usize]) {
        let in_transaction = self.status != TransactionStatus::Idle;
        if (in_transaction && !fx.changes.is_empty()) || !fx.block_changes.is_empty() {
            self.params_snapshot
                .get_or_insert_with(|| self.params.clone());
        }
        if !fx.changes.is_empty() || !fx.block_changes.is_empty() {
            for change in fx.changes.iter().chain(&fx.block_changes) {
                self.params.apply(change);
            }
            // The backends that ran it hold the new values; the others are brought in line
            // the next time they are used (ensure_backend).
            let params = self.params.clone();
            for &s in shards {
                if let Some(b) = self.backends.get_mut(s) {
                    b.applied_params = params.clone();
                }
            }
        }
        if fx.pins && !self.pinned {
            tracing::debug!(
                "session state that cannot move between backends: pinning the backends"
            );
            self.pinned = true;
        }
        if fx.drops_prepared {
            for (_, b) in self.backends.iter_mut() {
                b.prepared.clear();
                b.unnamed = None;
            }
            self.stmts.clear();
        }
    }
}

/// True when the last message in `out` is a ReadyForQuery (PostgreSQL flushes there too).
fn ends_with_ready_for_query(out: &[u8]) -> bool {
    out.len() >= 6 && out[out.len() - 6..out.len() - 1] == [b'Z', 0, 0, 0, 5]
}
