//! shardproxy configuration: raw TOML (serde, spans) -> `validate()` -> immutable runtime types.
//!
//! The runtime types in this file are what the rest of the workspace uses; `raw` mirrors the file
//! exactly (with `deny_unknown_fields`), `validate` turns raw into runtime and reports every problem
//! with file:line:col.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod error;
mod key;
mod maps;
mod raw;
mod shape;
mod tables;
mod url;
mod validate;

pub use error::{ConfigError, ConfigErrors};
pub use url::ShardUrl;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[proxy]`: listeners and durable state.
    pub proxy: ProxyConfig,
    /// `[auth]`: how clients log in to the proxy.
    pub auth: AuthConfig,
    /// `[pool]`: backend connection pooling.
    pub pool: PoolConfig,
    /// `[[shards]]` in file order; the first is the default shard.
    pub shards: Vec<ShardConfig>,
    /// `[maps.NAME]`, by name.
    pub maps: BTreeMap<String, MapConfig>,
    /// `[tables]`, keyed by the unqualified table name folded as PostgreSQL does (lower case
    /// unless written in double quotes; any schema qualifier dropped).
    pub tables: BTreeMap<String, TableConfig>,
}

/// `[proxy]` section. `Debug` hides `admin_token`.
#[derive(Clone, PartialEq)]
pub struct ProxyConfig {
    /// PostgreSQL protocol listen address.
    pub listen: SocketAddr,
    /// Admin HTTP API listen address.
    pub admin_listen: SocketAddr,
    /// Bearer token required on `/api/*` (file value, or env `SHARDPROXY_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Directory of durable proxy state (2PC decision log, job records).
    pub state_dir: PathBuf,
    /// Stable identity of this proxy in global transaction ids (default derived from state_dir).
    pub proxy_id: Option<String>,
    /// Maximum concurrent client connections.
    pub max_client_connections: usize,
    /// Largest protocol message accepted from a client, in bytes.
    pub max_message_bytes: usize,
    /// Runtime worker threads; 0 means one per CPU core (read at start only).
    pub workers: usize,
    /// How often 2PC recovery checks the shards for unfinished prepared transactions.
    pub recovery_interval: Duration,
    /// How long a two-phase transaction may stay unfinished before it is listed as in-doubt.
    pub in_doubt_after: Duration,
}

/// Client authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// SCRAM-SHA-256 (the default).
    ScramSha256,
    /// MD5 challenge-response.
    Md5,
    /// No password.
    Trust,
}

/// `[auth]` section.
///
/// When `[auth]` is omitted from the file, the method is `Trust` and `users` is empty, which
/// means any user name is accepted (see `accepts_any_user`). When `[auth]` is present, the
/// method defaults to `ScramSha256` and at least one user is required unless it is `trust`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// How clients authenticate.
    pub method: AuthMethod,
    /// Users allowed to log in.
    pub users: Vec<UserConfig>,
}

impl AuthConfig {
    /// The user with this name, if configured.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }

    /// `trust` with no users listed: every user name may log in (what an omitted `[auth]` means).
    pub fn accepts_any_user(&self) -> bool {
        self.method == AuthMethod::Trust && self.users.is_empty()
    }
}

/// One client login. `Debug` hides the password.
#[derive(Clone, PartialEq)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Plain password (needed to derive SCRAM and md5 secrets).
    pub password: String,
}

/// Backend pooling mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// A backend is held for one transaction (the default).
    Transaction,
    /// A backend is held for the whole client session.
    Session,
}

/// `[pool]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Backend connections per shard host.
    pub size: usize,
    /// Transaction or session pooling.
    pub mode: PoolMode,
    /// How long a client waits for a free backend before an error.
    pub checkout_timeout: Duration,
    /// Timeout for establishing a backend connection.
    pub connect_timeout: Duration,
}

/// One `[[shards]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardConfig {
    /// Unique shard name.
    pub name: String,
    /// The primary.
    pub url: ShardUrl,
    /// Optional read replicas.
    pub replicas: Vec<ShardUrl>,
}

/// Placement strategy of a shard map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// xxh3_64 -> bucket -> shard.
    Hash,
    /// `[from, to)` ranges.
    Range,
    /// Explicit value lists.
    List,
}

/// Type of a shard key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Signed 64-bit integer (int2/int4/int8 values reduce to it).
    Bigint,
    /// UTF-8 text.
    Text,
    /// 16-byte UUID.
    Uuid,
}

/// A range bound value, typed by the map's key type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyValue {
    /// bigint key.
    Int(i64),
    /// text key.
    Text(String),
    /// uuid key (raw bytes).
    Uuid([u8; 16]),
}

/// One `[maps.NAME]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MapConfig {
    /// Map name.
    pub name: String,
    /// Placement strategy.
    pub strategy: Strategy,
    /// Key type.
    pub key_type: KeyType,
    /// The strategy's placement data.
    pub placement: Placement,
}

/// Where each part of a map's key space lives. Shards are indexes into `Config::shards`.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// `bucket_to_shard[b]` is the shard of bucket `b`; its length is the bucket count.
    Hash { bucket_to_shard: Vec<usize> },
    /// Sorted, non-overlapping ranges.
    Range { ranges: Vec<RangeAssign> },
    /// Value lists and an optional default shard.
    List {
        values: Vec<(KeyValue, usize)>,
        default: Option<usize>,
    },
}

/// One range: `[from, to)`, `None` meaning unbounded.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeAssign {
    /// Inclusive lower bound.
    pub from: Option<KeyValue>,
    /// Exclusive upper bound.
    pub to: Option<KeyValue>,
    /// Shard index.
    pub shard: usize,
}

/// One `[tables]` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum TableConfig {
    /// Sharded by `map` on column `key` (lower-cased unless quoted in the file).
    Sharded { map: String, key: String },
    /// A full copy on every shard.
    Reference,
}

impl Config {
    /// Reads and validates a config file; errors carry file:line:col.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::single(ConfigError::io(path, &e)))?;
        Config::parse(&text, &path.display().to_string()).map(Config::with_env_overrides)
    }

    /// Applies environment overrides: a non-empty `SHARDPROXY_ADMIN_TOKEN` replaces
    /// `[proxy] admin_token`. `load` calls this; `parse` stays pure.
    pub fn with_env_overrides(self) -> Self {
        self.with_overrides_from(|name| std::env::var(name).ok())
    }

    /// `with_env_overrides` with the environment passed in, so it can be tested without
    /// touching the process environment.
    fn with_overrides_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(token) = lookup("SHARDPROXY_ADMIN_TOKEN").filter(|t| !t.is_empty()) {
            self.proxy.admin_token = Some(token);
        }
        self
    }

    /// Parses and validates config text; `file_name` is used in error positions.
    pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
        validate::validate(text, file_name)
    }

    /// The default shard (the first one).
    pub fn default_shard(&self) -> &ShardConfig {
        &self.shards[0] // ok: validation guarantees at least one shard
    }

    /// A one-paragraph summary for `shardproxy check-config`.
    pub fn summary(&self) -> String {
        validate::summary(self)
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("state_dir", &self.state_dir)
            .field("proxy_id", &self.proxy_id)
            .field("max_client_connections", &self.max_client_connections)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("workers", &self.workers)
            .field("recovery_interval", &self.recovery_interval)
            .field("in_doubt_after", &self.in_doubt_after)
            .finish()
    }
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[[shards]]\nname = \"s0\"\nurl = \"postgres://u:pw@h/db\"\n";

    #[test]
    fn env_override_replaces_admin_token() {
        let text = format!("[proxy]\nadmin_token = \"from-file\"\n{MINIMAL}");
        let config = Config::parse(&text, "f.toml").unwrap();
        let env =
            |v: &'static str| move |k: &str| (k == "SHARDPROXY_ADMIN_TOKEN").then(|| v.to_owned());
        let overridden = config.clone().with_overrides_from(env("from-env"));
        assert_eq!(overridden.proxy.admin_token.as_deref(), Some("from-env"));
        let kept = config.clone().with_overrides_from(env(""));
        assert_eq!(kept.proxy.admin_token.as_deref(), Some("from-file"));
        let kept = config.with_overrides_from(|_| None);
        assert_eq!(kept.proxy.admin_token.as_deref(), Some("from-file"));
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!(
            "[proxy]\nadmin_token = \"tok-secret\"\n[auth]\nusers = [{{ name = \"app\", password = \"pw-secret\" }}]\n{MINIMAL}"
        );
        let config = Config::parse(&text, "f.toml").unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(!debug.contains("pw@"), "{debug}");
    }

    #[test]
    fn omitted_auth_accepts_any_user() {
        let config = Config::parse(MINIMAL, "f.toml").unwrap();
        assert!(config.auth.accepts_any_user());
        assert_eq!(config.auth.method, AuthMethod::Trust);
    }

    #[test]
    fn load_reports_io_errors_without_position() {
        let err = Config::load(Path::new("/nonexistent/shardproxy.toml")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/nonexistent/shardproxy.toml: cannot read config file"),
            "{text}"
        );
    }
}
