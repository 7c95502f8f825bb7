//! Merging the answers of several shards to one request into the single answer the client
//! expects: one RowDescription, the rows of all shards, one CommandComplete whose count is the
//! sum, one ReadyForQuery with the combined transaction status.
//!
//! Shards are read one after another (their rows are concatenated, which is exactly right for
//! statements that need no ordering or aggregation across shards); the others keep their
//! answers in their sockets meanwhile, so memory stays bounded.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::pipeline::{parse_ready, shard_error, Desync, Kind, Owed, Pending, Pipeline};
use crate::protocol::backend::TransactionStatus;
use crate::protocol::encode;

/// Per-request state of a fan-out.
#[derive(Debug, Default)]
pub struct FanOut {
    /// Shards that still owe their answer; the front one is being read.
    pub pending: VecDeque<usize>,
    /// A RowDescription (or CopyInResponse/CopyOutResponse) went to the client already.
    pub described: bool,
    /// The merged command tag so far.
    pub tag: Option<TagSum>,
    /// Some shard answered EmptyQueryResponse.
    pub empty_query: bool,
    /// Worst transaction status reported so far (Failed > InBlock > Idle).
    pub status: Option<TransactionStatus>,
    /// An error was reported for this request (further output is suppressed).
    pub failed: bool,
    /// The same write on every copy of a reference table: one shard's rows and tag stand for
    /// all (the others are checked only for errors).
    pub replicated: bool,
    /// The first shard has finished its answer.
    pub first_done: bool,
    /// Closes an implicit multi-shard transaction: its ReadyForQuery (and a Query's command
    /// tag) wait in `Pipeline::held` until the two-phase commit decided the outcome.
    pub hold_ready: bool,
    /// A merged read: the answers go through a merge instead of being concatenated.
    pub merge: Option<Box<super::merge_run::MergeRun>>,
}

impl FanOut {
    /// A fan-out over `shards`, read in that order.
    pub fn new(shards: impl IntoIterator<Item = usize>) -> FanOut {
        FanOut {
            pending: shards.into_iter().collect(),
            ..FanOut::default()
        }
    }

    /// Records a shard's ReadyForQuery status.
    pub fn note_status(&mut self, status: TransactionStatus) {
        self.status = Some(match (self.status, status) {
            (Some(TransactionStatus::Failed), _) | (_, TransactionStatus::Failed) => {
                TransactionStatus::Failed
            }
            (Some(TransactionStatus::InBlock), _) | (_, TransactionStatus::InBlock) => {
                TransactionStatus::InBlock
            }
            _ => TransactionStatus::Idle,
        });
    }

    /// Adds a shard's CommandComplete tag.
    pub fn note_tag(&mut self, tag: &str) {
        match &mut self.tag {
            None => self.tag = Some(TagSum::new(tag)),
            Some(sum) => sum.add(tag),
        }
    }
}

/// Command tags summed across shards: `SELECT 3` + `SELECT 4` = `SELECT 7`; `INSERT 0 2` +
/// `INSERT 0 1` = `INSERT 0 3`; tags without a count (CREATE TABLE) keep the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSum {
    prefix: String,
    count: Option<u64>,
}

impl TagSum {
    fn split(tag: &str) -> (String, Option<u64>) {
        match tag.rsplit_once(' ') {
            Some((prefix, n)) if counted(prefix) => match n.parse::<u64>() {
                Ok(n) => (prefix.to_string(), Some(n)),
                Err(_) => (tag.to_string(), None),
            },
            _ => (tag.to_string(), None),
        }
    }

    /// The tag of the first shard.
    pub fn new(tag: &str) -> TagSum {
        let (prefix, count) = TagSum::split(tag);
        TagSum { prefix, count }
    }

    /// Adds another shard's tag (same command).
    pub fn add(&mut self, tag: &str) {
        let (_, count) = TagSum::split(tag);
        if let (Some(total), Some(n)) = (self.count.as_mut(), count) {
            *total += n;
        }
    }

    /// The merged tag text.
    pub fn text(&self) -> String {
        match self.count {
            Some(n) => format!("{} {n}", self.prefix),
            None => self.prefix.clone(),
        }
    }
}

/// Commands whose tag ends in a row count.
fn counted(prefix: &str) -> bool {
    matches!(
        prefix,
        "SELECT" | "INSERT 0" | "UPDATE" | "DELETE" | "COPY" | "MERGE" | "FETCH" | "MOVE"
    )
}

impl Pipeline {
    /// A message from one of several shards answering the head entry.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_fanout(
        &mut self,
        shard: usize,
        kind: Kind,
        tag: u8,
        frame: &[u8],
        body: &[u8],
        swallow: bool,
        out: &mut BytesMut,
    ) -> Result<(), Desync> {
        let forward = !swallow && !self.suppress;
        let Some(Pending {
            owed: Owed::Many(f),
            ..
        }) = self.queue.front_mut()
        else {
            return Ok(());
        };
        let mut shard_done = false;
        let mut entered_copy = false;
        match tag {
            b'E' => {
                self.copy_in = false;
                self.errored = true;
                let first = !f.failed && !self.suppress;
                f.failed = true;
                shard_error(
                    first,
                    &mut self.replace_next_error,
                    &mut self.fatal,
                    shard,
                    (frame, body),
                    out,
                );
                if !kind.ends_with_ready() {
                    shard_done = true;
                }
            }
            b'Z' if kind.ends_with_ready() => {
                let status = parse_ready(body)?;
                f.note_status(status);
                self.shard_status.push((shard, status));
                shard_done = true;
            }
            b'T' if matches!(kind, Kind::Query | Kind::Execute) => {
                if !f.described && forward && !f.failed {
                    out.extend_from_slice(frame);
                }
                f.described = true;
            }
            b'G' | b'H' if matches!(kind, Kind::Query | Kind::Execute) => {
                if tag == b'G' && !self.copy_in {
                    self.copy_in = true;
                    entered_copy = true;
                }
                if !f.described && !f.failed {
                    out.extend_from_slice(frame);
                }
                f.described = true;
            }
            b'D' | b'd' if matches!(kind, Kind::Query | Kind::Execute) => {
                // A replicated write (reference table) returns its rows once, from one shard.
                if forward && !f.failed && (!f.replicated || !f.first_done) {
                    out.extend_from_slice(frame);
                }
            }
            b'c' if matches!(kind, Kind::Query | Kind::Execute) => {
                // one CopyDone for the client, after the last shard's data
                if f.pending.len() == 1 && forward && !f.failed {
                    out.extend_from_slice(frame);
                }
            }
            b'C' if matches!(kind, Kind::Query | Kind::Execute) => {
                self.copy_in = false;
                if body.starts_with(b"ROLLBACK") {
                    self.saw_rollback = true;
                }
                let text =
                    std::str::from_utf8(body.strip_suffix(b"\0").unwrap_or(body)).unwrap_or("");
                if !f.replicated || f.tag.is_none() {
                    f.note_tag(text);
                }
                if kind == Kind::Execute {
                    shard_done = true;
                }
            }
            b'I' if matches!(kind, Kind::Query | Kind::Execute) => {
                f.empty_query = true;
                if kind == Kind::Execute {
                    shard_done = true;
                }
            }
            b'1' if kind == Kind::Parse => shard_done = true,
            b'2' if kind == Kind::Bind => shard_done = true,
            b'3' if kind == Kind::Close => shard_done = true,
            _ => {
                return Err(Desync {
                    tag: tag as char,
                    expecting: format!("{kind:?} (from several shards)"),
                })
            }
        }
        if entered_copy {
            // Syncs the client sent after the COPY's Execute are ignored by the servers.
            self.drop_syncs_during_copy();
            return Ok(());
        }
        if !shard_done {
            return Ok(());
        }
        let failed_now = tag == b'E' && !kind.ends_with_ready();
        f.pending.pop_front();
        f.first_done = true;
        let all_done = f.pending.is_empty();
        if all_done {
            let failed = f.failed;
            if f.hold_ready && kind.ends_with_ready() {
                let held = super::pipeline::Held {
                    status: f.status.unwrap_or(TransactionStatus::Idle),
                    ok: !failed && !self.errored,
                    tag: f
                        .tag
                        .as_ref()
                        .map(TagSum::text)
                        .filter(|_| forward && !failed),
                    forward: !swallow,
                };
                self.held = Some(held);
                self.complete(!failed);
                self.suppress = false;
                self.errored = false;
                self.drain_synthetic(out);
                return Ok(());
            }
            // The merged closing message(s).
            if forward && !failed {
                match kind {
                    Kind::Query | Kind::Execute => {
                        if let Some(t) = &f.tag {
                            encode::command_complete(out, &t.text());
                        } else if f.empty_query {
                            encode::empty_query_response(out);
                        }
                    }
                    Kind::Parse => encode::parse_complete(out),
                    Kind::Bind => encode::bind_complete(out),
                    Kind::Close => encode::close_complete(out),
                    _ => {}
                }
            }
            let status = f.status;
            if kind.ends_with_ready() {
                let status = status.unwrap_or(TransactionStatus::Idle);
                if !swallow {
                    encode::ready_for_query(out, status);
                    self.status = Some(status);
                }
                self.complete(!failed);
                self.after_ready(kind, swallow, out);
                return Ok(());
            }
            self.complete(!failed);
        }
        if failed_now {
            self.skip_to_sync(shard);
            self.suppress = true;
        }
        self.drain_synthetic(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_sum_counts() {
        let mut t = TagSum::new("SELECT 3");
        t.add("SELECT 4");
        assert_eq!(t.text(), "SELECT 7");
        let mut t = TagSum::new("INSERT 0 2");
        t.add("INSERT 0 1");
        assert_eq!(t.text(), "INSERT 0 3");
        let mut t = TagSum::new("CREATE TABLE");
        t.add("CREATE TABLE");
        assert_eq!(t.text(), "CREATE TABLE");
        let mut t = TagSum::new("UPDATE 0");
        t.add("UPDATE 5");
        assert_eq!(t.text(), "UPDATE 5");
    }

    #[test]
    fn status_is_the_worst() {
        let mut f = FanOut::new([0, 1]);
        f.note_status(TransactionStatus::Idle);
        f.note_status(TransactionStatus::InBlock);
        assert_eq!(f.status, Some(TransactionStatus::InBlock));
        f.note_status(TransactionStatus::Failed);
        f.note_status(TransactionStatus::Idle);
        assert_eq!(f.status, Some(TransactionStatus::Failed));
    }
}
