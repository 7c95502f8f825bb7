//! Routing beyond the table: the text of split INSERTs (checked by a parse round trip), COPY
//! descriptions, merge requirements, the parse cache and statement limits.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::{h, key_on, router, run, P};
use shard_router::{StatementKind, Target};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Parses one statement and prints it back (the rewrite round trip).
fn reprint(sql: &str) -> String {
    let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
    assert_eq!(stmts.len(), 1, "{sql}");
    stmts[0].to_string()
}

#[test]
fn multi_row_insert_is_split_per_shard() {
    let router = router();
    let (a, b, c) = (key_on(0), key_on(1), key_on(2));
    let sql = format!(
        "INSERT INTO users (id, name) VALUES ({a}, 'it''s a'), ({b}, DEFAULT), ({c}, 'c') \
         ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    let plan = run(&router, &sql, &[]).unwrap();
    let Target::Split(parts) = plan.target else {
        panic!("{plan:?}")
    };
    let texts: Vec<(usize, &str)> = parts.iter().map(|p| (p.shard, p.sql.as_str())).collect();
    let tail = "ON CONFLICT(id) DO NOTHING RETURNING id";
    assert_eq!(
        texts,
        vec![
            (
                0,
                format!("INSERT INTO users (id, name) VALUES ({a}, 'it''s a') {tail}").as_str()
            ),
            (
                1,
                format!("INSERT INTO users (id, name) VALUES ({b}, DEFAULT) {tail}").as_str()
            ),
            (
                2,
                format!("INSERT INTO users (id, name) VALUES ({c}, 'c') {tail}").as_str()
            ),
        ]
    );
    for part in &parts {
        assert!(part.params.is_empty());
        assert_eq!(reprint(&part.sql), part.sql);
    }
    assert_eq!(plan.kind, StatementKind::Write);
}

#[test]
fn split_renumbers_parameters() {
    let router = router();
    let (a, b) = (key_on(0), key_on(2));
    let a2 = (a + 1..).find(|k| h(*k) == 0).unwrap();
    let sql = "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4), ($5, $2) \
               ON CONFLICT (id) DO UPDATE SET name = $6 RETURNING id, $7::text";
    let params = [
        P::Int8(a),
        P::Text("x"),
        P::Int8(b),
        P::Text("y"),
        P::Text(Box::leak(a2.to_string().into_boxed_str())),
        P::Text("z"),
        P::Text("tag"),
    ];
    let plan = run(&router, sql, &params).unwrap();
    let Target::Split(parts) = plan.target else {
        panic!("{plan:?}")
    };
    assert_eq!(parts.len(), 2);
    let tail = " ON CONFLICT(id) DO UPDATE SET name = ";
    assert_eq!(parts[0].shard, 0);
    assert_eq!(
        parts[0].sql,
        format!(
            "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $2){tail}$4 RETURNING id, $5::TEXT"
        )
    );
    assert_eq!(parts[0].params, vec![0, 1, 4, 5, 6]);
    assert_eq!(parts[1].shard, 2);
    assert_eq!(
        parts[1].sql,
        format!("INSERT INTO users (id, name) VALUES ($1, $2){tail}$3 RETURNING id, $4::TEXT")
    );
    assert_eq!(parts[1].params, vec![2, 3, 5, 6]);
    for part in &parts {
        assert_eq!(reprint(&part.sql), part.sql);
    }
    // All rows on one shard: the statement is sent as written.
    let params = [
        P::Int8(a),
        P::Text("x"),
        P::Int8(a2),
        P::Text("y"),
        P::Int8(a),
        P::Text("z"),
        P::Text("t"),
    ];
    let plan = run(&router, sql, &params).unwrap();
    assert_eq!(plan.target, Target::Shards(vec![0]));
}

#[test]
fn copy_in_describes_the_key_column() {
    let router = router();
    let stmt = router
        .prepare("COPY orders (total, user_id) FROM STDIN WITH (FORMAT csv, HEADER)")
        .unwrap();
    assert_eq!(stmt.kind(), StatementKind::CopyIn);
    let copy = stmt.copy_in().unwrap();
    assert_eq!(copy.table, "orders");
    assert_eq!(copy.column, "user_id");
    assert_eq!(copy.key_index, Some(1));
    assert_eq!(copy.column_count, Some(2));
    assert_eq!(router.maps()[copy.map].name(), "users");
    assert!(copy.format.csv && copy.format.header);
    let text = router.prepare("COPY users (id) FROM STDIN").unwrap();
    assert!(!text.copy_in().unwrap().format.csv);
    assert!(router
        .prepare("COPY countries FROM STDIN")
        .unwrap()
        .copy_in()
        .is_none());
    let binary = router.prepare("COPY users (id) FROM STDIN WITH (FORMAT binary)");
    assert_eq!(binary.unwrap_err().code, "0A000");
}

#[test]
fn merge_requirements() {
    let router = router();
    let need = |sql: &str| router.prepare(sql).unwrap().merge_requirement();
    assert_eq!(need("SELECT * FROM users WHERE name = 'x'"), None);
    assert_eq!(need("SELECT * FROM users ORDER BY id"), Some("ORDER BY"));
    assert_eq!(need("SELECT * FROM users LIMIT 5"), Some("LIMIT/OFFSET"));
    assert_eq!(need("SELECT * FROM users OFFSET 5"), Some("LIMIT/OFFSET"));
    assert!(need("SELECT count(*) FROM users").is_some());
    assert!(need("SELECT name, count(*) FROM users GROUP BY name").is_some());
    assert!(need("SELECT name FROM users GROUP BY name HAVING count(*) > 1").is_some());
    assert!(need("SELECT DISTINCT name FROM users").is_some());
    assert!(need("SELECT row_number() OVER () FROM users").is_some());
    assert!(need("SELECT name FROM users UNION SELECT name FROM orders").is_some());
    assert!(need("SELECT * FROM countries c LEFT JOIN users u ON u.country = c.code").is_some());
    assert!(need("COPY users TO STDOUT WITH (FORMAT csv, HEADER)").is_some());
    // Grouped by the shard key, or distinct with the key: each group lives on one shard.
    assert_eq!(
        need("SELECT user_id, count(*) FROM orders GROUP BY user_id"),
        None
    );
    assert_eq!(need("SELECT DISTINCT id, name FROM users"), None);
    assert_eq!(
        need("SELECT id FROM users UNION ALL SELECT user_id FROM orders"),
        None
    );
    assert_eq!(need("COPY users TO STDOUT"), None);
}

#[test]
fn statement_accessors_and_cache() {
    let router = router();
    let sql = "SELECT * FROM users WHERE id = $2 AND name = $1";
    let first = router.prepare(sql).unwrap();
    let again = router.prepare(sql).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "cached");
    assert_eq!(first.param_count_hint(), 2);
    assert_eq!(first.kind(), StatementKind::Read);
    let refused = "SELECT * FROM users u JOIN events e ON e.event_id = u.id";
    assert_eq!(router.prepare(refused).unwrap_err().code, "0A000");
    assert_eq!(router.prepare(refused).unwrap_err().code, "0A000");
    let multi = router.prepare("BEGIN; SELECT 1; COMMIT").unwrap();
    assert_eq!(
        multi.statement_kinds(),
        &[
            StatementKind::Begin,
            StatementKind::Read,
            StatementKind::Commit
        ]
    );
    let plan = router
        .route_sql("SELECT * FROM users WHERE id = 42")
        .unwrap();
    assert_eq!(plan.route_kind(), "single");
    assert!(
        plan.reason.contains("users.id = 42 -> s"),
        "{}",
        plan.reason
    );
    assert!(plan.reason.contains("bucket"), "{}", plan.reason);
}

#[test]
fn long_operator_chains_are_not_parsed() {
    let router = router();
    let ors: Vec<String> = (0..5000).map(|i| format!("id = {i}")).collect();
    let sql = format!("SELECT * FROM users WHERE {}", ors.join(" OR "));
    let err = router.prepare(&sql).unwrap_err();
    assert_eq!(err.code, "0A000");
    assert!(err.message.contains("too long"), "{}", err.message);
    let sql = format!("SELECT * FROM logs WHERE {}", ors.join(" OR "));
    assert_eq!(router.route_sql(&sql).unwrap().target, Target::Default);
    // Just below the limit, a chain is analysed normally (on a test thread's small stack).
    let ors: Vec<String> = (0..495).map(|i| format!("id = {i}")).collect();
    let sql = format!("SELECT * FROM users WHERE {}", ors.join(" OR "));
    let plan = router.route_sql(&sql).unwrap();
    assert_eq!(plan.target, Target::Shards(vec![0, 1, 2]));
}
