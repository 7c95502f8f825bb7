//! The config file as written: serde structs mirroring INTERFACE.md section 2.
//!
//! Every struct denies unknown keys. Optional keys stay `Option` here and get their defaults in
//! `validate`, and values that are checked later are `Spanned`, so every message can point at the
//! exact place. `validate` deserializes the document one section (and one array element or map
//! entry) at a time, which is why `RawConfig` itself is assembled by hand rather than derived:
//! that way one bad key does not hide the problems in the rest of the file.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// Default `[proxy] listen`.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:6432";
/// Default `[proxy] admin_listen`.
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9187";
/// Default `[proxy] state_dir`.
pub(crate) const DEFAULT_STATE_DIR: &str = "./shardproxy-state";
/// Default `[proxy] max_client_connections`.
pub(crate) const DEFAULT_MAX_CLIENT_CONNECTIONS: i64 = 10_000;
/// Default `[proxy] max_message_bytes` (256 MiB).
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: i64 = 256 * 1024 * 1024;
/// Default `[proxy] recovery_interval_ms`.
pub(crate) const DEFAULT_RECOVERY_INTERVAL_MS: i64 = 5000;
/// Default `[proxy] in_doubt_after_ms`.
pub(crate) const DEFAULT_IN_DOUBT_AFTER_MS: i64 = 60_000;
/// Default `[pool] size`.
pub(crate) const DEFAULT_POOL_SIZE: i64 = 20;
/// Default `[pool] checkout_timeout_ms` and `connect_timeout_ms`.
pub(crate) const DEFAULT_TIMEOUT_MS: i64 = 5000;

/// The whole file, assembled section by section by `validate`.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    /// `[proxy]` (all keys optional).
    pub proxy: RawProxy,
    /// `[auth]`; `None` when the section is absent: then clients log in with `trust` under any
    /// user name.
    pub auth: Option<Spanned<RawAuth>>,
    /// `[pool]` (all keys optional).
    pub pool: RawPool,
    /// `[[shards]]` in file order; the first is the default shard.
    pub shards: Vec<Spanned<RawShard>>,
    /// `[maps.NAME]`: the name (with the key's span) and the map.
    pub maps: Vec<(Spanned<String>, RawMap)>,
    /// `[tables]`: the table name as written (with the key's span) and the entry.
    pub tables: Vec<(Spanned<String>, RawTable)>,
}

/// `[proxy]`: listeners and durable state.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [proxy] table")]
pub(crate) struct RawProxy {
    /// PostgreSQL protocol listen address, `IP:port` (default `127.0.0.1:6432`).
    pub listen: Option<Spanned<String>>,
    /// Admin HTTP API and `/metrics` listen address, `IP:port` (default `127.0.0.1:9187`).
    pub admin_listen: Option<Spanned<String>>,
    /// Bearer token for `/api/*`; env `SHARDPROXY_ADMIN_TOKEN` overrides it in `Config::load`.
    pub admin_token: Option<Spanned<String>>,
    /// Directory of durable proxy state (default `./shardproxy-state`, relative to the working
    /// directory).
    pub state_dir: Option<Spanned<String>>,
    /// Stable identity of this proxy in global transaction ids (letters, digits, `_`, `-`).
    pub proxy_id: Option<Spanned<String>>,
    /// Maximum concurrent client connections (default 10000).
    pub max_client_connections: Option<Spanned<i64>>,
    /// Largest protocol message accepted from a client in bytes (default 256 MiB).
    pub max_message_bytes: Option<Spanned<i64>>,
    /// Runtime worker threads (default 0 = one per CPU core; 1 = a single-threaded runtime).
    pub workers: Option<Spanned<i64>>,
    /// How often 2PC recovery checks the shards for unfinished prepared transactions, in ms
    /// (default 5000).
    pub recovery_interval_ms: Option<Spanned<i64>>,
    /// How long a two-phase transaction may stay unfinished before it is listed as in-doubt, in
    /// ms (default 60000).
    pub in_doubt_after_ms: Option<Spanned<i64>>,
}

/// `[auth]`: how clients log in to the proxy.
///
/// When the whole section is omitted, the proxy uses `trust` and accepts any user name; when it
/// is present, `method` defaults to `scram-sha-256`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [auth] table")]
pub(crate) struct RawAuth {
    /// `"scram-sha-256"` (default) | `"md5"` | `"trust"`.
    pub method: Option<Spanned<String>>,
    /// `[ { name = "...", password = "..." }, ... ]`.
    pub users: Option<Vec<Spanned<RawUser>>>,
}

/// One entry of `[auth] users`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a user like { name = \"app\", password = \"secret\" }"
)]
pub(crate) struct RawUser {
    /// Login name, unique.
    pub name: Spanned<String>,
    /// Plain password; required unless `method = "trust"`.
    pub password: Option<Spanned<String>>,
}

/// `[pool]`: backend connection pooling.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [pool] table")]
pub(crate) struct RawPool {
    /// Backend connections per shard host (default 20).
    pub size: Option<Spanned<i64>>,
    /// `"transaction"` (default) | `"session"`.
    pub mode: Option<Spanned<String>>,
    /// How long a client waits for a free backend, in ms (default 5000).
    pub checkout_timeout_ms: Option<Spanned<i64>>,
    /// Timeout for opening a backend connection, in ms (default 5000).
    pub connect_timeout_ms: Option<Spanned<i64>>,
}

/// One `[[shards]]` entry.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [[shards]] table with name and url"
)]
pub(crate) struct RawShard {
    /// Unique shard name.
    pub name: Spanned<String>,
    /// The primary, `postgres://user:password@host:port/dbname`.
    pub url: Spanned<String>,
    /// Optional read replicas, same URL form.
    pub replicas: Option<Vec<Spanned<String>>>,
}

/// One `[maps.NAME]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [maps.NAME] table")]
pub(crate) struct RawMap {
    /// `"hash"` | `"range"` | `"list"`.
    pub strategy: Spanned<String>,
    /// `"bigint"` | `"text"` | `"uuid"`.
    pub key_type: Spanned<String>,
    /// hash only: number of buckets.
    pub buckets: Option<Spanned<i64>>,
    /// hash only: which shard owns which buckets; omitted means contiguous runs in shard order.
    pub assign: Option<Spanned<Vec<Spanned<RawAssign>>>>,
    /// range only: `[from, to)` ranges; a missing bound is unbounded.
    pub ranges: Option<Spanned<Vec<Spanned<RawRange>>>>,
    /// list only: value lists.
    pub lists: Option<Spanned<Vec<Spanned<RawList>>>>,
    /// list only: shard for values not listed; without it an unlisted value is an error.
    pub default: Option<Spanned<String>>,
}

/// One entry of a hash map's `assign`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an assignment like { buckets = \"0-511\", shard = \"s0\" }"
)]
pub(crate) struct RawAssign {
    /// `"first-last"` (inclusive) or a single bucket, as a string or an integer.
    pub buckets: Spanned<RawScalar>,
    /// Shard name.
    pub shard: Spanned<String>,
}

/// One entry of a range map's `ranges`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a range like { from = 0, to = 1000, shard = \"s0\" }"
)]
pub(crate) struct RawRange {
    /// Inclusive lower bound; omitted means unbounded.
    pub from: Option<Spanned<RawScalar>>,
    /// Exclusive upper bound; omitted means unbounded.
    pub to: Option<Spanned<RawScalar>>,
    /// Shard name.
    pub shard: Spanned<String>,
}

/// One entry of a list map's `lists`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a list like { values = [\"KR\", \"JP\"], shard = \"s0\" }"
)]
pub(crate) struct RawList {
    /// The key values this shard owns.
    pub values: Vec<Spanned<RawScalar>>,
    /// Shard name.
    pub shard: Spanned<String>,
}

/// One `[tables]` entry: `{ map = "users", key = "id" }` or `{ reference = true }`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table entry like { map = \"users\", key = \"id\" } or { reference = true }"
)]
pub(crate) struct RawTable {
    /// The shard map the table is sharded by.
    pub map: Option<Spanned<String>>,
    /// The shard key column (lower-cased unless written in double quotes).
    pub key: Option<Spanned<String>>,
    /// `true` for a table copied in full to every shard.
    pub reference: Option<Spanned<bool>>,
}

/// A key value or bucket spec as written: its TOML type is checked against the key type later,
/// so that a wrong type is reported together with every other problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawScalar {
    /// A TOML integer.
    Int(i64),
    /// A TOML string.
    Text(String),
}

impl RawScalar {
    /// The TOML type name, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            RawScalar::Int(_) => "an integer",
            RawScalar::Text(_) => "a string",
        }
    }
}

impl<'de> Deserialize<'de> for RawScalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawScalar, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// Accepts TOML integers and strings, nothing else.
struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = RawScalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawScalar, E> {
        Ok(RawScalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawScalar, E> {
        i64::try_from(v)
            .map(RawScalar::Int)
            .map_err(|_| E::custom(format!("integer {v} is out of the bigint range")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawScalar, E> {
        Ok(RawScalar::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<RawScalar, E> {
        Ok(RawScalar::Text(v))
    }
}
