//! The row splitter: PostgreSQL's `CopyReadLineText` line rules over chunked input.

use bytes::{Bytes, BytesMut};

use super::{bad_format, CopyError, CopyFormat, DEFAULT_MAX_ROW_BYTES};

/// The newline style, fixed by the first line as PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Unknown,
    Nl,
    Cr,
    CrNl,
}

impl Eol {
    fn bytes(self) -> &'static [u8] {
        match self {
            Eol::Cr => b"\r",
            Eol::CrNl => b"\r\n",
            Eol::Unknown | Eol::Nl => b"\n",
        }
    }
}

/// What the scanner found in the data of the current row.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A row ends here (exclusive, terminator included).
    Row(usize),
    /// The `\.` end marker: everything from here on is ignored.
    End,
    /// More data is needed.
    Need,
}

/// Line-splitting state that survives across chunks, so every byte is scanned once.
#[derive(Debug)]
struct Scanner {
    /// Bytes of the current row already scanned.
    pos: usize,
    in_quote: bool,
    last_was_esc: bool,
    eol: Eol,
}

impl Scanner {
    /// Accepts a newline sequence of style `seen`, or fails on a mixed style.
    fn newline(&mut self, seen: Eol) -> Result<(), CopyError> {
        match (self.eol, seen) {
            (Eol::Unknown, s) => self.eol = s,
            (a, b) if a == b => {}
            (_, Eol::Nl) => return Err(bad_format("literal newline found in data")),
            _ => return Err(bad_format("literal carriage return found in data")),
        }
        Ok(())
    }

    /// The newline starting at `data[i]` (`\n`, `\r` or `\r\n`): its length, or `None` when a
    /// `\r` is the last byte and the style is not yet known.
    fn newline_at(&mut self, data: &[u8], i: usize, eof: bool) -> Result<Option<usize>, CopyError> {
        match data.get(i) {
            Some(b'\n') => self.newline(Eol::Nl).map(|()| Some(1)),
            Some(b'\r') => match data.get(i + 1) {
                Some(b'\n') => self.newline(Eol::CrNl).map(|()| Some(2)),
                None if !eof && self.eol != Eol::Cr => Ok(None),
                _ => self.newline(Eol::Cr).map(|()| Some(1)),
            },
            _ => Ok(Some(0)),
        }
    }

    /// The `\.` end marker at the start of a row: `Some(true)` it is one, `Some(false)` it is
    /// not, `None` more data is needed.
    fn end_marker(&mut self, data: &[u8], csv: bool, eof: bool) -> Result<Option<bool>, CopyError> {
        match data {
            [] | [b'\\'] | [b'\\', b'.'] if !eof => return Ok(None),
            [b'\\', b'.'] => return Ok(Some(true)),
            [b'\\', b'.', b'\n' | b'\r', ..] => {}
            [b'\\', b'.', ..] if !csv => return Err(bad_format("end-of-copy marker corrupt")),
            _ => return Ok(Some(false)),
        }
        match self.newline_at(data, 2, eof) {
            Ok(None) => Ok(None),
            Ok(Some(_)) => Ok(Some(true)),
            Err(_) => Err(bad_format(
                "end-of-copy marker does not match previous newline style",
            )),
        }
    }

    /// Scans `data` (the current row's bytes from its start) for the row's end.
    fn step(&mut self, data: &[u8], format: &CopyFormat, eof: bool) -> Result<Step, CopyError> {
        if self.pos == 0 {
            match self.end_marker(data, format.csv, eof)? {
                None => return Ok(Step::Need),
                Some(true) => return Ok(Step::End),
                Some(false) => {}
            }
        }
        // With escape == quote, quotes simply toggle (PostgreSQL disables the escape then).
        let escape = (format.escape != format.quote).then_some(format.escape);
        let mut i = self.pos;
        while let Some(&c) = data.get(i) {
            if format.csv {
                if self.in_quote && Some(c) == escape {
                    self.last_was_esc = !self.last_was_esc;
                }
                if c == format.quote && !self.last_was_esc {
                    self.in_quote = !self.in_quote;
                }
                if Some(c) != escape {
                    self.last_was_esc = false;
                }
                if self.in_quote {
                    i += 1;
                    continue;
                }
            } else if c == b'\\' {
                match data.get(i + 1) {
                    // At the end of the data PostgreSQL drops a dangling backslash; `finish` does.
                    None => break,
                    Some(b'.') => {
                        return Err(bad_format(
                            "end-of-copy marker \\. must be alone on its line",
                        ))
                    }
                    Some(_) => {
                        i += 2;
                        continue;
                    }
                }
            }
            if c == b'\n' || c == b'\r' {
                match self.newline_at(data, i, eof)? {
                    Some(n) => return Ok(Step::Row(i + n)),
                    None => break,
                }
            }
            i += 1;
        }
        self.pos = i.min(data.len());
        Ok(Step::Need)
    }

    /// Forgets the finished row (the newline style stays).
    fn next_row(&mut self) {
        self.pos = 0;
        self.in_quote = false;
        self.last_was_esc = false;
    }
}

/// Incremental row splitter: feed CopyData payloads (rows may span chunks; CSV quoted fields may
/// hold newlines) and get complete rows back, each a `Bytes` including its line terminator, so
/// the rows of one shard concatenated are valid COPY data for it.
///
/// The header line (HEADER option) is not returned as a row: either send the shards the COPY
/// statement without HEADER, or send each shard [`RowSplitter::header`] first.
#[derive(Debug)]
pub struct RowSplitter {
    format: CopyFormat,
    /// The unfinished row (only its bytes; complete rows are split off at once).
    buf: BytesMut,
    scanner: Scanner,
    header_pending: bool,
    header: Option<Bytes>,
    done: bool,
    max_row: usize,
}

impl RowSplitter {
    /// A splitter with the default row limit.
    pub fn new(format: CopyFormat) -> Self {
        RowSplitter::with_max_row(format, DEFAULT_MAX_ROW_BYTES)
    }

    /// A splitter refusing rows longer than `max_row` bytes.
    pub fn with_max_row(format: CopyFormat, max_row: usize) -> Self {
        RowSplitter {
            header_pending: format.header,
            format,
            buf: BytesMut::new(),
            scanner: Scanner {
                pos: 0,
                in_quote: false,
                last_was_esc: false,
                eol: Eol::Unknown,
            },
            header: None,
            done: false,
            max_row,
        }
    }

    /// The format rows are split by.
    pub fn format(&self) -> &CopyFormat {
        &self.format
    }

    /// The header line once read (with its terminator).
    pub fn header(&self) -> Option<&Bytes> {
        self.header.as_ref()
    }

    /// True once the `\.` end marker was read (later data is ignored, as PostgreSQL does).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Records a complete row, or the header.
    fn emit(&mut self, row: Bytes, rows: &mut Vec<Bytes>) -> Result<(), CopyError> {
        self.scanner.next_row();
        if row.len() > self.max_row {
            return Err(CopyError::RowTooLarge {
                limit: self.max_row,
            });
        }
        if self.header_pending {
            self.header_pending = false;
            self.header = Some(row);
        } else {
            rows.push(row);
        }
        Ok(())
    }

    /// Splits the rows off the internal buffer.
    fn drain(&mut self, eof: bool, rows: &mut Vec<Bytes>) -> Result<(), CopyError> {
        while !self.done {
            match self.scanner.step(&self.buf, &self.format, eof)? {
                Step::Row(end) => {
                    let row = self.buf.split_to(end).freeze();
                    self.emit(row, rows)?;
                }
                Step::End => {
                    self.done = true;
                    self.buf.clear();
                }
                Step::Need => break,
            }
        }
        if self.buf.len() > self.max_row {
            return Err(CopyError::RowTooLarge {
                limit: self.max_row,
            });
        }
        Ok(())
    }

    /// Appends data; returns the rows it completed (the header line and the `\.` end marker are
    /// not rows). Copies the chunk once into the pending buffer; see [`RowSplitter::push_bytes`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, CopyError> {
        let mut rows = Vec::new();
        if !self.done {
            self.buf.extend_from_slice(chunk);
            self.drain(false, &mut rows)?;
        }
        Ok(rows)
    }

    /// Like [`RowSplitter::push`], but rows lying wholly inside `chunk` are slices of it (no
    /// copy); only an unfinished last row is copied.
    pub fn push_bytes(&mut self, chunk: Bytes) -> Result<Vec<Bytes>, CopyError> {
        if !self.buf.is_empty() || self.done {
            return self.push(&chunk);
        }
        let mut rows = Vec::new();
        let mut start = 0;
        while let Some(data) = chunk.get(start..) {
            match self.scanner.step(data, &self.format, false)? {
                Step::Row(len) => {
                    self.emit(chunk.slice(start..start + len), &mut rows)?;
                    start += len;
                }
                Step::End => {
                    self.done = true;
                    break;
                }
                Step::Need => {
                    self.buf.extend_from_slice(data);
                    if self.buf.len() > self.max_row {
                        return Err(CopyError::RowTooLarge {
                            limit: self.max_row,
                        });
                    }
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// At CopyDone: the rows still pending, the last one given a terminator if the data did
    /// not end with one (so every row ends with a newline).
    pub fn finish(&mut self) -> Result<Vec<Bytes>, CopyError> {
        let mut rows = Vec::new();
        self.drain(true, &mut rows)?;
        if self.done || self.buf.is_empty() {
            self.buf.clear();
            return Ok(rows);
        }
        if self.format.csv && self.scanner.in_quote {
            return Err(bad_format("unterminated CSV quoted field"));
        }
        let mut last = std::mem::take(&mut self.buf);
        if !self.format.csv && last.last() == Some(&b'\\') && self.scanner.pos + 1 == last.len() {
            // An unpaired trailing backslash escapes nothing; before our newline it would
            // escape that, so drop it (PostgreSQL ignores it at the end of a line).
            last.truncate(last.len() - 1);
        }
        last.extend_from_slice(self.scanner.eol.bytes());
        self.emit(last.freeze(), &mut rows)?;
        self.done = true;
        Ok(rows)
    }
}
