//! The PostgreSQL wire protocol (v3) codec: framing, decoders and encoders.
//!
//! No I/O and no knowledge of sharding. Decoders take bytes already read into a `BytesMut` and
//! split complete frames off it without copying; encoders append one message to a `BytesMut`.
//! `Ok(None)` from a decoder means "need more bytes"; an error means the stream is invalid and the
//! connection should be closed (the buffer's state after an error is unspecified).

pub mod backend;
mod bind;
pub mod encode;
pub mod frontend;
mod reader;
mod startup;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod roundtrip_tests;

/// Largest startup packet accepted (as PostgreSQL: 10_000 bytes).
pub const MAX_STARTUP_PACKET: usize = 10_000;

/// Bytes before a tagged message's body: the tag byte and the 4-byte length.
pub(crate) const HEADER_LEN: usize = 5;

/// Why bytes could not be decoded as protocol messages.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A length field below the minimum for its message (or negative).
    #[error("invalid message length {0}")]
    InvalidLength(i64),
    /// A length field above the caller's limit; refused before any buffering.
    #[error("message of {0} bytes exceeds the limit of {1} bytes")]
    TooLarge(usize, usize),
    /// A message tag this side of the protocol does not know.
    #[error("unknown message type {0:?}")]
    UnknownMessage(char),
    /// A startup packet asking for a protocol version or request code we do not speak.
    #[error("unsupported protocol version {0}.{1}")]
    UnsupportedVersion(u16, u16),
    /// A message whose body does not match its format (truncated, bad counts, trailing bytes...).
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// A string field that is not valid UTF-8.
    #[error("invalid UTF-8 in {0} message")]
    InvalidUtf8(&'static str),
}

/// If `buf` starts with a complete tagged message, its (tag, total length incl. tag byte).
///
/// The length is checked against `max_len` as soon as the header is present, so an oversized
/// claim fails before the caller buffers any of its body.
pub(crate) fn tagged_frame_len(
    buf: &[u8],
    max_len: usize,
) -> Result<Option<(u8, usize)>, ProtocolError> {
    let Some(&[tag, a, b, c, d]) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([a, b, c, d]);
    if len < 4 {
        return Err(ProtocolError::InvalidLength(i64::from(len)));
    }
    // `len` is positive here, so the conversion is lossless.
    let len = len.unsigned_abs() as usize;
    if len > max_len {
        return Err(ProtocolError::TooLarge(len, max_len));
    }
    let total = len + 1;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((tag, total)))
}
