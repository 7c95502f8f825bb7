//! The per-query hot path: planning `SELECT ... WHERE id = $1` with a binary int8 parameter
//! allocates only a handful of times, and preparing a cached text is a lookup.
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use shard_router::{Params, Router, Target};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

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
