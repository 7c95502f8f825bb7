//! The per-query hot path: planning `SELECT ... WHERE id = $1` with a binary int8 parameter
//! allocates only a handful of times, and preparing a cached text is a lookup.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

use shard_router::{Params, Router, Target};

const CONFIG: &str = r#"
[[shards]]
name = "s0"
url = "postgres://u:p@h0/db"
[[shards]]
name = "s1"
url = "postgres://u:p@h1/db"

[maps.accounts]
strategy = "hash"
key_type = "bigint"
buckets = 1024

[tables]
pgbench_accounts = { map = "accounts", key = "aid" }
"#;

#[test]
fn routed_lookup_allocates_a_handful_of_times() {
    let router = Router::new(&config::Config::parse(CONFIG, "alloc.toml").unwrap());
    let sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
    let stmt = router.prepare(sql).unwrap();
    let value = 123_456i64.to_be_bytes();
    let values = [Some(&value[..])];
    let params = Params {
        values: &values,
        formats: &[1],
        types: &[20],
    };
    let _ = router.plan(&stmt, &params).unwrap();
    let (plan, n) = allocations(|| router.plan(&stmt, &params).unwrap());
    assert!(matches!(plan.target, Target::Shards(ref s) if s.len() == 1));
    assert!(n <= 4, "plan() allocated {n} times");
    let (again, n) = allocations(|| router.prepare(sql).unwrap());
    assert!(std::sync::Arc::ptr_eq(&stmt, &again));
    assert!(n <= 1, "a cached prepare() allocated {n} times");
}

#[test]
fn the_counting_allocator_counts() {
    // Guards the budgets above: a counter stuck at zero would pass every "at most N" check.
    let (v, n) = allocations(|| vec![1u8; 10]);
    assert_eq!(v.len(), 10);
    assert!(n >= 1, "allocations not counted");
}
