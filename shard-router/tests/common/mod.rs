//! Shared by the routing tests: the test config (3 shards; hash, range, list and uuid maps; a
//! reference table), placement computed from first principles, and bound parameters.
#![allow(dead_code)] // each test binary uses a different subset

use config::Config;
use shard_router::{Params, Plan, RouteError, Router};

pub const CONFIG: &str = r#"
[[shards]]
name = "s0"
url = "postgres://u:p@h0/db"
[[shards]]
name = "s1"
url = "postgres://u:p@h1/db"
[[shards]]
name = "s2"
url = "postgres://u:p@h2/db"

[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 1024

[maps.events]
strategy = "range"
key_type = "bigint"
ranges = [ { to = 1000, shard = "s0" }, { from = 1000, to = 2000, shard = "s1" }, { from = 2000, shard = "s2" } ]

[maps.region]
strategy = "list"
key_type = "text"
lists = [ { values = ["KR", "JP"], shard = "s0" }, { values = ["US", "DE"], shard = "s1" } ]
default = "s2"

[maps.sessions]
strategy = "hash"
key_type = "uuid"
buckets = 1024

[tables]
users = { map = "users", key = "id" }
orders = { map = "users", key = "user_id" }
events = { map = "events", key = "event_id" }
customers = { map = "region", key = "country" }
sessions = { map = "sessions", key = "sid" }
countries = { reference = true }
"#;

pub const UUID: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
pub const UUID_BYTES: [u8; 16] = [
    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11,
];

pub fn router() -> Router {
    Router::new(&Config::parse(CONFIG, "routing.toml").unwrap())
}

/// The shard of a bucket under the default split of 1024 buckets over 3 shards.
pub fn shard_of_bucket(bucket: u64) -> usize {
    match bucket {
        0..=341 => 0,
        342..=682 => 1,
        _ => 2,
    }
}

/// Where bigint key `k` of the `users` map lives.
pub fn h(k: i64) -> usize {
    shard_of_bucket(xxhash_rust::xxh3::xxh3_64(&k.to_le_bytes()) % 1024)
}

/// Where the test uuid lives in the `sessions` map.
pub fn hu() -> usize {
    shard_of_bucket(xxhash_rust::xxh3::xxh3_64(&UUID_BYTES) % 1024)
}

pub fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v.dedup();
    v
}

/// The first positive keys living on shards 0, 1 and 2.
pub fn key_on(shard: usize) -> i64 {
    (1..).find(|k| h(*k) == shard).unwrap()
}

/// A bound parameter.
#[derive(Clone, Debug)]
pub enum P {
    Text(&'static str),
    Int8(i64),
    Int4(i32),
    Int2(i16),
    /// binary int8 with an unspecified type
    Untyped8(i64),
    Uuid([u8; 16]),
    Int8Array(Vec<i64>),
    TextArray(&'static str),
    /// text format, type left unspecified
    UntypedText(&'static str),
    Null,
}

pub struct Bind {
    pub values: Vec<Option<Vec<u8>>>,
    pub formats: Vec<i16>,
    pub types: Vec<u32>,
}

pub fn bind(params: &[P]) -> Bind {
    let mut b = Bind {
        values: Vec::new(),
        formats: Vec::new(),
        types: Vec::new(),
    };
    for p in params {
        let (value, format, oid) = match p {
            P::Text(s) => (Some(s.as_bytes().to_vec()), 0, 0),
            P::Int8(v) => (Some(v.to_be_bytes().to_vec()), 1, 20),
            P::Int4(v) => (Some(v.to_be_bytes().to_vec()), 1, 23),
            P::Int2(v) => (Some(v.to_be_bytes().to_vec()), 1, 21),
            P::Untyped8(v) => (Some(v.to_be_bytes().to_vec()), 1, 0),
            P::Uuid(u) => (Some(u.to_vec()), 1, 2950),
            P::Int8Array(items) => (Some(binary_int8_array(items)), 1, 1016),
            P::TextArray(s) => (Some(s.as_bytes().to_vec()), 0, 1016),
            P::UntypedText(s) => (Some(s.as_bytes().to_vec()), 0, 0),
            P::Null => (None, 0, 0),
        };
        b.values.push(value);
        b.formats.push(format);
        b.types.push(oid);
    }
    b
}

/// PostgreSQL's binary array format for a one-dimensional int8[].
pub fn binary_int8_array(items: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&1i32.to_be_bytes()); // dimensions
    out.extend_from_slice(&0i32.to_be_bytes()); // no NULLs
    out.extend_from_slice(&20u32.to_be_bytes()); // int8
    out.extend_from_slice(&(items.len() as i32).to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    for v in items {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

pub fn run(router: &Router, sql: &str, params: &[P]) -> Result<Plan, RouteError> {
    let b = bind(params);
    let values: Vec<Option<&[u8]>> = b.values.iter().map(|v| v.as_deref()).collect();
    let params = Params {
        values: &values,
        formats: &b.formats,
        types: &b.types,
    };
    let stmt = router.prepare(sql)?;
    router.plan(&stmt, &params)
}
