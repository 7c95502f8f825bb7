//! Unit tests of `maps`.
use super::*;

#[test]
fn default_split_gives_extra_buckets_to_the_first_shards() {
    let t = default_split(1024, 3);
    let count = |s| t.iter().filter(|&&x| x == s).count();
    assert_eq!((count(0), count(1), count(2)), (342, 341, 341));
    assert_eq!(t.len(), 1024);
    // Contiguous runs in shard order.
    assert!(t.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(default_split(4, 2), vec![0, 0, 1, 1]);
    assert_eq!(default_split(2, 3), vec![0, 1]);
    assert!(default_split(5, 0).is_empty());
}

#[test]
fn bucket_runs() {
    let s = |t: &str| RawScalar::Text(t.to_owned());
    assert_eq!(bucket_run(&s("0-511"), 1024), Some((0, 511)));
    assert_eq!(bucket_run(&s("7"), 1024), Some((7, 7)));
    assert_eq!(bucket_run(&RawScalar::Int(3), 4), Some((3, 3)));
    assert_eq!(bucket_run(&s("0-1024"), 1024), None);
    assert_eq!(bucket_run(&s("5-4"), 1024), None);
    assert_eq!(bucket_run(&s("-1"), 1024), None);
    assert_eq!(bucket_run(&s("+1"), 1024), None);
    assert_eq!(bucket_run(&s("a-b"), 1024), None);
    assert_eq!(bucket_run(&RawScalar::Int(-1), 4), None);
}

#[test]
fn bucket_descriptions() {
    assert_eq!(describe_buckets(&[5]), "bucket 5");
    assert_eq!(
        describe_buckets(&[0, 1, 2, 3, 7, 9, 10]),
        "buckets 0-3, 7, 9-10"
    );
}
