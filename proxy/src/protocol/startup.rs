//! The first, untagged packet a client sends: a startup message or a special request.

use bytes::BytesMut;

use super::reader::Reader;
use super::{ProtocolError, MAX_STARTUP_PACKET};

/// Request code of an SSLRequest.
pub(crate) const SSL_REQUEST_CODE: u32 = 80_877_103;
/// Request code of a GSSENCRequest.
pub(crate) const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// Request code of a CancelRequest.
pub(crate) const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// Protocol version 3.0 as sent in a StartupMessage.
pub(crate) const PROTOCOL_3_0: u32 = 3 << 16;

/// The first packet of a client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMessage {
    /// The client asks to switch to TLS.
    SslRequest,
    /// The client asks to switch to GSSAPI encryption.
    GssEncRequest,
    /// The client asks to cancel the query running on the session with this key.
    Cancel {
        /// Process id the proxy handed out in BackendKeyData.
        process_id: i32,
        /// Secret key the proxy handed out in BackendKeyData.
        secret_key: i32,
    },
    /// A protocol 3.x StartupMessage.
    Startup {
        /// Parameters (`user`, `database`, `options`, GUCs, `_pq_.*` extensions) in wire order.
        params: Vec<(String, String)>,
        /// The requested protocol minor version. Anything above 0 is served as 3.0: the caller
        /// must answer with NegotiateProtocolVersion (see `encode::negotiate_protocol_version`).
        minor: u16,
    },
}

/// Decodes the first (untagged) packet. `None` = need more bytes. Length < 8 or
/// > `MAX_STARTUP_PACKET` is an error. Unknown request codes -> `UnsupportedVersion`.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<StartupMessage>, ProtocolError> {
    let Some(&[a, b, c, d]) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([a, b, c, d]);
    if len < 8 {
        return Err(ProtocolError::InvalidLength(i64::from(len)));
    }
    let len = len.unsigned_abs() as usize;
    if len > MAX_STARTUP_PACKET {
        return Err(ProtocolError::TooLarge(len, MAX_STARTUP_PACKET));
    }
    if buf.len() < len {
        // Bounded by MAX_STARTUP_PACKET, so reserving the rest up front is safe.
        buf.reserve(len - buf.len());
        return Ok(None);
    }
    let packet = buf.split_to(len);
    let mut r = Reader::new(packet.get(4..).unwrap_or_default(), "startup");
    let code = r.u32()?;
    let message = match code {
        SSL_REQUEST_CODE => {
            finish(&r, "SSLRequest")?;
            StartupMessage::SslRequest
        }
        GSSENC_REQUEST_CODE => {
            finish(&r, "GSSENCRequest")?;
            StartupMessage::GssEncRequest
        }
        CANCEL_REQUEST_CODE => {
            let mut r = Reader::new(r.rest(), "CancelRequest");
            let process_id = r.i32()?;
            let secret_key = r.i32()?;
            r.finish()?;
            StartupMessage::Cancel {
                process_id,
                secret_key,
            }
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(ProtocolError::UnsupportedVersion(major, minor));
            }
            let params = parse_params(Reader::new(r.rest(), "StartupMessage"))?;
            StartupMessage::Startup { params, minor }
        }
    };
    Ok(Some(message))
}

/// Fails unless a fixed-size request had nothing after its code.
fn finish(r: &Reader<'_>, what: &'static str) -> Result<(), ProtocolError> {
    if r.remaining() == 0 {
        Ok(())
    } else {
        Err(ProtocolError::Malformed(what))
    }
}

/// Name/value pairs terminated by an empty name, which must be the packet's last byte.
fn parse_params(mut r: Reader<'_>) -> Result<Vec<(String, String)>, ProtocolError> {
    let mut params = Vec::new();
    loop {
        let name = r.str()?;
        if name.is_empty() {
            r.finish()?;
            return Ok(params);
        }
        let value = r.string()?;
        params.push((name.to_owned(), value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use bytes::BufMut;

    fn packet(code: u32, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32(8 + body.len() as i32);
        b.put_u32(code);
        b.put_slice(body);
        b
    }

    fn decode_all(bytes: &[u8]) -> Result<Option<StartupMessage>, ProtocolError> {
        decode_startup(&mut BytesMut::from(bytes))
    }

    #[test]
    fn decodes_startup_with_params() {
        let mut buf = packet(PROTOCOL_3_0, b"user\0app\0database\0db\0\0");
        buf.put_slice(b"extra");
        let msg = decode_startup(&mut buf).unwrap().unwrap();
        assert_eq!(
            msg,
            StartupMessage::Startup {
                params: vec![
                    ("user".into(), "app".into()),
                    ("database".into(), "db".into())
                ],
                minor: 0
            }
        );
        assert_eq!(&buf[..], b"extra");
    }

    #[test]
    fn accepts_newer_minor_versions() {
        let msg = decode_all(&packet(PROTOCOL_3_0 | 2, b"user\0u\0_pq_.x\0y\0\0")).unwrap();
        assert_eq!(
            msg,
            Some(StartupMessage::Startup {
                params: vec![("user".into(), "u".into()), ("_pq_.x".into(), "y".into())],
                minor: 2
            })
        );
    }

    #[test]
    fn decodes_special_requests() {
        assert_eq!(
            decode_all(&packet(SSL_REQUEST_CODE, b"")).unwrap(),
            Some(StartupMessage::SslRequest)
        );
        assert_eq!(
            decode_all(&packet(GSSENC_REQUEST_CODE, b"")).unwrap(),
            Some(StartupMessage::GssEncRequest)
        );
        assert_eq!(
            decode_all(&packet(
                CANCEL_REQUEST_CODE,
                &[0, 0, 0, 7, 0xff, 0xff, 0xff, 0xfe]
            ))
            .unwrap(),
            Some(StartupMessage::Cancel {
                process_id: 7,
                secret_key: -2
            })
        );
    }

    #[test]
    fn refuses_bad_lengths() {
        assert_eq!(
            decode_all(&[0, 0, 0, 7, 0, 0, 0, 0]),
            Err(ProtocolError::InvalidLength(7))
        );
        assert_eq!(
            decode_all(&[0xff, 0xff, 0xff, 0xff]),
            Err(ProtocolError::InvalidLength(-1))
        );
        assert_eq!(
            decode_all(&10_001i32.to_be_bytes()),
            Err(ProtocolError::TooLarge(10_001, MAX_STARTUP_PACKET))
        );
        // A TLS ClientHello sent without SSLRequest reads as a huge length.
        assert!(matches!(
            decode_all(&[0x16, 0x03, 0x01, 0x02]),
            Err(ProtocolError::TooLarge(..))
        ));
    }

    #[test]
    fn huge_claim_does_not_allocate() {
        let mut buf = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert!(decode_startup(&mut buf).is_err());
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn refuses_unknown_versions_and_codes() {
        assert_eq!(
            decode_all(&packet(2 << 16, b"user\0u\0\0")),
            Err(ProtocolError::UnsupportedVersion(2, 0))
        );
        assert_eq!(
            decode_all(&packet(80_877_105, b"")),
            Err(ProtocolError::UnsupportedVersion(1234, 5681))
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        let m = |w| Err(ProtocolError::Malformed(w));
        assert_eq!(decode_all(&packet(SSL_REQUEST_CODE, b"x")), m("SSLRequest"));
        assert_eq!(
            decode_all(&packet(GSSENC_REQUEST_CODE, b"x")),
            m("GSSENCRequest")
        );
        assert_eq!(
            decode_all(&packet(CANCEL_REQUEST_CODE, b"1234")),
            m("CancelRequest")
        );
        assert_eq!(
            decode_all(&packet(CANCEL_REQUEST_CODE, b"123456789")),
            m("CancelRequest")
        );
        // Missing final terminator, missing value, missing NUL, trailing bytes.
        assert_eq!(
            decode_all(&packet(PROTOCOL_3_0, b"user\0u\0")),
            m("StartupMessage")
        );
        assert_eq!(
            decode_all(&packet(PROTOCOL_3_0, b"user\0\0")),
            m("StartupMessage")
        );
        assert_eq!(
            decode_all(&packet(PROTOCOL_3_0, b"user")),
            m("StartupMessage")
        );
        assert_eq!(
            decode_all(&packet(PROTOCOL_3_0, b"\0x")),
            m("StartupMessage")
        );
        assert_eq!(
            decode_all(&packet(PROTOCOL_3_0, b"user\0\xff\0\0")),
            Err(ProtocolError::InvalidUtf8("StartupMessage"))
        );
    }

    #[test]
    fn needs_more_bytes_at_every_split() {
        let full = packet(PROTOCOL_3_0, b"user\0app\0\0");
        let mut buf = BytesMut::new();
        for (i, byte) in full.iter().enumerate() {
            buf.put_u8(*byte);
            let got = decode_startup(&mut buf).unwrap();
            assert_eq!(got.is_some(), i + 1 == full.len(), "at byte {i}");
        }
        assert!(buf.is_empty());
    }
}
