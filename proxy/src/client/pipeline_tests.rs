//! Unit tests of the pipeline: ordering, synthetic answers, errors, COPY, fan-out merging.
use super::*;
use crate::protocol::encode;

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn fwd(kind: Kind) -> Pending {
    Pending {
        kind,
        mode: Mode::Forward,
        action: Action::None,
        owed: Owed::One(0),
        stat: None,
    }
}

fn synthetic(kind: Kind, bytes: Bytes) -> Pending {
    Pending {
        kind,
        mode: Mode::Synthetic(bytes),
        action: Action::None,
        owed: Owed::Nobody,
        stat: None,
    }
}

fn fan(kind: Kind, shards: &[usize]) -> Pending {
    Pending {
        kind,
        mode: Mode::Forward,
        action: Action::None,
        owed: Owed::Many(Box::new(FanOut::new(shards.iter().copied()))),
        stat: None,
    }
}

fn error(sev: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode::error_response(&mut b, sev, "42601", "syntax error");
    b.to_vec()
}

#[test]
fn synthetic_answers_keep_request_order() {
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    p.push(fwd(Kind::Bind), &mut out);
    let mut pc = BytesMut::new();
    encode::parse_complete(&mut pc);
    p.push(synthetic(Kind::Parse, pc.freeze()), &mut out);
    p.push(fwd(Kind::Sync), &mut out);
    assert!(out.is_empty(), "synthetic answer must wait for the Bind");
    p.handle(0, &msg(b'2', b""), &mut out).unwrap();
    assert_eq!(&out[..], &[b'2', 0, 0, 0, 4, b'1', 0, 0, 0, 4][..]);
    p.handle(0, &msg(b'Z', b"I"), &mut out).unwrap();
    assert!(p.ready_and_empty);
}

#[test]
fn error_skips_to_sync_and_drops_synthetic() {
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    p.push(fwd(Kind::Bind), &mut out);
    p.push(
        synthetic(Kind::Parse, Bytes::from_static(b"1\0\0\0\x04")),
        &mut out,
    );
    p.push(fwd(Kind::Execute), &mut out);
    p.push(fwd(Kind::Sync), &mut out);
    p.handle(0, &error("ERROR"), &mut out).unwrap();
    assert_eq!(out[0], b'E');
    assert_eq!(out.len(), error("ERROR").len());
    assert_eq!(p.completed.iter().filter(|c| !c.ok).count(), 3);
    p.handle(0, &msg(b'Z', b"I"), &mut out).unwrap();
    assert!(p.is_empty());
}

#[test]
fn swallowed_injection_hides_answers_but_not_errors() {
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    p.push(
        Pending {
            kind: Kind::Query,
            mode: Mode::Swallow,
            action: Action::ParamSync(0),
            owed: Owed::One(0),
            stat: None,
        },
        &mut out,
    );
    p.push(fwd(Kind::Query), &mut out);
    p.handle(0, &msg(b'S', b"application_name\0x\0"), &mut out)
        .unwrap();
    p.handle(0, &msg(b'C', b"SET\0"), &mut out).unwrap();
    p.handle(0, &msg(b'Z', b"I"), &mut out).unwrap();
    assert!(out.is_empty());
    assert!(!p.ready_and_empty);
    p.handle(0, &msg(b'C', b"SELECT 1\0"), &mut out).unwrap();
    p.handle(0, &msg(b'Z', b"I"), &mut out).unwrap();
    assert_eq!(out[0], b'C');
    assert!(p.ready_and_empty);
}

#[test]
fn fatal_is_downgraded_to_error() {
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    p.push(fwd(Kind::Query), &mut out);
    p.handle(0, &error("FATAL"), &mut out).unwrap();
    assert!(p.fatal.is_some());
    let fields = be::parse_error_fields(&out[5..]).unwrap();
    assert_eq!(fields.severity(), "ERROR");
}

#[test]
fn syncs_sent_during_copy_in_get_no_ready_for_query() {
    // tokio-postgres: Bind Execute Sync, then CopyData CopyDone Sync.
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    p.push(fwd(Kind::Bind), &mut out);
    p.push(fwd(Kind::Execute), &mut out);
    p.push(fwd(Kind::Sync), &mut out);
    p.handle(0, &msg(b'2', b""), &mut out).unwrap();
    p.handle(0, &msg(b'G', b"\0\0\0"), &mut out).unwrap();
    assert!(p.sync_ignored());
    p.push(fwd(Kind::CopyEnd), &mut out);
    assert!(!p.sync_ignored());
    p.push(fwd(Kind::Sync), &mut out);
    p.handle(0, &msg(b'C', b"COPY 2\0"), &mut out).unwrap();
    p.handle(0, &msg(b'Z', b"I"), &mut out).unwrap();
    assert!(p.is_empty());
    assert!(p.ready_and_empty);
}

#[test]
fn copy_end_marker_after_simple_query_copy_is_dropped() {
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    p.push(fwd(Kind::Query), &mut out);
    p.handle(0, &msg(b'G', b"\0\0\0"), &mut out).unwrap();
    p.push(fwd(Kind::CopyEnd), &mut out);
    p.handle(0, &msg(b'C', b"COPY 1\0"), &mut out).unwrap();
    p.handle(0, &msg(b'Z', b"I"), &mut out).unwrap();
    assert!(p.is_empty() && p.ready_and_empty);
}

#[test]
fn fanout_merges_rows_tags_and_status() {
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    p.push(fan(Kind::Query, &[0, 2]), &mut out);
    assert_eq!(p.reader(), Some(0));
    p.handle(0, &msg(b'T', b"\0\0"), &mut out).unwrap();
    p.handle(0, &msg(b'D', b"\0\0"), &mut out).unwrap();
    p.handle(0, &msg(b'C', b"SELECT 1\0"), &mut out).unwrap();
    assert!(
        p.handle(2, &msg(b'T', b"\0\0"), &mut out).is_err(),
        "shard 2 is not being read yet"
    );
    p.handle(0, &msg(b'Z', b"I"), &mut out).unwrap();
    assert_eq!(p.reader(), Some(2));
    p.handle(2, &msg(b'T', b"\0\0"), &mut out).unwrap();
    p.handle(2, &msg(b'D', b"\0\0"), &mut out).unwrap();
    p.handle(2, &msg(b'D', b"\0\0"), &mut out).unwrap();
    p.handle(2, &msg(b'C', b"SELECT 2\0"), &mut out).unwrap();
    p.handle(2, &msg(b'Z', b"T"), &mut out).unwrap();
    let mut expected = msg(b'T', b"\0\0");
    for _ in 0..3 {
        expected.extend(msg(b'D', b"\0\0"));
    }
    expected.extend(msg(b'C', b"SELECT 3\0"));
    expected.extend(msg(b'Z', b"T"));
    assert_eq!(&out[..], &expected[..]);
    assert!(p.is_empty() && p.ready_and_empty);
}

#[test]
fn fanout_error_reports_once_and_other_shards_are_drained_silently() {
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    p.push(fan(Kind::Bind, &[0, 1]), &mut out);
    p.push(fan(Kind::Execute, &[0, 1]), &mut out);
    p.push(fan(Kind::Sync, &[0, 1]), &mut out);
    p.handle(0, &error("ERROR"), &mut out).unwrap();
    // shard 0 skips to its Sync; shard 1 answers everything
    p.handle(1, &msg(b'2', b""), &mut out).unwrap();
    p.handle(1, &msg(b'C', b"UPDATE 1\0"), &mut out).unwrap();
    assert_eq!(p.reader(), Some(0));
    p.handle(0, &msg(b'Z', b"I"), &mut out).unwrap();
    p.handle(1, &msg(b'Z', b"I"), &mut out).unwrap();
    let mut expected = error("ERROR");
    expected.extend(msg(b'Z', b"I"));
    assert_eq!(&out[..], &expected[..]);
    assert!(p.is_empty());
}

#[test]
fn unexpected_message_is_desync() {
    let mut p = Pipeline::default();
    let mut out = BytesMut::new();
    assert!(p.handle(0, &msg(b'D', b"\0\0"), &mut out).is_err());
    p.push(fwd(Kind::Parse), &mut out);
    assert!(p.handle(0, &msg(b'2', b""), &mut out).is_err());
}
