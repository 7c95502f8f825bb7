//! The commit protocol on the session's own backend connections (raw simple-Query messages).
//!
//! PREPARE TRANSACTION on every participant (all sent, then all answers read), the durable
//! decision, COMMIT PREPARED on every participant. A failure before the decision rolls every
//! participant back and the client gets the first participant's error; a failure after it
//! leaves the gid to recovery and the client gets success (the decision is durable).

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::failpoint::Failpoint;
use super::TwoPc;
use crate::backend::conn::MAX_BACKEND_MESSAGE;
use crate::backend::BackendConn;
use crate::protocol::backend::{self as be, ErrorFields, TransactionStatus};
use crate::protocol::encode;

/// SQLSTATE object_not_in_prerequisite_state: what PostgreSQL answers PREPARE TRANSACTION with
/// when max_prepared_transactions = 0.
const PREPARED_DISABLED_CODE: &str = "55000";

/// A commit that was rolled back (no participant commits): what the client is told. A commit
/// that reached its decision is never an error, even when COMMIT PREPARED is still unfinished
/// somewhere: the decision is durable and recovery finishes it.
///
/// Display is the client's message (without the SQLSTATE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitError {
    /// The participant whose failure decided it (empty for a proxy-side failure).
    pub shard: String,
    /// The error for the client: severity ERROR, SQLSTATE, message (and the server's detail
    /// or hint when a participant reported it). Send with `encode::error_fields(.., b'E', ..)`.
    pub fields: ErrorFields,
    /// Participants whose ROLLBACK could not be confirmed; recovery rolls them back.
    pub rollback_pending: Vec<String>,
}

impl CommitError {
    /// The SQLSTATE for the client, as a `'static` string (see [`intern_sqlstate`]).
    pub fn sqlstate(&self) -> &'static str {
        intern_sqlstate(self.fields.code())
    }

    /// The message.
    pub fn message(&self) -> &str {
        self.fields.message()
    }

    fn new(shard: &str, code: &str, message: String) -> CommitError {
        let mut fields = ErrorFields::default();
        fields.set(b'S', "ERROR");
        fields.set(b'V', "ERROR");
        fields.set(b'C', code);
        fields.set(b'M', &message);
        CommitError {
            shard: shard.to_owned(),
            fields,
            rollback_pending: Vec::new(),
        }
    }
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CommitError {}

/// How one statement on one participant went.
#[derive(Debug)]
enum Step {
    /// CommandComplete with this tag, then ReadyForQuery.
    Done(String),
    /// The server refused it (the connection is still usable).
    Refused(ErrorFields),
    /// I/O or protocol failure: the connection is marked broken, the outcome is unknown.
    Lost(String),
}

impl TwoPc {
    /// Commits the open transaction on `conns` (participant `i` is shard `names[i]`) atomically:
    /// Ok once the commit decision is durable (the client gets success; participants whose
    /// COMMIT PREPARED failed are finished by recovery), Err when everything was rolled back.
    /// Every connection must be idle inside its transaction block with nothing in flight; a
    /// backend whose transaction already failed should be rolled back by the caller instead
    /// (PostgreSQL answers its PREPARE with ROLLBACK, which fails the whole commit here).
    ///
    /// Afterwards each connection is outside any transaction, or `broken` (discard it).
    /// Not cancel safe as a protocol step, but safe to drop: connections mid-statement are left
    /// marked broken, and the gid is left to recovery (rolled back, or committed when the
    /// decision was already logged).
    pub async fn commit(
        &self,
        conns: &mut [&mut BackendConn],
        names: &[String],
    ) -> Result<(), CommitError> {
        if conns.is_empty() || conns.len() != names.len() {
            return Err(CommitError::new(
                "",
                "XX000",
                format!(
                    "internal error: two-phase commit of {} connections with {} shard names",
                    conns.len(),
                    names.len()
                ),
            ));
        }
        let gid = self.next_gid();
        // A fresh gid: no one else can hold it.
        let _claim = self.try_claim(&gid);
        let prepared = self.prepare_all(conns, names, &gid).await;
        if let Some(error) = first_failure(&prepared, names) {
            return Err(self.abort(conns, names, &gid, &prepared, error).await);
        }
        self.failpoints.hit(Failpoint::AfterAllPrepares).await;
        if let Err(e) = self.log_commit(&gid, names).await {
            tracing::error!(gid, error = %e, "could not log the commit decision: rolling back");
            let error =
                CommitError::new("", "58030", format!("{e}; the transaction was rolled back"));
            return Err(self.abort(conns, names, &gid, &prepared, error).await);
        }
        self.failpoints.hit(Failpoint::AfterDecision).await;
        let pending = self.commit_all(conns, names, &gid).await;
        self.metrics.twopc_commit();
        if pending.is_empty() {
            self.log_done(&gid);
        } else {
            tracing::warn!(
                gid,
                ?pending,
                "COMMIT PREPARED unfinished; recovery will finish it"
            );
            self.wake_recovery();
        }
        Ok(())
    }

    /// PREPARE on every participant. With `after_some_prepares` armed the first one goes alone,
    /// so the failpoint sees exactly one prepared participant.
    async fn prepare_all(
        &self,
        conns: &mut [&mut BackendConn],
        names: &[String],
        gid: &str,
    ) -> Vec<Step> {
        let sql = format!("PREPARE TRANSACTION '{gid}'");
        let split = self.failpoints.is_armed(Failpoint::AfterSomePrepares);
        let mut steps = Vec::with_capacity(conns.len());
        let (first, rest) = conns.split_at_mut(if split { 1 } else { 0 });
        for conn in first.iter_mut() {
            steps.push(run(conn, &sql).await);
        }
        if split && matches!(steps.first(), Some(Step::Done(_))) && names.len() > 1 {
            self.failpoints.hit(Failpoint::AfterSomePrepares).await;
        }
        steps.extend(futures::future::join_all(rest.iter_mut().map(|c| run(c, &sql))).await);
        steps
    }

    /// COMMIT PREPARED on every participant; returns the shards where it is not confirmed.
    async fn commit_all(
        &self,
        conns: &mut [&mut BackendConn],
        names: &[String],
        gid: &str,
    ) -> Vec<String> {
        let sql = format!("COMMIT PREPARED '{gid}'");
        let split = self.failpoints.is_armed(Failpoint::AfterSomeCommits);
        let mut steps = Vec::with_capacity(conns.len());
        let (first, rest) = conns.split_at_mut(if split { 1 } else { 0 });
        for conn in first.iter_mut() {
            steps.push(run(conn, &sql).await);
        }
        if split && matches!(steps.first(), Some(Step::Done(_))) && names.len() > 1 {
            self.failpoints.hit(Failpoint::AfterSomeCommits).await;
        }
        steps.extend(futures::future::join_all(rest.iter_mut().map(|c| run(c, &sql))).await);
        steps
            .iter()
            .zip(names)
            .filter_map(|(step, name)| match step {
                Step::Done(_) => None,
                Step::Refused(f) => {
                    tracing::warn!(gid, shard = %name, error = f.message(), code = f.code(), "COMMIT PREPARED failed");
                    Some(name.clone())
                }
                Step::Lost(why) => {
                    tracing::warn!(gid, shard = %name, error = %why, "COMMIT PREPARED not confirmed");
                    Some(name.clone())
                }
            })
            .collect()
    }

    /// Rolls every participant back after a failure before the decision.
    async fn abort(
        &self,
        conns: &mut [&mut BackendConn],
        names: &[String],
        gid: &str,
        prepared: &[Step],
        mut error: CommitError,
    ) -> CommitError {
        let rollback_prepared = format!("ROLLBACK PREPARED '{gid}'");
        let undo = conns.iter_mut().zip(prepared).map(|(conn, step)| {
            let sql = match step {
                Step::Done(tag) if tag == "PREPARE TRANSACTION" => Some(rollback_prepared.as_str()),
                // Not prepared; a failed PREPARE normally ends the transaction, but make sure.
                Step::Done(_) | Step::Refused(_) => {
                    (conn.status != TransactionStatus::Idle).then_some("ROLLBACK")
                }
                // Unknown whether it prepared: recovery rolls it back if it did.
                Step::Lost(_) => None,
            };
            async move {
                match sql {
                    Some(sql) => matches!(run(conn, sql).await, Step::Done(_)),
                    None => !conn.broken,
                }
            }
        });
        let undone = futures::future::join_all(undo).await;
        error.rollback_pending = undone
            .iter()
            .zip(names)
            .filter(|(ok, _)| !**ok)
            .map(|(_, name)| name.clone())
            .collect();
        if !error.rollback_pending.is_empty() {
            tracing::warn!(gid, pending = ?error.rollback_pending, "rollback unconfirmed; recovery will roll back");
            self.wake_recovery();
        }
        self.metrics.twopc_abort();
        error
    }
}

/// The error that fails the commit: the first participant refusal in participant order (a
/// deferred constraint, disabled prepared transactions...), else the first lost connection.
fn first_failure(steps: &[Step], names: &[String]) -> Option<CommitError> {
    let refused = steps.iter().zip(names).find_map(|(step, name)| match step {
        Step::Refused(fields) => Some(refusal(name, fields)),
        Step::Done(tag) if tag != "PREPARE TRANSACTION" => Some(CommitError::new(
            name,
            "25P02",
            format!(
                "the transaction on shard {name} had failed; it was rolled back on every shard"
            ),
        )),
        _ => None,
    });
    refused.or_else(|| {
        steps.iter().zip(names).find_map(|(step, name)| match step {
            Step::Lost(why) => Some(CommitError::new(
                name,
                "08006",
                format!(
                    "connection to shard {name} was lost during two-phase commit ({why}); the transaction was rolled back"
                ),
            )),
            _ => None,
        })
    })
}

/// A SQLSTATE as a `'static` string, so callers can keep it past the error (sessions carry
/// `&'static str` codes). A SQLSTATE is five characters of `0-9A-Z`, and a server sends at most
/// the few hundred PostgreSQL defines, so each distinct code is leaked once into a small
/// process-wide table; anything that is not a SQLSTATE becomes XX000 (internal_error).
pub fn intern_sqlstate(code: &str) -> &'static str {
    static INTERNED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let valid = code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if !valid {
        return "XX000";
    }
    let mut table = INTERNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = table.iter().find(|c| **c == code) {
        return known;
    }
    let leaked: &'static str = Box::leak(code.to_owned().into_boxed_str());
    table.push(leaked);
    leaked
}

/// A participant's refusal as the client sees it.
fn refusal(shard: &str, fields: &ErrorFields) -> CommitError {
    if fields.code() == PREPARED_DISABLED_CODE
        && fields
            .message()
            .contains("prepared transactions are disabled")
    {
        return CommitError::new(
            shard,
            PREPARED_DISABLED_CODE,
            format!(
                "shard {shard} has max_prepared_transactions = 0; writes to several shards need two-phase commit: set max_prepared_transactions > 0 there"
            ),
        );
    }
    let mut fields = fields.clone();
    fields.set(b'S', "ERROR");
    fields.set(b'V', "ERROR");
    CommitError {
        shard: shard.to_owned(),
        fields,
        rollback_pending: Vec::new(),
    }
}

/// Runs one simple query and reads up to its ReadyForQuery. The connection is marked broken
/// while the exchange is under way, so a dropped future leaves it unusable rather than
/// half-read; any I/O or protocol error leaves it broken.
async fn run(conn: &mut BackendConn, sql: &str) -> Step {
    if conn.broken {
        return Step::Lost("connection already broken".to_owned());
    }
    conn.broken = true;
    let mut out = BytesMut::with_capacity(sql.len() + 6);
    encode::query(&mut out, sql);
    if let Err(e) = conn.stream.write_all(&out).await {
        return Step::Lost(e.to_string());
    }
    let mut tag = None;
    let mut refused = None;
    loop {
        match be::frame_len(&conn.read_buf, MAX_BACKEND_MESSAGE) {
            Ok(Some((kind, len))) => {
                let frame = conn.read_buf.split_to(len);
                let body = frame.get(5..).unwrap_or_default();
                match kind {
                    b'C' => match be::parse_command_complete(body) {
                        Ok(t) => tag = Some(t.to_owned()),
                        Err(e) => return Step::Lost(e.to_string()),
                    },
                    b'E' => match be::parse_error_fields(body) {
                        Ok(f) => refused = Some(f),
                        Err(e) => return Step::Lost(e.to_string()),
                    },
                    b'Z' => {
                        match be::parse_ready_for_query(body) {
                            Ok(status) => conn.status = status,
                            Err(e) => return Step::Lost(e.to_string()),
                        }
                        conn.broken = false;
                        return match (refused, tag) {
                            (Some(f), _) => Step::Refused(f),
                            (None, Some(t)) => Step::Done(t),
                            (None, None) => Step::Done(String::new()),
                        };
                    }
                    // Notices, parameter changes, notifications: nothing to do with the commit.
                    _ => {}
                }
            }
            Ok(None) => match conn.stream.read_buf(&mut conn.read_buf).await {
                Ok(0) => return Step::Lost("the server closed the connection".to_owned()),
                Ok(_) => {}
                Err(e) => return Step::Lost(e.to_string()),
            },
            Err(e) => return Step::Lost(e.to_string()),
        }
    }
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
