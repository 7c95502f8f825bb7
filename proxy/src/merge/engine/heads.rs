//! The k-way merge: one buffered head row per shard stream, the smallest taken next.
//!
//! Holding at most one row per stream is what bounds the merge's memory: a stream is read only
//! when its head has been taken and the merge cannot decide without its next row.
//! The smallest head is kept in a winner tree (a tournament over the streams), so taking a row
//! costs about log2(streams) key comparisons rather than one per stream.

use std::cmp::Ordering;

use super::row::RowBuf;
use super::{compare_error, MergeError};
use crate::merge::compare::{compare, ColumnType, SortSpec};

/// One resolved sort (or equality) key: a column index of the rows compared.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeySpec {
    /// Column index in the row.
    pub col: usize,
    /// The column's type and format.
    pub ty: ColumnType,
    /// Direction and NULL placement.
    pub spec: SortSpec,
}

/// Orders two rows by `keys` (the first unequal key decides).
pub(super) fn compare_rows(
    a: &RowBuf,
    b: &RowBuf,
    keys: &[KeySpec],
) -> Result<Ordering, MergeError> {
    for key in keys {
        let ord =
            compare(a.field(key.col), b.field(key.col), key.ty, key.spec).map_err(compare_error)?;
        if ord != Ordering::Equal {
            return Ok(ord);
        }
    }
    Ok(Ordering::Equal)
}

/// Which head the merge takes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pick {
    /// Stream `s`'s head.
    Stream(usize),
    /// A stream must be read first (see [`Heads::needed`]).
    NeedInput,
    /// Every stream ended and every head was taken.
    Exhausted,
}

/// The streams' head rows and end flags.
#[derive(Debug)]
pub(super) struct Heads {
    rows: Vec<RowBuf>,
    has: Vec<bool>,
    ended: Vec<bool>,
    /// Merge by the sort keys (false: take rows in any order).
    ordered: bool,
    /// Unordered merges read the streams in turn, starting here, so that every shard keeps
    /// streaming instead of waiting, its socket full, for the streams before it to end.
    turn: usize,
    /// Winner tree: node 1 is the root, node i's children are 2i and 2i+1, the leaves (from
    /// index `leaves`) are the streams; each node holds the best head below it (None: no head).
    tree: Vec<Option<usize>>,
    /// Index of the first leaf (a power of two, >= the number of streams).
    leaves: usize,
    /// Streams whose head changed since the tree was last brought up to date.
    dirty: Vec<usize>,
    /// `dirty` membership, per stream.
    is_dirty: Vec<bool>,
}

impl Heads {
    /// `streams` empty streams; `ordered` when the merge has sort keys.
    pub(super) fn new(streams: usize, ordered: bool) -> Heads {
        let leaves = streams.max(1).next_power_of_two();
        Heads {
            rows: vec![RowBuf::default(); streams],
            has: vec![false; streams],
            ended: vec![false; streams],
            ordered,
            turn: 0,
            tree: vec![None; 2 * leaves],
            leaves,
            dirty: (0..streams).collect(),
            is_dirty: vec![true; streams],
        }
    }

    /// Sets whether heads are merged by sort keys (known once the plan is resolved).
    pub(super) fn set_ordered(&mut self, ordered: bool) {
        self.ordered = ordered;
    }

    /// Buffers stream `s`'s next row (a DataRow body of `width` fields).
    pub(super) fn push(&mut self, s: usize, body: &[u8], width: usize) -> Result<(), MergeError> {
        match (self.has.get(s), self.ended.get(s)) {
            (None, _) | (_, None) => Err(no_stream(s)),
            (_, Some(true)) => Err(MergeError::Protocol(format!(
                "stream {s} sent a row after its end"
            ))),
            (Some(true), _) => Err(MergeError::Protocol(format!(
                "stream {s} sent a row before its previous one was merged"
            ))),
            _ => {
                let row = self.rows.get_mut(s).ok_or_else(|| no_stream(s))?;
                row.load(body, width)?;
                self.set_has(s, true);
                self.turn = s + 1;
                Ok(())
            }
        }
    }

    /// Stream `s` has no more rows.
    pub(super) fn end(&mut self, s: usize) -> Result<(), MergeError> {
        let ended = self.ended.get_mut(s).ok_or_else(|| no_stream(s))?;
        *ended = true;
        Ok(())
    }

    /// The stream that must be read before the next pick, if any: the first live stream without
    /// a head (ordered), or, when no head is buffered at all, the next live stream in turn
    /// (unordered).
    pub(super) fn needed(&self) -> Option<usize> {
        let n = self.has.len();
        let missing = |s: &usize| !self.has[*s] && !self.ended[*s];
        if self.ordered {
            return (0..n).find(missing);
        }
        if self.has.iter().any(|&h| h) {
            return None;
        }
        (0..n).map(|i| (self.turn + i) % n).find(missing)
    }

    /// The head to take next: the smallest by `keys` (the same `keys` on every call), ties to
    /// the lower stream index; unordered, any head.
    pub(super) fn pick(&mut self, keys: &[KeySpec]) -> Result<Pick, MergeError> {
        if self.needed().is_some() {
            return Ok(Pick::NeedInput);
        }
        let best = if self.ordered {
            self.refresh(keys)?;
            self.tree.get(1).copied().flatten()
        } else {
            self.has.iter().position(|&h| h)
        };
        Ok(best.map_or(Pick::Exhausted, Pick::Stream))
    }

    /// Replays the tournament from every changed stream's leaf up to the root.
    fn refresh(&mut self, keys: &[KeySpec]) -> Result<(), MergeError> {
        while let Some(&s) = self.dirty.last() {
            let mut node = self.leaves + s;
            self.tree[node] = self.has[s].then_some(s);
            while node > 1 {
                node /= 2;
                let winner = self.better(self.tree[2 * node], self.tree[2 * node + 1], keys)?;
                self.tree[node] = winner;
            }
            self.dirty.pop();
            self.is_dirty[s] = false;
        }
        Ok(())
    }

    /// The better of two streams' heads (None: no head), ties to the lower stream index.
    fn better(
        &self,
        a: Option<usize>,
        b: Option<usize>,
        keys: &[KeySpec],
    ) -> Result<Option<usize>, MergeError> {
        let (Some(a), Some(b)) = (a, b) else {
            return Ok(a.or(b));
        };
        Ok(Some(
            match compare_rows(&self.rows[a], &self.rows[b], keys)? {
                Ordering::Less => a,
                Ordering::Greater => b,
                Ordering::Equal => a.min(b),
            },
        ))
    }

    /// Stream `s`'s head row (empty if none).
    pub(super) fn row(&self, s: usize) -> &RowBuf {
        static EMPTY: RowBuf = RowBuf::EMPTY;
        self.rows.get(s).unwrap_or(&EMPTY)
    }

    /// Drops stream `s`'s head (its buffer is kept for the next row).
    pub(super) fn take(&mut self, s: usize) {
        self.set_has(s, false);
    }

    /// Takes stream `s`'s head by swapping it with `other` (which becomes its spare buffer).
    pub(super) fn take_into(&mut self, s: usize, other: &mut RowBuf) {
        if let Some(row) = self.rows.get_mut(s) {
            std::mem::swap(row, other);
        }
        self.set_has(s, false);
    }

    /// Sets stream `s`'s head flag (and marks its leaf for the next replay).
    fn set_has(&mut self, s: usize, value: bool) {
        if let (Some(has), Some(dirty)) = (self.has.get_mut(s), self.is_dirty.get_mut(s)) {
            *has = value;
            if !*dirty {
                *dirty = true;
                self.dirty.push(s);
            }
        }
    }
}

/// A stream index out of range (a caller bug, reported rather than panicking).
fn no_stream(s: usize) -> MergeError {
    MergeError::Protocol(format!("no stream {s} in this merge"))
}
