//! Hand-built frontend messages for the twopc_edges tests, and a compact view of the proxy's
//! answers ("1 2 C E(23505) ZE") so that a failed assertion shows the whole exchange.

use std::future::Future;
use std::time::Duration;

use integration::raw::{cstr, frame, query_msg, Msgs, Raw};
use tokio::io::AsyncWriteExt;

/// How long the proxy may take to answer one group; a longer wait is a hang.
pub const ANSWER: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`ANSWER`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {ANSWER:?}"))
}

/// Parse of the unnamed statement, parameter types left to the server.
pub fn parse(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, sql);
    body.extend_from_slice(&0i16.to_be_bytes());
    frame(b'P', &body)
}

/// Bind of the unnamed statement to `portal`, text parameters (None is NULL), text results.
pub fn bind(portal: &str, params: &[Option<&str>]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    cstr(&mut body, "");
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        match p {
            Some(p) => {
                body.extend_from_slice(&(p.len() as i32).to_be_bytes());
                body.extend_from_slice(p.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&0i16.to_be_bytes());
    frame(b'B', &body)
}

/// Execute of `portal`, at most `max_rows` rows (0: all).
pub fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    body.extend_from_slice(&max_rows.to_be_bytes());
    frame(b'E', &body)
}

/// Sync.
pub fn sync() -> Vec<u8> {
    frame(b'S', b"")
}

/// Flush.
pub fn flush() -> Vec<u8> {
    frame(b'H', b"")
}

/// Parse, Bind and Execute of `sql` through the unnamed statement and portal.
pub fn pbe(sql: &str, params: &[Option<&str>]) -> Vec<u8> {
    let mut out = parse(sql);
    out.extend(bind("", params));
    out.extend(execute("", 0));
    out
}

/// The messages concatenated, then a Sync: one extended-protocol group.
pub fn group(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = parts.concat();
    out.extend(sync());
    out
}

/// The SQLSTATE of an ErrorResponse body.
pub fn error_code(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'C'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_default()
}

/// The SQLSTATEs of every ErrorResponse among `msgs`.
pub fn error_codes(msgs: &[(u8, Vec<u8>)]) -> Vec<String> {
    msgs.iter()
        .filter(|(t, _)| *t == b'E')
        .map(|(_, b)| error_code(b))
        .collect()
}

/// The tags of every CommandComplete among `msgs`.
pub fn command_tags(msgs: &[(u8, Vec<u8>)]) -> Vec<String> {
    msgs.iter()
        .filter(|(t, _)| *t == b'C')
        .map(|(_, b)| String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(b)).into_owned())
        .collect()
}

/// The columns of a DataRow body, as text (None is NULL).
pub fn columns(body: &[u8]) -> Vec<Option<String>> {
    let n = i16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        at += 4;
        if len < 0 {
            out.push(None);
        } else {
            let len = len as usize;
            out.push(Some(
                String::from_utf8_lossy(&body[at..at + len]).into_owned(),
            ));
            at += len;
        }
    }
    out
}

/// Every DataRow among `msgs`, the columns parsed as integers.
pub fn int_rows(msgs: &[(u8, Vec<u8>)]) -> Vec<Vec<i64>> {
    msgs.iter()
        .filter(|(t, _)| *t == b'D')
        .map(|(_, b)| {
            columns(b)
                .into_iter()
                .map(|c| c.unwrap().parse().unwrap())
                .collect()
        })
        .collect()
}

/// One letter per message ("Z" with the transaction status, "E" with the SQLSTATE).
pub fn summary(msgs: &[(u8, Vec<u8>)]) -> String {
    msgs.iter()
        .map(|(t, b)| match t {
            b'Z' => format!("Z{}", b.first().map_or('?', |s| *s as char)),
            b'E' => format!("E({})", error_code(b)),
            t => (*t as char).to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The transaction status of the last message, which must be a ReadyForQuery.
pub fn status(msgs: &[(u8, Vec<u8>)]) -> char {
    match msgs.last() {
        Some((b'Z', b)) => b.first().map_or('?', |s| *s as char),
        _ => panic!(
            "the answer does not end with ReadyForQuery: {}",
            summary(msgs)
        ),
    }
}

/// Sends `bytes` and reads up to and including the ReadyForQuery, within [`ANSWER`].
pub async fn round_trip(raw: &mut Raw, bytes: &[u8]) -> Msgs {
    within("round trip", raw.round_trip(bytes)).await
}

/// One simple-protocol statement and its whole answer.
pub async fn simple(raw: &mut Raw, sql: &str) -> Msgs {
    within(sql, raw.round_trip(&query_msg(sql))).await
}

/// A simple-protocol statement that must succeed: its one CommandComplete tag.
pub async fn simple_ok(raw: &mut Raw, sql: &str) -> String {
    let msgs = simple(raw, sql).await;
    assert!(error_codes(&msgs).is_empty(), "{sql}: {}", summary(&msgs));
    let tags = command_tags(&msgs);
    assert_eq!(tags.len(), 1, "{sql}: {}", summary(&msgs));
    tags[0].clone()
}

/// Sends `bytes`, then reads messages until one whose tag is in `stop` (included), within
/// [`ANSWER`].
pub async fn send_and_read_until(raw: &mut Raw, bytes: &[u8], stop: &[u8]) -> Msgs {
    raw.stream.write_all(bytes).await.unwrap();
    read_until(raw, stop).await
}

/// Reads messages until one whose tag is in `stop` (included), within [`ANSWER`].
pub async fn read_until(raw: &mut Raw, stop: &[u8]) -> Msgs {
    let mut msgs = Vec::new();
    let read = async {
        loop {
            let m = raw
                .next_msg()
                .await
                .expect("the proxy closed the connection");
            let done = stop.contains(&m.0);
            msgs.push(m);
            if done {
                break;
            }
        }
    };
    if tokio::time::timeout(ANSWER, read).await.is_err() {
        panic!(
            "no {:?} within {ANSWER:?}; got {}",
            String::from_utf8_lossy(stop),
            summary(&msgs)
        );
    }
    msgs
}
