//! Messages a PostgreSQL server sends (backend -> frontend direction).
//!
//! The proxy forwards backend bytes mostly untouched, so the core is a header scanner
//! ([`frame_len`]) plus parsers for the few messages the proxy inspects. Parser inputs are
//! bodies: the bytes after tag and length.

use bytes::Bytes;

use super::reader::Reader;
use super::{tagged_frame_len, ProtocolError};

/// If `buf` starts with a complete message, its (tag, total length incl. tag byte).
/// `None` = need more. Errors on length < 4 or > `max_len`.
pub fn frame_len(buf: &[u8], max_len: usize) -> Result<Option<(u8, usize)>, ProtocolError> {
    tagged_frame_len(buf, max_len)
}

/// The transaction state a ReadyForQuery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// 'I': not in a transaction block.
    Idle,
    /// 'T': in a transaction block.
    InBlock,
    /// 'E': in a failed transaction block (queries refused until rollback).
    Failed,
}

impl TransactionStatus {
    /// The wire byte: 'I', 'T' or 'E'.
    pub fn as_byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InBlock => b'T',
            TransactionStatus::Failed => b'E',
        }
    }

    /// The status for a wire byte, if valid.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'I' => Some(TransactionStatus::Idle),
            b'T' => Some(TransactionStatus::InBlock),
            b'E' => Some(TransactionStatus::Failed),
            _ => None,
        }
    }
}

/// ReadyForQuery ('Z') body -> transaction status.
pub fn parse_ready_for_query(body: &[u8]) -> Result<TransactionStatus, ProtocolError> {
    match body {
        [b] => TransactionStatus::from_byte(*b).ok_or(ProtocolError::Malformed("ReadyForQuery")),
        _ => Err(ProtocolError::Malformed("ReadyForQuery")),
    }
}

/// ParameterDescription ('t') body -> the parameters' type OIDs.
pub fn parse_parameter_description(body: &[u8]) -> Result<Vec<u32>, ProtocolError> {
    const BAD: ProtocolError = ProtocolError::Malformed("ParameterDescription");
    let (count, rest) = body.split_first_chunk::<2>().ok_or(BAD)?;
    let count = usize::try_from(i16::from_be_bytes(*count)).map_err(|_| BAD)?;
    if rest.len() != count * 4 {
        return Err(BAD);
    }
    Ok(rest
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// ParameterStatus ('S') body -> (name, value).
pub fn parse_parameter_status(body: &[u8]) -> Result<(String, String), ProtocolError> {
    let mut r = Reader::new(body, "ParameterStatus");
    let name = r.string()?;
    let value = r.string()?;
    r.finish()?;
    Ok((name, value))
}

/// BackendKeyData ('K') body -> (process id, secret key). Protocol 3.0 keys only (4 bytes).
pub fn parse_backend_key_data(body: &[u8]) -> Result<(i32, i32), ProtocolError> {
    let mut r = Reader::new(body, "BackendKeyData");
    let process_id = r.i32()?;
    let secret_key = r.i32()?;
    r.finish()?;
    Ok((process_id, secret_key))
}

/// CommandComplete ('C') body -> command tag without the NUL (e.g. "INSERT 0 5").
pub fn parse_command_complete(body: &[u8]) -> Result<&str, ProtocolError> {
    let mut r = Reader::new(body, "CommandComplete");
    let tag = r.str()?;
    r.finish()?;
    Ok(tag)
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorFields {
    /// (field code, value) in wire order.
    pub fields: Vec<(u8, String)>,
}

impl ErrorFields {
    /// The value of the first field with this code.
    pub fn get(&self, code: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    /// Severity: 'V' (never localized) else 'S' else "ERROR".
    pub fn severity(&self) -> &str {
        self.get(b'V').or_else(|| self.get(b'S')).unwrap_or("ERROR")
    }

    /// SQLSTATE: 'C' else "XX000" (internal_error).
    pub fn code(&self) -> &str {
        self.get(b'C').unwrap_or("XX000")
    }

    /// Primary message: 'M' else "".
    pub fn message(&self) -> &str {
        self.get(b'M').unwrap_or("")
    }

    /// Replace or append a field.
    pub fn set(&mut self, code: u8, value: &str) {
        match self.fields.iter_mut().find(|(c, _)| *c == code) {
            Some((_, v)) => {
                v.clear();
                v.push_str(value);
            }
            None => self.fields.push((code, value.to_owned())),
        }
    }
}

/// ErrorResponse ('E') or NoticeResponse ('N') body -> fields.
pub fn parse_error_fields(body: &[u8]) -> Result<ErrorFields, ProtocolError> {
    let mut r = Reader::new(body, "ErrorResponse");
    let mut fields = Vec::new();
    loop {
        let code = r.u8()?;
        if code == 0 {
            r.finish()?;
            return Ok(ErrorFields { fields });
        }
        fields.push((code, r.string()?));
    }
}

/// An Authentication ('R') request from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// AuthenticationOk (0).
    Ok,
    /// AuthenticationCleartextPassword (3).
    CleartextPassword,
    /// AuthenticationMD5Password (5).
    Md5Password {
        /// Salt to hash the password with.
        salt: [u8; 4],
    },
    /// AuthenticationSASL (10).
    Sasl {
        /// Mechanisms the server offers, in its order of preference.
        mechanisms: Vec<String>,
    },
    /// AuthenticationSASLContinue (11): server-first-message.
    SaslContinue(Bytes),
    /// AuthenticationSASLFinal (12): server-final-message.
    SaslFinal(Bytes),
    /// Any other method (Kerberos, GSS, SSPI...), by its code.
    Other(i32),
}

/// Authentication ('R') body -> request. SASL payloads are zero-copy slices of `body`.
pub fn parse_auth_request(body: &Bytes) -> Result<AuthRequest, ProtocolError> {
    let mut r = Reader::new(body, "Authentication");
    let request = match r.i32()? {
        0 => AuthRequest::Ok,
        3 => AuthRequest::CleartextPassword,
        5 => AuthRequest::Md5Password { salt: r.array()? },
        10 => {
            let mut mechanisms = Vec::new();
            loop {
                let name = r.str()?;
                if name.is_empty() {
                    break;
                }
                mechanisms.push(name.to_owned());
            }
            AuthRequest::Sasl { mechanisms }
        }
        // SASL payloads run to the end of the body; `pos` is 4, within it.
        11 => return Ok(AuthRequest::SaslContinue(body.slice(r.pos()..))),
        12 => return Ok(AuthRequest::SaslFinal(body.slice(r.pos()..))),
        // Other methods carry method-specific data the proxy does not read.
        code => return Ok(AuthRequest::Other(code)),
    };
    r.finish()?;
    Ok(request)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn frame_len_scans_headers() {
        let msg = b"Z\0\0\0\x05IC\0\0\0\x0dSELECT 1\0";
        assert_eq!(frame_len(msg, 1024), Ok(Some((b'Z', 6))));
        assert_eq!(frame_len(&msg[6..], 1024), Ok(Some((b'C', 14))));
        for cut in 0..6 {
            assert_eq!(frame_len(&msg[..cut], 1024), Ok(None), "cut {cut}");
        }
        assert_eq!(
            frame_len(b"Z\0\0\0\x03", 1024),
            Err(ProtocolError::InvalidLength(3))
        );
        assert_eq!(
            frame_len(b"Z\xff\xff\xff\xff", 1024),
            Err(ProtocolError::InvalidLength(-1))
        );
        assert_eq!(
            frame_len(b"D\x7f\xff\xff\xff", 1024),
            Err(ProtocolError::TooLarge(i32::MAX as usize, 1024))
        );
        // The limit counts the length field's value (bytes after the tag).
        assert_eq!(frame_len(b"D\0\0\0\x08abcd", 8), Ok(Some((b'D', 9))));
        assert!(frame_len(b"D\0\0\0\x09abcde", 8).is_err());
    }

    #[test]
    fn parameter_description() {
        let body = [0, 2, 0, 0, 0, 20, 0, 0, 0, 25];
        assert_eq!(parse_parameter_description(&body).unwrap(), vec![20, 25]);
        assert!(parse_parameter_description(&body[..9]).is_err());
        assert!(parse_parameter_description(&[0xff, 0xff]).is_err());
        assert_eq!(
            parse_parameter_description(&[0, 0]).unwrap(),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn ready_for_query() {
        for s in [
            TransactionStatus::Idle,
            TransactionStatus::InBlock,
            TransactionStatus::Failed,
        ] {
            assert_eq!(parse_ready_for_query(&[s.as_byte()]), Ok(s));
        }
        for bad in [&b""[..], b"X", b"II"] {
            assert_eq!(
                parse_ready_for_query(bad),
                Err(ProtocolError::Malformed("ReadyForQuery"))
            );
        }
    }

    #[test]
    fn parameter_status() {
        assert_eq!(
            parse_parameter_status(b"TimeZone\0UTC\0"),
            Ok(("TimeZone".into(), "UTC".into()))
        );
        let m = Err(ProtocolError::Malformed("ParameterStatus"));
        assert_eq!(parse_parameter_status(b"TimeZone\0UTC"), m);
        assert_eq!(parse_parameter_status(b"TimeZone"), m);
        assert_eq!(parse_parameter_status(b"a\0b\0c"), m);
        assert_eq!(
            parse_parameter_status(b"a\0\xc3\0"),
            Err(ProtocolError::InvalidUtf8("ParameterStatus"))
        );
    }

    #[test]
    fn backend_key_data() {
        assert_eq!(
            parse_backend_key_data(b"\0\0\0\x2a\xff\xff\xff\xff"),
            Ok((42, -1))
        );
        let m = Err(ProtocolError::Malformed("BackendKeyData"));
        assert_eq!(parse_backend_key_data(b"\0\0\0\x2a\xff\xff\xff"), m);
        assert_eq!(parse_backend_key_data(&[0; 40]), m);
    }

    #[test]
    fn command_complete() {
        assert_eq!(parse_command_complete(b"INSERT 0 5\0"), Ok("INSERT 0 5"));
        assert_eq!(parse_command_complete(b"\0"), Ok(""));
        let m = Err(ProtocolError::Malformed("CommandComplete"));
        assert_eq!(parse_command_complete(b"SELECT 1"), m);
        assert_eq!(parse_command_complete(b"SELECT 1\0x"), m);
        assert_eq!(parse_command_complete(b""), m);
        assert_eq!(
            parse_command_complete(b"\xff\0"),
            Err(ProtocolError::InvalidUtf8("CommandComplete"))
        );
    }

    #[test]
    fn error_fields() {
        let mut f = parse_error_fields(b"SERREUR\0VERROR\0C23505\0Mduplicate key\0Dd\0\0").unwrap();
        assert_eq!(f.severity(), "ERROR");
        assert_eq!(f.get(b'S'), Some("ERREUR"));
        assert_eq!(f.code(), "23505");
        assert_eq!(f.message(), "duplicate key");
        assert_eq!(f.get(b'H'), None);
        f.set(b'M', "other");
        f.set(b'H', "hint");
        assert_eq!(f.message(), "other");
        assert_eq!(f.fields.last(), Some(&(b'H', "hint".to_string())));
        assert_eq!(f.fields.len(), 6);

        let empty = parse_error_fields(b"\0").unwrap();
        assert_eq!(
            (empty.severity(), empty.code(), empty.message()),
            ("ERROR", "XX000", "")
        );
        assert_eq!(
            parse_error_fields(b"SWARNING\0\0").unwrap().severity(),
            "WARNING"
        );

        let m = Err(ProtocolError::Malformed("ErrorResponse"));
        assert_eq!(parse_error_fields(b""), m);
        assert_eq!(parse_error_fields(b"Mmsg\0"), m);
        assert_eq!(parse_error_fields(b"Mmsg"), m);
        assert_eq!(parse_error_fields(b"Mmsg\0\0x"), m);
        assert_eq!(
            parse_error_fields(b"M\xff\0\0"),
            Err(ProtocolError::InvalidUtf8("ErrorResponse"))
        );
    }

    fn auth(body: &[u8]) -> Result<AuthRequest, ProtocolError> {
        parse_auth_request(&Bytes::copy_from_slice(body))
    }

    #[test]
    fn auth_requests() {
        assert_eq!(auth(b"\0\0\0\0"), Ok(AuthRequest::Ok));
        assert_eq!(auth(b"\0\0\0\x03"), Ok(AuthRequest::CleartextPassword));
        assert_eq!(
            auth(b"\0\0\0\x05abcd"),
            Ok(AuthRequest::Md5Password { salt: *b"abcd" })
        );
        assert_eq!(
            auth(b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
            Ok(AuthRequest::Sasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]
            })
        );
        assert_eq!(
            auth(b"\0\0\0\x0br=abc"),
            Ok(AuthRequest::SaslContinue(Bytes::from_static(b"r=abc")))
        );
        assert_eq!(
            auth(b"\0\0\0\x0cv=xyz"),
            Ok(AuthRequest::SaslFinal(Bytes::from_static(b"v=xyz")))
        );
        assert_eq!(auth(b"\0\0\0\x07"), Ok(AuthRequest::Other(7)));

        let m = Err(ProtocolError::Malformed("Authentication"));
        assert_eq!(auth(b""), m);
        assert_eq!(auth(b"\0\0\0"), m);
        assert_eq!(auth(b"\0\0\0\0x"), m);
        assert_eq!(auth(b"\0\0\0\x05abc"), m);
        assert_eq!(auth(b"\0\0\0\x05abcde"), m);
        assert_eq!(auth(b"\0\0\0\x0aSCRAM-SHA-256\0"), m);
        assert_eq!(auth(b"\0\0\0\x0aSCRAM-SHA-256\0\0x"), m);
    }
}
