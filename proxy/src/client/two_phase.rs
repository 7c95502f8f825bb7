//! Atomic multi-shard writes, session side. The session tracks which shards the current
//! transaction wrote; a COMMIT of a transaction that wrote on several shards, and the end of an
//! implicit transaction (a single statement, or an extended-protocol group up to Sync) that
//! wrote on several shards, go through the two-phase commit (`crate::twopc`) once every earlier
//! answer is in. Outside BEGIN, the shards of such a write get a BEGIN injected (inside an
//! implicit transaction BEGIN keeps what already ran in it), so they stay open until the commit.
//! A transaction that wrote on one shard commits with one phase, as before.

use bytes::BytesMut;
use shard_router::StatementKind;

use super::backends::read_backend;
use super::pipeline::{Action, Kind, Mode, Owed, Pending};
use super::session::Session;
use crate::backend::conn::{BackendConn, MAX_BACKEND_MESSAGE};
use crate::protocol::backend::{self as be, TransactionStatus};
use crate::protocol::encode;
use crate::protocol::frontend::Target;
use crate::twopc::CommitError;

/// How a COMMIT on several shards went.
enum CommitPath {
    /// Not for the proxy to decide: forward the COMMIT as usual.
    Ordinary,
    /// An error earlier in the extended group: the COMMIT is skipped, nothing is answered.
    Skipped,
    /// Answered: the command tag (COMMIT, or ROLLBACK for an aborted transaction) or the
    /// error that rolled it back.
    Done(Result<&'static str, CommitError>),
}

/// The proxy-wide name of the injected BEGIN's portal (extended protocol).
const BEGIN_PORTAL: &str = "_sp_begin";

/// Whether a statement of this kind changes data on the shards it runs on (and so must commit
/// atomically with the other shards of its transaction). Texts that cannot run inside a
/// transaction block (CREATE INDEX CONCURRENTLY...) are left alone.
pub(crate) fn writes(kind: StatementKind, sql: &str) -> bool {
    match kind {
        StatementKind::Write | StatementKind::CopyIn => true,
        StatementKind::Ddl => !sql
            .as_bytes()
            .windows(12)
            .any(|w| w.eq_ignore_ascii_case(b"concurrently")),
        _ => false,
    }
}

impl Session {
    /// Before a write to `shards` is sent. In a transaction block: remembers the shards. In a
    /// simple Query outside one: a write on several shards gets a BEGIN injected before it on
    /// each, and its answer holds its end for the two-phase commit; returns true then. In an
    /// extended-protocol group (up to Sync): once the group wrote on several shards, each of them
    /// gets a BEGIN (after the client's Execute), and the Sync will hold its answer.
    pub(crate) fn note_write(&mut self, shards: &[usize], extended: bool) -> bool {
        if self.in_block() {
            for &s in shards {
                if let Some(w) = self.txn_written.get_mut(s) {
                    *w = true;
                }
            }
            return false;
        }
        if !extended {
            if shards.len() < 2 {
                return false;
            }
            for &s in shards {
                if let Some(b) = self.begun.get_mut(s) {
                    *b = true;
                }
                self.inject_begin(s, false);
            }
            self.hold_pending = true;
            return true;
        }
        for &s in shards {
            if let Some(w) = self.group_written.get_mut(s) {
                *w = true;
            }
        }
        if self.group_written.iter().filter(|w| **w).count() < 2 {
            return false;
        }
        for s in 0..self.group_written.len() {
            if self.group_written.get(s) != Some(&true) || self.begun.get(s) == Some(&true) {
                continue;
            }
            if let Some(b) = self.begun.get_mut(s) {
                *b = true;
            }
            self.inject_begin(s, true);
        }
        false
    }

    fn inject_begin(&mut self, shard: usize, extended: bool) {
        if !extended {
            let Some(b) = self.backends.get_mut(shard) else {
                return;
            };
            encode::query(&mut b.write_buf, "BEGIN");
            return self.push_injected(Kind::Query, shard);
        }
        let def = self.ctx.statements.intern("BEGIN", &[]);
        self.ensure_prepared(shard, &def, false);
        let Some(b) = self.backends.get_mut(shard) else {
            return;
        };
        encode::bind(
            &mut b.write_buf,
            BEGIN_PORTAL,
            &def.server_name,
            &[],
            &[],
            &[],
        );
        encode::execute(&mut b.write_buf, BEGIN_PORTAL, 0);
        encode::close(&mut b.write_buf, Target::Portal, BEGIN_PORTAL);
        self.push_injected(Kind::Bind, shard);
        self.push_injected(Kind::Execute, shard);
        self.push_injected(Kind::Close, shard);
    }

    /// The request just queued ends an implicit multi-shard transaction: its ReadyForQuery
    /// waits for the two-phase commit.
    pub(crate) fn hold_last(&mut self) {
        if let Some(Pending {
            owed: Owed::Many(f),
            ..
        }) = self.pipeline.queue.back_mut()
        {
            f.hold_ready = true;
        }
    }

    /// Queues the answer to a message the proxy injected on `shard` (dropped unless an error;
    /// a failure marks the backend broken).
    pub(crate) fn push_injected(&mut self, kind: Kind, shard: usize) {
        self.pipeline.push(
            Pending {
                kind,
                mode: Mode::Swallow,
                action: Action::ParamSync(shard),
                owed: Owed::One(shard),
                stat: None,
            },
            &mut self.cout,
        );
    }

    /// At a Sync: true when the extended-protocol group it ends opened transaction blocks for a
    /// two-phase commit (the Sync then holds its ReadyForQuery). The group's writes are forgotten.
    pub(crate) fn sync_holds(&mut self) -> bool {
        self.group_written.iter_mut().for_each(|w| *w = false);
        let hold = !self.in_block() && self.begun.iter().any(|b| *b);
        if hold {
            self.hold_pending = true;
        }
        hold
    }

    /// Sends every queued byte and reads answers until the held end of an implicit transaction
    /// arrives (or nothing is owed any more), then finishes it. Called before handling the next
    /// client request, so nothing is sent behind a transaction still being committed.
    pub(crate) async fn finish_held(&mut self) {
        self.drain(true).await;
        self.complete_held().await;
    }

    /// Commits (or rolls back) the implicit transaction whose end is held, then sends the
    /// client its command tag and ReadyForQuery.
    pub(crate) async fn complete_held(&mut self) {
        let Some(held) = self.pipeline.held.take() else {
            self.hold_pending = false;
            return;
        };
        self.hold_pending = false;
        let shards: Vec<usize> = (0..self.begun.len())
            .filter(|&s| self.begun.get(s) == Some(&true) && self.backends.has(s))
            .collect();
        let mut out = BytesMut::new();
        let mut committed = false;
        if held.ok && held.status == TransactionStatus::InBlock && !self.lost {
            match self.two_phase_commit(&shards).await {
                Ok(()) => {
                    committed = true;
                    if let Some(tag) = &held.tag {
                        encode::command_complete(&mut out, tag);
                    }
                }
                Err(e) => encode::error_fields(&mut out, b'E', &e.fields),
            }
        } else {
            self.rollback_on(&shards).await;
        }
        self.forget_writes();
        if held.forward {
            encode::ready_for_query(&mut out, TransactionStatus::Idle);
            self.cout.extend_from_slice(&out);
        }
        self.status = TransactionStatus::Idle;
        self.block_sent = None;
        self.after_direct_commit(committed);
    }

    /// COMMIT of an explicit transaction (simple Query) held on several shards: see
    /// [`Session::commit_on_shards`]. Returns false when the ordinary path applies.
    pub(crate) async fn commit_explicit(&mut self) -> bool {
        let mut out = BytesMut::new();
        match self.commit_on_shards().await {
            CommitPath::Ordinary => return false,
            CommitPath::Skipped => {}
            CommitPath::Done(Ok(tag)) => encode::command_complete(&mut out, tag),
            CommitPath::Done(Err(e)) => encode::error_fields(&mut out, b'E', &e.fields),
        }
        encode::ready_for_query(&mut out, TransactionStatus::Idle);
        self.push_synthetic(Kind::Query, out.freeze());
        true
    }

    /// COMMIT executed in the extended protocol (Bind/Execute of a COMMIT statement): as
    /// [`Session::commit_explicit`], answering the Execute (the Sync that follows is answered
    /// as usual).
    pub(crate) async fn commit_explicit_extended(&mut self) -> bool {
        let mut out = BytesMut::new();
        match self.commit_on_shards().await {
            CommitPath::Ordinary => return false,
            // An error earlier in this group: the server skips the COMMIT, as must we.
            CommitPath::Skipped => return true,
            CommitPath::Done(Ok(tag)) => encode::command_complete(&mut out, tag),
            CommitPath::Done(Err(e)) => {
                encode::error_fields(&mut out, b'E', &e.fields);
                self.skip_until_sync = true;
            }
        }
        self.push_synthetic(Kind::Execute, out.freeze());
        true
    }

    /// COMMIT of a transaction block that holds backends on several shards. Once every earlier
    /// answer is in: an error earlier in the current extended group means the COMMIT is
    /// skipped; a lost backend or an aborted transaction (any shard failed) rolls back every
    /// shard and reports ROLLBACK, as PostgreSQL does for COMMIT of an aborted transaction;
    /// writes on several shards commit with two phases; otherwise the ordinary one-phase COMMIT
    /// goes to the shards.
    async fn commit_on_shards(&mut self) -> CommitPath {
        if !self.in_block() || (self.backends.shards().len() < 2 && !self.lost) {
            return CommitPath::Ordinary;
        }
        self.drain(false).await;
        if self.pipeline.suppress || self.skip_until_sync {
            return CommitPath::Skipped;
        }
        let failed = self
            .backends
            .iter_mut()
            .any(|(_, b)| b.status == TransactionStatus::Failed);
        let result = if self.lost || failed || self.status == TransactionStatus::Failed {
            let attached = self.backends.shards();
            self.rollback_on(&attached).await;
            self.lost = false;
            self.lost_in_transaction = None;
            Ok("ROLLBACK")
        } else if self.txn_written.iter().filter(|w| **w).count() >= 2 {
            let shards: Vec<usize> = (0..self.txn_written.len())
                .filter(|&s| self.txn_written.get(s) == Some(&true) && self.backends.has(s))
                .collect();
            self.two_phase_commit(&shards).await.map(|()| "COMMIT")
        } else {
            return CommitPath::Ordinary;
        };
        let committed = matches!(result, Ok("COMMIT"));
        self.forget_writes();
        self.status = TransactionStatus::Idle;
        self.block_sent = None;
        self.txn_begin = None;
        self.after_direct_commit(committed);
        CommitPath::Done(result)
    }

    /// Sends every queued byte, with a Flush (extended-protocol answers come only after a Sync
    /// or Flush — e.g. a COPY's CommandComplete when the Sync that held was dropped in copy
    /// mode), and reads answers until nothing is owed, or (`until_held`) until the held end of
    /// an implicit transaction has arrived.
    async fn drain(&mut self, until_held: bool) {
        for (_, b) in self.backends.iter_mut() {
            encode::flush(&mut b.write_buf);
        }
        while !(until_held && self.pipeline.held.is_some()) {
            self.flush_backends().await;
            let Some(reader) = self.pipeline.reader() else {
                break;
            };
            let (shard, r) = read_backend(&mut self.backends, Some(reader)).await;
            self.on_backend_read(shard, r);
        }
    }

    /// The two-phase commit over `participants`; the session's other attached shards (which
    /// only read) commit with one phase afterwards, or roll back when it failed.
    async fn two_phase_commit(&mut self, participants: &[usize]) -> Result<(), CommitError> {
        let names: Vec<String> = participants
            .iter()
            .map(|&s| {
                self.ctx
                    .pools
                    .get(s)
                    .map(|p| p.name.clone())
                    .unwrap_or_default()
            })
            .collect();
        let twopc = self.ctx.twopc.clone();
        let result = {
            let mut conns: Vec<&mut BackendConn> = self
                .backends
                .iter_mut()
                .filter(|(s, _)| participants.contains(s))
                .map(|(_, b)| &mut **b)
                .collect();
            twopc.commit(&mut conns, &names).await
        };
        let others: Vec<usize> = self
            .backends
            .shards()
            .into_iter()
            .filter(|s| !participants.contains(s))
            .collect();
        match result {
            Ok(()) => {
                for s in others {
                    self.run_direct(s, "COMMIT").await;
                }
                Ok(())
            }
            Err(e) => {
                for s in others {
                    self.run_direct(s, "ROLLBACK").await;
                }
                Err(e)
            }
        }
    }

    async fn rollback_on(&mut self, shards: &[usize]) {
        for s in self.backends.shards() {
            if shards.contains(&s) {
                self.run_direct(s, "ROLLBACK").await;
            }
        }
    }

    /// Runs one statement on an attached, idle backend outside the pipeline; a failure marks
    /// the backend broken (it is then discarded instead of reused).
    async fn run_direct(&mut self, shard: usize, sql: &str) {
        let Some(b) = self.backends.get_mut(shard) else {
            return;
        };
        let conn = &mut **b;
        match run_simple(conn, sql).await {
            Ok(TransactionStatus::Idle) => conn.status = TransactionStatus::Idle,
            Ok(_) | Err(_) => conn.broken = true,
        }
    }

    /// True while a transaction block is open as the backends will see it: a BEGIN sent (or
    /// a COMMIT/ROLLBACK sent) counts before its answer arrives.
    pub(crate) fn in_block(&self) -> bool {
        match self.block_sent {
            Some(open) => open,
            None => self.status != TransactionStatus::Idle,
        }
    }

    /// Forgets every shard the transaction wrote (it ended, or was lost); the backends still
    /// attached and healthy are idle now.
    pub(crate) fn forget_writes(&mut self) {
        self.txn_written.iter_mut().for_each(|w| *w = false);
        self.group_written.iter_mut().for_each(|w| *w = false);
        self.begun.iter_mut().for_each(|b| *b = false);
        for (_, b) in self.backends.iter_mut() {
            if !b.broken {
                b.status = TransactionStatus::Idle;
            }
        }
    }

    /// After a commit the proxy ran itself: the backends are idle, so they go back to their
    /// pools as after any transaction (unless pinned); SETs made in it stay only if it committed.
    fn after_direct_commit(&mut self, committed: bool) {
        self.transaction_ended(committed);
        if self.pipeline.is_empty() && !self.pinned && !self.backends.is_empty() {
            self.release_backends();
        }
    }
}

/// Sends a simple Query on a backend with nothing in flight and reads up to its ReadyForQuery.
pub(crate) async fn run_simple(
    conn: &mut BackendConn,
    sql: &str,
) -> Result<TransactionStatus, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut msg = BytesMut::new();
    encode::query(&mut msg, sql);
    conn.stream
        .write_all(&msg)
        .await
        .map_err(|e| e.to_string())?;
    let mut failed = None;
    loop {
        match be::frame_len(&conn.read_buf, MAX_BACKEND_MESSAGE) {
            Ok(Some((tag, len))) => {
                let frame = conn.read_buf.split_to(len);
                let body = frame.get(5..).unwrap_or_default();
                match tag {
                    b'E' => {
                        failed = Some(
                            be::parse_error_fields(body)
                                .map(|f| f.message().to_string())
                                .unwrap_or_default(),
                        )
                    }
                    b'Z' => {
                        let status = be::parse_ready_for_query(body).map_err(|e| e.to_string())?;
                        return match failed {
                            Some(message) => Err(message),
                            None => Ok(status),
                        };
                    }
                    _ => {}
                }
            }
            Ok(None) => {
                let n = conn
                    .stream
                    .read_buf(&mut conn.read_buf)
                    .await
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("the server closed the connection".into());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
