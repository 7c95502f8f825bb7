//! Tests of the shared 2PC handle: opening state_dir, the lock, gids, claims.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;

fn metrics() -> Arc<ProxyMetrics> {
    Arc::new(ProxyMetrics::new(&[]))
}

fn open(dir: &Path, id: Option<&str>) -> Result<TwoPc, TwoPcError> {
    TwoPc::open_with(
        dir,
        id,
        metrics(),
        Failpoints::none(),
        LogOptions::default(),
    )
}

#[test]
fn creates_state_dir_and_derives_the_proxy_id() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/state");
    let tp = open(&dir, None).unwrap();
    assert!(dir.join(log::LOG_FILE).exists());
    let canonical = std::fs::canonicalize(&dir).unwrap();
    assert_eq!(tp.proxy_id(), gid::default_proxy_id(&canonical));
    assert_eq!(tp.state_dir(), Some(canonical.as_path()));
    drop(tp);
    // Same directory, same id: gids of earlier boots stay recognisable.
    let again = open(&dir, None).unwrap();
    assert_eq!(again.proxy_id(), gid::default_proxy_id(&canonical));
}

#[test]
fn a_state_dir_that_cannot_be_created_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = open(&file.join("state"), Some("p")).unwrap_err();
    assert!(matches!(err, TwoPcError::CreateStateDir { .. }), "{err}");
    assert!(
        err.to_string().starts_with("cannot create state_dir "),
        "{err}"
    );
}

#[test]
fn one_state_dir_one_proxy() {
    let root = tempfile::tempdir().unwrap();
    let first = open(root.path(), Some("p")).unwrap();
    let err = open(root.path(), Some("p")).unwrap_err();
    assert!(matches!(err, TwoPcError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use by another shardproxy"));
    drop(first);
    open(root.path(), Some("p")).unwrap();
}

#[tokio::test]
async fn gids_are_fresh_and_ours() {
    let root = tempfile::tempdir().unwrap();
    let tp = open(root.path(), Some("east_1")).unwrap();
    let a = tp.next_gid();
    let b = tp.next_gid();
    assert_ne!(a, b);
    assert!(a.starts_with("sp_east_1_"), "{a}");
    assert_eq!(tp.owner(&a), Owner::ThisBoot);
    let parsed = Gid::parse(&a).unwrap();
    assert_eq!(
        (parsed.proxy_id.as_str(), parsed.boot),
        ("east_1", tp.boot())
    );
    let earlier = Gid::format("east_1", tp.boot() - 1, 1);
    assert_eq!(tp.owner(&earlier), Owner::EarlierBoot);
    assert_eq!(tp.owner(&Gid::format("west", tp.boot(), 1)), Owner::NotOurs);
}

#[tokio::test]
async fn the_boot_id_is_later_than_any_logged_one() {
    let root = tempfile::tempdir().unwrap();
    // A decision from a boot "in the future" (the clock went back since).
    let future_boot = log::now_ms() + 10_000_000;
    {
        let tp = open(root.path(), Some("p")).unwrap();
        let gid = Gid::format("p", future_boot, 3);
        tp.log_commit(&gid, &["s0".to_owned()]).await.unwrap();
    }
    let tp = open(root.path(), Some("p")).unwrap();
    assert_eq!(tp.boot(), future_boot + 1);
    assert_eq!(tp.decisions().len(), 1);
    let gid = Gid::format("p", future_boot, 3);
    assert_eq!(tp.owner(&gid), Owner::EarlierBoot);
}

#[tokio::test]
async fn claims_exclude_each_other() {
    let root = tempfile::tempdir().unwrap();
    let tp = open(root.path(), Some("p")).unwrap();
    let claim = tp.try_claim("g").unwrap();
    assert_eq!(claim.gid(), "g");
    assert!(tp.is_in_flight("g"));
    assert!(tp.try_claim("g").is_none());
    drop(claim);
    assert!(!tp.is_in_flight("g"));
    assert!(tp.try_claim("g").is_some());
}

#[tokio::test]
async fn decisions_and_done() {
    let root = tempfile::tempdir().unwrap();
    let tp = open(root.path(), Some("p")).unwrap();
    let gid = tp.next_gid();
    let shards = vec!["s0".to_owned(), "s2".to_owned()];
    tp.log_commit(&gid, &shards).await.unwrap();
    assert_eq!(tp.decision(&gid).unwrap().shards, shards);
    tp.log_done(&gid);
    assert!(tp.decision(&gid).is_none());
    tp.flush().await.unwrap();
    let without = TwoPc::without_log("p", metrics());
    assert!(matches!(
        without.log_commit("g", &shards).await,
        Err(TwoPcError::NoLog)
    ));
    assert!(without.decisions().is_empty());
    without.flush().await.unwrap();
}
