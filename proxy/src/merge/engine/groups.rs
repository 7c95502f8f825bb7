//! GROUP BY and aggregates at the proxy: adjacent merged rows with equal keys form one group,
//! whose partials are combined into one final row.
//!
//! Only the current group is held (its first row and the running accumulators), so grouping
//! keeps the merge's memory bound.

use std::cmp::Ordering;

use super::heads::{compare_rows, Heads, KeySpec, Pick};
use super::row::RowBuf;
use super::{agg_error, MergeError};
use crate::merge::agg::Accumulator;

/// Where a final column's value comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    /// The group's first shard row, column `i`.
    Shard(usize),
    /// Aggregate slot `i`.
    Agg(usize),
}

/// One aggregate of the final row.
#[derive(Debug)]
pub(super) struct AggSlot {
    /// The running state.
    pub acc: Accumulator,
    /// The partial's shard column.
    pub arg: usize,
    /// avg's partial count column.
    pub count: Option<usize>,
    /// Finish in binary format.
    pub binary: bool,
}

/// What [`Groups::next`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// A finished group is in [`Groups::final_row`].
    Row,
    /// A stream must be read first.
    NeedInput,
    /// Every group was produced.
    Exhausted,
}

/// The grouping state of one merge.
#[derive(Debug)]
pub(super) struct Groups {
    keys: Vec<KeySpec>,
    sources: Vec<Source>,
    aggs: Vec<AggSlot>,
    /// No GROUP BY: one group even over no rows.
    implicit: bool,
    /// The current group's first row.
    key_row: RowBuf,
    /// A group is being accumulated.
    open: bool,
    /// Some group was finished (an implicit group over no rows is produced once at the end).
    produced: bool,
    /// Every stream is exhausted and the last group was produced.
    exhausted: bool,
    /// The last finished group's final row (every final column, visible ones first).
    pub final_row: RowBuf,
}

impl Groups {
    /// Grouping by `keys` (equality over shard columns) into final columns from `sources`.
    pub(super) fn new(
        keys: Vec<KeySpec>,
        sources: Vec<Source>,
        aggs: Vec<AggSlot>,
        implicit: bool,
    ) -> Groups {
        Groups {
            keys,
            sources,
            aggs,
            implicit,
            key_row: RowBuf::default(),
            open: false,
            produced: false,
            exhausted: false,
            final_row: RowBuf::default(),
        }
    }

    /// Consumes merged heads (in `order`) until a group is finished or input is needed.
    pub(super) fn next(
        &mut self,
        heads: &mut Heads,
        order: &[KeySpec],
    ) -> Result<Step, MergeError> {
        loop {
            if self.exhausted {
                return Ok(Step::Exhausted);
            }
            match heads.pick(order)? {
                Pick::NeedInput => return Ok(Step::NeedInput),
                Pick::Exhausted => {
                    self.exhausted = true;
                    if self.open {
                        self.open = false;
                        self.finish(true)?;
                        return Ok(Step::Row);
                    }
                    if self.implicit && !self.produced {
                        for slot in &mut self.aggs {
                            slot.acc.reset();
                        }
                        self.finish(false)?;
                        return Ok(Step::Row);
                    }
                    return Ok(Step::Exhausted);
                }
                Pick::Stream(s) => {
                    if self.open {
                        let same = compare_rows(heads.row(s), &self.key_row, &self.keys)?
                            == Ordering::Equal;
                        if !same {
                            // The head starts the next group: leave it buffered.
                            self.open = false;
                            self.finish(true)?;
                            return Ok(Step::Row);
                        }
                        accumulate(&mut self.aggs, heads.row(s))?;
                        heads.take(s);
                        continue;
                    }
                    for slot in &mut self.aggs {
                        slot.acc.reset();
                    }
                    heads.take_into(s, &mut self.key_row);
                    accumulate(&mut self.aggs, &self.key_row)?;
                    self.open = true;
                }
            }
        }
    }

    /// Builds the final row of the current group (`has_rows` false: the empty implicit group,
    /// whose pass-through columns are NULL).
    fn finish(&mut self, has_rows: bool) -> Result<(), MergeError> {
        self.produced = true;
        let row = &mut self.final_row;
        row.start(self.sources.len());
        for source in &self.sources {
            match *source {
                Source::Shard(c) => {
                    row.push(has_rows.then(|| self.key_row.field(c)).flatten())?;
                }
                Source::Agg(a) => {
                    let Some(slot) = self.aggs.get(a) else {
                        row.push(None)?;
                        continue;
                    };
                    row.push_with(|buf| slot.acc.finish(slot.binary, buf).map_err(agg_error))?;
                }
            }
        }
        Ok(())
    }
}

/// Adds one shard row's partials to the accumulators.
fn accumulate(aggs: &mut [AggSlot], row: &RowBuf) -> Result<(), MergeError> {
    for slot in aggs {
        let count = slot.count.map(|c| row.field(c));
        slot.acc
            .add(row.field(slot.arg), count.flatten())
            .map_err(agg_error)?;
    }
    Ok(())
}
