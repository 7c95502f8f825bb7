//! Differential property: for generated simple-protocol statements (SELECT, UPDATE, DELETE,
//! INSERT with random keys, IN lists, casts, string keys on the list map, uuid keys, multi-row
//! INSERTs, invalid and out-of-range keys), the normalized path (`prepare_query` +
//! `plan_query`, one router whose cache is shared by every case, so analyses made for one set of
//! constants serve the others) gives exactly the plan or error of the exact-text path
//! (`prepare` + `plan` on a second router), and the same statement kinds and merge requirement.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::cell::Cell;

use proptest::collection::vec;
use proptest::prelude::{prop_oneof, Just, Strategy};
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use shard_router::{Params, Plan, RouteError, Router};

/// Statement shapes; `{K}` bigint key, `{T}` text key, `{U}` uuid key, `{V}` any other value.
const SHAPES: &[&str] = &[
    "SELECT * FROM users WHERE id = {K}",
    "SELECT name FROM users WHERE id = {K};",
    "select name from users where id={K} and name = {V}",
    "SELECT * FROM users WHERE {K} = id AND name <> {V}",
    "SELECT * FROM users WHERE id IN ({K}, {K}, {K})",
    "SELECT * FROM users WHERE id = {K} OR id = {K}",
    "SELECT * FROM users WHERE id = {K} AND id IN ({K}, {K})",
    "SELECT * FROM users WHERE id IN ({K}, {K}) AND id = {K}",
    "SELECT * FROM users WHERE (id = {K} OR name = {V}) AND id = {K}",
    "SELECT * FROM users WHERE id = {K} AND id = {K}",
    "SELECT * FROM users WHERE id = {K} AND n > {V} + {V}",
    "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = {K}",
    "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = {K} AND o.user_id = {K}",
    "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE user_id = {K})",
    "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE user_id IN ({K}, {K}) LIMIT 1)",
    "SELECT * FROM users WHERE id = {K} AND EXISTS (SELECT 1 FROM countries WHERE code = {V})",
    "SELECT * FROM (SELECT id AS k FROM users) s WHERE s.k = {K}",
    "SELECT * FROM (SELECT id FROM users) AS s(k) WHERE k = {K}",
    "SELECT count(*) FROM users WHERE id IN ({K}, {K}) GROUP BY name HAVING count(*) > {V}",
    "SELECT * FROM users WHERE id = {K} ORDER BY name LIMIT 10",
    "SELECT * FROM users WHERE id = ANY(ARRAY[{K}, {K}])",
    "SELECT * FROM users WHERE CASE WHEN id = {K} THEN true ELSE false END",
    "SELECT * FROM users WHERE id = {K} /* c = {V} */ -- {V}\n",
    "SELECT * FROM users WHERE id = {K} UNION ALL SELECT * FROM users WHERE id = {K}",
    "WITH x AS (SELECT * FROM users WHERE id = {K}) SELECT * FROM x WHERE name = {V}",
    "SELECT * FROM events WHERE event_id = {K}",
    "SELECT * FROM events WHERE event_id IN ({K}, {K})",
    "SELECT * FROM customers WHERE country = {T}",
    "SELECT * FROM customers WHERE country IN ({T}, {T}) AND n = {V}",
    "SELECT * FROM customers WHERE country = {T} OR country = {T}",
    "SELECT * FROM sessions WHERE sid = {U}",
    "SELECT * FROM sessions WHERE sid IN ({U}, {U})",
    "SELECT * FROM countries WHERE code = {V}",
    "SELECT * FROM logs WHERE id = {K} AND msg = {V}",
    "SELECT * FROM users u, logs l WHERE u.id = {K}",
    "UPDATE users SET name = {V}, n = n + {V} WHERE id = {K}",
    "UPDATE users SET name = {V} WHERE id IN ({K}, {K})",
    "UPDATE users SET id = {K} WHERE id = {K}",
    "UPDATE countries SET name = {V} WHERE code = {V}",
    "DELETE FROM orders WHERE user_id = {K} OR user_id IN ({K})",
    "DELETE FROM users WHERE name = {V}",
    "DELETE FROM customers WHERE country = {T}",
    "INSERT INTO users (id, name) VALUES ({K}, {V})",
    "INSERT INTO users (id, name) VALUES ({K}, {V}), ({K}, {V}), ({K}, {V}) RETURNING id",
    "INSERT INTO users (name, id) VALUES ({V}, {K}), ({V}, {K}) ON CONFLICT (id) DO UPDATE SET name = {V}",
    "INSERT INTO users (id, name) VALUES ({K}, 'a' 'b'), ({K}, {V})",
    "INSERT INTO users (id) VALUES ({K}), (DEFAULT)",
    "INSERT INTO events (event_id, n) VALUES ({K}, {V}), ({K}, {V})",
    "INSERT INTO customers (country, n) VALUES ({T}, {V}), ({T}, {V}), ({T}, {V})",
    "INSERT INTO sessions (sid) VALUES ({U}), ({U})",
    "INSERT INTO countries (code) VALUES ({V}), ({V})",
    "INSERT INTO logs (id, msg) VALUES ({K}, {V})",
    "INSERT INTO users (id, name) SELECT id, name FROM users WHERE id = {K}",
];

/// Bigint key spellings: valid, NoMatch, invalid, out of range, incompatible casts.
const BIGINT: &[&str] = &[
    "5",
    "17",
    "123456",
    "-5",
    "-123456",
    "0",
    "'5'",
    "'17'",
    "' 7 '",
    "'+7'",
    "5::bigint",
    "'5'::bigint",
    "5::int4",
    "'5'::int2",
    "CAST(5 AS bigint)",
    "(5)",
    "- 5",
    "- -5",
    "5.5",
    "5.0",
    "1e3",
    "1.5e3",
    "'abc'",
    "'5.5'",
    "99999999999999999999",
    "'5'::uuid",
    "1999",
    "2000",
    "999",
    "NULL",
    "'it''s'",
    "E'5'",
    "$$5$$",
    "int8 '5'",
    "-5::bigint",
    "-1::int8",
    "-5::text",
    "-'5'::bigint",
    "-5 ::int8",
    "(-5)::int8",
];

/// Text key spellings for the list map (KR/JP on s0, US/DE on s1, default s2).
const TEXT: &[&str] = &[
    "'KR'",
    "'JP'",
    "'US'",
    "'DE'",
    "'XX'",
    "'kr'",
    "'K''R'",
    "'KR'::text",
    "'KR'::varchar(2)",
    "5",
    "'5'",
    "''",
    "'KR'::bigint",
    "NULL",
    "-5::text",
    "5::text",
    "-5",
    "-5::varchar",
];

/// Uuid key spellings.
const UUID: &[&str] = &[
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
    "'a0eebc999c0b4ef8bb6d6bb9bd380a11'",
    "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
    "'00000000-0000-0000-0000-000000000001'",
    "'not-a-uuid'",
    "5",
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
];

/// Other values.
const OTHER: &[&str] = &["'x'", "42", "-1", "'o''k'", "3.14", "'KR'", "7", "''"];

/// Fills a shape's slots from `choices` (cycled).
fn fill(shape: &str, choices: &[usize]) -> String {
    let mut out = String::new();
    let mut rest = shape;
    let mut n = 0;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let slot = &rest[i + 1..i + 2];
        let pool = match slot {
            "K" => BIGINT,
            "T" => TEXT,
            "U" => UUID,
            _ => OTHER,
        };
        let pick = choices.get(n % choices.len().max(1)).copied().unwrap_or(0);
        out.push_str(pool[pick % pool.len()]);
        n += 1;
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    out
}

fn exact(router: &Router, sql: &str) -> Result<Plan, RouteError> {
    let stmt = router.prepare(sql)?;
    router.plan(&stmt, &Params::default())
}

/// Checks one statement; returns whether the normalized analysis served it.
fn check(normalized: &Router, reference: &Router, sql: &str) -> bool {
    let want = exact(reference, sql);
    let prepared = normalized.prepare_query(sql);
    if let (Ok(p), Ok(e)) = (&prepared, reference.prepare(sql)) {
        let s = p.statement();
        assert_eq!(s.kind(), e.kind(), "kind of {sql}");
        assert_eq!(s.statement_kinds(), e.statement_kinds(), "kinds of {sql}");
        assert_eq!(
            s.merge_requirement(),
            e.merge_requirement(),
            "merge of {sql}"
        );
        assert_eq!(s.copy_in(), e.copy_in(), "copy of {sql}");
    }
    let served = prepared.as_ref().is_ok_and(|p| p.is_normalized());
    let got = prepared.and_then(|p| normalized.plan_query(&p));
    assert_eq!(got, want, "{sql}");
    served
}

fn differential(config: &str, cases: u32) {
    let config = config::Config::parse(config, "routing.toml").unwrap();
    let normalized = Router::new(&config);
    let reference = Router::new(&config);
    let strategy = (0..SHAPES.len(), vec(0usize..64, 1..8));
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let served = Cell::new(0u32);
    let total = Cell::new(0u32);
    runner
        .run(&strategy, |(shape, choices)| {
            let sql = fill(SHAPES[shape], &choices);
            total.set(total.get() + 1);
            served.set(served.get() + u32::from(check(&normalized, &reference, &sql)));
            Ok(())
        })
        .unwrap();
    let (served, total) = (served.get(), total.get());
    let stats = normalized.parse_cache_stats();
    // The normalized path must actually be exercised, with analyses shared between texts.
    assert!(served * 3 > total, "{served} of {total} served normalized");
    assert!(stats.template_hits >= u64::from(served));
    assert!(
        stats.analyses < u64::from(total),
        "{stats:?} for {total} statements"
    );
}

#[test]
fn normalized_plans_equal_exact_plans() {
    differential(common::CONFIG, 4000);
}

#[test]
fn normalized_plans_equal_exact_plans_without_list_default() {
    // Unlisted values are errors here, also when the analysis drops their terms.
    differential(&common::CONFIG.replace("default = \"s2\"\n", ""), 2000);
}

#[test]
fn every_shape_and_spelling_agrees() {
    let config = config::Config::parse(common::CONFIG, "routing.toml").unwrap();
    let normalized = Router::new(&config);
    let reference = Router::new(&config);
    for shape in SHAPES {
        for pick in 0..BIGINT.len().max(TEXT.len()) {
            check(&normalized, &reference, &fill(shape, &[pick]));
            check(&normalized, &reference, &fill(shape, &[pick, pick + 1, 3]));
        }
    }
}

#[test]
fn pgbench_select_is_served_by_one_analysis() {
    let router = common::router();
    let reference = common::router();
    for aid in [1, 17, 123_456, 99, 4242] {
        let sql = format!("SELECT abalance FROM users WHERE id = {aid};");
        let prepared = router.prepare_query(&sql).unwrap();
        assert!(prepared.is_normalized(), "{sql}");
        let plan = router.plan_query(&prepared).unwrap();
        assert_eq!(plan, exact(&reference, &sql).unwrap());
    }
    let stats = router.parse_cache_stats();
    // The first text's own analysis and its normalized text's; none for the others.
    assert_eq!(stats.analyses, 2);
    assert_eq!(stats.template_hits, 5);
    assert_eq!(stats.fallbacks, 0);
}

/// Pieces of SQL, glued at random into texts that stress the scanner: quotes, comments, dollar
/// quotes, signs, casts, parameters, several statements.
const PIECES: &[&str] = &[
    "SELECT",
    "* FROM",
    "users",
    "orders",
    "customers",
    "sessions",
    "countries",
    "logs",
    "u",
    "WHERE",
    "id",
    "user_id",
    "u.id",
    "country",
    "sid",
    "name",
    "=",
    "<>",
    ">=",
    "IN (",
    "(",
    ")",
    ",",
    "AND",
    "OR",
    "NOT",
    "5",
    "-5",
    "- 5",
    "17",
    "'5'",
    "'KR'",
    "'x''y'",
    "E'\\''",
    "$$a = 1$$",
    "$q$'$q$",
    "-- c\n",
    "/* = 1 */",
    "::bigint",
    "::text",
    "-",
    "+",
    "*",
    "1.5e3",
    "0x1F",
    "5L",
    "LIMIT 2",
    "ORDER BY 1",
    ";",
    "$1",
    "\"id\"",
    "AS",
    "ARRAY[",
    "]",
    "= ANY(",
    "VALUES",
    "INSERT INTO users (id, name) VALUES",
    "UPDATE users SET name =",
    "DELETE FROM",
    "JOIN orders o ON o.user_id = u.id",
    "'",
    "\"",
    "/*",
    "1999",
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
];

#[test]
fn any_text_gives_the_same_answer() {
    let config = config::Config::parse(common::CONFIG, "routing.toml").unwrap();
    let normalized = Router::new(&config);
    let reference = Router::new(&config);
    let strategy = (
        prop_oneof![
            Just("SELECT * FROM users WHERE"),
            Just("SELECT * FROM users u WHERE"),
            Just("")
        ],
        vec((0..PIECES.len(), proptest::bool::ANY), 1..24),
    );
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 6000,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    runner
        .run(&strategy, |(head, pieces)| {
            let mut sql = head.to_owned();
            for (i, space) in pieces {
                if space {
                    sql.push(' ');
                }
                sql.push_str(PIECES[i]);
            }
            check(&normalized, &reference, &sql);
            Ok(())
        })
        .unwrap();
    assert!(normalized.parse_cache_stats().template_hits > 0);
}

/// Columns, operators and values for generated WHERE clauses.
const COLUMNS: &[&str] = &[
    "id",
    "u.id",
    "name",
    "n",
    "(id)",
    "\"id\"",
    "o.user_id",
    "k",
];
const OPERATORS: &[&str] = &["=", "<>", "<", ">=", "=-", "IS NOT DISTINCT FROM", "+ 1 ="];
const DECORATIONS: &[&str] = &["", "::bigint", "::int4", "::text", " /* c */", "::numeric"];

/// A bigint key spelling or another value.
fn any_value(i: usize) -> &'static str {
    BIGINT
        .get(i)
        .copied()
        .unwrap_or_else(|| OTHER[(i - BIGINT.len()) % OTHER.len()])
}

#[test]
fn random_where_clauses_give_the_same_answer() {
    let config = config::Config::parse(common::CONFIG, "routing.toml").unwrap();
    let normalized = Router::new(&config);
    let reference = Router::new(&config);
    let value = (0..BIGINT.len() + OTHER.len(), 0..DECORATIONS.len());
    let condition = prop_oneof![
        (0..COLUMNS.len(), 0..OPERATORS.len(), value.clone()).prop_map(|(c, o, (v, d))| {
            let v = any_value(v);
            format!("{} {} {v}{}", COLUMNS[c], OPERATORS[o], DECORATIONS[d])
        }),
        (0..COLUMNS.len(), vec(value, 1..4)).prop_map(|(c, vs)| {
            let items: Vec<String> = vs
                .iter()
                .map(|&(v, d)| {
                    let v = any_value(v);
                    format!("{v}{}", DECORATIONS[d])
                })
                .collect();
            format!("{} IN ({})", COLUMNS[c], items.join(", "))
        }),
    ];
    let heads = prop_oneof![
        Just("SELECT * FROM users u WHERE"),
        Just("SELECT count(*) FROM users u JOIN orders o ON o.user_id = u.id WHERE"),
        Just("SELECT * FROM (SELECT id AS k, name, n FROM users) u WHERE"),
        Just("UPDATE users u SET name = 'x' WHERE"),
        Just("DELETE FROM users u WHERE"),
        Just("SELECT * FROM users u WHERE id IN (SELECT user_id FROM orders o WHERE"),
    ];
    let strategy = (heads, vec((condition, 0..4usize), 1..5));
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 4000,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    runner
        .run(&strategy, |(head, conditions)| {
            let mut sql = head.to_owned();
            let mut open = 0;
            for (i, (condition, glue)) in conditions.iter().enumerate() {
                if i > 0 {
                    sql.push_str([" AND ", " OR ", " AND (", " OR NOT "][*glue]);
                    open += usize::from(*glue == 2);
                }
                sql.push(' ');
                sql.push_str(condition);
            }
            sql.push_str(&")".repeat(open + usize::from(head.ends_with("o WHERE"))));
            check(&normalized, &reference, &sql);
            Ok(())
        })
        .unwrap();
    let stats = normalized.parse_cache_stats();
    assert!(stats.template_hits > 400, "{stats:?}");
}
