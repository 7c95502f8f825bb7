//! The ordered queue of requests sent to backends and not yet answered.
//!
//! Every message the session sends (or answers itself) gets an entry, in order, saying who owes
//! its answer: nobody (a synthetic answer the proxy makes, e.g. ParseComplete for a statement
//! the backend already has), one shard, or several shards (a fan-out whose answers are merged).
//! Only the owner of the head entry is read, so answers reach the client in the order it asked.
//! Answers to messages the proxy injected (a lazy re-Parse, SETs, BEGIN) are swallowed. After an
//! error in the extended protocol a backend skips everything up to its Sync, exactly as
//! PostgreSQL does, and the client sees nothing more until that Sync's ReadyForQuery.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::fanout::FanOut;
use super::params::SessionEffects;
pub(super) use super::shard_errors::{forward_error, shard_error};
use super::statements::StmtDef;
use crate::protocol::backend::{self as be, TransactionStatus};

/// Which request an entry stands for (decides which backend message completes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Simple Query: completes on ReadyForQuery.
    Query,
    /// FunctionCall: completes on ReadyForQuery.
    FunctionCall,
    /// Sync: completes on ReadyForQuery.
    Sync,
    /// Parse: ParseComplete.
    Parse,
    /// Bind: BindComplete.
    Bind,
    /// Describe of a statement: ParameterDescription then RowDescription or NoData.
    DescribeStatement,
    /// Describe of a portal: RowDescription or NoData.
    DescribePortal,
    /// Execute: CommandComplete, EmptyQueryResponse or PortalSuspended.
    Execute,
    /// Close: CloseComplete.
    Close,
    /// The client's CopyDone/CopyFail: gets no answer of its own; marks where copy-in mode
    /// ends in the request stream (Syncs before it are ignored by the server).
    CopyEnd,
}

impl Kind {
    pub(super) fn ends_with_ready(self) -> bool {
        matches!(self, Kind::Query | Kind::FunctionCall | Kind::Sync)
    }
}

/// What happens to the backend's answers to an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The client asked: forward answers.
    Forward,
    /// The proxy injected it: drop answers except errors.
    Swallow,
    /// No backend answer: emit these bytes when the entry reaches the head.
    Synthetic(Bytes),
}

/// Who owes the answer to an entry.
#[derive(Debug)]
pub enum Owed {
    /// Nobody (synthetic entries and copy-end markers).
    Nobody,
    /// One shard's backend.
    One(usize),
    /// Several shards, merged.
    Many(Box<FanOut>),
}

impl Owed {
    /// The shard to read next for this entry.
    fn reader(&self) -> Option<usize> {
        match self {
            Owed::Nobody => None,
            Owed::One(s) => Some(*s),
            Owed::Many(f) => match &f.merge {
                Some(run) if !f.failed => run
                    .wanted()
                    .filter(|s| f.pending.contains(s))
                    .or_else(|| f.pending.front().copied()),
                _ => f.pending.front().copied(),
            },
        }
    }

    /// Forgets `shard` (it will not answer); true when nobody owes anything any more.
    fn drop_shard(&mut self, shard: usize) -> bool {
        match self {
            Owed::Nobody => true,
            Owed::One(s) => *s == shard,
            Owed::Many(f) => {
                f.pending.retain(|s| *s != shard);
                if f.merge.is_some() {
                    // A merge cannot go on without one of its streams.
                    f.failed = true;
                }
                f.pending.is_empty()
            }
        }
    }

    fn includes(&self, shard: usize) -> bool {
        match self {
            Owed::Nobody => false,
            Owed::One(s) => *s == shard,
            Owed::Many(f) => f.pending.contains(&shard),
        }
    }
}

/// Bookkeeping to do once an entry is answered.
#[derive(Debug, Clone, Default)]
pub enum Action {
    /// Nothing.
    #[default]
    None,
    /// A Parse of `def` was sent to `shard`: mark it validated, or undo the optimistic
    /// bookkeeping.
    Parsed {
        /// the statement
        def: Arc<StmtDef>,
        /// the backend it was sent to
        shard: usize,
        /// the unnamed statement (else the proxy-named `_sp<id>`)
        unnamed: bool,
        /// client name to forget on failure (client-issued named Parse)
        client_name: Option<String>,
    },
    /// Apply these session effects if the statement succeeded on `shards` (the backends that
    /// ran it now hold the changed parameters).
    Effects(Box<SessionEffects>, Vec<usize>),
    /// Injected SETs that bring this shard's backend in line; failure breaks the backend.
    ParamSync(usize),
    /// A Describe of this statement: remember the parameter types the server resolved.
    Described(Arc<StmtDef>),
}

/// What to record in the metrics when a client statement completes.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// How it was routed.
    pub kind: admin::RouteKind,
    /// When it was sent.
    pub started: std::time::Instant,
    /// The shard, for single-shard statements (per-shard latency).
    pub shard: Option<usize>,
}

/// An entry of the queue.
#[derive(Debug)]
pub struct Pending {
    /// Request kind.
    pub kind: Kind,
    /// Forward, swallow or synthetic.
    pub mode: Mode,
    /// Bookkeeping on completion.
    pub action: Action,
    /// Who answers.
    pub owed: Owed,
    /// Metrics to record on completion (client statements only).
    pub stat: Option<Stat>,
}

/// A finished entry and whether it succeeded.
#[derive(Debug)]
pub struct Completed {
    /// Its bookkeeping.
    pub action: Action,
    /// Its metrics.
    pub stat: Option<Stat>,
    /// False on error or when skipped after an error.
    pub ok: bool,
}

/// The backend sent something that fits no request: the connection cannot be trusted.
#[derive(Debug, thiserror::Error)]
#[error("unexpected message {tag:?} from the server (expecting the answer to {expecting})")]
pub struct Desync {
    /// the message type
    pub tag: char,
    /// what the head entry was
    pub expecting: String,
}

/// The queue plus the state of the current answer.
#[derive(Debug, Default)]
pub struct Pipeline {
    pub(super) queue: VecDeque<Pending>,
    /// An error arrived for the current single-shard Query/Sync (its ReadyForQuery completes
    /// it as failed).
    error_in_progress: bool,
    /// An error was reported in the current Sync group: nothing more reaches the client until
    /// that Sync's ReadyForQuery.
    pub(super) suppress: bool,
    /// Entries answered since the session last drained this list.
    pub completed: Vec<Completed>,
    /// Status from the latest ReadyForQuery sent to the client.
    pub status: Option<TransactionStatus>,
    /// Per-shard statuses from ReadyForQuery messages since the session last drained this list.
    pub shard_status: Vec<(usize, TransactionStatus)>,
    /// The latest ReadyForQuery completed the queue (a transaction boundary for pooling).
    pub ready_and_empty: bool,
    /// A server sent a FATAL error: it will close the connection.
    pub fatal: Option<(usize, String)>,
    /// The server is in COPY FROM STDIN mode, waiting for the client's data.
    pub copy_in: bool,
    /// A command tag "ROLLBACK" was seen since the last ReadyForQuery.
    pub saw_rollback: bool,
    /// The proxy's own error to show instead of the next server error (e.g. the COPY row
    /// that made the proxy abort a COPY on every shard).
    pub replace_next_error: Option<Bytes>,
    /// The answered end of an implicit multi-shard transaction, whose ReadyForQuery waits for
    /// the two-phase commit (`two_phase.rs`).
    pub held: Option<Held>,
    /// An error was reported since the last ReadyForQuery the client saw: an implicit
    /// multi-shard transaction ending now must roll back.
    pub errored: bool,
    /// Shards whose suspended portal must be asked for more rows (shard, portal, row limit):
    /// a merged portal fetched in parts needs them (`merge_run.rs`).
    pub refills: Vec<(usize, String, i32)>,
    /// A merged portal fetched in parts that was suspended: kept for its next Execute.
    pub parked: Option<Box<super::merge_run::MergeRun>>,
}

/// The held end of an implicit multi-shard transaction.
#[derive(Debug, Clone)]
pub struct Held {
    /// The shards' combined transaction status (InBlock, or Failed after an error).
    pub status: TransactionStatus,
    /// No error was reported.
    pub ok: bool,
    /// A simple Query's command tag, sent once the commit succeeded.
    pub tag: Option<String>,
    /// The client expects the ReadyForQuery (not an injected request).
    pub forward: bool,
}

impl Pipeline {
    /// Adds an entry; synthetic entries at the head are emitted to `out` at once.
    pub fn push(&mut self, pending: Pending, out: &mut BytesMut) {
        self.queue.push_back(pending);
        self.ready_and_empty = false;
        self.drain_synthetic(out);
    }

    /// True when every request has been answered.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The shard whose backend must be read next (the head entry's owner).
    pub fn reader(&self) -> Option<usize> {
        self.queue.front().and_then(|p| p.owed.reader())
    }

    /// True while a merged portal fetched in parts has an Execute in flight.
    pub fn merging_portal(&self, portal: &str) -> bool {
        self.queue.iter().any(|p| match &p.owed {
            Owed::Many(f) => f.merge.as_ref().is_some_and(|r| r.portal() == Some(portal)),
            _ => false,
        })
    }

    /// True if any pending entry waits for `shard`.
    pub fn waits_for(&self, shard: usize) -> bool {
        self.queue.iter().any(|p| p.owed.includes(shard))
    }

    /// Empties the queue (backends lost); returns the entries.
    pub fn take_all(&mut self) -> Vec<Pending> {
        self.error_in_progress = false;
        self.suppress = false;
        self.copy_in = false;
        self.fatal = None;
        self.replace_next_error = None;
        self.queue.drain(..).collect()
    }

    /// True while the server is (or will be, once it reads a queued Execute) in copy-in mode and
    /// the client has not ended the copy: a Sync sent now is ignored by the server.
    pub fn sync_ignored(&self) -> bool {
        self.copy_in && !self.queue.iter().any(|p| p.kind == Kind::CopyEnd)
    }

    /// The server entered copy-in mode for the head entry: it ignores the Syncs the client sent
    /// after that Execute and before ending the copy, so they get no ReadyForQuery.
    pub(super) fn drop_syncs_during_copy(&mut self) {
        let mut end = self
            .queue
            .iter()
            .position(|p| p.kind == Kind::CopyEnd)
            .unwrap_or(self.queue.len());
        let mut i = 1;
        while i < end {
            if self.queue.get(i).is_some_and(|p| p.kind == Kind::Sync) {
                self.queue.remove(i);
                end -= 1;
            } else {
                i += 1;
            }
        }
    }

    /// Emits synthetic answers and drops copy-end markers that reached the head.
    pub(super) fn drain_synthetic(&mut self, out: &mut BytesMut) {
        loop {
            match self.queue.front() {
                Some(Pending {
                    kind: Kind::CopyEnd,
                    ..
                }) => {
                    self.queue.pop_front();
                }
                Some(Pending {
                    mode: Mode::Synthetic(_),
                    ..
                }) => {
                    if let Some(Pending {
                        mode: Mode::Synthetic(bytes),
                        action,
                        ..
                    }) = self.queue.pop_front()
                    {
                        if bytes.first() == Some(&b'E') {
                            self.errored = true;
                        }
                        if !self.suppress {
                            out.extend_from_slice(&bytes);
                        }
                        self.completed.push(Completed {
                            action,
                            stat: None,
                            ok: true,
                        });
                    }
                }
                _ => return,
            }
        }
    }

    pub(super) fn complete(&mut self, ok: bool) {
        if let Some(p) = self.queue.pop_front() {
            self.completed.push(Completed {
                action: p.action,
                stat: p.stat,
                ok,
            });
        }
    }

    /// `shard` reported an error in the extended protocol: it skips everything up to its own
    /// Sync, so it owes nothing for those entries; synthetic answers in between are dropped.
    pub(super) fn skip_to_sync(&mut self, shard: usize) {
        let mut i = 0;
        while i < self.queue.len() {
            let Some(p) = self.queue.get_mut(i) else {
                break;
            };
            if p.kind == Kind::Sync && (p.owed.includes(shard) || matches!(p.owed, Owed::Nobody)) {
                break;
            }
            let synthetic = matches!(p.mode, Mode::Synthetic(_));
            if synthetic || (p.owed.includes(shard) && p.owed.drop_shard(shard)) {
                if let Some(p) = self.queue.remove(i) {
                    self.completed.push(Completed {
                        action: p.action,
                        stat: p.stat,
                        ok: false,
                    });
                }
            } else {
                i += 1;
            }
        }
    }

    /// Handles one complete message `frame` (tag + length + body) from `shard`'s backend;
    /// appends what the client must see to `out`.
    pub fn handle(&mut self, shard: usize, frame: &[u8], out: &mut BytesMut) -> Result<(), Desync> {
        let tag = frame.first().copied().unwrap_or(0);
        let body = frame.get(5..).unwrap_or(&[]);
        let swallow = matches!(
            self.queue.front(),
            Some(Pending {
                mode: Mode::Swallow,
                ..
            })
        );
        match tag {
            // Asynchronous messages can arrive at any time.
            b'A' => {
                out.extend_from_slice(frame);
                return Ok(());
            }
            b'N' | b'S' => {
                if !swallow {
                    out.extend_from_slice(frame);
                }
                return Ok(());
            }
            _ => {}
        }
        if tag == b'E' && self.reader() != Some(shard) {
            // e.g. pg_terminate_backend while the client is between statements: nobody asked,
            // so nothing is forwarded; the session reports the loss on the next request.
            if let Ok(fields) = be::parse_error_fields(body) {
                if matches!(fields.severity(), "FATAL" | "PANIC") {
                    self.fatal = Some((shard, fields.message().to_string()));
                    return Ok(());
                }
            }
        }
        let Some(head) = self.queue.front_mut() else {
            return Err(Desync {
                tag: tag as char,
                expecting: "nothing".into(),
            });
        };
        if head.owed.reader() != Some(shard) {
            return Err(Desync {
                tag: tag as char,
                expecting: format!("another shard's answer to {:?}", head.kind),
            });
        }
        let kind = head.kind;
        let forward = !swallow && !self.suppress;
        if let Owed::Many(f) = &head.owed {
            if f.merge.is_some() {
                return self.handle_merge(shard, kind, tag, frame, body, out);
            }
            return self.handle_fanout(shard, kind, tag, frame, body, swallow, out);
        }
        match tag {
            b'E' => {
                // An error ends copy mode (the server then skips to Sync in the extended protocol).
                self.copy_in = false;
                self.errored = true;
                if !self.suppress {
                    forward_error(
                        &mut self.replace_next_error,
                        &mut self.fatal,
                        shard,
                        (frame, body),
                        out,
                    );
                }
                if kind.ends_with_ready() {
                    self.error_in_progress = true;
                } else {
                    self.complete(false);
                    self.skip_to_sync(shard);
                    self.suppress = true;
                }
            }
            b'Z' if kind.ends_with_ready() => {
                let status = parse_ready(body)?;
                self.shard_status.push((shard, status));
                if !swallow {
                    out.extend_from_slice(frame);
                    self.status = Some(status);
                }
                self.copy_in = false;
                let ok = !std::mem::take(&mut self.error_in_progress);
                self.complete(ok);
                self.after_ready(kind, swallow, out);
                return Ok(());
            }
            b'1' if kind == Kind::Parse => self.finish(frame, forward, out),
            b'2' if kind == Kind::Bind => self.finish(frame, forward, out),
            b'3' if kind == Kind::Close => self.finish(frame, forward, out),
            b't' if kind == Kind::DescribeStatement => {
                if let Some(Pending {
                    action: Action::Described(def),
                    ..
                }) = self.queue.front()
                {
                    if def.described_types.get().is_none() {
                        if let Ok(types) = be::parse_parameter_description(body) {
                            let _ = def.described_types.set(types);
                        }
                    }
                }
                if forward {
                    out.extend_from_slice(frame);
                }
            }
            b'T' | b'n' if matches!(kind, Kind::DescribeStatement | Kind::DescribePortal) => {
                self.finish(frame, forward, out)
            }
            b'C' | b'I' | b's' if kind == Kind::Execute => {
                self.note_tag(tag, body);
                self.finish(frame, forward, out)
            }
            b'D' | b'd' | b'c' | b'H' if matches!(kind, Kind::Execute | Kind::Query) => {
                if forward {
                    out.extend_from_slice(frame);
                }
            }
            b'G' if matches!(kind, Kind::Execute | Kind::Query) => {
                self.copy_in = true;
                self.drop_syncs_during_copy();
                out.extend_from_slice(frame);
            }
            b'T' | b'C' | b'I' if kind == Kind::Query => {
                self.note_tag(tag, body);
                if forward {
                    out.extend_from_slice(frame);
                }
            }
            b'V' if kind == Kind::FunctionCall => out.extend_from_slice(frame),
            _ => {
                return Err(Desync {
                    tag: tag as char,
                    expecting: format!("{kind:?}"),
                })
            }
        }
        self.drain_synthetic(out);
        Ok(())
    }

    /// After a ReadyForQuery completed an entry: a Sync ends error suppression, and the next
    /// group's synthetic answers may go out.
    pub(super) fn after_ready(&mut self, kind: Kind, swallowed: bool, out: &mut BytesMut) {
        // An injected query (SET, BEGIN) answered in the middle of a group does not end it.
        if (kind == Kind::Sync || kind == Kind::Query) && !swallowed {
            self.suppress = false;
            self.errored = false;
        }
        self.drain_synthetic(out);
        self.ready_and_empty = self.queue.is_empty();
    }

    fn finish(&mut self, frame: &[u8], forward: bool, out: &mut BytesMut) {
        if forward {
            out.extend_from_slice(frame);
        }
        self.complete(true);
    }

    fn note_tag(&mut self, tag: u8, body: &[u8]) {
        if tag == b'C' && body.starts_with(b"ROLLBACK") {
            self.saw_rollback = true;
        }
        if tag == b'C' {
            self.copy_in = false;
        }
    }
}

pub(super) fn parse_ready(body: &[u8]) -> Result<TransactionStatus, Desync> {
    be::parse_ready_for_query(body).map_err(|_| Desync {
        tag: 'Z',
        expecting: "a valid ReadyForQuery".into(),
    })
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
