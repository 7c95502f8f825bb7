//! Data-driven routing table: SQL (+ parameters) -> expected target and kind, or the expected
//! refusal (SQLSTATE and a piece of the message). Hash placements are computed from first
//! principles in `common` (xxh3_64 of the key bytes, bucket % 1024, the default 342/341/341
//! split), not by the router's own placement code.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::{h, hu, key_on, router, run, sorted, P, UUID, UUID_BYTES};
use shard_router::{StatementKind, Target};

/// What a case expects.
#[derive(Debug)]
enum Want {
    /// This target; this kind when given.
    Route(Target, Option<StatementKind>),
    /// One of these shard sets (for `key = 1 AND key = 2`, either side is right).
    AnyOf(Vec<Vec<usize>>),
    /// A refusal with this SQLSTATE and message fragment.
    Error(&'static str, &'static str),
}

struct Case {
    sql: String,
    params: Vec<P>,
    want: Want,
}

fn shards(s: Vec<usize>) -> Target {
    Target::Shards(sorted(s))
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    use StatementKind::*;
    let mut c = Vec::new();
    let mut add = |sql: &str, params: Vec<P>, want: Want| {
        c.push(Case {
            sql: sql.to_owned(),
            params,
            want,
        })
    };
    let read = |s: Vec<usize>| Want::Route(shards(s), Some(Read));
    let write = |s: Vec<usize>| Want::Route(shards(s), Some(Write));
    let all = |k: StatementKind| Want::Route(Target::All, Some(k));
    let default = |k: StatementKind| Want::Route(Target::Default, Some(k));
    let err = |code, msg| Want::Error(code, msg);

    // Every spelling of the same bigint key routes to the same shard.
    for sql in [
        "SELECT * FROM users WHERE id = 42",
        "SELECT * FROM users WHERE id = '42'",
        "SELECT * FROM users WHERE id = 42::int8",
        "SELECT * FROM users WHERE id = '42'::bigint",
        "SELECT * FROM users WHERE id = CAST(42 AS bigint)",
        "SELECT * FROM users WHERE 42 = id",
        "SELECT * FROM users WHERE id = int8 '42'",
        "SELECT * FROM users WHERE (id = (42))",
        "select * from USERS where ID = 42",
        "SELECT * FROM \"users\" WHERE \"id\" = 42",
    ] {
        add(sql, vec![], read(vec![h(42)]));
    }
    add(
        "SELECT * FROM users WHERE id = -7",
        vec![],
        read(vec![h(-7)]),
    );
    add(
        "SELECT * FROM users WHERE id = - -7",
        vec![],
        read(vec![h(7)]),
    );
    let q = "SELECT * FROM users WHERE id = $1";
    add(q, vec![P::Text("42")], read(vec![h(42)]));
    add(q, vec![P::Int8(42)], read(vec![h(42)]));
    add(q, vec![P::Int4(42)], read(vec![h(42)]));
    add(q, vec![P::Int2(42)], read(vec![h(42)]));
    add(q, vec![P::Untyped8(42)], read(vec![h(42)]));
    add(q, vec![P::Null], read(vec![0]));
    add(q, vec![P::Text("abc")], err("22P02", "abc"));
    add(q, vec![], err("08P01", "supplies 0 parameters"));
    add(
        "SELECT * FROM users WHERE id = $1::bigint",
        vec![P::Text("42")],
        read(vec![h(42)]),
    );

    // IN, ANY, OR, AND.
    add(
        "SELECT * FROM users WHERE id IN (1, 2, 3)",
        vec![],
        read(vec![h(1), h(2), h(3)]),
    );
    add(
        "SELECT * FROM users WHERE id IN ($1, $2)",
        vec![P::Text("1"), P::Int8(2)],
        read(vec![h(1), h(2)]),
    );
    let any = "SELECT * FROM users WHERE id = ANY($1)";
    add(
        any,
        vec![P::TextArray("{1,2,3}")],
        read(vec![h(1), h(2), h(3)]),
    );
    add(any, vec![P::Int8Array(vec![4, 5])], read(vec![h(4), h(5)]));
    add(any, vec![P::TextArray("{}")], read(vec![0]));
    add(any, vec![P::UntypedText("{6,7}")], read(vec![h(6), h(7)]));
    add(
        "SELECT * FROM users WHERE id = ANY($1::bigint[])",
        vec![P::UntypedText("{6,7}")],
        read(vec![h(6), h(7)]),
    );
    add(
        "SELECT * FROM users WHERE id = ANY(ARRAY[1, 2])",
        vec![],
        read(vec![h(1), h(2)]),
    );
    add(
        "SELECT * FROM users WHERE id = ANY('{1,2}'::bigint[])",
        vec![],
        read(vec![h(1), h(2)]),
    );
    add(
        "SELECT * FROM users WHERE id = 1 OR id = 2",
        vec![],
        read(vec![h(1), h(2)]),
    );
    add(
        "SELECT * FROM users WHERE id = 1 OR name = 'x'",
        vec![],
        all(Read),
    );
    add(
        "SELECT * FROM users WHERE id = 1 AND name = 'x'",
        vec![],
        read(vec![h(1)]),
    );
    add(
        "SELECT * FROM users WHERE (id = 1 OR id = 2) AND status = 'a'",
        vec![],
        read(vec![h(1), h(2)]),
    );
    add(
        "SELECT * FROM users WHERE id = 1 AND id = 2",
        vec![],
        Want::AnyOf(vec![vec![h(1)], vec![h(2)]]),
    );
    add("SELECT * FROM users WHERE id = 5.5", vec![], read(vec![0]));
    add("SELECT * FROM users WHERE id = NULL", vec![], read(vec![0]));
    add(
        "SELECT * FROM users WHERE id = 'abc'",
        vec![],
        err("22P02", "abc"),
    );
    add("SELECT * FROM users", vec![], all(Read));
    add("SELECT * FROM users WHERE name = 'x'", vec![], all(Read));
    add("SELECT * FROM users WHERE id > 5", vec![], all(Read));

    // Aliases, qualified, schema-qualified and quoted names.
    add(
        "SELECT * FROM users u WHERE u.id = 5",
        vec![],
        read(vec![h(5)]),
    );
    add(
        "SELECT * FROM users WHERE users.id = 5",
        vec![],
        read(vec![h(5)]),
    );
    add(
        "SELECT * FROM public.users WHERE id = 5",
        vec![],
        read(vec![h(5)]),
    );
    add(
        "SELECT * FROM public.users WHERE public.users.id = 5",
        vec![],
        read(vec![h(5)]),
    );
    add(
        "SELECT * FROM \"Users\" WHERE id = 5",
        vec![],
        default(Read),
    );
    add(
        "SELECT * FROM ONLY users WHERE id = 5",
        vec![],
        read(vec![h(5)]),
    );
    add("TABLE users", vec![], all(Read));

    // The other maps.
    add(
        "SELECT * FROM orders WHERE user_id = 42",
        vec![],
        read(vec![h(42)]),
    );
    add(
        "SELECT * FROM events WHERE event_id = 5",
        vec![],
        read(vec![0]),
    );
    add(
        "SELECT * FROM events WHERE event_id = 1500",
        vec![],
        read(vec![1]),
    );
    add(
        "SELECT * FROM events WHERE event_id = $1",
        vec![P::Int8(99_999)],
        read(vec![2]),
    );
    add(
        "SELECT * FROM events WHERE event_id IN (5, 1500)",
        vec![],
        read(vec![0, 1]),
    );
    add(
        "SELECT * FROM customers WHERE country = 'KR'",
        vec![],
        read(vec![0]),
    );
    add(
        "SELECT * FROM customers WHERE country = 'US'",
        vec![],
        read(vec![1]),
    );
    add(
        "SELECT * FROM customers WHERE country = 'FR'",
        vec![],
        read(vec![2]),
    );
    add(
        "SELECT * FROM customers WHERE country = $1",
        vec![P::Text("JP")],
        read(vec![0]),
    );
    for spelling in [
        UUID,
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
    ] {
        add(
            &format!("SELECT * FROM sessions WHERE sid = '{spelling}'"),
            vec![],
            read(vec![hu()]),
        );
    }
    add(
        "SELECT * FROM sessions WHERE sid = $1",
        vec![P::Uuid(UUID_BYTES)],
        read(vec![hu()]),
    );
    add(
        "SELECT * FROM sessions WHERE sid = 'not-a-uuid'",
        vec![],
        err("22P02", "not-a-uuid"),
    );

    // Joins.
    let join = "SELECT * FROM users u JOIN orders o ON o.user_id = u.id";
    add(&format!("{join} WHERE u.id = 7"), vec![], read(vec![h(7)]));
    add(
        &format!("{join} WHERE o.user_id = $1"),
        vec![P::Int8(7)],
        read(vec![h(7)]),
    );
    add(join, vec![], all(Read));
    add(
        "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.id = 7",
        vec![],
        read(vec![h(7)]),
    );
    add(
        "SELECT * FROM users u, orders o WHERE u.id = o.user_id AND u.id = 9",
        vec![],
        read(vec![h(9)]),
    );
    add(
        "SELECT * FROM orders a JOIN orders b USING (user_id) WHERE a.user_id = 3",
        vec![],
        read(vec![h(3)]),
    );
    add(
        "SELECT * FROM users a JOIN users b ON a.id = b.id WHERE b.id = 1",
        vec![],
        read(vec![h(1)]),
    );
    add(
        "SELECT * FROM users u JOIN orders o ON o.id = u.id",
        vec![],
        err(
            "0A000",
            "join of users and orders is not on their shard keys",
        ),
    );
    add(
        "SELECT * FROM users a JOIN users b ON a.name = b.name WHERE a.id = 1",
        vec![],
        err("0A000", "not on their shard keys"),
    );
    add(
        "SELECT * FROM users u JOIN events e ON e.event_id = u.id",
        vec![],
        err("0A000", "different shard maps"),
    );
    add(
        "SELECT * FROM users u, events e WHERE u.id = 1 AND e.event_id = 1",
        vec![],
        err("0A000", "different shard maps"),
    );
    add(
        "SELECT * FROM users u JOIN logs l ON l.user_id = u.id WHERE u.id = 1",
        vec![],
        err("0A000", "lives only on the default shard"),
    );
    add(
        "SELECT * FROM users u JOIN countries c ON c.code = u.country WHERE u.id = 3",
        vec![],
        read(vec![h(3)]),
    );
    add(
        "SELECT * FROM users u LEFT JOIN countries c ON c.code = u.country",
        vec![],
        all(Read),
    );

    // Subqueries and CTEs.
    add(
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 5)",
        vec![],
        all(Read),
    );
    add(
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE user_id = 5)",
        vec![],
        read(vec![h(5)]),
    );
    add(
        "SELECT * FROM users WHERE id = 3 AND EXISTS \
         (SELECT 1 FROM orders o WHERE o.user_id = users.id)",
        vec![],
        read(vec![h(3)]),
    );
    add(
        "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u \
         WHERE u.id = 2",
        vec![],
        read(vec![h(2)]),
    );
    add(
        "SELECT * FROM users WHERE score > (SELECT avg(score) FROM users)",
        vec![],
        err(
            "0A000",
            "aggregates or GROUP BY over sharded table users cannot be computed",
        ),
    );
    add(
        "SELECT * FROM users WHERE score > ANY (SELECT score FROM users)",
        vec![],
        err(
            "0A000",
            "join of users and users is not on their shard keys",
        ),
    );
    add(
        "SELECT * FROM (SELECT * FROM users WHERE id = 4) t",
        vec![],
        read(vec![h(4)]),
    );
    add(
        "SELECT * FROM users u JOIN (SELECT user_id FROM orders ORDER BY total LIMIT 1) o \
         ON o.user_id = u.id",
        vec![],
        err("0A000", "LIMIT/OFFSET over sharded table orders"),
    );
    add(
        "WITH x AS (SELECT * FROM users WHERE id = 6) SELECT * FROM x",
        vec![],
        read(vec![h(6)]),
    );
    add(
        "WITH x AS (SELECT * FROM users) SELECT * FROM x a JOIN x b ON a.name = b.name",
        vec![],
        err("0A000", "not on their shard keys"),
    );
    add(
        "WITH users AS (SELECT 1 AS id) SELECT * FROM users WHERE id = 1",
        vec![],
        default(Read),
    );
    add(
        "WITH users AS (SELECT * FROM users WHERE id = 1) SELECT * FROM users",
        vec![],
        read(vec![h(1)]),
    );
    add(
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t",
        vec![],
        default(Read),
    );
    add(
        "WITH RECURSIVE t AS (SELECT id FROM users UNION ALL SELECT id FROM t) SELECT * FROM t",
        vec![],
        err("0A000", "WITH RECURSIVE over sharded table users"),
    );
    add(
        "SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id \
         ORDER BY o.total DESC LIMIT 3) x WHERE u.id = 1",
        vec![],
        read(vec![h(1)]),
    );
    add(
        "SELECT u.id, count(*) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.id",
        vec![],
        all(Read),
    );
    add(
        "SELECT id FROM users WHERE id = 1 UNION ALL SELECT user_id FROM orders WHERE user_id = 2",
        vec![],
        read(vec![h(1), h(2)]),
    );

    add(
        "SELECT * FROM (SELECT id FROM users UNION ALL SELECT user_id FROM orders) t WHERE t.id = 5",
        vec![],
        read(vec![h(5)]),
    );
    add(
        "SELECT * FROM (SELECT id FROM users UNION ALL SELECT event_id FROM events) t \
         WHERE t.id = 5",
        vec![],
        all(Read),
    );
    add(
        "SELECT * FROM users u LEFT JOIN (orders o JOIN orders o2 ON o2.user_id = o.user_id \
         AND o.user_id = 5) ON o.user_id = u.id",
        vec![],
        all(Read),
    );
    add(
        "SELECT * FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
        vec![],
        all(Read),
    );

    // INSERT.
    add(
        "INSERT INTO users (id, name) VALUES (42, 'a')",
        vec![],
        write(vec![h(42)]),
    );
    add(
        "INSERT INTO users (id, name) VALUES ($1, $2)",
        vec![P::Int8(42), P::Text("a")],
        write(vec![h(42)]),
    );
    add(
        "INSERT INTO users (name, id) VALUES ('a', '42'::int8) RETURNING id",
        vec![],
        write(vec![h(42)]),
    );
    add(
        "INSERT INTO users VALUES (1, 'a')",
        vec![],
        err(
            "0A000",
            "name the columns of an INSERT into sharded table users",
        ),
    );
    add(
        "INSERT INTO users (id, name) VALUES (1, 'a'), (NULL, 'b')",
        vec![],
        err(
            "23502",
            "null value in shard key column \"id\" of sharded table \"users\"",
        ),
    );
    add(
        "INSERT INTO users (id, name) VALUES (DEFAULT, 'b')",
        vec![],
        err(
            "23502",
            "null value in shard key column \"id\" of sharded table \"users\"",
        ),
    );
    add(
        "INSERT INTO users (id, name) VALUES ($1, 'b')",
        vec![P::Null],
        err(
            "23502",
            "null value in shard key column \"id\" of sharded table \"users\"",
        ),
    );
    add(
        "INSERT INTO users (name) VALUES ('b')",
        vec![],
        err("23502", "shard key column \"id\""),
    );
    add(
        "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET id = 5",
        vec![],
        err("0A000", "updating the shard key column \"id\""),
    );
    add(
        "INSERT INTO orders (user_id, total) SELECT id, 0 FROM users WHERE id = 3",
        vec![],
        write(vec![h(3)]),
    );
    add(
        "INSERT INTO users (id) SELECT event_id FROM events",
        vec![],
        err("0A000", "INSERT ... SELECT into sharded table users"),
    );
    add(
        "INSERT INTO countries (code, name) VALUES ('KR', 'Korea')",
        vec![],
        Want::Route(Target::ReferenceWrite, Some(Write)),
    );
    add(
        "INSERT INTO logs (msg) VALUES ('x')",
        vec![],
        default(Write),
    );

    // UPDATE and DELETE.
    add(
        "UPDATE users SET name = 'x' WHERE id = 3",
        vec![],
        write(vec![h(3)]),
    );
    add("UPDATE users SET name = 'x'", vec![], all(Write));
    add(
        "UPDATE users SET id = 4 WHERE id = 3",
        vec![],
        err(
            "0A000",
            "updating the shard key column \"id\" of sharded table \"users\" is not supported \
             (it would move the row to another shard)",
        ),
    );
    add(
        "DELETE FROM orders WHERE user_id = $1",
        vec![P::Int4(8)],
        write(vec![h(8)]),
    );
    add(
        "DELETE FROM users USING orders WHERE orders.user_id = users.id AND users.id = 5",
        vec![],
        write(vec![h(5)]),
    );
    add(
        "UPDATE countries SET name = 'x' WHERE code = 'KR'",
        vec![],
        Want::Route(Target::ReferenceWrite, Some(Write)),
    );
    add(
        "UPDATE countries SET n = 1 WHERE code IN (SELECT country FROM customers)",
        vec![],
        err("0A000", "cannot read sharded table customers"),
    );
    add(
        "SELECT * FROM users WHERE id = 1 FOR UPDATE",
        vec![],
        write(vec![h(1)]),
    );

    // DDL.
    add(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text)",
        vec![],
        all(Ddl),
    );
    add(
        "CREATE INDEX orders_total ON orders (total)",
        vec![],
        all(Ddl),
    );
    add(
        "ALTER TABLE public.users ADD COLUMN x int",
        vec![],
        all(Ddl),
    );
    add("DROP TABLE users, logs", vec![], all(Ddl));
    add("DROP TABLE logs", vec![], default(Ddl));
    add("TRUNCATE countries", vec![], all(Ddl));
    add("CREATE TABLE logs (msg text)", vec![], default(Ddl));
    add("COMMENT ON COLUMN users.name IS 'x'", vec![], all(Ddl));
    add("DROP INDEX IF EXISTS orders_total", vec![], all(Ddl));
    add(
        "DROP INDEX orders_total",
        vec![],
        err("0A000", "DROP INDEX IF EXISTS"),
    );
    add(
        "CREATE VIEW v AS SELECT * FROM users",
        vec![],
        err("0A000", "a view over sharded table users"),
    );

    // COPY.
    add(
        "COPY users (id, name) FROM STDIN",
        vec![],
        Want::Route(Target::All, Some(CopyIn)),
    );
    add(
        "COPY users FROM STDIN",
        vec![],
        Want::Route(Target::All, Some(CopyIn)),
    );
    add("COPY users TO STDOUT", vec![], all(CopyOut));
    add(
        "COPY (SELECT * FROM users WHERE id = 3) TO STDOUT",
        vec![],
        Want::Route(shards(vec![h(3)]), Some(CopyOut)),
    );
    add(
        "COPY countries TO STDOUT",
        vec![],
        Want::Route(Target::ReferenceRead, Some(CopyOut)),
    );
    add(
        "COPY countries FROM STDIN",
        vec![],
        Want::Route(Target::ReferenceWrite, Some(CopyIn)),
    );
    add(
        "COPY users FROM '/tmp/users.csv'",
        vec![],
        err("0A000", "FROM STDIN"),
    );
    add("COPY logs FROM STDIN", vec![], default(CopyIn));

    // Catalog and utility statements; statements the parser cannot read.
    add(
        "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c \
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default \
         AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3",
        vec![],
        default(Read),
    );
    add(
        "SELECT * FROM information_schema.tables",
        vec![],
        default(Read),
    );
    add("SELECT version()", vec![], default(Read));
    add("SELECT nextval('users_id_seq')", vec![], default(Write));
    add("SELECT 1", vec![], default(Read));
    add("", vec![], default(Utility));
    add("VACUUM ANALYZE users", vec![], all(Utility));
    add("REINDEX TABLE countries", vec![], all(Utility));
    add("CHECKPOINT", vec![], default(Utility));
    add("DO $$ BEGIN PERFORM 1; END $$", vec![], default(Write));
    add(
        "DO $$ BEGIN UPDATE users SET name = 'x'; END $$",
        vec![],
        err("0A000", "sharded table users"),
    );
    add(
        "LOCK TABLE users",
        vec![],
        err("0A000", "sharded table users"),
    );
    add(
        "SELECT * FROM countries",
        vec![],
        Want::Route(Target::ReferenceRead, Some(Read)),
    );
    add(
        "SELECT * FROM countries c JOIN logs l ON l.code = c.code",
        vec![],
        default(Read),
    );
    add("BEGIN", vec![], default(Begin));
    add(
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        vec![],
        default(Begin),
    );
    add("COMMIT", vec![], default(Commit));
    add("ROLLBACK", vec![], default(Rollback));
    add("SAVEPOINT a", vec![], default(Savepoint));
    add("ROLLBACK TO SAVEPOINT a", vec![], default(Savepoint));
    add("PREPARE TRANSACTION 'gid1'", vec![], default(TwoPhase));
    add("COMMIT PREPARED 'gid1'", vec![], default(TwoPhase));
    add("SET search_path = public", vec![], default(Utility));
    add("SHOW search_path", vec![], default(Utility));
    add("RESET ALL", vec![], default(Utility));
    add("DISCARD ALL", vec![], default(Utility));
    add("LISTEN jobs", vec![], default(Utility));

    // Multi-statement texts.
    add(
        "SELECT * FROM users WHERE id = 1; SELECT * FROM orders WHERE user_id = 1",
        vec![],
        read(vec![h(1)]),
    );
    add(
        "BEGIN; UPDATE users SET name = 'x' WHERE id = 1; COMMIT",
        vec![],
        write(vec![h(1)]),
    );
    let (a, b) = (key_on(0), key_on(1));
    add(
        &format!("SELECT * FROM users WHERE id = {a}; SELECT * FROM users WHERE id = {b}"),
        vec![],
        err(
            "0A000",
            "multi-statement query whose statements need different shards",
        ),
    );
    c
}

fn target_name(t: &Target) -> String {
    format!("{t:?}")
}

#[test]
fn routing_table() {
    let router = router();
    let cases = cases();
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let got = run(&router, &case.sql, &case.params);
        let ok = match (&case.want, &got) {
            (Want::Route(target, kind), Ok(plan)) => {
                plan.target == *target
                    && kind.is_none_or(|k| k == plan.kind)
                    && !plan.reason.is_empty()
            }
            (Want::AnyOf(sets), Ok(plan)) => sets
                .iter()
                .any(|s| plan.target == Target::Shards(s.clone())),
            (Want::Error(code, fragment), Err(e)) => {
                e.code == *code && e.message.contains(fragment)
            }
            _ => false,
        };
        if !ok {
            let got = match &got {
                Ok(plan) => format!(
                    "{} {:?} ({})",
                    target_name(&plan.target),
                    plan.kind,
                    plan.reason
                ),
                Err(e) => format!("error {} {}", e.code, e.message),
            };
            failures.push(format!(
                "{}  {:?}\n    want {:?}\n    got  {got}",
                case.sql, case.params, case.want
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
