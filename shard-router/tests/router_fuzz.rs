//! Property: no input text and no parameter bytes make `Router::prepare` or `Router::plan` panic;
//! they answer with a plan or a `RouteError`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use shard_router::{Params, Router};

const CONFIG: &str = r#"
[[shards]]
name = "s0"
url = "postgres://u:p@h0/db"
[[shards]]
name = "s1"
url = "postgres://u:p@h1/db"

[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 64

[maps.region]
strategy = "list"
key_type = "text"
lists = [ { values = ["KR"], shard = "s0" } ]

[maps.sessions]
strategy = "hash"
key_type = "uuid"
buckets = 8

[tables]
users = { map = "users", key = "id" }
orders = { map = "users", key = "user_id" }
customers = { map = "region", key = "country" }
sessions = { map = "sessions", key = "sid" }
countries = { reference = true }
"#;

/// SQL-ish words, so that generated texts get deep into the analysis, not just the parser.
const WORDS: &[&str] = &[
    "SELECT",
    "*",
    "FROM",
    "WHERE",
    "users",
    "orders",
    "customers",
    "sessions",
    "countries",
    "logs",
    "id",
    "user_id",
    "country",
    "sid",
    "u",
    "o",
    "u.id",
    "o.user_id",
    "=",
    "<>",
    "IN",
    "(",
    ")",
    ",",
    "$1",
    "$2",
    "$3",
    "1",
    "-1",
    "'5'",
    "'KR'",
    "5.5",
    "::bigint",
    "::text[]",
    "AND",
    "OR",
    "NOT",
    "JOIN",
    "LEFT",
    "ON",
    "USING",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "COPY",
    "STDIN",
    "STDOUT",
    "TO",
    "WITH",
    "AS",
    "UNION",
    "ALL",
    "ORDER BY",
    "LIMIT",
    "ANY",
    "ARRAY[",
    "]",
    "NULL",
    "DEFAULT",
    ";",
    "BEGIN",
    "COMMIT",
    "count(*)",
    "GROUP BY",
    "EXISTS",
    "RETURNING",
    "ON CONFLICT",
    "DO",
    "NOTHING",
    "$$",
    "VACUUM",
    "TABLE",
    "ONLY",
    "LATERAL",
    "DISTINCT",
    "OVER",
    "CAST",
    "x",
    "\"Users\"",
    "public.",
    "E'\\t'",
];

fn router() -> Router {
    Router::new(&config::Config::parse(CONFIG, "fuzz.toml").unwrap())
}

fn params() -> impl Strategy<Value = Vec<(Option<Vec<u8>>, i16, u32)>> {
    let value = prop_oneof![
        Just(None),
        vec(any::<u8>(), 0..20).prop_map(Some),
        "[-0-9{},\"a-f]{0,12}".prop_map(|s| Some(s.into_bytes())),
    ];
    let format = prop_oneof![Just(0i16), Just(1i16), any::<i16>()];
    let oid = prop_oneof![
        Just(0u32),
        Just(20u32),
        Just(21u32),
        Just(23u32),
        Just(25u32),
        Just(1016u32),
        Just(2950u32),
        any::<u32>()
    ];
    vec((value, format, oid), 0..4)
}

fn exercise(router: &Router, sql: &str, params: &[(Option<Vec<u8>>, i16, u32)]) {
    let values: Vec<Option<&[u8]>> = params.iter().map(|p| p.0.as_deref()).collect();
    let formats: Vec<i16> = params.iter().map(|p| p.1).collect();
    let types: Vec<u32> = params.iter().map(|p| p.2).collect();
    if let Ok(stmt) = router.prepare(sql) {
        let _ = stmt.merge_requirement();
        let _ = router.plan(
            &stmt,
            &Params {
                values: &values,
                formats: &formats,
                types: &types,
            },
        );
        let _ = router.plan(&stmt, &Params::default());
    }
}

#[test]
fn arbitrary_text_never_panics() {
    let router = router();
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 1000,
        ..RunnerConfig::default()
    });
    runner
        .run(&(".{0,120}", params()), |(sql, params)| {
            exercise(&router, &sql, &params);
            Ok(())
        })
        .unwrap();
}

#[test]
fn sql_like_text_never_panics() {
    let router = router();
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 3000,
        ..RunnerConfig::default()
    });
    let words = vec(proptest::sample::select(WORDS), 0..40);
    runner
        .run(&(words, params()), |(words, params)| {
            exercise(&router, &words.join(" "), &params);
            Ok(())
        })
        .unwrap();
}
