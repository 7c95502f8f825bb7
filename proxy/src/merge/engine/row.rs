//! One row held in a reusable buffer as a DataRow body, its fields located once.
//!
//! Head rows, the current group's key row, DISTINCT's previous row and finished group rows all
//! use this type, so the steady state of a merge allocates nothing per row: buffers are refilled
//! (or swapped between roles) instead of being built anew.

use bytes::{BufMut, BytesMut};

use super::MergeError;

/// Where one field's value lies in the row buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// First value byte (just after the length word).
    start: usize,
    /// One past the last value byte (== start for NULL and empty values).
    end: usize,
    /// SQL NULL (length -1).
    null: bool,
}

/// A DataRow body (int16 count, then int32 length + bytes per field) with its field spans.
#[derive(Debug, Default, Clone)]
pub(super) struct RowBuf {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

/// A malformed DataRow from a shard.
fn malformed(what: &str) -> MergeError {
    MergeError::Protocol(format!("malformed DataRow: {what}"))
}

impl RowBuf {
    /// A row with no fields.
    pub(super) const EMPTY: RowBuf = RowBuf {
        bytes: Vec::new(),
        spans: Vec::new(),
    };

    /// Copies a shard's DataRow body in and locates its fields; it must have `width` fields.
    pub(super) fn load(&mut self, body: &[u8], width: usize) -> Result<(), MergeError> {
        self.bytes.clear();
        self.bytes.extend_from_slice(body);
        self.spans.clear();
        let (count, _) = body
            .split_first_chunk::<2>()
            .ok_or_else(|| malformed("truncated"))?;
        let count = i16::from_be_bytes(*count);
        if usize::try_from(count).ok() != Some(width) {
            return Err(malformed(&format!(
                "{count} fields where the RowDescription has {width}"
            )));
        }
        let mut pos = 2;
        for _ in 0..width {
            let len = body
                .get(pos..pos + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(i32::from_be_bytes)
                .ok_or_else(|| malformed("truncated"))?;
            pos += 4;
            if len == -1 {
                self.spans.push(Span {
                    start: pos,
                    end: pos,
                    null: true,
                });
                continue;
            }
            let len = usize::try_from(len).map_err(|_| malformed("negative field length"))?;
            let end = pos
                .checked_add(len)
                .filter(|&end| end <= body.len())
                .ok_or_else(|| malformed("field runs past the message"))?;
            self.spans.push(Span {
                start: pos,
                end,
                null: false,
            });
            pos = end;
        }
        if pos != body.len() {
            return Err(malformed("trailing bytes"));
        }
        Ok(())
    }

    /// Field `i` (None = SQL NULL, or no such field).
    pub(super) fn field(&self, i: usize) -> Option<&[u8]> {
        let span = self.spans.get(i)?;
        if span.null {
            return None;
        }
        self.bytes.get(span.start..span.end)
    }

    /// Every field in order.
    pub(super) fn fields(&self) -> impl Iterator<Item = Option<&[u8]>> + '_ {
        (0..self.spans.len()).map(|i| self.field(i))
    }

    /// Empties the buffer and writes the field count of a row about to be built.
    pub(super) fn start(&mut self, count: usize) {
        self.bytes.clear();
        self.spans.clear();
        self.bytes
            .extend_from_slice(&u16::try_from(count).unwrap_or(u16::MAX).to_be_bytes());
    }

    /// Appends one field (None = NULL) to a row being built.
    pub(super) fn push(&mut self, value: Option<&[u8]>) -> Result<(), MergeError> {
        self.push_with(|buf| {
            Ok(match value {
                Some(v) => {
                    buf.extend_from_slice(v);
                    true
                }
                None => false,
            })
        })
    }

    /// Appends one field whose value `write` appends (returning false for NULL: nothing appended).
    pub(super) fn push_with(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<bool, MergeError>,
    ) -> Result<(), MergeError> {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        let start = self.bytes.len();
        if !write(&mut self.bytes)? {
            self.bytes.truncate(at);
            self.bytes.extend_from_slice(&(-1i32).to_be_bytes());
            self.spans.push(Span {
                start,
                end: start,
                null: true,
            });
            return Ok(());
        }
        let end = self.bytes.len();
        let len = i32::try_from(end - start).map_err(|_| MergeError::Value {
            code: "54000",
            message: "merged value too large".into(),
        })?;
        if let Some(word) = self.bytes.get_mut(at..start) {
            word.copy_from_slice(&len.to_be_bytes());
        }
        self.spans.push(Span {
            start,
            end,
            null: false,
        });
        Ok(())
    }

    /// Appends a DataRow message ('D' header included) holding only the first `n` fields.
    ///
    /// Fields are contiguous, so the prefix is one byte range copied as is.
    pub(super) fn write_prefix(&self, out: &mut BytesMut, n: usize) {
        let n = n.min(self.spans.len());
        let end = match n.checked_sub(1).and_then(|last| self.spans.get(last)) {
            Some(span) => span.end,
            None => 2,
        };
        let fields = self.bytes.get(2..end).unwrap_or_default();
        out.reserve(7 + fields.len());
        out.put_u8(b'D');
        // A prefix of a message that fit in an i32 (or of a row checked in push_with) fits too.
        out.put_i32(i32::try_from(6 + fields.len()).unwrap_or(i32::MAX));
        out.put_u16(u16::try_from(n).unwrap_or(u16::MAX));
        out.put_slice(fields);
    }
}
