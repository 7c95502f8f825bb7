//! Messages a client sends to the proxy (frontend -> backend direction).
//!
//! Every decoded message keeps its whole frame as `raw` (a zero-copy slice of the read buffer) so
//! the proxy can forward it unchanged; string fields are validated at decode time.

use bytes::{Bytes, BytesMut};

use super::reader::Reader;
use super::{tagged_frame_len, ProtocolError, HEADER_LEN};

pub use super::bind::{Bind, BindParams};
pub use super::startup::{decode_startup, StartupMessage};

/// What a Describe or Close names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A prepared statement ('S').
    Statement,
    /// A portal ('P').
    Portal,
}

impl Target {
    /// The wire byte: 'S' or 'P'.
    pub fn as_byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }

    /// The target for a wire byte, if it is 'S' or 'P'.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'S' => Some(Target::Statement),
            b'P' => Some(Target::Portal),
            _ => None,
        }
    }
}

/// One tagged message from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage {
    /// 'Q': simple query.
    Query(Query),
    /// 'P': prepare a statement.
    Parse(Parse),
    /// 'B': bind parameters to a statement, creating a portal.
    Bind(Bind),
    /// 'D': describe a statement or portal.
    Describe(Describe),
    /// 'E': execute a portal.
    Execute(Execute),
    /// 'C': close a statement or portal.
    Close(Close),
    /// 'S': end of an extended-query batch.
    Sync,
    /// 'H': ask the server to flush its output.
    Flush,
    /// 'X': the client is leaving.
    Terminate,
    /// 'd': COPY data; the whole frame incl. header, for forwarding.
    CopyData(Bytes),
    /// 'c': COPY finished.
    CopyDone,
    /// 'f': COPY aborted by the client; the whole frame.
    CopyFail(Bytes),
    /// 'F': fast-path function call; the whole frame.
    FunctionCall(Bytes),
    /// 'p': password / SASLInitialResponse / SASLResponse; body only (after the length).
    Password(Bytes),
}

/// A simple Query ('Q').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The whole frame including tag and length.
    pub raw: Bytes,
}

impl Query {
    /// The SQL text, without the NUL (validated UTF-8 at decode).
    pub fn sql(&self) -> &str {
        // The frame ends in the NUL; the text sits between header and NUL.
        let end = self.raw.len().saturating_sub(1);
        str_at(&self.raw, HEADER_LEN, end)
    }
}

/// A Parse ('P').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse {
    /// The whole frame including tag and length.
    pub raw: Bytes,
    /// Prepared statement name ("" = unnamed).
    pub name: String,
    /// Parameter type OIDs the client specified (0 = unspecified).
    pub param_types: Vec<u32>,
    /// Offset of the query text in `raw`.
    query_start: usize,
    /// Offset just past the query text (its NUL) in `raw`.
    query_end: usize,
}

impl Parse {
    /// The query text, without the NUL (validated UTF-8 at decode).
    pub fn query(&self) -> &str {
        str_at(&self.raw, self.query_start, self.query_end)
    }
}

/// A Describe ('D').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    /// The whole frame including tag and length.
    pub raw: Bytes,
    /// Statement or portal.
    pub target: Target,
    /// Its name ("" = unnamed).
    pub name: String,
}

/// An Execute ('E').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    /// The whole frame including tag and length.
    pub raw: Bytes,
    /// Portal name ("" = unnamed).
    pub portal: String,
    /// Row limit; 0 (or negative) means no limit.
    pub max_rows: i32,
}

/// A Close ('C').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The whole frame including tag and length.
    pub raw: Bytes,
    /// Statement or portal.
    pub target: Target,
    /// Its name ("" = unnamed).
    pub name: String,
}

/// Text already validated at decode; re-checked (cheaply, without unsafe) rather than trusted.
fn str_at(raw: &[u8], start: usize, end: usize) -> &str {
    raw.get(start..end)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default()
}

/// Decodes one tagged message. `None` = need more bytes. `max_len` is the largest allowed
/// message length (bytes after the tag); larger claims fail before any buffering or allocation.
/// Length < 4 is `InvalidLength`.
pub fn decode(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<FrontendMessage>, ProtocolError> {
    // Refuse an unknown tag as soon as it arrives, before trusting its length.
    if let Some(&tag) = buf.first() {
        if !is_frontend_tag(tag) {
            return Err(ProtocolError::UnknownMessage(char::from(tag)));
        }
    }
    let Some((tag, total)) = tagged_frame_len(buf, max_len)? else {
        return Ok(None);
    };
    let raw = buf.split_to(total).freeze();
    decode_frame(tag, raw).map(Some)
}

/// Tags a client may send once the startup phase is over.
fn is_frontend_tag(tag: u8) -> bool {
    matches!(
        tag,
        b'Q' | b'P'
            | b'B'
            | b'D'
            | b'E'
            | b'C'
            | b'S'
            | b'H'
            | b'X'
            | b'd'
            | b'c'
            | b'f'
            | b'F'
            | b'p'
    )
}

/// Decodes one complete frame whose tag is known to be a frontend tag.
fn decode_frame(tag: u8, raw: Bytes) -> Result<FrontendMessage, ProtocolError> {
    let body = raw.get(HEADER_LEN..).unwrap_or_default();
    let message = match tag {
        b'Q' => {
            check_cstr_body(body, "Query")?;
            FrontendMessage::Query(Query { raw })
        }
        b'P' => FrontendMessage::Parse(decode_parse(raw)?),
        b'B' => FrontendMessage::Bind(Bind::decode(raw)?),
        b'D' => {
            let (target, name) = decode_target(body, "Describe")?;
            FrontendMessage::Describe(Describe { raw, target, name })
        }
        b'E' => {
            let mut r = Reader::new(body, "Execute");
            let portal = r.string()?;
            let max_rows = r.i32()?;
            r.finish()?;
            FrontendMessage::Execute(Execute {
                raw,
                portal,
                max_rows,
            })
        }
        b'C' => {
            let (target, name) = decode_target(body, "Close")?;
            FrontendMessage::Close(Close { raw, target, name })
        }
        b'S' => empty(body, "Sync", FrontendMessage::Sync)?,
        b'H' => empty(body, "Flush", FrontendMessage::Flush)?,
        b'X' => empty(body, "Terminate", FrontendMessage::Terminate)?,
        b'c' => empty(body, "CopyDone", FrontendMessage::CopyDone)?,
        b'd' => FrontendMessage::CopyData(raw),
        b'f' => FrontendMessage::CopyFail(raw),
        b'F' => FrontendMessage::FunctionCall(raw),
        b'p' => FrontendMessage::Password(raw.slice(HEADER_LEN..)),
        other => return Err(ProtocolError::UnknownMessage(char::from(other))),
    };
    Ok(message)
}

/// A body that is exactly one UTF-8 string and its NUL.
fn check_cstr_body(body: &[u8], what: &'static str) -> Result<(), ProtocolError> {
    let Some((&0, text)) = body.split_last() else {
        return Err(ProtocolError::Malformed(what));
    };
    // `contains` on bytes is memchr-accelerated; the SQL text is the hot path.
    if text.contains(&0) {
        return Err(ProtocolError::Malformed(what));
    }
    std::str::from_utf8(text).map_err(|_| ProtocolError::InvalidUtf8(what))?;
    Ok(())
}

fn decode_parse(raw: Bytes) -> Result<Parse, ProtocolError> {
    let mut r = Reader::new(raw.get(HEADER_LEN..).unwrap_or_default(), "Parse");
    let name = r.string()?;
    let query_start = HEADER_LEN + r.pos();
    let query = r.str()?;
    let query_end = query_start + query.len();
    let count = usize::from(r.u16()?);
    // Bound the allocation by the bytes present, not by the claimed count.
    let oids = r.bytes(count * 4)?;
    r.finish()?;
    let param_types = oids
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Parse {
        raw,
        name,
        param_types,
        query_start,
        query_end,
    })
}

/// The body of Describe and Close: a target byte and a name.
fn decode_target(body: &[u8], what: &'static str) -> Result<(Target, String), ProtocolError> {
    let mut r = Reader::new(body, what);
    let target = Target::from_byte(r.u8()?).ok_or(ProtocolError::Malformed(what))?;
    let name = r.string()?;
    r.finish()?;
    Ok((target, name))
}

/// A message with no body.
fn empty(
    body: &[u8],
    what: &'static str,
    message: FrontendMessage,
) -> Result<FrontendMessage, ProtocolError> {
    if body.is_empty() {
        Ok(message)
    } else {
        Err(ProtocolError::Malformed(what))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#[path = "frontend_tests.rs"]
mod tests;
