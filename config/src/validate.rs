//! Raw TOML -> runtime `Config`, reporting every problem with its exact place.
//!
//! Order of work: TOML syntax (all errors the parser recovers from), then the shape of each
//! section, array element and map entry on its own (unknown keys, wrong types), then the
//! meaning (names, URLs, buckets, ranges, lists, tables). A later stage that depends on an
//! earlier part that failed is skipped, so one mistake does not cause a cascade of false errors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;
use toml::Spanned;

use crate::error::Reporter;
use crate::maps::Shards;
use crate::raw::{self, RawAuth, RawPool, RawProxy, RawShard};
use crate::{
    AuthConfig, AuthMethod, Config, ConfigErrors, Placement, PoolConfig, PoolMode, ProxyConfig,
    ShardConfig, ShardUrl, TableConfig, UserConfig,
};

/// Largest accepted `max_message_bytes`: PostgreSQL itself never sends or accepts more (1 GiB).
const MAX_MESSAGE_BYTES_LIMIT: i64 = 1 << 30;
/// Smallest accepted `max_message_bytes`: startup packets and small queries must always fit.
const MIN_MESSAGE_BYTES: i64 = 1024;
/// Longest shard/map name and proxy_id: they end up in gids, metric labels and URLs.
const MAX_NAME_LEN: usize = 63;

/// Parses and validates config text; every error names `file_name:line:col`.
pub(crate) fn validate(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    let mut rep = Reporter::new(text, file_name);
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            let span = e.span().unwrap_or(0..0);
            rep.error(&span, format!("TOML syntax: {}", e.message().trim()));
        }
        return Err(rep.finish());
    }
    let (raw, shape) = crate::shape::read_sections(doc.into_inner(), &mut rep);

    let proxy = proxy_config(&raw.proxy, &mut rep);
    let auth = auth_config(raw.auth.as_ref(), &mut rep);
    let pool = pool_config(&raw.pool, &mut rep);
    let shards = shard_configs(&raw.shards, &mut rep);
    let shard_names: Vec<String> = raw
        .shards
        .iter()
        .map(|s| s.get_ref().name.get_ref().clone())
        .collect();
    let mut shard_index: HashMap<String, usize> = HashMap::new();
    for (i, name) in shard_names.iter().enumerate() {
        shard_index.entry(name.clone()).or_insert(i);
    }
    // Maps name shards, and tables name maps: skip a stage whose inputs did not all parse.
    let maps = if shape.shards_ok {
        let shards = Shards {
            names: &shard_names,
            index: &shard_index,
        };
        crate::maps::validate_maps(&raw.maps, &shards, &mut rep)
    } else {
        BTreeMap::new()
    };
    // Names of all maps that parsed, valid or not: a map with an error of its own is still
    // a map a table may name.
    let map_names: BTreeSet<&str> = raw.maps.iter().map(|(n, _)| n.get_ref().as_str()).collect();
    let known_maps = shape.maps_ok.then_some(&map_names);
    let tables = crate::tables::validate_tables(&raw.tables, known_maps, &mut rep);

    if rep.has_errors() {
        return Err(rep.finish());
    }
    Ok(Config {
        proxy,
        auth,
        pool,
        shards,
        maps,
        tables,
    })
}

/// An integer setting with its default and allowed range.
fn int_setting(
    value: Option<&Spanned<i64>>,
    default: i64,
    allowed: Range<i64>,
    what: &str,
    rep: &mut Reporter<'_>,
) -> u64 {
    let Some(v) = value else {
        return u64::try_from(default).unwrap_or(0);
    };
    let n = *v.get_ref();
    if !allowed.contains(&n) {
        let max = allowed.end - 1;
        rep.error(
            &v.span(),
            format!(
                "{what} must be between {} and {max}, not {n}",
                allowed.start
            ),
        );
    }
    u64::try_from(n).unwrap_or(0)
}

/// A non-empty string setting; `None` if absent, reported if empty.
fn text_setting(
    value: Option<&Spanned<String>>,
    what: &str,
    rep: &mut Reporter<'_>,
) -> Option<String> {
    let v = value?;
    if v.get_ref().trim().is_empty() {
        rep.error(&v.span(), format!("{what} must not be empty"));
    }
    Some(v.get_ref().clone())
}

/// An `IP:port` address setting.
fn addr_setting(
    value: Option<&Spanned<String>>,
    default: &str,
    what: &str,
    rep: &mut Reporter<'_>,
) -> SocketAddr {
    let fallback = SocketAddr::from(([127, 0, 0, 1], 0));
    let Some(v) = value else {
        return default.parse().unwrap_or(fallback);
    };
    v.get_ref().parse().unwrap_or_else(|_| {
        rep.error(
            &v.span(),
            format!(
                "{what} {:?} is not an IP:port address (like {default}; host names are not accepted)",
                v.get_ref()
            ),
        );
        fallback
    })
}

/// Letters, digits, `_` and `-`: names that are safe in gids, metric labels and URLs.
pub(crate) fn check_name(name: &Spanned<String>, what: &str, rep: &mut Reporter<'_>) -> bool {
    let s = name.get_ref();
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        rep.error(
            &name.span(),
            format!("{what} {s:?} must be 1 to {MAX_NAME_LEN} letters, digits, '_' or '-'"),
        );
    }
    ok
}

/// `[proxy]` with defaults.
fn proxy_config(p: &RawProxy, rep: &mut Reporter<'_>) -> ProxyConfig {
    let listen = addr_setting(p.listen.as_ref(), raw::DEFAULT_LISTEN, "listen", rep);
    let admin_listen = addr_setting(
        p.admin_listen.as_ref(),
        raw::DEFAULT_ADMIN_LISTEN,
        "admin_listen",
        rep,
    );
    if listen == admin_listen && listen.port() != 0 {
        let span = p
            .admin_listen
            .as_ref()
            .or(p.listen.as_ref())
            .map_or(0..0, |s| s.span());
        rep.error(&span, format!("admin_listen and listen are both {listen}"));
    }
    let admin_token = text_setting(p.admin_token.as_ref(), "admin_token", rep);
    let state_dir = text_setting(p.state_dir.as_ref(), "state_dir", rep)
        .unwrap_or_else(|| raw::DEFAULT_STATE_DIR.to_owned());
    let proxy_id = p.proxy_id.as_ref().map(|id| {
        check_name(id, "proxy_id", rep);
        id.get_ref().clone()
    });
    let max_client_connections = int_setting(
        p.max_client_connections.as_ref(),
        raw::DEFAULT_MAX_CLIENT_CONNECTIONS,
        1..1_000_001,
        "max_client_connections",
        rep,
    );
    let max_message_bytes = int_setting(
        p.max_message_bytes.as_ref(),
        raw::DEFAULT_MAX_MESSAGE_BYTES,
        MIN_MESSAGE_BYTES..MAX_MESSAGE_BYTES_LIMIT + 1,
        "max_message_bytes",
        rep,
    );
    let workers = int_setting(p.workers.as_ref(), 0, 0..1025, "workers", rep);
    let recovery_interval_ms = int_setting(
        p.recovery_interval_ms.as_ref(),
        raw::DEFAULT_RECOVERY_INTERVAL_MS,
        10..86_400_001,
        "recovery_interval_ms",
        rep,
    );
    let in_doubt_after_ms = int_setting(
        p.in_doubt_after_ms.as_ref(),
        raw::DEFAULT_IN_DOUBT_AFTER_MS,
        0..604_800_001,
        "in_doubt_after_ms",
        rep,
    );
    ProxyConfig {
        listen,
        admin_listen,
        admin_token,
        state_dir: PathBuf::from(state_dir),
        proxy_id,
        max_client_connections: usize::try_from(max_client_connections).unwrap_or(usize::MAX),
        max_message_bytes: usize::try_from(max_message_bytes).unwrap_or(usize::MAX),
        workers: usize::try_from(workers).unwrap_or(0),
        recovery_interval: Duration::from_millis(recovery_interval_ms),
        in_doubt_after: Duration::from_millis(in_doubt_after_ms),
    }
}

/// `[auth]`; absent means trust with any user name.
fn auth_config(auth: Option<&Spanned<RawAuth>>, rep: &mut Reporter<'_>) -> AuthConfig {
    let Some(auth) = auth else {
        return AuthConfig {
            method: AuthMethod::Trust,
            users: Vec::new(),
        };
    };
    let method = match auth.get_ref().method.as_ref() {
        None => AuthMethod::ScramSha256,
        Some(m) => match m.get_ref().as_str() {
            "scram-sha-256" => AuthMethod::ScramSha256,
            "md5" => AuthMethod::Md5,
            "trust" => AuthMethod::Trust,
            other => {
                rep.error(
                    &m.span(),
                    format!("unknown auth method {other:?}: expected \"scram-sha-256\", \"md5\" or \"trust\""),
                );
                AuthMethod::ScramSha256
            }
        },
    };
    let mut users = Vec::new();
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    for user in auth.get_ref().users.iter().flatten() {
        let name = &user.get_ref().name;
        if name.get_ref().is_empty() {
            rep.error(&name.span(), "user name must not be empty");
        } else if let Some(first) = seen.get(name.get_ref().as_str()) {
            rep.error(
                &name.span(),
                format!(
                    "user {:?} is listed twice (first at {})",
                    name.get_ref(),
                    rep.place(first)
                ),
            );
        } else {
            seen.insert(name.get_ref(), name.span());
        }
        let password = match (&user.get_ref().password, method) {
            (Some(p), _) if !p.get_ref().is_empty() => p.get_ref().clone(),
            (_, AuthMethod::Trust) => String::new(),
            (Some(p), _) => {
                rep.error(
                    &p.span(),
                    format!("password of user {:?} is empty", name.get_ref()),
                );
                String::new()
            }
            (None, _) => {
                rep.error(
                    &user.span(),
                    format!(
                        "user {:?} needs a password (method {method})",
                        name.get_ref()
                    ),
                );
                String::new()
            }
        };
        users.push(UserConfig {
            name: name.get_ref().clone(),
            password,
        });
    }
    if users.is_empty() && method != AuthMethod::Trust {
        let span = auth
            .get_ref()
            .method
            .as_ref()
            .map_or(auth.span(), |m| m.span());
        rep.error(
            &span,
            format!("[auth] method {method} needs at least one entry in `users`"),
        );
    }
    AuthConfig { method, users }
}

/// `[pool]` with defaults.
fn pool_config(p: &RawPool, rep: &mut Reporter<'_>) -> PoolConfig {
    let size = int_setting(
        p.size.as_ref(),
        raw::DEFAULT_POOL_SIZE,
        1..100_001,
        "pool size",
        rep,
    );
    let mode = match p.mode.as_ref() {
        None => PoolMode::Transaction,
        Some(m) => match m.get_ref().as_str() {
            "transaction" => PoolMode::Transaction,
            "session" => PoolMode::Session,
            other => {
                rep.error(
                    &m.span(),
                    format!("unknown pool mode {other:?}: expected \"transaction\" or \"session\""),
                );
                PoolMode::Transaction
            }
        },
    };
    // One day: anything longer is surely a unit mistake.
    let ms = 1..86_400_001;
    let checkout = int_setting(
        p.checkout_timeout_ms.as_ref(),
        raw::DEFAULT_TIMEOUT_MS,
        ms.clone(),
        "checkout_timeout_ms",
        rep,
    );
    let connect = int_setting(
        p.connect_timeout_ms.as_ref(),
        raw::DEFAULT_TIMEOUT_MS,
        ms,
        "connect_timeout_ms",
        rep,
    );
    PoolConfig {
        size: usize::try_from(size).unwrap_or(usize::MAX),
        mode,
        checkout_timeout: Duration::from_millis(checkout),
        connect_timeout: Duration::from_millis(connect),
    }
}

/// Parses a shard URL, reporting a problem at its position.
fn url_setting(url: &Spanned<String>, what: &str, rep: &mut Reporter<'_>) -> Option<ShardUrl> {
    ShardUrl::parse(url.get_ref())
        .map_err(|e| rep.error(&url.span(), format!("invalid {what}: {e}")))
        .ok()
}

/// `[[shards]]`: unique names and parseable URLs (shards with a bad URL are left out; the
/// error is reported).
fn shard_configs(raw: &[Spanned<RawShard>], rep: &mut Reporter<'_>) -> Vec<ShardConfig> {
    let mut shards = Vec::new();
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    for shard in raw {
        let s = shard.get_ref();
        check_name(&s.name, "shard name", rep);
        if let Some(first) = seen.get(s.name.get_ref().as_str()) {
            rep.error(
                &s.name.span(),
                format!(
                    "duplicate shard name {:?} (first defined at {})",
                    s.name.get_ref(),
                    rep.place(first)
                ),
            );
        } else {
            seen.insert(s.name.get_ref(), s.name.span());
        }
        let url = url_setting(&s.url, "shard url", rep);
        let replicas: Vec<ShardUrl> = s
            .replicas
            .iter()
            .flatten()
            .filter_map(|r| url_setting(r, "replica url", rep))
            .collect();
        if let Some(url) = url {
            shards.push(ShardConfig {
                name: s.name.get_ref().clone(),
                url,
                replicas,
            });
        }
    }
    shards
}

/// `check-config` summary: shards, maps and tables in one paragraph.
pub(crate) fn summary(config: &Config) -> String {
    let shard_names: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
    let maps: Vec<String> = config
        .maps
        .values()
        .map(|m| {
            let detail = match &m.placement {
                Placement::Hash { bucket_to_shard } => plural(bucket_to_shard.len(), "bucket"),
                Placement::Range { ranges } => plural(ranges.len(), "range"),
                Placement::List { values, default } => {
                    let mut d = plural(values.len(), "value");
                    if let Some(shard) = default.and_then(|i| config.shards.get(i)) {
                        d.push_str(&format!(", default {}", shard.name));
                    }
                    d
                }
            };
            format!("{}: {} {} {detail}", m.name, m.strategy, m.key_type)
        })
        .collect();
    let tables: Vec<String> = config
        .tables
        .iter()
        .map(|(name, t)| match t {
            TableConfig::Sharded { map, key } => format!("{name} by {map}({key})"),
            TableConfig::Reference => format!("{name} reference"),
        })
        .collect();
    let mut out = format!(
        "{} ({})",
        plural(config.shards.len(), "shard"),
        shard_names.join(", ")
    );
    out.push_str(&format!(", {}", plural(maps.len(), "map")));
    if !maps.is_empty() {
        out.push_str(&format!(" ({})", maps.join("; ")));
    }
    out.push_str(&format!(", {}", plural(tables.len(), "table")));
    if !tables.is_empty() {
        out.push_str(&format!(" ({})", tables.join(", ")));
    }
    out
}

/// "1 shard", "3 shards".
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
