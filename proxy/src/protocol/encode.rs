//! Builders that append one protocol message to a `BytesMut`.
//!
//! Each writes its length by reserving 4 bytes and patching them once the body is written: one
//! pass, no temporary buffer. Strings are written up to their first NUL, if any, because a NUL
//! inside a C string would corrupt the framing of everything after it.

use bytes::{BufMut, BytesMut};

use super::backend::{ErrorFields, TransactionStatus};
use super::frontend::Target;
use super::startup::{CANCEL_REQUEST_CODE, PROTOCOL_3_0, SSL_REQUEST_CODE};

/// Starts a tagged message; returns where its length field is, for [`finish`].
pub(crate) fn begin(buf: &mut BytesMut, tag: u8) -> usize {
    buf.put_u8(tag);
    begin_untagged(buf)
}

/// Starts an untagged (startup-phase) message.
fn begin_untagged(buf: &mut BytesMut) -> usize {
    let at = buf.len();
    buf.put_i32(0);
    at
}

/// Patches the length field at `at` to cover everything written since.
pub(crate) fn finish(buf: &mut BytesMut, at: usize) {
    let len = buf.len().saturating_sub(at);
    // Messages the proxy builds are far below 2 GiB; saturate rather than wrap if not.
    let len = i32::try_from(len).unwrap_or(i32::MAX);
    if let Some(field) = buf.get_mut(at..at + 4) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}

/// Writes `s` as a C string, cut at its first NUL.
pub(crate) fn put_cstr(buf: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    // `contains` on bytes is memchr-accelerated, so the common case is one fast scan.
    let text = if bytes.contains(&0) {
        let nul = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        bytes.get(..nul).unwrap_or_default()
    } else {
        bytes
    };
    buf.put_slice(text);
    buf.put_u8(0);
}

/// Writes a count as the wire's 16-bit field (PostgreSQL reads counts as unsigned, max 65535).
fn put_count(buf: &mut BytesMut, n: usize) {
    buf.put_u16(u16::try_from(n).unwrap_or(u16::MAX));
}

/// An Authentication message with just a code.
fn auth(buf: &mut BytesMut, code: i32, data: &[u8]) {
    let at = begin(buf, b'R');
    buf.put_i32(code);
    buf.put_slice(data);
    finish(buf, at);
}

/// AuthenticationOk.
pub fn auth_ok(buf: &mut BytesMut) {
    auth(buf, 0, &[]);
}

/// AuthenticationCleartextPassword.
pub fn auth_cleartext(buf: &mut BytesMut) {
    auth(buf, 3, &[]);
}

/// AuthenticationMD5Password with its salt.
pub fn auth_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    auth(buf, 5, &salt);
}

/// AuthenticationSASL listing the offered mechanisms.
pub fn auth_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    let at = begin(buf, b'R');
    buf.put_i32(10);
    for m in mechanisms {
        put_cstr(buf, m);
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// AuthenticationSASLContinue carrying server-first-message.
pub fn auth_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    auth(buf, 11, data);
}

/// AuthenticationSASLFinal carrying server-final-message.
pub fn auth_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    auth(buf, 12, data);
}

/// ParameterStatus ('S').
pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    let at = begin(buf, b'S');
    put_cstr(buf, name);
    put_cstr(buf, value);
    finish(buf, at);
}

/// BackendKeyData ('K').
pub fn backend_key_data(buf: &mut BytesMut, process_id: i32, secret_key: i32) {
    let at = begin(buf, b'K');
    buf.put_i32(process_id);
    buf.put_i32(secret_key);
    finish(buf, at);
}

/// NegotiateProtocolVersion ('v'): the newest minor version we speak and the `_pq_.` options
/// we did not recognize. Sent after a StartupMessage asking for 3.x with x > 0 (or options).
pub fn negotiate_protocol_version(buf: &mut BytesMut, newest_minor: u16, unrecognized: &[&str]) {
    let at = begin(buf, b'v');
    buf.put_i32(i32::from(newest_minor));
    buf.put_i32(i32::try_from(unrecognized.len()).unwrap_or(i32::MAX));
    for option in unrecognized {
        put_cstr(buf, option);
    }
    finish(buf, at);
}

/// ReadyForQuery ('Z').
pub fn ready_for_query(buf: &mut BytesMut, status: TransactionStatus) {
    let at = begin(buf, b'Z');
    buf.put_u8(status.as_byte());
    finish(buf, at);
}

/// ErrorResponse with S (localizable severity), V (severity), C (SQLSTATE) and M (message).
pub fn error_response(buf: &mut BytesMut, severity: &str, code: &str, message: &str) {
    let at = begin(buf, b'E');
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        buf.put_u8(field);
        put_cstr(buf, value);
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// ErrorResponse (`tag` b'E') or NoticeResponse (b'N') from fields; a field coded 0 is skipped,
/// as 0 terminates the list on the wire.
pub fn error_fields(buf: &mut BytesMut, tag: u8, fields: &ErrorFields) {
    let at = begin(buf, tag);
    for (field, value) in fields.fields.iter().filter(|(c, _)| *c != 0) {
        buf.put_u8(*field);
        put_cstr(buf, value);
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// A message with an empty body.
fn bodyless(buf: &mut BytesMut, tag: u8) {
    buf.put_u8(tag);
    buf.put_i32(4);
}

/// ParseComplete ('1').
pub fn parse_complete(buf: &mut BytesMut) {
    bodyless(buf, b'1');
}

/// BindComplete ('2').
pub fn bind_complete(buf: &mut BytesMut) {
    bodyless(buf, b'2');
}

/// CloseComplete ('3').
pub fn close_complete(buf: &mut BytesMut) {
    bodyless(buf, b'3');
}

/// PortalSuspended ('s').
pub fn portal_suspended(buf: &mut BytesMut) {
    bodyless(buf, b's');
}

/// NoData ('n').
pub fn no_data(buf: &mut BytesMut) {
    bodyless(buf, b'n');
}

/// CommandComplete ('C') with a command tag such as "SELECT 5".
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    let at = begin(buf, b'C');
    put_cstr(buf, tag);
    finish(buf, at);
}

/// EmptyQueryResponse ('I').
pub fn empty_query_response(buf: &mut BytesMut) {
    bodyless(buf, b'I');
}

/// ParameterDescription ('t') with one type OID per parameter.
pub fn parameter_description(buf: &mut BytesMut, types: &[u32]) {
    let at = begin(buf, b't');
    put_count(buf, types.len());
    for oid in types {
        buf.put_u32(*oid);
    }
    finish(buf, at);
}

/// StartupMessage for protocol 3.0 with the given parameters.
pub fn startup_message(buf: &mut BytesMut, params: &[(&str, &str)]) {
    let at = begin_untagged(buf);
    buf.put_u32(PROTOCOL_3_0);
    for (name, value) in params {
        put_cstr(buf, name);
        put_cstr(buf, value);
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// SSLRequest.
pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_i32(8);
    buf.put_u32(SSL_REQUEST_CODE);
}

/// CancelRequest for a backend's key.
pub fn cancel_request(buf: &mut BytesMut, process_id: i32, secret_key: i32) {
    buf.put_i32(16);
    buf.put_u32(CANCEL_REQUEST_CODE);
    buf.put_i32(process_id);
    buf.put_i32(secret_key);
}

/// PasswordMessage ('p') with a raw payload (the caller adds a NUL where the method needs one).
pub fn password_message(buf: &mut BytesMut, data: &[u8]) {
    let at = begin(buf, b'p');
    buf.put_slice(data);
    finish(buf, at);
}

/// SASLInitialResponse ('p'): mechanism and client-first-message.
pub fn sasl_initial_response(buf: &mut BytesMut, mechanism: &str, data: &[u8]) {
    let at = begin(buf, b'p');
    put_cstr(buf, mechanism);
    buf.put_i32(i32::try_from(data.len()).unwrap_or(i32::MAX));
    buf.put_slice(data);
    finish(buf, at);
}

/// SASLResponse ('p'): client-final-message.
pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) {
    password_message(buf, data);
}

/// Query ('Q').
pub fn query(buf: &mut BytesMut, sql: &str) {
    let at = begin(buf, b'Q');
    put_cstr(buf, sql);
    finish(buf, at);
}

/// Parse ('P').
pub fn parse(buf: &mut BytesMut, name: &str, query: &str, param_types: &[u32]) {
    let at = begin(buf, b'P');
    put_cstr(buf, name);
    put_cstr(buf, query);
    put_count(buf, param_types.len());
    for oid in param_types {
        buf.put_u32(*oid);
    }
    finish(buf, at);
}

/// Bind ('B'): parameter formats as sent (0, 1 or one per value), values (None = NULL) and
/// result formats.
pub fn bind(
    buf: &mut BytesMut,
    portal: &str,
    statement: &str,
    formats: &[i16],
    values: &[Option<&[u8]>],
    result_formats: &[i16],
) {
    let at = begin(buf, b'B');
    put_cstr(buf, portal);
    put_cstr(buf, statement);
    put_count(buf, formats.len());
    for f in formats {
        buf.put_i16(*f);
    }
    put_count(buf, values.len());
    for value in values {
        match value {
            None => buf.put_i32(-1),
            Some(v) => {
                buf.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                buf.put_slice(v);
            }
        }
    }
    put_count(buf, result_formats.len());
    for f in result_formats {
        buf.put_i16(*f);
    }
    finish(buf, at);
}

/// Describe ('D') a statement or portal.
pub fn describe(buf: &mut BytesMut, target: Target, name: &str) {
    let at = begin(buf, b'D');
    buf.put_u8(target.as_byte());
    put_cstr(buf, name);
    finish(buf, at);
}

/// Execute ('E') a portal; `max_rows` 0 = all rows.
pub fn execute(buf: &mut BytesMut, portal: &str, max_rows: i32) {
    let at = begin(buf, b'E');
    put_cstr(buf, portal);
    buf.put_i32(max_rows);
    finish(buf, at);
}

/// Close ('C') a statement or portal.
pub fn close(buf: &mut BytesMut, target: Target, name: &str) {
    let at = begin(buf, b'C');
    buf.put_u8(target.as_byte());
    put_cstr(buf, name);
    finish(buf, at);
}

/// CopyData ('d').
pub fn copy_data(buf: &mut BytesMut, data: &[u8]) {
    let at = begin(buf, b'd');
    buf.put_slice(data);
    finish(buf, at);
}

/// CopyDone ('c').
pub fn copy_done(buf: &mut BytesMut) {
    bodyless(buf, b'c');
}

/// CopyFail ('f') with the reason the copy was aborted.
pub fn copy_fail(buf: &mut BytesMut, reason: &str) {
    let at = begin(buf, b'f');
    put_cstr(buf, reason);
    finish(buf, at);
}

/// Sync ('S').
pub fn sync(buf: &mut BytesMut) {
    bodyless(buf, b'S');
}

/// Flush ('H').
pub fn flush(buf: &mut BytesMut) {
    bodyless(buf, b'H');
}

/// Terminate ('X').
pub fn terminate(buf: &mut BytesMut) {
    bodyless(buf, b'X');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut buf = BytesMut::new();
        f(&mut buf);
        buf.to_vec()
    }

    #[test]
    fn fixed_messages_match_the_wire_format() {
        assert_eq!(built(auth_ok), b"R\0\0\0\x08\0\0\0\0");
        assert_eq!(built(auth_cleartext), b"R\0\0\0\x08\0\0\0\x03");
        assert_eq!(
            built(|b| auth_md5(b, *b"salt")),
            b"R\0\0\0\x0c\0\0\0\x05salt"
        );
        assert_eq!(built(parse_complete), b"1\0\0\0\x04");
        assert_eq!(built(bind_complete), b"2\0\0\0\x04");
        assert_eq!(built(close_complete), b"3\0\0\0\x04");
        assert_eq!(built(no_data), b"n\0\0\0\x04");
        assert_eq!(built(empty_query_response), b"I\0\0\0\x04");
        assert_eq!(built(sync), b"S\0\0\0\x04");
        assert_eq!(built(flush), b"H\0\0\0\x04");
        assert_eq!(built(terminate), b"X\0\0\0\x04");
        assert_eq!(built(copy_done), b"c\0\0\0\x04");
        assert_eq!(
            built(|b| ready_for_query(b, TransactionStatus::InBlock)),
            b"Z\0\0\0\x05T"
        );
        assert_eq!(built(ssl_request), b"\0\0\0\x08\x04\xd2\x16\x2f");
        assert_eq!(
            built(|b| cancel_request(b, 1, 2)),
            b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x01\0\0\0\x02"
        );
    }

    #[test]
    fn variable_messages_match_the_wire_format() {
        assert_eq!(
            built(|b| auth_sasl(b, &["SCRAM-SHA-256"])),
            b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"
        );
        assert_eq!(
            built(|b| error_response(b, "ERROR", "0A000", "no")),
            b"E\0\0\0\x1eSERROR\0VERROR\0C0A000\0Mno\0\0"
        );
        assert_eq!(
            built(|b| startup_message(b, &[("user", "u")])),
            b"\0\0\0\x10\0\x03\0\0user\0u\0\0"
        );
        assert_eq!(
            built(|b| sasl_initial_response(b, "SCRAM-SHA-256", b"n,,")),
            b"p\0\0\0\x19SCRAM-SHA-256\0\0\0\0\x03n,,"
        );
        assert_eq!(
            built(|b| negotiate_protocol_version(b, 0, &["_pq_.x"])),
            b"v\0\0\0\x13\0\0\0\0\0\0\0\x01_pq_.x\0"
        );
        assert_eq!(
            built(|b| parameter_description(b, &[23, 25])),
            b"t\0\0\0\x0e\0\x02\0\0\0\x17\0\0\0\x19"
        );
    }

    #[test]
    fn appends_after_existing_bytes() {
        let mut buf = BytesMut::from(&b"xyz"[..]);
        command_complete(&mut buf, "SELECT 1");
        query(&mut buf, "select 1");
        assert_eq!(&buf[..], b"xyzC\0\0\0\x0dSELECT 1\0Q\0\0\0\x0dselect 1\0");
    }

    #[test]
    fn interior_nul_cannot_break_framing() {
        assert_eq!(
            built(|b| query(b, "select 1\0; drop")),
            b"Q\0\0\0\x0dselect 1\0"
        );
        let mut fields = ErrorFields::default();
        fields.set(0, "ignored");
        fields.set(b'M', "m");
        assert_eq!(
            built(|b| error_fields(b, b'N', &fields)),
            b"N\0\0\0\x08Mm\0\0"
        );
    }
}
