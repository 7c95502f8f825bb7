//! Unit tests for the tagged frontend decoder.

use super::*;
use crate::protocol::encode;
use bytes::BufMut;

const MAX: usize = 1 << 20;

/// A frame with `tag` around a hand-written body.
fn frame(tag: u8, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u8(tag);
    b.put_i32(4 + body.len() as i32);
    b.put_slice(body);
    b
}

fn one(bytes: BytesMut) -> Result<FrontendMessage, ProtocolError> {
    let mut buf = bytes;
    let msg = decode(&mut buf, MAX)?.expect("a complete message");
    assert!(buf.is_empty(), "frame fully consumed");
    Ok(msg)
}

fn malformed(tag: u8, body: &[u8], what: &'static str) {
    assert_eq!(
        one(frame(tag, body)),
        Err(ProtocolError::Malformed(what)),
        "{body:?}"
    );
}

#[test]
fn decodes_query() {
    let raw = frame(b'Q', b"select 1\0");
    let FrontendMessage::Query(q) = one(raw.clone()).unwrap() else {
        panic!("not a query")
    };
    assert_eq!(q.sql(), "select 1");
    assert_eq!(q.raw, raw.freeze());
    malformed(b'Q', b"select 1", "Query");
    malformed(b'Q', b"", "Query");
    malformed(b'Q', b"select\0 1\0", "Query");
    assert_eq!(
        one(frame(b'Q', b"select '\xc3\x28'\0")),
        Err(ProtocolError::InvalidUtf8("Query"))
    );
}

#[test]
fn decodes_parse() {
    let msg = one(frame(
        b'P',
        b"s1\0select $1, $2\0\0\x02\0\0\0\x17\xff\xff\xff\xff",
    ))
    .unwrap();
    let FrontendMessage::Parse(p) = msg else {
        panic!("not a parse")
    };
    assert_eq!(p.name, "s1");
    assert_eq!(p.query(), "select $1, $2");
    assert_eq!(p.param_types, vec![23, u32::MAX]);

    malformed(b'P', b"s1\0select 1\0", "Parse"); // no count
    malformed(b'P', b"s1\0select 1\0\0\x01\0\0", "Parse"); // truncated OID
    malformed(b'P', b"s1\0select 1\0\0\x00x", "Parse"); // trailing byte
    malformed(b'P', b"s1\0select 1", "Parse"); // missing NUL
    malformed(b'P', b"s1\0select 1\0\xff\xff", "Parse"); // count without OIDs
    assert_eq!(
        one(frame(b'P', b"\xff\0select 1\0\0\0")),
        Err(ProtocolError::InvalidUtf8("Parse"))
    );
}

#[test]
fn decodes_describe_and_close() {
    let msg = one(frame(b'D', b"Sstmt\0")).unwrap();
    let FrontendMessage::Describe(d) = msg else {
        panic!("not a describe")
    };
    assert_eq!((d.target, d.name.as_str()), (Target::Statement, "stmt"));
    let msg = one(frame(b'C', b"P\0")).unwrap();
    let FrontendMessage::Close(c) = msg else {
        panic!("not a close")
    };
    assert_eq!((c.target, c.name.as_str()), (Target::Portal, ""));

    for (tag, what) in [(b'D', "Describe"), (b'C', "Close")] {
        malformed(tag, b"", what);
        malformed(tag, b"X\0", what);
        malformed(tag, b"S", what);
        malformed(tag, b"Sx", what);
        malformed(tag, b"Sx\0y", what);
        assert_eq!(
            one(frame(tag, b"S\xff\0")),
            Err(ProtocolError::InvalidUtf8(what))
        );
    }
}

#[test]
fn decodes_execute() {
    let msg = one(frame(b'E', b"p\0\0\0\0\x0a")).unwrap();
    let FrontendMessage::Execute(e) = msg else {
        panic!("not an execute")
    };
    assert_eq!((e.portal.as_str(), e.max_rows), ("p", 10));
    malformed(b'E', b"p\0\0\0\0", "Execute");
    malformed(b'E', b"p\0\0\0\0\0\0", "Execute");
    malformed(b'E', b"p", "Execute");
}

#[test]
fn decodes_bind() {
    let mut buf = BytesMut::new();
    encode::bind(&mut buf, "", "s", &[1], &[Some(b"\0\0\0\x05"), None], &[]);
    let FrontendMessage::Bind(b) = one(buf).unwrap() else {
        panic!("not a bind")
    };
    let params = b.params().unwrap();
    assert_eq!(params.formats, vec![1, 1]);
    assert_eq!(params.values, vec![Some(&b"\0\0\0\x05"[..]), None]);
    malformed(b'B', b"\0s\0\0\0\0\x01", "Bind");
}

#[test]
fn decodes_bodyless_and_raw_messages() {
    assert_eq!(one(frame(b'S', b"")), Ok(FrontendMessage::Sync));
    assert_eq!(one(frame(b'H', b"")), Ok(FrontendMessage::Flush));
    assert_eq!(one(frame(b'X', b"")), Ok(FrontendMessage::Terminate));
    assert_eq!(one(frame(b'c', b"")), Ok(FrontendMessage::CopyDone));
    malformed(b'S', b"x", "Sync");
    malformed(b'H', b"x", "Flush");
    malformed(b'X', b"x", "Terminate");
    malformed(b'c', b"x", "CopyDone");

    for (tag, body) in [(b'd', &b"1\t2\n"[..]), (b'f', b"oops\0"), (b'F', b"\0\0")] {
        let raw = frame(tag, body).freeze();
        let msg = one(BytesMut::from(&raw[..])).unwrap();
        let got = match msg {
            FrontendMessage::CopyData(b)
            | FrontendMessage::CopyFail(b)
            | FrontendMessage::FunctionCall(b) => b,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, raw);
    }
    assert_eq!(
        one(frame(b'p', b"secret\0")),
        Ok(FrontendMessage::Password(Bytes::from_static(b"secret\0")))
    );
}

#[test]
fn refuses_unknown_tags_and_bad_lengths() {
    assert_eq!(
        decode(&mut BytesMut::from(&b"Z"[..]), MAX),
        Err(ProtocolError::UnknownMessage('Z'))
    );
    assert_eq!(
        decode(&mut BytesMut::from(&b"\0\0\0\0\x08"[..]), MAX),
        Err(ProtocolError::UnknownMessage('\0'))
    );
    assert_eq!(
        decode(&mut BytesMut::from(&b"Q\0\0\0\x03"[..]), MAX),
        Err(ProtocolError::InvalidLength(3))
    );
    assert_eq!(
        decode(&mut BytesMut::from(&b"Q\x80\0\0\0"[..]), MAX),
        Err(ProtocolError::InvalidLength(i64::from(i32::MIN)))
    );
    assert_eq!(
        decode(&mut BytesMut::from(&b"d\0\x10\0\x01"[..]), MAX),
        Err(ProtocolError::TooLarge(0x10_0001, MAX))
    );
}

#[test]
fn oversized_claims_are_refused_before_buffering() {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_slice(b"Q\x7f\xff\xff\xff");
    let cap = buf.capacity();
    assert_eq!(
        decode(&mut buf, MAX),
        Err(ProtocolError::TooLarge(i32::MAX as usize, MAX))
    );
    assert_eq!(buf.capacity(), cap);
    // Even with no limit, an incomplete huge message reserves nothing.
    assert_eq!(decode(&mut buf, usize::MAX), Ok(None));
    assert_eq!(buf.capacity(), cap);
}

/// A pipelined extended-query batch plus a simple query, as one byte stream.
fn stream() -> BytesMut {
    let mut buf = BytesMut::new();
    encode::parse(&mut buf, "s", "select $1::int", &[23]);
    encode::bind(&mut buf, "", "s", &[], &[Some(b"7")], &[1]);
    encode::describe(&mut buf, Target::Portal, "");
    encode::execute(&mut buf, "", 0);
    encode::close(&mut buf, Target::Statement, "s");
    encode::sync(&mut buf);
    encode::query(&mut buf, "select 'ü'");
    encode::copy_data(&mut buf, b"1\n");
    encode::copy_done(&mut buf);
    encode::password_message(&mut buf, b"pw\0");
    encode::flush(&mut buf);
    encode::terminate(&mut buf);
    buf
}

#[test]
fn needs_more_bytes_at_every_split_point() {
    let full = stream();
    let mut whole = full.clone();
    let mut expected = Vec::new();
    while let Some(msg) = decode(&mut whole, MAX).unwrap() {
        expected.push(msg);
    }
    assert!(whole.is_empty());
    assert_eq!(expected.len(), 12);

    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in full.iter() {
        buf.put_u8(*byte);
        while let Some(msg) = decode(&mut buf, MAX).unwrap() {
            got.push(msg);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(got, expected);
}

#[test]
fn frames_are_slices_of_the_read_buffer() {
    let mut buf = stream();
    let base = buf.as_ptr() as usize;
    let Some(FrontendMessage::Parse(p)) = decode(&mut buf, MAX).unwrap() else {
        panic!("not a parse")
    };
    // Zero copy: the frame points into the original allocation.
    assert_eq!(p.raw.as_ptr() as usize, base);
}
