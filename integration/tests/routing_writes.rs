//! Writes and statements besides INSERT placement (routing.rs): UPDATE/DELETE by key and across
//! shards, reference and unlisted tables, DDL, refusals with their SQLSTATEs, transactions over
//! two shards, catalog queries. Every effect is checked on each shard directly.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod routing_support;

use std::time::Duration;

use integration::pg_tool;
use integration::util::bounded;
use routing_support::*;
use tokio_postgres::SimpleQueryMessage;

/// The row count of the last CommandComplete of a simple query.
async fn tag_count(client: &tokio_postgres::Client, sql: &str) -> u64 {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match msgs.last() {
        Some(SimpleQueryMessage::CommandComplete(n)) => *n,
        other => panic!("{sql}: no command tag: {other:?}"),
    }
}

/// One key per shard among 1..: `[key on s0, key on s1, key on s2]`.
fn key_per_shard() -> [i64; SHARDS] {
    std::array::from_fn(|s| (1..).find(|k| user_shard(*k) == s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_with_a_key_touch_only_its_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        // Decoys: every key 1..=9 exists on EVERY shard (written directly), so a write sent to
        // the wrong shard, or to all of them, changes rows it must not.
        for shard in &fx.shards {
            let sql = "INSERT INTO users (id, name) SELECT g, 'orig' FROM generate_series(1, 9) g";
            shard.batch_execute(sql).await.unwrap();
        }
        for k in 1..=9i64 {
            let sql = format!("UPDATE users SET name = 'hit{k}' WHERE id = {k}");
            assert_eq!(tag_count(c, &sql).await, 1, "{sql}");
        }
        let hits = fx
            .column_per_shard("SELECT id::text FROM users WHERE name LIKE 'hit%'")
            .await;
        let mut want = vec![Vec::new(); SHARDS];
        for k in 1..=9i64 {
            want[user_shard(k)].push(k.to_string());
        }
        for keys in &mut want {
            keys.sort();
        }
        assert_eq!(
            hits, want,
            "UPDATE by key changes only the row on its shard"
        );
        // Keys as a parameter and as IN (...) over two shards.
        let [k0, k1, k2] = key_per_shard();
        let n = c
            .execute("UPDATE users SET name = 'param' WHERE id = $1", &[&k2])
            .await
            .unwrap();
        assert_eq!(n, 1);
        // IN over two shards goes to those two only; each of them also holds the other key as
        // a decoy, so both rows match on both (PostgreSQL cannot know), s2 stays untouched.
        let sql = format!("UPDATE users SET name = 'in' WHERE id IN ({k0}, {k1})");
        assert_eq!(tag_count(c, &sql).await, 4, "{sql}");
        let got = fx
            .column_per_shard("SELECT name || ':' || id FROM users WHERE name IN ('param', 'in')")
            .await;
        let mut both = vec![format!("in:{k0}"), format!("in:{k1}")];
        both.sort();
        assert_eq!(got, vec![both.clone(), both, vec![format!("param:{k2}")]]);

        // Without a key: every shard, and the tag adds up the shards' counts.
        assert_eq!(tag_count(c, "UPDATE users SET name = 'all'").await, 27);
        assert_eq!(fx.counts("users WHERE name = 'all'").await, vec![9; SHARDS]);
        let n = c
            .execute("UPDATE users SET name = 'big' WHERE id > 6", &[])
            .await
            .unwrap();
        assert_eq!(n, 9);

        // DELETE by key: one row, on its shard only.
        for k in [k0, k1, k2] {
            let sql = format!("DELETE FROM users WHERE id = {k}");
            assert_eq!(tag_count(c, &sql).await, 1, "{sql}");
        }
        let mut want = vec![9; SHARDS];
        for k in [k0, k1, k2] {
            want[user_shard(k)] -= 1;
        }
        assert_eq!(fx.counts("users").await, want);
        // Each shard lost exactly its own key; the decoys elsewhere are still there.
        let left = fx.column_per_shard("SELECT id::text FROM users").await;
        for (s, ids) in left.iter().enumerate() {
            let mut want: Vec<String> = (1..=9i64)
                .filter(|k| ![k0, k1, k2].contains(k) || user_shard(*k) != s)
                .map(|k| k.to_string())
                .collect();
            want.sort();
            assert_eq!(ids, &want, "s{s} after DELETE by key");
        }
        let total: i64 = want.iter().sum();
        assert_eq!(tag_count(c, "DELETE FROM users").await, total as u64);
        assert_eq!(fx.counts("users").await, vec![0; SHARDS]);
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_tables_are_written_everywhere_and_read_once() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        // Command tags are checked last, so a wrong count does not hide where the rows went:
        // one PostgreSQL holding the table reports each row once, not once per shard.
        let mut tags = Vec::new();
        let sql = "INSERT INTO countries (code, name) VALUES ('KR', 'Korea'), ('JP', 'Japan')";
        tags.push((sql, tag_count(c, sql).await, 2));
        let sql = "INSERT INTO countries (code, name) VALUES ($1, $2)";
        tags.push((sql, c.execute(sql, &[&"US", &"USA"]).await.unwrap(), 1));
        let all = vec!["JP:Japan", "KR:Korea", "US:USA"];
        let per_shard = fx
            .column_per_shard("SELECT code || ':' || name FROM countries")
            .await;
        assert_eq!(per_shard, vec![all.clone(); SHARDS]);
        let rows = c
            .query("SELECT code, name FROM countries ORDER BY code", &[])
            .await
            .unwrap();
        let got: Vec<String> = rows
            .iter()
            .map(|r| format!("{}:{}", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        assert_eq!(got, all, "each row once");
        let sql = "UPDATE countries SET name = 'Nippon' WHERE code = 'JP'";
        tags.push((sql, tag_count(c, sql).await, 1));
        let sql = "DELETE FROM countries WHERE code = 'US'";
        tags.push((sql, tag_count(c, sql).await, 1));
        let per_shard = fx
            .column_per_shard("SELECT code || ':' || name FROM countries")
            .await;
        assert_eq!(per_shard, vec![vec!["JP:Nippon", "KR:Korea"]; SHARDS]);
        // A join of a sharded table with a reference table.
        c.execute(
            "INSERT INTO customers (country, name) VALUES ('KR', 'kim')",
            &[],
        )
        .await
        .unwrap();
        let sql = "SELECT cu.name, co.name FROM customers cu JOIN countries co \
                   ON co.code = cu.country WHERE cu.country = 'KR'";
        let row = c.query_one(sql, &[]).await.unwrap();
        let got: (String, String) = (row.get(0), row.get(1));
        assert_eq!(got, ("kim".into(), "Korea".into()));
        let wrong: Vec<_> = tags
            .into_iter()
            .filter(|(_, got, want)| got != want)
            .collect();
        assert!(
            wrong.is_empty(),
            "command tag row counts (sql, got, want): {wrong:#?}"
        );
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_reaches_every_shard_and_unlisted_tables_stay_on_the_default_shard() {
    bounded(async {
        let fx = Fixture::start("").await;
        let c = &fx.client;
        c.batch_execute("CREATE TABLE users (id bigint PRIMARY KEY, name text)")
            .await
            .unwrap();
        c.batch_execute("CREATE INDEX users_name_idx ON users (name)")
            .await
            .unwrap();
        c.batch_execute("CREATE TABLE countries (code text PRIMARY KEY, name text)")
            .await
            .unwrap();
        c.batch_execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
            .await
            .unwrap();
        let sql = "SELECT relname::text FROM pg_class WHERE relname IN \
                   ('users', 'users_name_idx', 'countries', 'notes') ORDER BY 1";
        let rels = fx.column_per_shard(sql).await;
        assert_eq!(rels[0], ["countries", "notes", "users", "users_name_idx"]);
        for (s, rels) in rels.iter().enumerate().skip(1) {
            assert_eq!(rels, &["countries", "users", "users_name_idx"], "s{s}");
        }
        // The tables made through the proxy place rows as usual.
        let keys: Vec<i64> = (1..=12).collect();
        for k in &keys {
            let n = c
                .execute("INSERT INTO users (id, name) VALUES ($1, 'ddl')", &[k])
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
        let expected: Vec<(String, usize)> = keys
            .iter()
            .map(|k| (k.to_string(), user_shard(*k)))
            .collect();
        assert_all_shards(&expected);
        fx.assert_placement("users", "id", &expected).await;
        // The unlisted table: rows on s0 only, read back through the proxy.
        let sql = "INSERT INTO notes VALUES (1, 'a'), (2, 'b'), (3, 'c')";
        assert_eq!(tag_count(c, sql).await, 3);
        let rows = c
            .query("SELECT body FROM notes ORDER BY id", &[])
            .await
            .unwrap();
        let bodies: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(bodies, ["a", "b", "c"]);
        let on_s0 = fx.shards[0]
            .query_one("SELECT count(*) FROM notes", &[])
            .await;
        assert_eq!(on_s0.unwrap().get::<_, i64>(0), 3);
        assert_eq!(tag_count(c, "UPDATE notes SET body = 'x'").await, 3);
        assert_eq!(
            tag_count(c, "ALTER TABLE users ADD COLUMN extra int").await,
            0
        );
        let sql = "SELECT attname::text FROM pg_attribute \
                   WHERE attrelid = 'users'::regclass AND attname = 'extra'";
        let cols = fx.column_per_shard(sql).await;
        assert_eq!(cols, vec![vec!["extra"]; SHARDS]);
        c.batch_execute("DROP TABLE users").await.unwrap();
        let left = fx
            .column_per_shard("SELECT coalesce(to_regclass('users')::text, 'none')")
            .await;
        assert_eq!(left, vec![vec!["none"]; SHARDS]);
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_client_with_their_sqlstate() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        c.batch_execute("INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b'), (4, 'c')")
            .await
            .unwrap();
        // A NULL shard key: refused by the proxy (the column itself allows NULL), naming the
        // table and the column; omitting the key column is a NULL key as well.
        let null_key = [
            "INSERT INTO orders (order_id, user_id, amount) VALUES (1, NULL, 1)",
            "INSERT INTO orders (order_id, amount) VALUES (2, 2)",
            "INSERT INTO orders (order_id, user_id, amount) VALUES (3, 1, 3), (4, NULL, 4)",
        ];
        for sql in null_key {
            let msg = expect_sqlstate(c.execute(sql, &[]).await, "23502", sql);
            assert!(
                msg.contains("orders") && msg.contains("user_id"),
                "{sql}: {msg}"
            );
        }
        let sql = "INSERT INTO orders (order_id, user_id, amount) VALUES ($1, $2, $3)";
        let msg = expect_sqlstate(
            c.execute(sql, &[&5i64, &None::<i64>, &5i32]).await,
            "23502",
            sql,
        );
        assert!(msg.contains("user_id"), "{msg}");
        assert_eq!(
            fx.counts("orders").await,
            vec![0; SHARDS],
            "nothing of a refused insert is kept"
        );

        // Changing a row's shard key.
        for sql in [
            "UPDATE users SET id = 100 WHERE id = 1",
            "UPDATE users SET name = 'x', id = id + 1",
        ] {
            expect_sqlstate(c.execute(sql, &[]).await, "0A000", sql);
        }
        let sql = "UPDATE users SET id = $1 WHERE id = $2";
        expect_sqlstate(c.execute(sql, &[&7i64, &2i64]).await, "0A000", sql);
        // A join across maps, and a join of co-located tables not on their keys.
        for sql in [
            "SELECT * FROM users u JOIN events e ON e.event_id = u.id",
            "SELECT * FROM users u JOIN orders o ON o.amount = u.id",
        ] {
            expect_sqlstate(c.query(sql, &[]).await, "0A000", sql);
        }
        // An aggregate over several shards is merged: the right count, 3; one that cannot be
        // merged exactly is refused.
        let n: i64 = c
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 3);
        let sql = "SELECT count(DISTINCT name) FROM users";
        expect_sqlstate(c.query(sql, &[]).await, "0A000", sql);
        // Nothing changed anywhere, and the session still works.
        let ids = fx
            .column_per_shard("SELECT id || ':' || name FROM users")
            .await;
        let mut want = vec![Vec::new(); SHARDS];
        for (k, n) in [(1, "a"), (2, "b"), (4, "c")] {
            want[user_shard(k)].push(format!("{k}:{n}"));
        }
        assert_eq!(ids, want);
        let row = c
            .query_one("SELECT name FROM users WHERE id = 4", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "c");
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_over_two_shards_commits_or_rolls_back_both() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let [k0, k1, _] = key_per_shard();
        let c = &fx.client;
        let insert = "INSERT INTO users (id, name) VALUES ($1, $2)";
        c.batch_execute("BEGIN").await.unwrap();
        c.execute(insert, &[&k0, &"tx"]).await.unwrap();
        c.execute(insert, &[&k1, &"tx"]).await.unwrap();
        // Not visible on the shards before COMMIT.
        assert_eq!(fx.counts("users").await, vec![0; SHARDS]);
        c.batch_execute("COMMIT").await.unwrap();
        assert_eq!(fx.counts("users").await, vec![1, 1, 0]);

        let [r0, r1] = [0, 1].map(|s| (1000..).find(|j| user_shard(*j) == s).unwrap());
        let mut client = fx.connect().await;
        let tx = client.transaction().await.unwrap();
        tx.execute(insert, &[&r0, &"rolled"]).await.unwrap();
        tx.execute(insert, &[&r1, &"rolled"]).await.unwrap();
        tx.execute("UPDATE users SET name = 'changed' WHERE id = $1", &[&k0])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let rows = fx
            .column_per_shard("SELECT id || ':' || name FROM users")
            .await;
        assert_eq!(
            rows,
            vec![vec![format!("{k0}:tx")], vec![format!("{k1}:tx")], vec![]]
        );

        // The same with tokio-postgres' transaction API, committed.
        let tx = client.transaction().await.unwrap();
        tx.execute(insert, &[&r0, &"kept"]).await.unwrap();
        tx.execute(insert, &[&r1, &"kept"]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(fx.counts("users").await, vec![2, 2, 0]);
        for k in [r0, r1] {
            let row = client
                .query_one("SELECT name FROM users WHERE id = $1", &[&k])
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), "kept");
        }
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_queries_are_answered_by_the_default_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        let rows = c
            .query(
                "SELECT relname::text FROM pg_class WHERE relname = 'users'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "one answer, not one per shard");
        assert_eq!(rows[0].get::<_, String>(0), "users");
        let sql = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'users'";
        assert_eq!(c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0), 1);
        let sql = "SELECT current_database()::text";
        assert_eq!(
            c.query_one(sql, &[]).await.unwrap().get::<_, String>(0),
            fx.dbs.name
        );
        // psql's \d runs its catalog queries through the proxy.
        let psql = pg_tool("psql");
        let addr = fx.proxy.addr;
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(psql)
                .args([
                    "-X",
                    "-h",
                    &addr.ip().to_string(),
                    "-p",
                    &addr.port().to_string(),
                ])
                .args([
                    "-U",
                    "app",
                    "-d",
                    &fx.dbs.name,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    "\\d users",
                ])
                .output(),
        )
        .await
        .expect("psql \\d users did not finish in 30 s")
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("Table \"public.users\""), "{stdout}");
        assert!(stdout.contains("users_pkey"), "{stdout}");
        fx.finish().await;
    })
    .await;
}
