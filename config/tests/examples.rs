//! The shipped example files validate and mean what their comments say; defaults; summary;
//! and no input makes `Config::parse` panic.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use config::{
    AuthMethod, Config, KeyType, KeyValue, Placement, PoolMode, RangeAssign, Strategy, TableConfig,
};
use proptest::prelude::*;

const DEMO: &str = include_str!("../shardproxy.toml");
const FULL: &str = include_str!("../example-full.toml");

fn parse(text: &str) -> Config {
    Config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// How many buckets each shard owns.
fn bucket_counts(config: &Config, map: &str) -> Vec<usize> {
    let Placement::Hash { bucket_to_shard } = &config.maps[map].placement else {
        panic!("{map} is not a hash map");
    };
    (0..config.shards.len())
        .map(|s| bucket_to_shard.iter().filter(|&&x| x == s).count())
        .collect()
}

#[test]
fn demo_config_validates() {
    let c = parse(DEMO);
    let names: Vec<&str> = c.shards.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s0", "s1", "s2"]);
    for (shard, port) in c.shards.iter().zip([15432, 15433, 15434]) {
        assert_eq!(
            (
                shard.url.host.as_str(),
                shard.url.port,
                shard.url.user.as_str()
            ),
            ("127.0.0.1", port, "postgres")
        );
        assert_eq!(shard.url.dbname, "shardproxy");
    }
    assert_eq!(c.default_shard().name, "s0");
    assert_eq!(c.auth.method, AuthMethod::ScramSha256);
    assert_eq!(c.auth.user("app").unwrap().password, "app-secret");
    assert_eq!(c.proxy.listen.to_string(), "127.0.0.1:6432");
    assert_eq!(c.proxy.admin_listen.to_string(), "127.0.0.1:9187");

    let users = &c.maps["users"];
    assert_eq!(
        (users.strategy, users.key_type),
        (Strategy::Hash, KeyType::Bigint)
    );
    // The explicit assignment in the file equals the default split.
    assert_eq!(bucket_counts(&c, "users"), vec![342, 341, 341]);

    let Placement::Range { ranges } = &c.maps["events"].placement else {
        panic!("events is not a range map");
    };
    assert_eq!(
        ranges,
        &vec![
            RangeAssign {
                from: None,
                to: Some(KeyValue::Int(1000)),
                shard: 0
            },
            RangeAssign {
                from: Some(KeyValue::Int(1000)),
                to: Some(KeyValue::Int(2000)),
                shard: 1
            },
            RangeAssign {
                from: Some(KeyValue::Int(2000)),
                to: None,
                shard: 2
            },
        ]
    );

    let Placement::List { values, default } = &c.maps["region"].placement else {
        panic!("region is not a list map");
    };
    let text = |s: &str| KeyValue::Text(s.to_owned());
    assert_eq!(
        values,
        &vec![
            (text("KR"), 0),
            (text("JP"), 0),
            (text("US"), 1),
            (text("DE"), 1)
        ]
    );
    assert_eq!(*default, Some(2));

    let sharded = |map: &str, key: &str| TableConfig::Sharded {
        map: map.to_owned(),
        key: key.to_owned(),
    };
    assert_eq!(c.tables["users"], sharded("users", "id"));
    assert_eq!(c.tables["orders"], sharded("users", "user_id"));
    assert_eq!(c.tables["events"], sharded("events", "event_id"));
    assert_eq!(c.tables["customers"], sharded("region", "country"));
    assert_eq!(c.tables["countries"], TableConfig::Reference);
    assert_eq!(c.tables.len(), 5);
}

#[test]
fn demo_config_summary() {
    assert_eq!(
        parse(DEMO).summary(),
        "3 shards (s0, s1, s2), 3 maps (events: range bigint 3 ranges; region: list text 4 values, \
         default s2; users: hash bigint 1024 buckets), 5 tables (countries reference, customers by \
         region(country), events by events(event_id), orders by users(user_id), users by users(id))"
    );
}

#[test]
fn interface_example_validates() {
    let c = parse(FULL);
    assert_eq!(c.proxy.admin_token.as_deref(), Some("change-me"));
    assert_eq!(c.shards.len(), 2);
    assert_eq!(c.shards[0].replicas.len(), 1);
    assert_eq!(c.shards[0].replicas[0].host, "10.0.0.6");
    assert_eq!(c.shards[0].url.password.as_deref(), Some("secret"));
    assert_eq!(bucket_counts(&c, "users"), vec![512, 512]);
    let Placement::Hash { bucket_to_shard } = &c.maps["users"].placement else {
        panic!()
    };
    assert_eq!((bucket_to_shard[511], bucket_to_shard[512]), (0, 1));
    let Placement::List { default, .. } = &c.maps["region"].placement else {
        panic!()
    };
    assert_eq!(*default, Some(1));
    assert_eq!(c.pool.size, 20);
    assert_eq!(c.pool.mode, PoolMode::Transaction);
    assert_eq!(c.tables.len(), 5);
}

#[test]
fn defaults() {
    let c = parse("[[shards]]\nname = \"only\"\nurl = \"postgres://u@h/d\"\n");
    assert_eq!(c.proxy.listen.to_string(), "127.0.0.1:6432");
    assert_eq!(c.proxy.admin_listen.to_string(), "127.0.0.1:9187");
    assert_eq!(c.proxy.state_dir.to_str(), Some("./shardproxy-state"));
    assert_eq!(c.proxy.admin_token, None);
    assert_eq!(c.proxy.proxy_id, None);
    assert_eq!(c.proxy.max_client_connections, 10_000);
    assert_eq!(c.proxy.max_message_bytes, 256 * 1024 * 1024);
    assert_eq!(c.auth.method, AuthMethod::Trust);
    assert!(c.auth.users.is_empty() && c.auth.accepts_any_user());
    assert_eq!(c.pool.size, 20);
    assert_eq!(c.pool.mode, PoolMode::Transaction);
    assert_eq!(c.pool.checkout_timeout, Duration::from_millis(5000));
    assert_eq!(c.pool.connect_timeout, Duration::from_millis(5000));
    assert!(c.maps.is_empty() && c.tables.is_empty());
    assert_eq!(c.summary(), "1 shard (only), 0 maps, 0 tables");
    // [auth] present without a method means scram-sha-256.
    let c = parse(
        "[auth]\nusers = [{ name = \"a\", password = \"b\" }]\n\
         [[shards]]\nname = \"s0\"\nurl = \"postgres://u@h/d\"\n",
    );
    assert_eq!(c.auth.method, AuthMethod::ScramSha256);
}

#[test]
fn default_bucket_split_over_three_shards() {
    let mut text = String::new();
    for (i, port) in [1, 2, 3].iter().enumerate() {
        text.push_str(&format!(
            "[[shards]]\nname = \"s{i}\"\nurl = \"postgres://u@h:{port}/d\"\n"
        ));
    }
    text.push_str("[maps.m]\nstrategy = \"hash\"\nkey_type = \"bigint\"\nbuckets = 1024\n");
    let c = parse(&text);
    assert_eq!(bucket_counts(&c, "m"), vec![342, 341, 341]);
    let Placement::Hash { bucket_to_shard } = &c.maps["m"].placement else {
        panic!()
    };
    assert_eq!((bucket_to_shard[341], bucket_to_shard[342]), (0, 1));
    assert_eq!((bucket_to_shard[682], bucket_to_shard[683]), (1, 2));
}

#[test]
fn quoted_names_keep_case_and_uuid_ranges_normalize() {
    let text = "[[shards]]\nname = \"s0\"\nurl = \"postgres://u@h/d\"\n\
        [maps.u]\nstrategy = \"range\"\nkey_type = \"uuid\"\n\
        ranges = [ { to = \"{8000000000004000800000000000000A}\", shard = \"s0\" } ]\n\
        [tables]\n'\"MixedCase\"' = { map = \"u\", key = '\"AccountId\"' }\n\
        'Sales.\"Q1\"' = { reference = true }\n";
    let c = parse(text);
    assert_eq!(
        c.tables["MixedCase"],
        TableConfig::Sharded {
            map: "u".to_owned(),
            key: "AccountId".to_owned()
        }
    );
    assert_eq!(c.tables["Q1"], TableConfig::Reference);
    let Placement::Range { ranges } = &c.maps["u"].placement else {
        panic!()
    };
    assert_eq!(
        ranges[0].to.as_ref().unwrap().to_string(),
        "80000000-0000-4000-8000-00000000000a"
    );
}

/// Lines that are each plausible in a config, so random files reach deep into validation.
const FRAGMENTS: &[&str] = &[
    "[proxy]", "[auth]", "[pool]", "[[shards]]", "[maps.m]", "[maps.n]", "[tables]",
    "name = \"s0\"", "name = \"s1\"", "url = \"postgres://u:p@h:5432/d\"", "url = \"postgres://\"",
    "strategy = \"hash\"", "strategy = \"range\"", "strategy = \"list\"",
    "key_type = \"bigint\"", "key_type = \"text\"", "key_type = \"uuid\"",
    "buckets = 4", "buckets = 0", "buckets = -1", "buckets = 9999999999",
    "assign = [ { buckets = \"0-1\", shard = \"s0\" }, { buckets = \"2-3\", shard = \"s1\" } ]",
    "assign = [ { buckets = \"3-0\", shard = \"s0\" }, { buckets = 99, shard = \"s1\" } ]",
    "ranges = [ { to = 10, shard = \"s0\" }, { from = 5, shard = \"s1\" } ]",
    "ranges = [ { from = \"a\", shard = \"s0\" }, { from = \"\", to = \"\", shard = \"s9\" } ]",
    "lists = [ { values = [1, \"x\", \"{00000000-0000-0000-0000-000000000000}\"], shard = \"s0\" } ]",
    "lists = []", "default = \"s1\"", "size = 0", "mode = \"x\"", "method = \"md5\"",
    "users = [ { name = \"a\" }, { name = \"a\", password = \"\" } ]",
    "m = { map = \"m\", key = \"id\" }", "\"public.m\" = { reference = true }",
    "a.b.c = { map = \"n\" }", "'\"\"' = { reference = false }", "x = 1", "= =", "[",
    "listen = \"[::1]:0\"", "admin_listen = \"127.0.0.1:0\"", "max_message_bytes = 1",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Config::parse(&text, "fuzz.toml");
    }

    #[test]
    fn arbitrary_fragment_files_never_panic(
        picks in proptest::collection::vec(0..FRAGMENTS.len(), 0..40)
    ) {
        let text: Vec<&str> = picks.iter().map(|&i| FRAGMENTS[i]).collect();
        let text = text.join("\n");
        match Config::parse(&text, "fuzz.toml") {
            Ok(c) => { let _ = c.summary(); }
            Err(errs) => {
                prop_assert!(!errs.is_empty());
                for e in &errs {
                    prop_assert!(e.line >= 1 && e.col >= 1, "{e}");
                }
            }
        }
    }

    #[test]
    fn the_demo_file_with_one_line_mangled_never_panics(line in 0usize..120, junk in ".{0,12}") {
        let mangled: Vec<String> = DEMO
            .lines()
            .enumerate()
            .map(|(i, l)| if i == line { format!("{junk}{l}") } else { l.to_owned() })
            .collect();
        let _ = Config::parse(&mangled.join("\n"), "fuzz.toml");
    }
}

#[test]
fn workers_defaults_to_one_per_core_and_is_bounded() {
    let base = "[[shards]]\nname = \"s0\"\nurl = \"postgres://u@h/db\"\n";
    let cfg = config::Config::parse(base, "w.toml").unwrap();
    assert_eq!(cfg.proxy.workers, 0);
    let cfg = config::Config::parse(&format!("[proxy]\nworkers = 1\n{base}"), "w.toml").unwrap();
    assert_eq!(cfg.proxy.workers, 1);
    let err = config::Config::parse(&format!("[proxy]\nworkers = -1\n{base}"), "w.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("w.toml:2:11") && err.contains("workers"),
        "{err}"
    );
}

#[test]
fn two_phase_commit_timings_default_and_are_bounded() {
    let base = "[[shards]]\nname = \"s0\"\nurl = \"postgres://u@h/db\"\n";
    let cfg = config::Config::parse(base, "r.toml").unwrap();
    assert_eq!(cfg.proxy.recovery_interval, Duration::from_secs(5));
    assert_eq!(cfg.proxy.in_doubt_after, Duration::from_secs(60));
    let text = format!("[proxy]\nrecovery_interval_ms = 250\nin_doubt_after_ms = 0\n{base}");
    let cfg = config::Config::parse(&text, "r.toml").unwrap();
    assert_eq!(cfg.proxy.recovery_interval, Duration::from_millis(250));
    assert_eq!(cfg.proxy.in_doubt_after, Duration::ZERO);
    let text = format!("[proxy]\nrecovery_interval_ms = 0\nin_doubt_after_ms = -1\n{base}");
    let err = config::Config::parse(&text, "r.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("r.toml:2:24") && err.contains("recovery_interval_ms"),
        "{err}"
    );
    assert!(
        err.contains("r.toml:3:21") && err.contains("in_doubt_after_ms"),
        "{err}"
    );
}
