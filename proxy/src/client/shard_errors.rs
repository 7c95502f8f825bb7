//! Server errors on their way to the client: the proxy's own error may replace one, FATAL is
//! downgraded (the backend dies, the client's connection lives on), and of several shards'
//! errors for one request only the first is shown.

use bytes::{Bytes, BytesMut};

use crate::protocol::backend as be;
use crate::protocol::encode;

/// Errors reach the client (an injected statement's failure is the client's failure), or the
/// proxy's own error replaces the server's. FATAL/PANIC are downgraded: the backend dies, but
/// the client's connection to us lives on.
pub(crate) fn forward_error(
    replace: &mut Option<Bytes>,
    fatal: &mut Option<(usize, String)>,
    shard: usize,
    (frame, body): (&[u8], &[u8]),
    out: &mut BytesMut,
) {
    if let Some(mine) = replace.take() {
        out.extend_from_slice(&mine);
        return;
    }
    match be::parse_error_fields(body) {
        Ok(mut fields) if matches!(fields.severity(), "FATAL" | "PANIC") => {
            *fatal = Some((shard, fields.message().to_string()));
            fields.set(b'S', "ERROR");
            fields.set(b'V', "ERROR");
            encode::error_fields(out, b'E', &fields);
        }
        _ => out.extend_from_slice(frame),
    }
}

/// An error from one of several shards answering a request: the first reaches the client
/// (`first`: nothing failed before and the client is listening); later ones only matter when
/// FATAL (that backend is going away).
pub(crate) fn shard_error(
    first: bool,
    replace: &mut Option<Bytes>,
    fatal: &mut Option<(usize, String)>,
    shard: usize,
    (frame, body): (&[u8], &[u8]),
    out: &mut BytesMut,
) {
    if first {
        forward_error(replace, fatal, shard, (frame, body), out);
    } else if let Ok(fields) = be::parse_error_fields(body) {
        if matches!(fields.severity(), "FATAL" | "PANIC") {
            *fatal = Some((shard, fields.message().to_string()));
        }
    }
}
