//! One merge as a pure state machine over the shards' result streams (no I/O).
//!
//! The session feeds each shard stream's RowDescription, DataRows and end, asks which stream
//! it must read next ([`Merge::wants`]), and takes the client's rows from [`Merge::emit`].
//! Rows flow through: a k-way merge of the streams' head rows in the plan's shard order
//! (`heads`), then either DISTINCT or grouping with aggregates (`groups`), HAVING, an optional
//! final sort (the only buffering), OFFSET/LIMIT and the stripping of hidden columns
//! (`output`). At most one row per stream is held, so memory is bounded by the widest rows
//! (plus the final rows when the plan needs a final sort).

mod groups;
mod heads;
mod layout;
mod output;
mod row;
mod rowdesc;

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use shard_router::merge::{Filter, MergePlan};

use self::groups::{Groups, Step};
use self::heads::{compare_rows, Heads, Pick};
use self::layout::Layout;
use self::output::{Sorted, Window};
use self::row::RowBuf;
use self::rowdesc::Description;
use super::agg::AggError;
use super::compare::{ColumnType, CompareError};
use super::filter::{self, FilterError};

/// What one execution of a merge needs besides the plan.
#[derive(Debug, Clone)]
pub struct MergeInput {
    /// The plan.
    pub plan: Arc<MergePlan>,
    /// Number of shard streams (0..streams).
    pub streams: usize,
    /// LIMIT resolved (None: none).
    pub limit: Option<u64>,
    /// OFFSET resolved.
    pub offset: u64,
    /// Bind parameter values as text (for HAVING `$n`); None = NULL.
    pub params: Vec<Option<String>>,
    /// The client's result format codes as in its Bind (empty: all text; one: for all
    /// columns; otherwise one per visible column).
    pub client_formats: Vec<i16>,
}

/// Why a merge failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// The shards described different result columns.
    #[error("the shards returned different result columns: {0}")]
    Mismatch(String),
    /// A value could not be compared, aggregated or filtered.
    #[error("{message}")]
    Value {
        /// SQLSTATE.
        code: &'static str,
        /// Message.
        message: String,
    },
    /// A shard sent something malformed.
    #[error("invalid message from a shard: {0}")]
    Protocol(String),
}

impl MergeError {
    /// The SQLSTATE to report.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            MergeError::Mismatch(_) => "XX000",
            MergeError::Value { code, .. } => code,
            MergeError::Protocol(_) => "08P01",
        }
    }
}

/// A comparison failure as a merge error.
fn compare_error(e: CompareError) -> MergeError {
    let code = match e {
        CompareError::Unsupported(_) => "0A000",
        CompareError::Invalid(_) => "XX000",
    };
    MergeError::Value {
        code,
        message: e.to_string(),
    }
}

/// An aggregate failure as a merge error.
fn agg_error(e: AggError) -> MergeError {
    MergeError::Value {
        code: e.sqlstate(),
        message: e.to_string(),
    }
}

/// A HAVING failure as a merge error.
fn filter_error(e: FilterError) -> MergeError {
    MergeError::Value {
        code: e.sqlstate(),
        message: e.to_string(),
    }
}

/// Where a merge is in producing final rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Merging the streams (rows go out as they are decided, or into the sort buffer).
    Merging,
    /// Every stream ended; handing out the sorted buffer.
    Draining,
    /// Every final row was produced (or the limit reached).
    Finished,
}

/// The next candidate final row of the merge phase.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Stream `s`'s head row (ungrouped plans).
    Head(usize),
    /// The group just finished ([`Groups::final_row`]).
    Group,
    /// A stream must be read first.
    NeedInput,
    /// The streams are exhausted.
    Exhausted,
}

/// The state fixed (and then advanced) once the shards described their rows.
#[derive(Debug)]
struct Run {
    layout: Layout,
    groups: Option<Groups>,
    /// DISTINCT's previously produced row.
    prev: Option<RowBuf>,
    window: Window,
    sorted: Sorted,
    phase: Phase,
}

/// A merge in progress.
#[derive(Debug)]
pub struct Merge {
    input: MergeInput,
    /// The first stream's description (the reference every other must match).
    desc: Option<Description>,
    described: Vec<bool>,
    heads: Heads,
    run: Option<Run>,
    sent: u64,
}

impl Merge {
    /// A merge of `input.streams` shard streams.
    pub fn new(input: MergeInput) -> Merge {
        Merge {
            described: vec![false; input.streams],
            heads: Heads::new(input.streams, false),
            desc: None,
            run: None,
            sent: 0,
            input,
        }
    }

    /// Result format codes to request from the shards (for their Bind), given the client's.
    ///
    /// Rows: the client's codes, plus text for each hidden column when it gave one per column.
    /// Groups: one code per shard column — the client's for visible pass-through columns and
    /// for min/max partials (whose bytes become the final value), text for everything else;
    /// no codes at all when every one would be text.
    pub fn shard_result_formats(plan: &MergePlan, client_formats: &[i16]) -> Vec<i16> {
        rowdesc::shard_formats(plan, client_formats)
    }

    /// A stream's RowDescription body.
    pub fn row_description(&mut self, stream: usize, body: &[u8]) -> Result<(), MergeError> {
        match self.described.get(stream) {
            None => return Err(MergeError::Protocol(format!("no stream {stream}"))),
            Some(true) => {
                return Err(MergeError::Protocol(format!(
                    "stream {stream} described its rows twice"
                )))
            }
            Some(false) => {}
        }
        let desc = Description::parse(body)?;
        match &self.desc {
            Some(first) => first.check_same(&desc, stream)?,
            None => {
                let (layout, groups) =
                    layout::resolve(&self.input.plan, &desc, &self.input.client_formats)?;
                self.heads.set_ordered(!layout.order.is_empty());
                self.run = Some(Run {
                    layout,
                    groups,
                    prev: None,
                    window: Window::new(self.input.offset, self.input.limit),
                    sorted: Sorted::default(),
                    phase: Phase::Merging,
                });
                self.desc = Some(desc);
            }
        }
        if let Some(d) = self.described.get_mut(stream) {
            *d = true;
        }
        Ok(())
    }

    /// Appends the RowDescription message the client sees (after every stream described).
    pub fn client_row_description(&self, out: &mut BytesMut) -> Result<(), MergeError> {
        let (Some(desc), Some(run)) = (&self.desc, &self.run) else {
            return Err(MergeError::Protocol("no shard described its rows".into()));
        };
        rowdesc::write_client(out, desc, &run.layout.client);
        Ok(())
    }

    /// A stream's DataRow body.
    pub fn data_row(&mut self, stream: usize, body: &[u8]) -> Result<(), MergeError> {
        if self.done() {
            // Past the limit: the session may still drain rows already in flight.
            return Ok(());
        }
        let Some(run) = self.run.as_ref().filter(|_| self.is_described(stream)) else {
            return Err(MergeError::Protocol(format!(
                "stream {stream} sent a row before its RowDescription"
            )));
        };
        self.heads.push(stream, body, run.layout.width)
    }

    /// A stream's rows ended (CommandComplete).
    pub fn end(&mut self, stream: usize) -> Result<(), MergeError> {
        if self.done() {
            return Ok(());
        }
        if !self.is_described(stream) {
            return Err(MergeError::Protocol(format!(
                "stream {stream} ended before its RowDescription"
            )));
        }
        self.heads.end(stream)
    }

    /// The stream whose next message is needed before more can be emitted; None when no
    /// input is needed (finished, the limit reached, or rows are ready for [`Merge::emit`]).
    pub fn wants(&self) -> Option<usize> {
        if let Some(s) = self.described.iter().position(|d| !d) {
            return Some(s);
        }
        let run = self.run.as_ref()?;
        if run.phase != Phase::Merging || run.window.full() {
            return None;
        }
        self.heads.needed()
    }

    /// Appends ready DataRow messages (at most `max_rows`); returns how many.
    pub fn emit(&mut self, out: &mut BytesMut, max_rows: Option<u64>) -> Result<u64, MergeError> {
        if self.described.contains(&false) {
            return Ok(0);
        }
        let Some(run) = self.run.as_mut() else {
            return Ok(0);
        };
        let plan = &self.input.plan;
        let n = run.emit(
            &mut self.heads,
            out,
            max_rows,
            plan.having.as_ref(),
            plan.needs_sort,
            &self.input.params,
        )?;
        self.sent += n;
        Ok(n)
    }

    /// Every final row was emitted (or the limit reached).
    pub fn done(&self) -> bool {
        match &self.run {
            Some(run) => run.phase == Phase::Finished || run.window.full(),
            None => self.input.streams == 0,
        }
    }

    /// Rows emitted so far (the count in the `SELECT n` tag).
    pub fn rows_sent(&self) -> u64 {
        self.sent
    }

    /// Stream `s` has described its rows.
    fn is_described(&self, s: usize) -> bool {
        self.described.get(s).copied().unwrap_or(false)
    }
}

impl Run {
    /// Produces up to `max_rows` client rows into `out` (see [`Merge::emit`]).
    fn emit(
        &mut self,
        heads: &mut Heads,
        out: &mut BytesMut,
        max_rows: Option<u64>,
        having: Option<&Filter>,
        needs_sort: bool,
        params: &[Option<String>],
    ) -> Result<u64, MergeError> {
        let visible = self.layout.visible;
        let mut n = 0;
        while max_rows.is_none_or(|max| n < max) {
            if self.window.full() {
                self.phase = Phase::Finished;
            }
            match self.phase {
                Phase::Finished => break,
                Phase::Draining => match self.sorted.next() {
                    Some(row) => {
                        if self.window.admit() {
                            row.write_prefix(out, visible);
                            n += 1;
                        }
                    }
                    None => self.phase = Phase::Finished,
                },
                Phase::Merging => {
                    let next = match self.groups.as_mut() {
                        Some(groups) => match groups.next(heads, &self.layout.order)? {
                            Step::Row => Next::Group,
                            Step::NeedInput => Next::NeedInput,
                            Step::Exhausted => Next::Exhausted,
                        },
                        None => next_row(&self.layout, self.prev.as_ref(), heads)?,
                    };
                    let row = match next {
                        Next::NeedInput => break,
                        Next::Exhausted => {
                            if needs_sort {
                                self.sorted.sort(&self.layout.final_order)?;
                                self.phase = Phase::Draining;
                            } else {
                                self.phase = Phase::Finished;
                            }
                            continue;
                        }
                        Next::Head(s) => heads.row(s),
                        Next::Group => match &self.groups {
                            Some(groups) => &groups.final_row,
                            None => continue,
                        },
                    };
                    if passes(having, row, &self.layout.final_types, params)? {
                        if needs_sort {
                            self.sorted.push(row);
                        } else if self.window.admit() {
                            row.write_prefix(out, visible);
                            n += 1;
                        }
                    }
                    if let Next::Head(s) = next {
                        match (&self.layout.distinct, &mut self.prev) {
                            (Some(_), Some(prev)) => heads.take_into(s, prev),
                            (Some(_), prev @ None) => {
                                let mut row = RowBuf::default();
                                heads.take_into(s, &mut row);
                                *prev = Some(row);
                            }
                            (None, _) => heads.take(s),
                        }
                    }
                }
            }
        }
        Ok(n)
    }
}

/// The next merged row of an ungrouped plan (DISTINCT drops rows equal to the previous one).
fn next_row(layout: &Layout, prev: Option<&RowBuf>, heads: &mut Heads) -> Result<Next, MergeError> {
    loop {
        let s = match heads.pick(&layout.order)? {
            Pick::Stream(s) => s,
            Pick::NeedInput => return Ok(Next::NeedInput),
            Pick::Exhausted => return Ok(Next::Exhausted),
        };
        if let (Some(keys), Some(prev)) = (&layout.distinct, prev) {
            if compare_rows(heads.row(s), prev, keys)? == Ordering::Equal {
                heads.take(s);
                continue;
            }
        }
        return Ok(Next::Head(s));
    }
}

/// Whether `row` satisfies HAVING (only TRUE passes; NULL and FALSE drop the row).
fn passes(
    having: Option<&Filter>,
    row: &RowBuf,
    types: &[ColumnType],
    params: &[Option<String>],
) -> Result<bool, MergeError> {
    let Some(filter) = having else {
        return Ok(true);
    };
    let fields: Vec<Option<&[u8]>> = row.fields().collect();
    let verdict = filter::eval(filter, &fields, types, params).map_err(filter_error)?;
    Ok(verdict == Some(true))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
