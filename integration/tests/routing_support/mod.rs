//! Shared by the routing suites: the maps every routing test runs with, an independent placement
//! oracle (INTERFACE.md section 3 computed from first principles) and a fixture that checks, by
//! connecting to each shard directly, where rows really are.
#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test
#![allow(dead_code)] // each routing binary uses a different part

use std::collections::BTreeMap;
use std::error::Error;

use bytes::BytesMut;
use config::KeyValue;
use integration::util::code;
use integration::{config_toml, connect, connect_url, fresh_dbs, start_proxy, TestDbs};
use proxy::RunningProxy;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::Client;

/// Shards every routing test runs over.
pub const SHARDS: usize = 3;

/// A hash map as the oracle sees it: bucket count and `(first, last, shard)` runs; an empty
/// `assign` means the default contiguous split.
#[derive(Debug, Clone, Copy)]
pub struct HashSpec {
    /// `buckets`
    pub buckets: u64,
    /// `assign` as inclusive bucket runs; empty: omitted in the config
    pub assign: &'static [(u64, u64, usize)],
}

/// `users`/`orders`: 16 buckets, `assign` omitted (6 + 5 + 5 buckets).
pub const USERS: HashSpec = HashSpec {
    buckets: 16,
    assign: &[],
};
/// `tags`: text keys, an explicit assign that is not in shard order.
pub const TAGS: HashSpec = HashSpec {
    buckets: 8,
    assign: &[(0, 1, 2), (2, 4, 0), (5, 7, 1)],
};
/// `devices`: uuid keys.
pub const DEVICES: HashSpec = HashSpec {
    buckets: 8,
    assign: &[(0, 2, 1), (3, 5, 2), (6, 7, 0)],
};

/// The `[maps.*]` and `[tables]` of every routing test; must agree with the specs above and
/// with [`event_shard`], [`word_shard`], [`reading_shard`], [`customer_shard`], [`zone_shard`].
pub const MAPS_TOML: &str = r#"
[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 16

[maps.tags]
strategy = "hash"
key_type = "text"
buckets = 8
assign = [ { buckets = "0-1", shard = "s2" }, { buckets = "2-4", shard = "s0" }, { buckets = "5-7", shard = "s1" } ]

[maps.devices]
strategy = "hash"
key_type = "uuid"
buckets = 8
assign = [ { buckets = "0-2", shard = "s1" }, { buckets = "3-5", shard = "s2" }, { buckets = "6-7", shard = "s0" } ]

[maps.events]
strategy = "range"
key_type = "bigint"
ranges = [ { to = 100, shard = "s0" }, { from = 100, to = 200, shard = "s1" }, { from = 200, shard = "s2" } ]

[maps.readings]
strategy = "range"
key_type = "bigint"
ranges = [ { from = 0, to = 1000, shard = "s1" } ]

[maps.words]
strategy = "range"
key_type = "text"
ranges = [ { to = "m", shard = "s0" }, { from = "m", shard = "s1" } ]

[maps.region]
strategy = "list"
key_type = "text"
lists = [ { values = ["KR", "JP"], shard = "s0" }, { values = ["US", "DE"], shard = "s1" } ]
default = "s2"

[maps.zones]
strategy = "list"
key_type = "text"
lists = [ { values = ["north"], shard = "s0" }, { values = ["south"], shard = "s1" } ]

[tables]
users     = { map = "users",    key = "id" }
orders    = { map = "users",    key = "user_id" }
tags      = { map = "tags",     key = "tag" }
devices   = { map = "devices",  key = "id" }
events    = { map = "events",   key = "event_id" }
readings  = { map = "readings", key = "reading_id" }
words     = { map = "words",    key = "word" }
customers = { map = "region",   key = "country" }
zones     = { map = "zones",    key = "zone" }
countries = { reference = true }
"#;

/// The tables of [`MAPS_TOML`] (plus the unlisted `notes`), created directly on every shard.
/// `orders.user_id` may be NULL on purpose: refusing a NULL key is the proxy's job.
pub const SCHEMA: &str = "
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE orders (order_id bigint, user_id bigint, amount int);
CREATE TABLE tags (tag text, n int);
CREATE TABLE devices (id uuid, label text);
CREATE TABLE events (event_id bigint, kind text);
CREATE TABLE readings (reading_id bigint, v int);
CREATE TABLE words (word text, n int);
CREATE TABLE customers (country text, name text);
CREATE TABLE zones (zone text, n int);
CREATE TABLE countries (code text PRIMARY KEY, name text);
";

/// `xxh3_64` (seed 0) of a key's section-3 bytes. The hash itself comes from shard-router
/// (integration may not add xxhash-rust); `routing.rs` pins it to vectors computed with python's
/// `xxhash`, so everything after the hash is derived here independently.
pub fn xxh3(key: &KeyValue) -> u64 {
    shard_router::placement::hash_key(key)
}

/// The shard of `bucket` under `spec`: its assign run, or the default contiguous split where
/// the first `buckets % shards` shards hold one bucket more.
pub fn bucket_shard(spec: HashSpec, bucket: u64) -> usize {
    if !spec.assign.is_empty() {
        let run = spec
            .assign
            .iter()
            .find(|(a, b, _)| (*a..=*b).contains(&bucket));
        return run.unwrap().2;
    }
    let shards = SHARDS as u64;
    let (base, extra) = (spec.buckets / shards, spec.buckets % shards);
    let mut first = 0;
    for shard in 0..shards {
        let len = base + u64::from(shard < extra);
        if bucket < first + len {
            return shard as usize;
        }
        first += len;
    }
    panic!("bucket {bucket} beyond {} buckets", spec.buckets)
}

/// Where a hash-map key lives.
pub fn hash_shard(spec: HashSpec, key: &KeyValue) -> usize {
    bucket_shard(spec, xxh3(key) % spec.buckets)
}

/// `users`/`orders` placement of a bigint.
pub fn user_shard(id: i64) -> usize {
    hash_shard(USERS, &KeyValue::Int(id))
}

/// `per_shard` keys for each shard of `users`, the smallest from `from` up, in ascending order.
pub fn user_keys(from: i64, per_shard: usize) -> Vec<i64> {
    let mut found = [0usize; SHARDS];
    let mut keys = Vec::new();
    let mut k = from;
    while found.iter().any(|n| *n < per_shard) {
        let s = user_shard(k);
        if found[s] < per_shard {
            found[s] += 1;
            keys.push(k);
        }
        k += 1;
    }
    keys
}

/// `tags` placement of a text key.
pub fn tag_shard(tag: &str) -> usize {
    hash_shard(TAGS, &KeyValue::Text(tag.to_string()))
}

/// `devices` placement of a uuid.
pub fn device_shard(id: [u8; 16]) -> usize {
    hash_shard(DEVICES, &KeyValue::Uuid(id))
}

/// `events`: `(.., 100) -> s0, [100, 200) -> s1, [200, ..) -> s2`.
pub fn event_shard(id: i64) -> usize {
    match id {
        i64::MIN..=99 => 0,
        100..=199 => 1,
        _ => 2,
    }
}

/// `readings`: only `[0, 1000) -> s1`; None outside.
pub fn reading_shard(id: i64) -> Option<usize> {
    (0..1000).contains(&id).then_some(1)
}

/// `words`: text ranges compare bytes: `(.., "m") -> s0, ["m", ..) -> s1`.
pub fn word_shard(word: &str) -> usize {
    usize::from(word.as_bytes() >= b"m".as_slice())
}

/// `customers` (map `region`): KR, JP -> s0; US, DE -> s1; anything else -> default s2.
pub fn customer_shard(country: &str) -> usize {
    match country {
        "KR" | "JP" => 0,
        "US" | "DE" => 1,
        _ => 2,
    }
}

/// `zones`: north -> s0, south -> s1, no default.
pub fn zone_shard(zone: &str) -> Option<usize> {
    match zone {
        "north" => Some(0),
        "south" => Some(1),
        _ => None,
    }
}

/// The 16 bytes of a uuid written in any spelling PostgreSQL accepts (hyphens, braces, case).
pub fn uuid_bytes(text: &str) -> [u8; 16] {
    let hex: Vec<u8> = text
        .bytes()
        .filter(|b| b.is_ascii_hexdigit())
        .map(|b| (b as char).to_digit(16).unwrap() as u8)
        .collect();
    assert_eq!(hex.len(), 32, "not a uuid: {text}");
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = pair[0] << 4 | pair[1];
    }
    out
}

/// PostgreSQL's own spelling of a uuid (what `id::text` returns).
pub fn uuid_text(bytes: [u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A uuid bind parameter in binary format (tokio-postgres has no uuid type without a feature).
#[derive(Debug)]
pub struct BinaryUuid(pub [u8; 16]);

impl ToSql for BinaryUuid {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }

    to_sql_checked!();
}

/// A proxy over three fresh shards with [`MAPS_TOML`], a client through it, and a direct client
/// on each shard.
pub struct Fixture {
    /// the test's databases
    pub dbs: TestDbs,
    /// the proxy under test
    pub proxy: RunningProxy,
    /// a client through the proxy
    pub client: Client,
    /// direct clients, `shards[i]` on shard `s{i}`
    pub shards: Vec<Client>,
}

impl Fixture {
    /// Three fresh shards with `schema` run directly on each, and the proxy over them.
    pub async fn start(schema: &str) -> Fixture {
        let dbs = fresh_dbs(SHARDS).await;
        let mut shards = Vec::new();
        for url in &dbs.shard_urls {
            let shard = connect_url(url).await;
            if !schema.trim().is_empty() {
                shard.batch_execute(schema).await.unwrap();
            }
            shards.push(shard);
        }
        let proxy = start_proxy(&config_toml(&dbs, "", MAPS_TOML)).await;
        let client = connect(proxy.addr, "app", None, &dbs.name).await;
        Fixture {
            dbs,
            proxy,
            client,
            shards,
        }
    }

    /// Another client through the proxy.
    pub async fn connect(&self) -> Client {
        connect(self.proxy.addr, "app", None, &self.dbs.name).await
    }

    /// The first column of `sql` (cast to text by the caller) on each shard, sorted.
    pub async fn column_per_shard(&self, sql: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let rows = shard
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql} on s{i}: {e}"));
            let mut col: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            col.sort();
            out.push(col);
        }
        out
    }

    /// Asserts that `table` holds, shard by shard, exactly the rows `expected` places there
    /// (`(key as PostgreSQL prints it, shard)`, one entry per row): each row on its shard and
    /// nowhere else, nothing more.
    pub async fn assert_placement(&self, table: &str, key: &str, expected: &[(String, usize)]) {
        let mut want = vec![Vec::new(); SHARDS];
        for (k, shard) in expected {
            want[*shard].push(k.clone());
        }
        for keys in &mut want {
            keys.sort();
        }
        let got = self
            .column_per_shard(&format!("SELECT {key}::text FROM {table}"))
            .await;
        assert_eq!(
            got, want,
            "rows of {table} per shard (s0, s1, s2), by {key}"
        );
    }

    /// Row counts of `table` on each shard.
    pub async fn counts(&self, table: &str) -> Vec<i64> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let sql = format!("SELECT count(*) FROM {table}");
            out.push(shard.query_one(&sql, &[]).await.unwrap().get(0));
        }
        out
    }

    /// Stops the proxy.
    pub async fn finish(self) {
        self.proxy.shutdown().await;
    }
}

/// Asserts `SELECT name FROM users WHERE id = k` through the proxy (simple and extended
/// protocol) returns exactly `name`.
pub async fn assert_user(client: &Client, id: i64, name: &str) {
    let sql = format!("SELECT name FROM users WHERE id = {id}");
    let rows = client.query(&sql, &[]).await.unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, [name], "{sql}");
    let rows = client
        .query("SELECT name FROM users WHERE id = $1", &[&id])
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, [name], "lookup of {id} with a binary int8 parameter");
}

/// Asserts the keys hit every shard, so a test cannot pass by luck of one shard.
pub fn assert_all_shards(placements: &[(String, usize)]) {
    let mut per: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, shard) in placements {
        *per.entry(*shard).or_default() += 1;
    }
    assert_eq!(
        per.keys().copied().collect::<Vec<_>>(),
        (0..SHARDS).collect::<Vec<_>>(),
        "test keys must cover every shard: {placements:?}"
    );
}

/// Asserts a statement failed with `sqlstate`; returns the message.
pub fn expect_sqlstate<T: std::fmt::Debug>(
    result: Result<T, tokio_postgres::Error>,
    sqlstate: &str,
    what: &str,
) -> String {
    let err = match result {
        Ok(v) => panic!("{what}: expected SQLSTATE {sqlstate}, got success {v:?}"),
        Err(e) => e,
    };
    assert_eq!(code(&err), Some(sqlstate), "{what}: {err:?}");
    err.as_db_error().unwrap().message().to_string()
}
