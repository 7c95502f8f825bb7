//! The commit protocol against scripted fake shards (raw protocol over real sockets).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admin::ProxyMetrics;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::backend::CancelKey;
use crate::twopc::{Failpoints, LogOptions, TwoPc};

/// How a fake shard answers one query.
#[derive(Debug, Clone)]
enum Answer {
    /// CommandComplete with the statement's own tag, then ReadyForQuery 'I'.
    Ok,
    /// ErrorResponse with this SQLSTATE and message, then ReadyForQuery 'I'.
    Error(&'static str, &'static str),
    /// Close the socket without answering.
    Close,
}

/// A fake shard: answers queries in order, records what it received.
struct FakeShard {
    received: Arc<Mutex<Vec<String>>>,
}

impl FakeShard {
    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// A connected BackendConn and its fake shard.
async fn fake(index: usize, answers: Vec<Answer>) -> (BackendConn, FakeShard) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        for answer in answers {
            let Some(sql) = read_query(&mut socket, &mut buf).await else {
                return;
            };
            log.lock().unwrap().push(sql.clone());
            let mut out = BytesMut::new();
            match answer {
                Answer::Ok => {
                    let tag = tag_of(&sql);
                    encode::command_complete(&mut out, &tag);
                }
                Answer::Error(code, message) => {
                    encode::error_response(&mut out, "ERROR", code, message);
                }
                Answer::Close => return,
            }
            encode::ready_for_query(&mut out, TransactionStatus::Idle);
            socket.write_all(&out).await.unwrap();
        }
        // Keep the socket open until the client goes away.
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await;
        if let Ok(text) = String::from_utf8(rest) {
            if !text.is_empty() {
                log.lock().unwrap().push(format!("unexpected: {text}"));
            }
        }
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let conn = BackendConn {
        stream,
        read_buf: BytesMut::new(),
        write_buf: BytesMut::new(),
        cancel_key: CancelKey {
            addr,
            process_id: 1,
            secret_key: 2,
        },
        server_params: Vec::new(),
        applied_params: Default::default(),
        prepared: HashSet::new(),
        unnamed: None,
        status: TransactionStatus::InBlock,
        broken: false,
        shard: index,
    };
    (conn, FakeShard { received })
}

/// The tag PostgreSQL gives these statements.
fn tag_of(sql: &str) -> String {
    [
        "PREPARE TRANSACTION",
        "COMMIT PREPARED",
        "ROLLBACK PREPARED",
        "ROLLBACK",
    ]
    .into_iter()
    .find(|t| sql.starts_with(t))
    .unwrap_or("SELECT 1")
    .to_owned()
}

/// Reads one Query message; `None` at EOF.
async fn read_query(socket: &mut TcpStream, buf: &mut BytesMut) -> Option<String> {
    loop {
        if buf.len() >= 5 {
            let len = u32::from_be_bytes(buf[1..5].try_into().unwrap()) as usize;
            if buf.len() > len {
                assert_eq!(buf[0], b'Q');
                let frame = buf.split_to(len + 1);
                let sql = &frame[5..frame.len() - 1];
                return Some(String::from_utf8(sql.to_vec()).unwrap());
            }
        }
        let n = socket.read_buf(buf).await.ok()?;
        if n == 0 {
            return None;
        }
    }
}

fn twopc(dir: &std::path::Path, failpoints: Failpoints) -> TwoPc {
    let metrics = Arc::new(ProxyMetrics::new(&[]));
    TwoPc::open_with(dir, Some("t"), metrics, failpoints, LogOptions::default()).unwrap()
}

fn names() -> Vec<String> {
    vec!["s0".to_owned(), "s1".to_owned()]
}

fn metric(twopc: &TwoPc, series: &str) -> f64 {
    let text = twopc.metrics().render(&[]);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn both_prepare_then_both_commit() {
    let dir = tempfile::tempdir().unwrap();
    let tp = twopc(dir.path(), Failpoints::none());
    let (mut c0, f0) = fake(0, vec![Answer::Ok, Answer::Ok]).await;
    let (mut c1, f1) = fake(1, vec![Answer::Ok, Answer::Ok]).await;
    tp.commit(&mut [&mut c0, &mut c1], &names()).await.unwrap();
    let seen = f0.received();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let gid = seen[0].strip_prefix("PREPARE TRANSACTION '").unwrap();
    let gid = gid.strip_suffix('\'').unwrap().to_owned();
    assert_eq!(seen[1], format!("COMMIT PREPARED '{gid}'"));
    assert_eq!(f1.received(), seen);
    assert_eq!(tp.owner(&gid), crate::twopc::Owner::ThisBoot);
    // Finished everywhere: DONE, not in flight, nothing left for recovery.
    assert!(tp.decision(&gid).is_none());
    assert!(!tp.is_in_flight(&gid));
    assert!(!c0.broken && !c1.broken);
    assert_eq!(c0.status, TransactionStatus::Idle);
    assert_eq!(metric(&tp, "shardproxy_2pc_commits_total"), 1.0);
    assert_eq!(metric(&tp, "shardproxy_2pc_aborts_total"), 0.0);
}

#[tokio::test]
async fn a_refused_prepare_rolls_the_others_back() {
    let dir = tempfile::tempdir().unwrap();
    let tp = twopc(dir.path(), Failpoints::none());
    let (mut c0, f0) = fake(0, vec![Answer::Ok, Answer::Ok]).await;
    let (mut c1, f1) = fake(
        1,
        vec![Answer::Error(
            "23505",
            "duplicate key value violates unique constraint",
        )],
    )
    .await;
    let err = tp
        .commit(&mut [&mut c0, &mut c1], &names())
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "23505");
    assert_eq!(err.shard, "s1");
    assert!(err.message().contains("duplicate key"));
    assert!(err.rollback_pending.is_empty());
    let seen = f0.received();
    assert!(seen[1].starts_with("ROLLBACK PREPARED 'sp_t_"), "{seen:?}");
    assert_eq!(f1.received().len(), 1);
    assert!(tp.decisions().is_empty());
    assert_eq!(metric(&tp, "shardproxy_2pc_aborts_total"), 1.0);
}

#[tokio::test]
async fn disabled_prepared_transactions_name_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let tp = twopc(dir.path(), Failpoints::none());
    let (mut c0, _f0) = fake(0, vec![Answer::Ok, Answer::Ok]).await;
    let (mut c1, _f1) = fake(
        1,
        vec![Answer::Error("55000", "prepared transactions are disabled")],
    )
    .await;
    let err = tp
        .commit(&mut [&mut c0, &mut c1], &names())
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "55000");
    assert_eq!(
        err.message(),
        "shard s1 has max_prepared_transactions = 0; writes to several shards need two-phase \
         commit: set max_prepared_transactions > 0 there"
    );
}

#[tokio::test]
async fn a_lost_prepare_is_left_to_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let tp = twopc(dir.path(), Failpoints::none());
    let (mut c0, f0) = fake(0, vec![Answer::Ok, Answer::Ok]).await;
    let (mut c1, _f1) = fake(1, vec![Answer::Close]).await;
    let err = tp
        .commit(&mut [&mut c0, &mut c1], &names())
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "08006");
    assert_eq!(err.rollback_pending, vec!["s1".to_owned()]);
    assert!(c1.broken);
    assert!(!c0.broken);
    assert!(f0.received()[1].starts_with("ROLLBACK PREPARED"));
}

#[tokio::test]
async fn a_lost_commit_prepared_still_commits() {
    let dir = tempfile::tempdir().unwrap();
    let tp = twopc(dir.path(), Failpoints::none());
    let (mut c0, f0) = fake(0, vec![Answer::Ok, Answer::Ok]).await;
    let (mut c1, _f1) = fake(1, vec![Answer::Ok, Answer::Close]).await;
    // The decision is durable: the client gets success although s1 did not confirm.
    tp.commit(&mut [&mut c0, &mut c1], &names()).await.unwrap();
    let gid = f0.received()[1]
        .trim_start_matches("COMMIT PREPARED '")
        .trim_end_matches('\'')
        .to_owned();
    assert!(c1.broken);
    // The decision stays live for recovery.
    assert_eq!(tp.decision(&gid).unwrap().shards, names());
    assert_eq!(metric(&tp, "shardproxy_2pc_commits_total"), 1.0);
}

#[tokio::test]
async fn without_a_log_nothing_commits() {
    let tp = TwoPc::without_log("t", Arc::new(ProxyMetrics::new(&[])));
    let (mut c0, f0) = fake(0, vec![Answer::Ok, Answer::Ok]).await;
    let (mut c1, f1) = fake(1, vec![Answer::Ok, Answer::Ok]).await;
    let err = tp
        .commit(&mut [&mut c0, &mut c1], &names())
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "58030");
    assert!(err.message().contains("rolled back"), "{err}");
    assert!(f0.received()[1].starts_with("ROLLBACK PREPARED"));
    assert!(f1.received()[1].starts_with("ROLLBACK PREPARED"));
}

#[tokio::test]
async fn after_some_prepares_stops_with_one_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let tp = twopc(
        dir.path(),
        Failpoints::parse("after_some_prepares=pause").unwrap(),
    );
    let (mut c0, f0) = fake(0, vec![Answer::Ok, Answer::Ok]).await;
    let (mut c1, f1) = fake(1, vec![Answer::Ok, Answer::Ok]).await;
    let names = names();
    let mut conns = [&mut c0, &mut c1];
    let paused = tokio::time::timeout(Duration::from_millis(300), tp.commit(&mut conns, &names));
    assert!(paused.await.is_err(), "the commit should pause");
    assert_eq!(f0.received().len(), 1);
    assert!(f1.received().is_empty());
    // Dropped mid-protocol: the gid is released to recovery.
    let gid = f0.received()[0]
        .trim_start_matches("PREPARE TRANSACTION '")
        .trim_end_matches('\'')
        .to_owned();
    assert!(!tp.is_in_flight(&gid));
}

#[tokio::test]
async fn after_decision_stops_with_the_decision_logged() {
    let dir = tempfile::tempdir().unwrap();
    let tp = twopc(
        dir.path(),
        Failpoints::parse("after_decision=pause").unwrap(),
    );
    let (mut c0, f0) = fake(0, vec![Answer::Ok, Answer::Ok]).await;
    let (mut c1, _f1) = fake(1, vec![Answer::Ok, Answer::Ok]).await;
    let names = names();
    let mut conns = [&mut c0, &mut c1];
    let paused = tokio::time::timeout(Duration::from_millis(300), tp.commit(&mut conns, &names));
    assert!(paused.await.is_err());
    assert_eq!(f0.received().len(), 1);
    assert_eq!(tp.decisions().len(), 1);
}

#[test]
fn failures_prefer_refusals_over_lost_connections() {
    let steps = vec![
        Step::Lost("reset".to_owned()),
        Step::Refused(ErrorFields {
            fields: vec![(b'C', "23503".to_owned()), (b'M', "fk".to_owned())],
        }),
    ];
    let err = first_failure(&steps, &names()).unwrap();
    assert_eq!((err.sqlstate(), err.shard.as_str()), ("23503", "s1"));
    let steps = vec![
        Step::Done("PREPARE TRANSACTION".to_owned()),
        Step::Done("ROLLBACK".to_owned()),
    ];
    let err = first_failure(&steps, &names()).unwrap();
    assert_eq!((err.sqlstate(), err.shard.as_str()), ("25P02", "s1"));
    let steps = vec![
        Step::Done("PREPARE TRANSACTION".to_owned()),
        Step::Done("PREPARE TRANSACTION".to_owned()),
    ];
    assert!(first_failure(&steps, &names()).is_none());
}

#[test]
fn sqlstates_are_interned() {
    let a = intern_sqlstate(&String::from("23505"));
    let b = intern_sqlstate("23505");
    assert_eq!(a, "23505");
    assert!(std::ptr::eq(a, b));
    assert_eq!(intern_sqlstate("2350"), "XX000");
    assert_eq!(intern_sqlstate("23a05"), "XX000");
    assert_eq!(intern_sqlstate("ZZZZZ"), "ZZZZZ");
}
