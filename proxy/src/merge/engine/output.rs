//! The last steps before the client: OFFSET/LIMIT and the final sort's buffer.

use std::cmp::Ordering;

use super::heads::{compare_rows, KeySpec};
use super::row::RowBuf;
use super::MergeError;

/// OFFSET and LIMIT over the final rows.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    /// Rows still to skip.
    skip: u64,
    /// Rows still allowed (None: no limit).
    left: Option<u64>,
}

impl Window {
    /// A window skipping `offset` rows, then passing at most `limit`.
    pub(super) fn new(offset: u64, limit: Option<u64>) -> Window {
        Window {
            skip: offset,
            left: limit,
        }
    }

    /// The limit is reached: no further row can pass.
    pub(super) fn full(&self) -> bool {
        self.left == Some(0)
    }

    /// Whether the next final row goes to the client (counting it against OFFSET or LIMIT).
    pub(super) fn admit(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        match &mut self.left {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        }
    }
}

/// Final rows buffered for the final sort, then handed out in order.
#[derive(Debug, Default)]
pub(super) struct Sorted {
    rows: Vec<RowBuf>,
    next: usize,
}

impl Sorted {
    /// Buffers one final row.
    pub(super) fn push(&mut self, row: &RowBuf) {
        self.rows.push(row.clone());
    }

    /// Sorts the buffered rows by `keys`, stably (equal rows keep their merge order).
    pub(super) fn sort(&mut self, keys: &[KeySpec]) -> Result<(), MergeError> {
        let mut error = None;
        self.rows.sort_by(|a, b| {
            compare_rows(a, b, keys).unwrap_or_else(|e| {
                error.get_or_insert(e);
                Ordering::Equal
            })
        });
        error.map_or(Ok(()), Err)
    }

    /// The next row in sorted order (None once all were handed out; the buffer is then freed).
    pub(super) fn next(&mut self) -> Option<&RowBuf> {
        if self.next >= self.rows.len() {
            self.rows = Vec::new();
            self.next = 0;
            return None;
        }
        self.next += 1;
        self.rows.get(self.next - 1)
    }
}
