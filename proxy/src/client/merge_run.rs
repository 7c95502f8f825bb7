//! A merged read in the pipeline: the shards' answers to one request go through a [`Merge`]
//! instead of being concatenated. The entry's reader is whichever shard the merge needs next
//! (its head row is missing), so each shard's unread rows wait in its socket and the proxy holds
//! at most one row per shard. Once the merge has all it needs (LIMIT reached), the shards' rest
//! is read and dropped — at most `limit + offset` rows each, as the LIMIT was pushed down.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::fanout::TagSum;
use super::pipeline::{parse_ready, shard_error, Desync, Kind, Owed, Pending, Pipeline};
use crate::merge::{Merge, MergeError, MergeInput};
use crate::protocol::backend::TransactionStatus;
use crate::protocol::encode;

/// The merge state of one request.
#[derive(Debug)]
pub struct MergeRun {
    engine: Merge,
    /// Stream index -> shard.
    streams: Vec<usize>,
    /// Streams whose RowDescription arrived.
    described: usize,
    /// The client's RowDescription was produced (or is not wanted).
    started: bool,
    /// A Describe of a merged portal: only the RowDescription is wanted.
    describe_only: bool,
    /// The portal is fetched in parts (Execute with a row limit).
    parts: Option<Parts>,
}

/// A merged portal fetched in parts: every shard is asked for at most the client's row limit
/// at a time (its portal then suspends), rows wait in per-shard queues (at most that many each)
/// until the merge takes them, and the merge state lives on between the client's Executes.
#[derive(Debug)]
pub struct Parts {
    /// The portal's name.
    pub portal: String,
    /// The client's row limit for the current Execute (0: the rest).
    pub max_rows: i32,
    /// Rows the current Execute may still send.
    budget: u64,
    /// Rows sent by the current Execute.
    sent: u64,
    queues: Vec<VecDeque<Vec<u8>>>,
    /// The shard's portal completed (CommandComplete arrived).
    ended: Vec<bool>,
    /// The merge was told about the end.
    end_fed: Vec<bool>,
}

impl Parts {
    fn set_limit(&mut self, max_rows: i32) {
        self.max_rows = max_rows;
        self.budget = u64::try_from(max_rows)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(u64::MAX);
        self.sent = 0;
    }
}

impl MergeRun {
    /// A merge of the answers of `shards` (stream i = `shards[i]`).
    pub fn new(input: MergeInput, shards: &[usize], describe_only: bool) -> MergeRun {
        MergeRun {
            engine: Merge::new(input),
            streams: shards.to_vec(),
            described: 0,
            started: false,
            describe_only,
            parts: None,
        }
    }

    /// The same, for a portal fetched `max_rows` at a time.
    pub fn in_parts(input: MergeInput, shards: &[usize], portal: &str, max_rows: i32) -> MergeRun {
        let mut run = MergeRun::new(input, shards, false);
        let n = shards.len();
        let mut parts = Parts {
            portal: portal.to_string(),
            max_rows,
            budget: 0,
            sent: 0,
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            ended: vec![false; n],
            end_fed: vec![false; n],
        };
        parts.set_limit(max_rows);
        run.parts = Some(parts);
        run
    }

    /// The portal's name, when fetched in parts.
    pub fn portal(&self) -> Option<&str> {
        self.parts.as_ref().map(|p| p.portal.as_str())
    }

    /// Continues a portal fetched in parts with the client's next Execute: the shards to ask
    /// for more rows (those not finished whose queue holds fewer than the limit; all unfinished
    /// ones when that leaves none).
    pub fn resume(&mut self, max_rows: i32) -> Vec<usize> {
        let Some(parts) = self.parts.as_mut() else {
            return Vec::new();
        };
        parts.set_limit(max_rows);
        let limit = usize::try_from(max_rows).ok().filter(|n| *n > 0);
        let open: Vec<usize> = (0..self.streams.len())
            .filter(|&i| !parts.ended.get(i).copied().unwrap_or(true))
            .collect();
        let short: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| limit.is_none_or(|l| parts.queues.get(i).map_or(0, VecDeque::len) < l))
            .collect();
        let chosen = if short.is_empty() { open } else { short };
        chosen
            .into_iter()
            .filter_map(|i| self.streams.get(i).copied())
            .collect()
    }

    /// Answers an Execute of a portal fetched in parts from what is already here (no shard
    /// has more to give): its rows, then CommandComplete or PortalSuspended.
    pub fn answer_from_queues(&mut self, out: &mut BytesMut) -> Result<bool, MergeError> {
        self.pump(out)?;
        Ok(self.finish_part(out))
    }

    /// Feeds queued rows to the merge as it asks for them, then emits within the budget.
    fn pump(&mut self, out: &mut BytesMut) -> Result<(), MergeError> {
        let Some(parts) = self.parts.as_mut() else {
            return Ok(());
        };
        loop {
            if parts.budget > 0 {
                let n = self.engine.emit(out, Some(parts.budget))?;
                parts.budget -= n.min(parts.budget);
                parts.sent += n;
            }
            let Some(s) = self.engine.wants() else {
                break;
            };
            if let Some(row) = parts.queues.get_mut(s).and_then(VecDeque::pop_front) {
                self.engine.data_row(s, &row)?;
            } else if parts.ended.get(s) == Some(&true) && parts.end_fed.get(s) == Some(&false) {
                if let Some(fed) = parts.end_fed.get_mut(s) {
                    *fed = true;
                }
                self.engine.end(s)?;
            } else {
                break;
            }
        }
        Ok(())
    }

    /// A shard the merge needs whose portal is suspended and that is not being read: it must be
    /// asked for more rows.
    fn needs_refill(&self, pending: &VecDeque<usize>) -> Option<usize> {
        let parts = self.parts.as_ref()?;
        if parts.budget == 0 || !self.started {
            return None;
        }
        let s = self.engine.wants()?;
        let shard = *self.streams.get(s)?;
        let idle = parts.queues.get(s).is_some_and(VecDeque::is_empty)
            && parts.ended.get(s) == Some(&false)
            && !pending.contains(&shard);
        idle.then_some(shard)
    }

    /// The current Execute is answered: true when the portal is finished (CommandComplete
    /// written), false when it is suspended (PortalSuspended written).
    fn finish_part(&mut self, out: &mut BytesMut) -> bool {
        let sent = self.parts.as_ref().map_or(0, |p| p.sent);
        if self.engine.done() {
            encode::command_complete(out, &format!("SELECT {sent}"));
            true
        } else {
            encode::portal_suspended(out);
            false
        }
    }

    /// The shard the merge needs a message from.
    pub fn wanted(&self) -> Option<usize> {
        self.engine
            .wants()
            .and_then(|s| self.streams.get(s).copied())
    }

    fn stream(&self, shard: usize) -> Option<usize> {
        self.streams.iter().position(|&s| s == shard)
    }

    /// Feeds one message of `shard`; appends what the client sees now.
    fn feed(
        &mut self,
        shard: usize,
        kind: Kind,
        tag: u8,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), MergeError> {
        let Some(stream) = self.stream(shard) else {
            return Ok(());
        };
        if let Some(parts) = self.parts.as_mut() {
            match tag {
                b'T' => {
                    self.engine.row_description(stream, body)?;
                    self.described += 1;
                }
                b'D' => {
                    if let Some(q) = parts.queues.get_mut(stream) {
                        q.push_back(body.to_vec());
                    }
                }
                b'C' => {
                    if let Some(e) = parts.ended.get_mut(stream) {
                        *e = true;
                    }
                }
                _ => {}
            }
            if !self.started && self.described == self.streams.len() {
                self.started = true;
            }
            if self.started {
                self.pump(out)?;
            }
            return Ok(());
        }
        match tag {
            b'T' => {
                self.engine.row_description(stream, body)?;
                self.described += 1;
            }
            b'D' if !self.engine.done() => self.engine.data_row(stream, body)?,
            b'C' => self.engine.end(stream)?,
            _ => {}
        }
        if !self.started && self.described == self.streams.len() {
            self.started = true;
            if kind == Kind::Query || self.describe_only {
                self.engine.client_row_description(out)?;
            }
        }
        if self.started && !self.describe_only {
            self.engine.emit(out, None)?;
        }
        Ok(())
    }
}

impl Pipeline {
    /// A message from one of the shards answering a merged head entry.
    pub(super) fn handle_merge(
        &mut self,
        shard: usize,
        kind: Kind,
        tag: u8,
        frame: &[u8],
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), Desync> {
        let forward = !self.suppress;
        let Some(Pending {
            owed: Owed::Many(f),
            ..
        }) = self.queue.front_mut()
        else {
            return Ok(());
        };
        let Some(run) = f.merge.as_mut() else {
            return Ok(());
        };
        let mut shard_done = false;
        let mut merge_error = None;
        match tag {
            b'E' => {
                self.errored = true;
                let first = !f.failed && forward;
                f.failed = true;
                shard_error(
                    first,
                    &mut self.replace_next_error,
                    &mut self.fatal,
                    shard,
                    (frame, body),
                    out,
                );
                shard_done = !kind.ends_with_ready();
            }
            b'Z' if kind.ends_with_ready() => {
                let status = parse_ready(body)?;
                f.note_status(status);
                self.shard_status.push((shard, status));
                shard_done = true;
            }
            b's' if kind == Kind::Execute && run.parts.is_some() => shard_done = true,
            b'T' | b'D' | b'C' | b'n' => {
                if !f.failed {
                    if let Err(e) = run.feed(shard, kind, tag, body, out) {
                        merge_error = Some(e);
                    }
                }
                if run.describe_only && matches!(tag, b'T' | b'n') {
                    if tag == b'n' && f.pending.len() == 1 && forward && !f.failed {
                        out.extend_from_slice(frame);
                    }
                    shard_done = true;
                } else if tag == b'C' && kind == Kind::Execute {
                    shard_done = true;
                }
            }
            _ => {
                return Err(Desync {
                    tag: tag as char,
                    expecting: format!("{kind:?} (merged from several shards)"),
                })
            }
        }
        if let Some(e) = merge_error {
            self.errored = true;
            if forward {
                encode::error_response(out, "ERROR", e.sqlstate(), &e.to_string());
            }
            f.failed = true;
        }
        if shard_done {
            f.pending.retain(|&s| s != shard);
        }
        if !f.failed {
            if let Some(run) = f.merge.as_ref() {
                if let (Some(refill), Some(parts)) = (run.needs_refill(&f.pending), &run.parts) {
                    self.refills
                        .push((refill, parts.portal.clone(), parts.max_rows));
                    f.pending.push_back(refill);
                }
            }
        }
        let failed_now = tag == b'E' && !kind.ends_with_ready();
        let in_parts = f.merge.as_ref().is_some_and(|r| r.parts.is_some());
        if f.pending.is_empty() && in_parts {
            let failed = f.failed;
            if let Some(mut run) = f.merge.take() {
                if !failed && forward {
                    let finished = run.finish_part(out);
                    if !finished {
                        self.parked = Some(run);
                    }
                }
            }
            self.complete(!failed);
            if failed && !failed_now {
                self.suppress = true;
            }
        } else if f.pending.is_empty() {
            let failed = f.failed;
            if forward && !failed && matches!(kind, Kind::Query | Kind::Execute) {
                let rows = f.merge.as_ref().map_or(0, |r| r.engine.rows_sent());
                f.tag = Some(TagSum::new(&format!("SELECT {rows}")));
                encode::command_complete(out, &format!("SELECT {rows}"));
            }
            let status = f.status;
            if kind.ends_with_ready() {
                let status = status.unwrap_or(TransactionStatus::Idle);
                encode::ready_for_query(out, status);
                self.status = Some(status);
                self.complete(!failed);
                self.after_ready(kind, false, out);
                return Ok(());
            }
            self.complete(!failed);
            if failed && !failed_now {
                // The proxy's own error in the extended protocol: the client expects nothing
                // more until its Sync, as after a server error.
                self.suppress = true;
            }
        }
        if failed_now {
            self.skip_to_sync(shard);
            self.suppress = true;
        }
        self.drain_synthetic(out);
        Ok(())
    }
}
