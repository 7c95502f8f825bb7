//! Tests of the decision log: round trip, grouped fsync, torn tails, compaction.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;

use super::*;

fn metrics() -> Arc<ProxyMetrics> {
    Arc::new(ProxyMetrics::new(&[]))
}

fn open(dir: &Path) -> DecisionLog {
    DecisionLog::open(dir, metrics(), LogOptions::default()).unwrap()
}

fn shards() -> Vec<String> {
    vec!["s0".to_owned(), "s1".to_owned()]
}

fn live_gids(log: &DecisionLog) -> BTreeSet<String> {
    log.decisions().into_iter().map(|c| c.gid).collect()
}

fn set(gids: &[&str]) -> BTreeSet<String> {
    gids.iter().map(|g| (*g).to_owned()).collect()
}

#[tokio::test]
async fn decisions_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.commit("g1", &shards()).await.unwrap();
        log.commit("g2", &["s1".to_owned()]).await.unwrap();
        log.done("g1");
        // DONE for a gid with no decision writes nothing.
        log.done("never");
        assert_eq!(live_gids(&log), set(&["g2"]));
        assert!(log.decision("g1").is_none());
    }
    let log = open(dir.path());
    assert_eq!(live_gids(&log), set(&["g2"]));
    let g2 = log.decision("g2").unwrap();
    assert_eq!(g2.shards, vec!["s1".to_owned()]);
    assert!(g2.decided_at_ms > 1_600_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_committers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    let committers = 200;
    let tasks: Vec<_> = (0..committers)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.commit(&format!("g{i}"), &shards()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let syncs = log.sync_count();
    assert!(syncs >= 1 && syncs < committers, "{syncs} fsyncs");
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.decisions().len(), 200);
}

#[tokio::test]
async fn a_commit_is_on_disk_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.commit("g1", &shards()).await.unwrap();
    // Read the file while the log is still open: the record must already be there.
    let bytes = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
    let scan = record::scan(&bytes).unwrap();
    assert_eq!(scan.records.len(), 1);
    assert_eq!(scan.records[0].gid(), "g1");
}

/// Two committed decisions written by a log, as bytes.
async fn two_record_file() -> (Vec<u8>, usize) {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.commit("sp_a_1_1", &shards()).await.unwrap();
        log.commit("sp_a_1_2", &shards()).await.unwrap();
    }
    let bytes = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
    let first = record::scan(&bytes).unwrap().records[0]
        .encode()
        .unwrap()
        .len();
    (bytes, first)
}

#[tokio::test]
async fn a_torn_tail_at_every_offset_is_cut_off_at_open() {
    let (bytes, first) = two_record_file().await;
    for cut in 0..bytes.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let log = open(dir.path());
        let expect = if cut >= first {
            set(&["sp_a_1_1"])
        } else {
            set(&[])
        };
        assert_eq!(live_gids(&log), expect, "cut at {cut}");
        let kept = if cut >= first { first } else { 0 };
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            kept as u64,
            "cut at {cut}"
        );
        // New records follow the good ones, not the cut-off garbage.
        log.commit("sp_a_1_3", &shards()).await.unwrap();
        drop(log);
        let log = open(dir.path());
        assert!(live_gids(&log).contains("sp_a_1_3"), "cut at {cut}");
    }
}

#[tokio::test]
async fn a_flipped_checksum_byte_is_cut_off() {
    let (mut bytes, first) = two_record_file().await;
    // The last record's CRC field.
    bytes[first + 5] ^= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    std::fs::write(&path, &bytes).unwrap();
    let log = open(dir.path());
    assert_eq!(live_gids(&log), set(&["sp_a_1_1"]));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), first as u64);
}

#[test]
fn a_corrupt_record_that_is_not_torn_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let payload = [7u8, 0, 0];
    let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    std::fs::write(dir.path().join(LOG_FILE), &bytes).unwrap();
    let err = DecisionLog::open(dir.path(), metrics(), LogOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, OpenError::Corrupt { offset: 0, .. }), "{err}");
}

#[tokio::test]
async fn compaction_keeps_live_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    let options = LogOptions {
        compact_min_done: 20,
    };
    let mut lengths = Vec::new();
    {
        let log = DecisionLog::open(dir.path(), metrics(), options).unwrap();
        for i in 0..100 {
            log.commit(&format!("g{i}"), &shards()).await.unwrap();
            if i % 10 != 0 {
                log.done(&format!("g{i}"));
            }
            // A flush waits for the writer, so each round's records are in (and compacted).
            log.flush().await.unwrap();
            lengths.push(std::fs::metadata(&path).unwrap().len());
        }
        let expect: BTreeSet<String> = (0..100).step_by(10).map(|i| format!("g{i}")).collect();
        assert_eq!(live_gids(&log), expect);
    }
    // The file shrank at least once instead of growing with every record.
    assert!(lengths.windows(2).any(|w| w[1] < w[0]), "{lengths:?}");
    assert!(!dir.path().join(TEMP_FILE).exists());
    let log = open(dir.path());
    let expect: BTreeSet<String> = (0..100).step_by(10).map(|i| format!("g{i}")).collect();
    assert_eq!(live_gids(&log), expect);
    // Only live COMMIT records and the DONE records written since the last compaction remain.
    let scan = record::scan(&std::fs::read(&path).unwrap()).unwrap();
    assert!(scan.records.len() < 60, "{} records", scan.records.len());
}

#[tokio::test]
async fn a_leftover_temp_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(TEMP_FILE), b"half a compaction").unwrap();
    let log = open(dir.path());
    assert!(log.decisions().is_empty());
    assert!(!dir.path().join(TEMP_FILE).exists());
}
