//! The simple-protocol hot path (`pgbench -S`: `SELECT ... WHERE aid = <literal>`, a different
//! literal each time): once its normalized text is cached, `prepare_query` + `plan_query` do no
//! SQL parsing at all and allocate only a handful of times.
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
pgbench_branches = { reference = true }
"#;

fn new_router() -> Router {
    Router::new(&config::Config::parse(CONFIG, "normalized.toml").unwrap())
}

fn pgbench(aid: i64) -> String {
    format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};")
}

#[test]
fn cached_normalized_lookup_parses_nothing_and_allocates_little() {
    let router = new_router();
    let reference = new_router();
    let warm = router.prepare_query(&pgbench(1)).unwrap();
    router.plan_query(&warm).unwrap();
    let analyses = router.parse_cache_stats().analyses;
    let mut worst = 0;
    for aid in [2, 77, 123_456, 500_000, 9_999_999] {
        let sql = pgbench(aid);
        let (plan, n) = allocations(|| {
            let prepared = router.prepare_query(&sql).unwrap();
            router.plan_query(&prepared).unwrap()
        });
        worst = worst.max(n);
        assert!(matches!(plan.target, Target::Shards(ref s) if s.len() == 1));
        let stmt = reference.prepare(&sql).unwrap();
        assert_eq!(plan, reference.plan(&stmt, &Params::default()).unwrap());
    }
    // No sqlparser work: no analysis was made for the five new texts.
    assert_eq!(router.parse_cache_stats().analyses, analyses);
    assert_eq!(router.parse_cache_stats().template_hits, 6);
    // The normalized text and its constants, the query's copy, reading the number, placing it,
    // the plan's shards and reason: 8 today.
    assert!(
        worst <= 9,
        "prepare_query + plan_query allocated {worst} times"
    );
}

#[test]
fn statements_that_fall_back_are_decided_once() {
    let router = new_router();
    // A constant compared with the key that the analysis drops (the wider side of the AND):
    // its literal is checked by the exact analysis only, so this shape uses the exact text.
    for (i, aid) in [3, 4, 5].iter().enumerate() {
        let sql = format!(
            "SELECT * FROM pgbench_accounts WHERE aid = {aid} AND aid IN ({aid}, {})",
            aid + 1
        );
        let prepared = router.prepare_query(&sql).unwrap();
        assert!(!prepared.is_normalized(), "{sql}");
        let stats = router.parse_cache_stats();
        assert_eq!(stats.fallbacks, i as u64 + 1);
        // First time: the text and its normalized text; later only the new text itself.
        assert_eq!(stats.analyses, i as u64 + 2);
    }
}

#[test]
fn texts_without_constants_and_other_statements_use_the_exact_cache() {
    let router = new_router();
    for sql in [
        "SELECT * FROM pgbench_accounts",
        "BEGIN",
        "SET application_name = 'x'",
        "SELECT * FROM pgbench_accounts WHERE aid = $1",
    ] {
        let prepared = router.prepare_query(sql).unwrap();
        assert!(!prepared.is_normalized(), "{sql}");
        let again = router.prepare_query(sql).unwrap();
        assert!(std::sync::Arc::ptr_eq(
            prepared.statement(),
            again.statement()
        ));
    }
    assert_eq!(router.parse_cache_stats().analyses, 4);
    assert_eq!(router.parse_cache_stats().template_hits, 0);
}
