//! A frontend speaking the PostgreSQL protocol by hand, for tests of malformed or unusual
//! message sequences that real drivers never send.
#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the proxy may take to answer bad input and close the socket.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// One tagged message: tag, int32 length, body.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Appends a NUL-terminated string.
pub fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A simple Query message.
pub fn query_msg(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, sql);
    frame(b'Q', &body)
}

/// A Parse message with no declared parameter types.
pub fn parse_msg(name: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, name);
    cstr(&mut body, sql);
    body.extend_from_slice(&0i16.to_be_bytes());
    let mut out = frame(b'P', &body);
    out.extend(frame(b'S', b""));
    out
}

/// Bind (unnamed portal, text parameters and results), Execute, Sync.
pub fn exec_msgs(stmt: &str, params: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, stmt);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        body.extend_from_slice(&(p.len() as i32).to_be_bytes());
        body.extend_from_slice(p.as_bytes());
    }
    body.extend_from_slice(&0i16.to_be_bytes());
    let mut out = frame(b'B', &body);
    out.extend(frame(b'E', b"\0\0\0\0\0"));
    out.extend(frame(b'S', b""));
    out
}

/// StartupMessage for protocol 3.0.
pub fn startup_packet(user: &str, db: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for s in ["user", user, "database", db] {
        cstr(&mut body, s);
    }
    body.push(0);
    let mut packet = (body.len() as i32 + 4).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

/// A frontend speaking the protocol by hand.
pub struct Raw {
    /// the socket
    pub stream: TcpStream,
    /// bytes read, not yet split into messages
    pub buf: BytesMut,
}

pub type Msgs = Vec<(u8, Vec<u8>)>;

impl Raw {
    pub async fn open(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    /// A logged-in connection (trust).
    pub async fn login(addr: SocketAddr, db: &str) -> Raw {
        let mut raw = Raw::open(addr).await;
        let msgs = raw.round_trip(&startup_packet("app", db)).await;
        assert_eq!(first_error(&msgs), None, "login failed: {msgs:?}");
        assert_eq!(msgs.first().map(|m| m.0), Some(b'R'), "{msgs:?}");
        raw
    }

    /// The next message, or None at EOF (a reset counts as EOF).
    pub async fn next_msg(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                let total = len as usize + 1;
                if self.buf.len() >= total {
                    let m = self.buf.split_to(total);
                    return Some((m[0], m[5..].to_vec()));
                }
            }
            if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    pub async fn round_trip(&mut self, bytes: &[u8]) -> Msgs {
        self.stream.write_all(bytes).await.unwrap();
        let mut msgs = Vec::new();
        loop {
            let m = self.next_msg().await.expect("proxy closed the connection");
            let done = m.0 == b'Z';
            msgs.push(m);
            if done {
                return msgs;
            }
        }
    }

    /// Sends `bytes` (a failed write is fine: the proxy may have closed first) and collects
    /// every message until the proxy closes the connection.
    pub async fn send_until_eof(&mut self, bytes: &[u8]) -> Msgs {
        let _ = self.stream.write_all(bytes).await;
        let mut msgs = Vec::new();
        let read = async {
            while let Some(m) = self.next_msg().await {
                msgs.push(m);
            }
        };
        let closed = tokio::time::timeout(ANSWER_LIMIT, read).await;
        assert!(
            closed.is_ok(),
            "no EOF within {ANSWER_LIMIT:?} after {bytes:02x?}; got {msgs:?}"
        );
        msgs
    }

    /// Executes `stmt` with text parameters: the first column of the first row, or the SQLSTATE.
    pub async fn exec(&mut self, stmt: &str, params: &[&str]) -> Result<String, String> {
        let msgs = self.round_trip(&exec_msgs(stmt, params)).await;
        if let Some(code) = first_error(&msgs) {
            return Err(code);
        }
        let (_, row) = msgs.iter().find(|(t, _)| *t == b'D').unwrap();
        let len = i32::from_be_bytes([row[2], row[3], row[4], row[5]]) as usize;
        Ok(String::from_utf8(row[6..6 + len].to_vec()).unwrap())
    }
}

/// The SQLSTATE of the first ErrorResponse among `msgs`.
pub fn first_error(msgs: &[(u8, Vec<u8>)]) -> Option<String> {
    let (_, body) = msgs.iter().find(|(t, _)| *t == b'E')?;
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&b'C'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
}
