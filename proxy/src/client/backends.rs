//! The backends a session has attached (at most one per shard), and their lifecycle: attach
//! with session parameters and an open transaction carried over, write, release at transaction
//! boundaries, discard when lost, reset at the end of the session.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pipeline::{Action, Kind, Mode, Owed, Pending};
use super::session::Session;
use crate::backend::conn::MAX_BACKEND_MESSAGE;
use crate::backend::pool::discard;
use crate::backend::PooledBackend;
use crate::protocol::backend::{self as be, TransactionStatus};
use crate::protocol::encode;

/// How long a backend reset (DISCARD ALL) may take before the backend is dropped instead.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// Attached backends by shard index.
#[derive(Default)]
pub(crate) struct Attached {
    slots: Vec<Option<PooledBackend>>,
    count: usize,
}

impl Attached {
    /// Room for `shards` backends.
    pub(crate) fn new(shards: usize) -> Attached {
        Attached {
            slots: (0..shards).map(|_| None).collect(),
            count: 0,
        }
    }

    /// True when no backend is attached.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The backend of `shard`, if attached.
    pub(crate) fn get_mut(&mut self, shard: usize) -> Option<&mut PooledBackend> {
        self.slots.get_mut(shard).and_then(Option::as_mut)
    }

    /// True if `shard` has a backend attached.
    pub(crate) fn has(&self, shard: usize) -> bool {
        self.slots.get(shard).is_some_and(Option::is_some)
    }

    /// Number of shard slots (attached or not).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Indexes of attached shards, ascending.
    pub(crate) fn shards(&self) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|_| i))
            .collect()
    }

    /// The first attached shard.
    pub(crate) fn first(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_some)
    }

    fn insert(&mut self, shard: usize, b: PooledBackend) {
        if let Some(slot) = self.slots.get_mut(shard) {
            if slot.replace(b).is_none() {
                self.count += 1;
            }
        }
    }

    /// Detaches `shard`'s backend.
    pub(crate) fn take(&mut self, shard: usize) -> Option<PooledBackend> {
        let b = self.slots.get_mut(shard).and_then(Option::take);
        if b.is_some() {
            self.count -= 1;
        }
        b
    }

    /// Iterates over attached backends.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut PooledBackend)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|b| (i, b)))
    }
}

impl Session {
    /// Attaches a backend of `shard` (a no-op when one is attached): session parameters are
    /// brought in line and an open transaction is begun on it. On failure returns the
    /// client-facing error (SQLSTATE, message).
    pub(crate) async fn ensure_backend(
        &mut self,
        shard: usize,
    ) -> Result<(), (&'static str, String)> {
        if let Some(b) = self.backends.get_mut(shard) {
            // Attached, but a SET that ran elsewhere may have left it behind.
            if let Some(sql) = self.params.sync_sql(&b.applied_params) {
                encode::query(&mut b.write_buf, &sql);
                b.applied_params = self.params.clone();
                self.pipeline.push(
                    Pending {
                        kind: Kind::Query,
                        mode: Mode::Swallow,
                        action: Action::ParamSync(shard),
                        owed: Owed::One(shard),
                        stat: None,
                    },
                    &mut self.cout,
                );
            }
            return Ok(());
        }
        let Some(pool) = self.ctx.pools.get(shard) else {
            return Err(("XX000", format!("no shard with index {shard}")));
        };
        let mut b = pool.get().await.map_err(|e| {
            tracing::warn!(shard = %pool.name, error = %e, "no backend");
            let code = match e {
                // every backend of the shard stayed busy: like PostgreSQL's connection limit
                crate::backend::pool::CheckoutError::Timeout(..) => "53300",
                _ => "08006",
            };
            (code, e.to_string())
        })?;
        self.cancel.target.attach(b.cancel_key);
        let mut injected = String::new();
        if let Some(sql) = self.params.sync_sql(&b.applied_params) {
            injected.push_str(&sql);
            b.applied_params = self.params.clone();
            b.unnamed = None;
        }
        if self.in_block() {
            // The client's transaction already runs on other shards: join it here too.
            injected.push_str(self.txn_begin.as_deref().unwrap_or("BEGIN"));
            injected.push(';');
        }
        if !injected.is_empty() {
            encode::query(&mut b.write_buf, &injected);
            self.pipeline.push(
                Pending {
                    kind: Kind::Query,
                    mode: Mode::Swallow,
                    action: Action::ParamSync(shard),
                    owed: Owed::One(shard),
                    stat: None,
                },
                &mut self.cout,
            );
        }
        self.backends.insert(shard, b);
        Ok(())
    }

    /// Writes every attached backend's pending bytes. While a backend does not accept more,
    /// keeps reading its answers into its buffer so that neither side can block the other.
    pub(crate) async fn flush_backends(&mut self) {
        for shard in self.backends.shards() {
            if let Err(reason) = self.flush_backend(shard).await {
                self.backend_lost(shard, &reason);
                return;
            }
        }
    }

    async fn flush_backend(&mut self, shard: usize) -> Result<(), String> {
        let Some(b) = self.backends.get_mut(shard) else {
            return Ok(());
        };
        let conn = &mut **b;
        while !conn.write_buf.is_empty() {
            match conn.stream.try_write(&conn.write_buf) {
                Ok(n) => conn.write_buf.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let interest = tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE;
                    let ready = conn
                        .stream
                        .ready(interest)
                        .await
                        .map_err(|e| e.to_string())?;
                    if ready.is_readable() {
                        match conn.stream.try_read_buf(&mut conn.read_buf) {
                            Ok(0) => return Err("the server closed the connection".into()),
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Returns every attached backend to its pool (or drops it when broken).
    pub(crate) fn release_backends(&mut self) {
        for shard in 0..self.backends.capacity() {
            if let Some(b) = self.backends.take(shard) {
                self.cancel.target.detach(&b.cancel_key);
                if b.broken {
                    discard(b);
                }
            }
        }
        self.txn_begin = None;
    }

    /// A backend failed. Every attached backend is dropped (a transaction spanning them is
    /// gone as a whole), every outstanding request gets an error, and the client continues on
    /// fresh backends. A transaction that was open leaves the client in an aborted transaction
    /// (25P02 until it ends it), as PostgreSQL would, so its next statements never silently
    /// run outside the transaction.
    pub(crate) fn backend_lost(&mut self, shard: usize, reason: &str) {
        let name = self
            .ctx
            .pools
            .get(shard)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        tracing::warn!(shard = %name, %reason, "backend connection lost");
        for s in self.backends.shards() {
            if let Some(b) = self.backends.take(s) {
                self.cancel.target.detach(&b.cancel_key);
                discard(b);
            }
        }
        self.txn_begin = None;
        self.forget_writes();
        let message = format!("connection to shard \"{name}\" was lost: {reason}");
        let mut error_sent = self.pipeline.fatal.is_some();
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
                self.lost = true;
            }
            return;
        }
        self.lost = in_transaction;
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

    /// Client is gone: return clean backends (reset if they carry session state), drop and
    /// cancel the rest.
    pub(crate) async fn finish(&mut self) {
        let clean_session = self.pipeline.is_empty();
        for shard in self.backends.shards() {
            let Some(mut b) = self.backends.take(shard) else {
                continue;
            };
            self.cancel.target.detach(&b.cancel_key);
            let clean = clean_session && b.status == TransactionStatus::Idle && !b.broken;
            if !clean {
                // Whatever the backend still runs was the client's; stop it rather than let it
                // run to completion for nobody.
                if !clean_session {
                    let key = b.cancel_key;
                    tokio::spawn(async move {
                        let _ = crate::cancel::send_cancel(&key).await;
                    });
                }
                discard(b);
                continue;
            }
            if self.pinned {
                let reset = tokio::time::timeout(RESET_TIMEOUT, reset_backend(&mut b)).await;
                if !matches!(reset, Ok(Ok(()))) {
                    discard(b);
                }
            }
        }
    }
}

/// Reads more bytes from `shard`'s backend; pending forever when there is none. Cancel safe.
pub(crate) async fn read_backend(
    backends: &mut Attached,
    shard: Option<usize>,
) -> (usize, std::io::Result<usize>) {
    let Some(shard) = shard else {
        return std::future::pending().await;
    };
    match backends.get_mut(shard) {
        Some(b) => {
            let conn = &mut **b;
            (shard, conn.stream.read_buf(&mut conn.read_buf).await)
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
                        return match be::parse_ready_for_query(&frame[5..]) {
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
