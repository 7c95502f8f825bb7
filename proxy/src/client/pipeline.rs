//! The ordered queue of requests sent to a backend and not yet answered.
//!
//! Every message the session sends (or answers itself) gets an entry, in order. Each backend
//! message is matched to the entry at the head: forwarded to the client, swallowed (answers to
//! messages the proxy injected, such as a lazy re-Parse or a SET), or completes the entry.
//! Synthetic entries (answers the proxy makes itself, e.g. ParseComplete for a statement the
//! backend already has) are emitted exactly when they reach the head, so the client sees answers
//! in the order it asked. After an error in the extended protocol, entries up to the next Sync
//! are dropped, exactly as PostgreSQL skips those messages.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use std::sync::Arc;

use super::params::SessionEffects;
use super::statements::StmtDef;
use crate::protocol::backend::{self as be, TransactionStatus};
use crate::protocol::encode;

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
    fn ends_with_ready(self) -> bool {
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

/// Bookkeeping to do once an entry is answered.
#[derive(Debug, Clone, Default)]
pub enum Action {
    /// Nothing.
    #[default]
    None,
    /// A Parse of `def` was sent: mark it validated, or undo the optimistic bookkeeping.
    Parsed {
        /// the statement
        def: Arc<StmtDef>,
        /// the unnamed statement (else the proxy-named `_sp<id>`)
        unnamed: bool,
        /// client name to forget on failure (client-issued named Parse)
        client_name: Option<String>,
    },
    /// Apply these session effects if the statement succeeded.
    Effects(Box<SessionEffects>),
    /// Injected SETs that bring the backend's parameters in line; failure breaks the backend.
    ParamSync,
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
}

/// A finished entry and whether it succeeded.
#[derive(Debug)]
pub struct Completed {
    /// Its bookkeeping.
    pub action: Action,
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
    queue: VecDeque<Pending>,
    /// An error arrived for the current Query/Sync (its ReadyForQuery completes it as failed).
    error_in_progress: bool,
    /// Entries answered since the session last drained this list.
    pub completed: Vec<Completed>,
    /// Status from the latest ReadyForQuery.
    pub status: Option<TransactionStatus>,
    /// The latest ReadyForQuery completed the queue (a transaction boundary for pooling).
    pub ready_and_empty: bool,
    /// The server sent a FATAL error: it will close the connection.
    pub fatal: bool,
    /// The FATAL error's message.
    pub fatal_message: Option<String>,
    /// The server is in COPY FROM STDIN mode, waiting for the client's data.
    pub copy_in: bool,
    /// A command tag "ROLLBACK" was seen since the last ReadyForQuery.
    pub saw_rollback: bool,
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

    /// True if the queue still expects a ReadyForQuery (a Sync or Query is outstanding).
    pub fn awaits_ready(&self) -> bool {
        self.queue.iter().any(|p| p.kind.ends_with_ready())
    }

    /// Empties the queue (backend lost); returns the entries.
    pub fn take_all(&mut self) -> Vec<Pending> {
        self.error_in_progress = false;
        self.copy_in = false;
        self.fatal = false;
        self.fatal_message = None;
        self.queue.drain(..).collect()
    }

    /// True while the server is (or will be, once it reads a queued Execute) in copy-in mode and
    /// the client has not ended the copy: a Sync sent now is ignored by the server.
    pub fn sync_ignored(&self) -> bool {
        self.copy_in && !self.queue.iter().any(|p| p.kind == Kind::CopyEnd)
    }

    /// The server entered copy-in mode for the head entry: it ignores the Syncs the client sent
    /// after that Execute and before ending the copy, so they get no ReadyForQuery.
    fn drop_syncs_during_copy(&mut self) {
        let end = self
            .queue
            .iter()
            .position(|p| p.kind == Kind::CopyEnd)
            .unwrap_or(self.queue.len());
        let mut i = 1;
        let mut end = end;
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
    fn drain_synthetic(&mut self, out: &mut BytesMut) {
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
                        out.extend_from_slice(&bytes);
                        self.completed.push(Completed { action, ok: true });
                    }
                }
                _ => return,
            }
        }
    }

    fn complete(&mut self, ok: bool) {
        if let Some(p) = self.queue.pop_front() {
            self.completed.push(Completed {
                action: p.action,
                ok,
            });
        }
    }

    /// After an extended-protocol error the server ignores everything up to Sync.
    fn skip_to_sync(&mut self) {
        while let Some(p) = self.queue.front() {
            if p.kind == Kind::Sync {
                break;
            }
            self.complete(false);
        }
    }

    /// Handles one complete backend message `frame` (tag + length + body); appends what the
    /// client must see to `out`.
    pub fn handle(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), Desync> {
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
        if tag == b'E' && self.queue.is_empty() {
            // e.g. pg_terminate_backend or idle_in_transaction_session_timeout while the client
            // is between statements: nobody asked, so nothing is forwarded; the session reports
            // the loss on the client's next request.
            if let Ok(fields) = be::parse_error_fields(body) {
                if matches!(fields.severity(), "FATAL" | "PANIC") {
                    self.fatal = true;
                    self.fatal_message = Some(fields.message().to_string());
                    return Ok(());
                }
            }
        }
        let Some(head) = self.queue.front() else {
            return Err(Desync {
                tag: tag as char,
                expecting: "nothing".into(),
            });
        };
        let kind = head.kind;
        let forward = !swallow;
        match tag {
            b'E' => {
                // An error ends copy mode (the server then skips to Sync in the extended protocol).
                self.copy_in = false;
                self.forward_error(frame, body, out);
                if kind.ends_with_ready() {
                    self.error_in_progress = true;
                } else {
                    self.complete(false);
                    self.skip_to_sync();
                }
            }
            b'Z' if kind.ends_with_ready() => {
                let status = be::parse_ready_for_query(body).map_err(|_| Desync {
                    tag: 'Z',
                    expecting: "a valid ReadyForQuery".into(),
                })?;
                if forward {
                    out.extend_from_slice(frame);
                }
                self.status = Some(status);
                self.copy_in = false;
                let ok = !std::mem::take(&mut self.error_in_progress);
                self.complete(ok);
                self.drain_synthetic(out);
                self.ready_and_empty = self.queue.is_empty();
            }
            b'1' if kind == Kind::Parse => self.finish(frame, forward, out),
            b'2' if kind == Kind::Bind => self.finish(frame, forward, out),
            b'3' if kind == Kind::Close => self.finish(frame, forward, out),
            b't' if kind == Kind::DescribeStatement => {
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
                if tag == b'C' {
                    self.copy_in = false;
                }
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

    /// Errors always reach the client (an injected statement's failure is the client's failure).
    /// FATAL/PANIC are downgraded: the backend dies, but the client's connection to us lives on.
    fn forward_error(&mut self, frame: &[u8], body: &[u8], out: &mut BytesMut) {
        match be::parse_error_fields(body) {
            Ok(mut fields) if matches!(fields.severity(), "FATAL" | "PANIC") => {
                self.fatal = true;
                self.fatal_message = Some(fields.message().to_string());
                fields.set(b'S', "ERROR");
                fields.set(b'V', "ERROR");
                encode::error_fields(out, b'E', &fields);
            }
            _ => out.extend_from_slice(frame),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn fwd(kind: Kind) -> Pending {
        Pending {
            kind,
            mode: Mode::Forward,
            action: Action::None,
        }
    }

    fn error(sev: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode::error_response(&mut b, sev, "42601", "syntax error");
        b.to_vec()
    }

    #[test]
    fn synthetic_answers_keep_request_order() {
        let mut p = Pipeline::default();
        let mut out = BytesMut::new();
        p.push(fwd(Kind::Bind), &mut out);
        let mut pc = BytesMut::new();
        encode::parse_complete(&mut pc);
        p.push(
            Pending {
                kind: Kind::Parse,
                mode: Mode::Synthetic(pc.freeze()),
                action: Action::None,
            },
            &mut out,
        );
        p.push(fwd(Kind::Sync), &mut out);
        assert!(out.is_empty(), "synthetic answer must wait for the Bind");
        p.handle(&msg(b'2', b""), &mut out).unwrap();
        assert_eq!(&out[..], &[b'2', 0, 0, 0, 4, b'1', 0, 0, 0, 4][..]);
        p.handle(&msg(b'Z', b"I"), &mut out).unwrap();
        assert!(p.ready_and_empty);
    }

    #[test]
    fn error_skips_to_sync_and_drops_synthetic() {
        let mut p = Pipeline::default();
        let mut out = BytesMut::new();
        p.push(fwd(Kind::Bind), &mut out);
        p.push(
            Pending {
                kind: Kind::Parse,
                mode: Mode::Synthetic(Bytes::from_static(b"1\0\0\0\x04")),
                action: Action::None,
            },
            &mut out,
        );
        p.push(fwd(Kind::Execute), &mut out);
        p.push(fwd(Kind::Sync), &mut out);
        p.handle(&error("ERROR"), &mut out).unwrap();
        assert_eq!(out[0], b'E');
        assert_eq!(out.len(), error("ERROR").len());
        assert_eq!(p.completed.iter().filter(|c| !c.ok).count(), 3);
        p.handle(&msg(b'Z', b"I"), &mut out).unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn swallowed_injection_hides_answers_but_not_errors() {
        let mut p = Pipeline::default();
        let mut out = BytesMut::new();
        p.push(
            Pending {
                kind: Kind::Query,
                mode: Mode::Swallow,
                action: Action::ParamSync,
            },
            &mut out,
        );
        p.push(fwd(Kind::Query), &mut out);
        p.handle(&msg(b'S', b"application_name\0x\0"), &mut out)
            .unwrap();
        p.handle(&msg(b'C', b"SET\0"), &mut out).unwrap();
        p.handle(&msg(b'Z', b"I"), &mut out).unwrap();
        assert!(out.is_empty());
        assert!(!p.ready_and_empty);
        p.handle(&msg(b'C', b"SELECT 1\0"), &mut out).unwrap();
        p.handle(&msg(b'Z', b"I"), &mut out).unwrap();
        assert_eq!(out[0], b'C');
        assert!(p.ready_and_empty);
    }

    #[test]
    fn fatal_is_downgraded_to_error() {
        let mut p = Pipeline::default();
        let mut out = BytesMut::new();
        p.push(fwd(Kind::Query), &mut out);
        p.handle(&error("FATAL"), &mut out).unwrap();
        assert!(p.fatal);
        let fields = be::parse_error_fields(&out[5..]).unwrap();
        assert_eq!(fields.severity(), "ERROR");
    }

    #[test]
    fn syncs_sent_during_copy_in_get_no_ready_for_query() {
        // tokio-postgres: Bind Execute Sync, then CopyData CopyDone Sync.
        let mut p = Pipeline::default();
        let mut out = BytesMut::new();
        p.push(fwd(Kind::Bind), &mut out);
        p.push(fwd(Kind::Execute), &mut out);
        p.push(fwd(Kind::Sync), &mut out);
        p.handle(&msg(b'2', b""), &mut out).unwrap();
        p.handle(&msg(b'G', b"\0\0\0"), &mut out).unwrap();
        assert!(p.sync_ignored());
        p.push(fwd(Kind::CopyEnd), &mut out);
        assert!(!p.sync_ignored());
        p.push(fwd(Kind::Sync), &mut out);
        p.handle(&msg(b'C', b"COPY 2\0"), &mut out).unwrap();
        p.handle(&msg(b'Z', b"I"), &mut out).unwrap();
        assert!(p.is_empty());
        assert!(p.ready_and_empty);
    }

    #[test]
    fn copy_end_marker_after_simple_query_copy_is_dropped() {
        let mut p = Pipeline::default();
        let mut out = BytesMut::new();
        p.push(fwd(Kind::Query), &mut out);
        p.handle(&msg(b'G', b"\0\0\0"), &mut out).unwrap();
        p.push(fwd(Kind::CopyEnd), &mut out);
        p.handle(&msg(b'C', b"COPY 1\0"), &mut out).unwrap();
        p.handle(&msg(b'Z', b"I"), &mut out).unwrap();
        assert!(p.is_empty() && p.ready_and_empty);
    }

    #[test]
    fn unexpected_message_is_desync() {
        let mut p = Pipeline::default();
        let mut out = BytesMut::new();
        assert!(p.handle(&msg(b'D', b"\0\0"), &mut out).is_err());
        p.push(fwd(Kind::Parse), &mut out);
        assert!(p.handle(&msg(b'2', b""), &mut out).is_err());
    }
}
