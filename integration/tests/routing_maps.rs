//! Placement for every strategy and key type besides bigint hash (routing.rs): range maps over
//! bigint and text, list maps with and without a default, text and uuid hash maps. Each row is
//! found, by connecting to each shard directly, exactly where INTERFACE.md section 3 says.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod routing_support;

use integration::raw::{cstr, exec_msgs, first_error, frame, Raw};
use integration::util::bounded;
use routing_support::*;
use tokio_postgres::Client;

/// The single bigint `sql` returns through the proxy.
async fn one_count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_maps_place_bigint_and_text_keys_by_their_order() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        // Both sides of every bound, and the unbounded ends.
        let literal = [
            i64::MIN,
            -5,
            0,
            99,
            100,
            150,
            199,
            200,
            1_000_000_000_000,
            i64::MAX,
        ];
        let mut expected = Vec::new();
        for k in literal {
            let sql = format!("INSERT INTO events (event_id, kind) VALUES ({k}, 'lit{k}')");
            assert_eq!(c.execute(&sql, &[]).await.unwrap(), 1, "{sql}");
            expected.push((k.to_string(), event_shard(k)));
        }
        let insert = c
            .prepare("INSERT INTO events (event_id, kind) VALUES ($1, $2)")
            .await
            .unwrap();
        for k in [-1i64, 98, 101, 198, 201] {
            assert_eq!(
                c.execute(&insert, &[&k, &format!("bin{k}")]).await.unwrap(),
                1
            );
            expected.push((k.to_string(), event_shard(k)));
        }
        assert_all_shards(&expected);
        fx.assert_placement("events", "event_id", &expected).await;
        for (k, _) in &expected {
            let sql = format!("SELECT count(*) FROM events WHERE event_id = {k}");
            assert_eq!(one_count(c, &sql).await, 1, "{sql}");
        }

        // Text ranges compare bytes: 'Zebra' < 'm' and 'émile' (0xC3...) > 'm', unlike most
        // collations.
        let words = ["", "Zebra", "apple", "lz", "m", "mango", "zz", "émile"];
        let mut expected = Vec::new();
        for (i, w) in words.iter().enumerate() {
            let n = c
                .execute(
                    "INSERT INTO words (word, n) VALUES ($1, $2)",
                    &[w, &(i as i32)],
                )
                .await
                .unwrap();
            assert_eq!(n, 1, "word {w:?}");
            expected.push((w.to_string(), word_shard(w)));
        }
        assert_eq!(word_shard("Zebra"), 0);
        assert_eq!(word_shard("émile"), 1);
        fx.assert_placement("words", "word", &expected).await;
        for (i, w) in words.iter().enumerate() {
            let row = c
                .query_one("SELECT n FROM words WHERE word = $1", &[w])
                .await
                .unwrap();
            assert_eq!(row.get::<_, i32>(0), i as i32, "lookup of {w:?}");
        }

        // A key outside every range is refused, naming the value; nothing is written.
        fx.assert_placement("readings", "reading_id", &[]).await;
        for k in [-1i64, 1000, 5000] {
            assert_eq!(reading_shard(k), None);
            let sql = format!("INSERT INTO readings (reading_id, v) VALUES ({k}, 1)");
            let msg = expect_sqlstate(c.execute(&sql, &[]).await, "22023", &sql);
            assert!(msg.contains(&k.to_string()), "{sql}: {msg}");
        }
        let sql = "INSERT INTO readings (reading_id, v) VALUES (0, 1), (999, 2)";
        assert_eq!(c.execute(sql, &[]).await.unwrap(), 2);
        fx.assert_placement(
            "readings",
            "reading_id",
            &[("0".into(), 1), ("999".into(), 1)],
        )
        .await;
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_maps_place_listed_values_and_the_default() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        // Matching is exact: 'kr' is not 'KR' and goes to the default shard.
        let countries = ["KR", "JP", "US", "DE", "FR", "BR", "kr", ""];
        let mut expected = Vec::new();
        for (i, country) in countries.iter().enumerate() {
            let n = if i % 2 == 0 {
                let sql =
                    format!("INSERT INTO customers (country, name) VALUES ('{country}', 'c{i}')");
                c.execute(&sql, &[]).await.unwrap()
            } else {
                let sql = "INSERT INTO customers (name, country) VALUES ($1, $2)";
                c.execute(sql, &[&format!("c{i}"), country]).await.unwrap()
            };
            assert_eq!(n, 1, "country {country:?}");
            expected.push((country.to_string(), customer_shard(country)));
        }
        assert_eq!(customer_shard("kr"), 2);
        fx.assert_placement("customers", "country", &expected).await;
        // A multi-row insert mixing listed and default values is split too.
        let sql =
            "INSERT INTO customers (country, name) VALUES ('JP', 'm1'), ('SE', 'm2'), ('DE', 'm3')";
        assert_eq!(c.execute(sql, &[]).await.unwrap(), 3);
        expected.extend([("JP", 0), ("SE", 2), ("DE", 1)].map(|(k, s)| (k.to_string(), s)));
        fx.assert_placement("customers", "country", &expected).await;
        let rows = c
            .query(
                "SELECT name FROM customers WHERE country = 'JP' ORDER BY name",
                &[],
            )
            .await
            .unwrap();
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(names, ["c1", "m1"]);

        // Without a default an unlisted value is refused, naming the value.
        for (zone, n) in [("north", 1), ("south", 2)] {
            let sql = format!("INSERT INTO zones (zone, n) VALUES ('{zone}', {n})");
            assert_eq!(c.execute(&sql, &[]).await.unwrap(), 1, "{sql}");
        }
        let sql = "INSERT INTO zones (zone, n) VALUES ('west', 3)";
        let msg = expect_sqlstate(c.execute(sql, &[]).await, "22023", sql);
        assert!(msg.contains("west"), "{msg}");
        assert_eq!(zone_shard("west"), None);
        let sql = "INSERT INTO zones (zone, n) VALUES ($1, $2)";
        let msg = expect_sqlstate(c.execute(sql, &[&"east", &4i32]).await, "22023", sql);
        assert!(msg.contains("east"), "{msg}");
        let want: Vec<(String, usize)> = ["north", "south"]
            .map(|z| (z.to_string(), zone_shard(z).unwrap()))
            .into();
        fx.assert_placement("zones", "zone", &want).await;
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_hash_keys_land_on_their_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        let tags = [
            "alice", "bob", "carol", "dave", "erin", "frank", "héllo", "", "O'Brien",
        ];
        let mut expected = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            let n = if i % 2 == 0 {
                let quoted = tag.replace('\'', "''");
                let sql = format!("INSERT INTO tags (tag, n) VALUES ('{quoted}', {i})");
                c.execute(&sql, &[]).await.unwrap()
            } else {
                c.execute(
                    "INSERT INTO tags (tag, n) VALUES ($1, $2)",
                    &[tag, &(i as i32)],
                )
                .await
                .unwrap()
            };
            assert_eq!(n, 1, "tag {tag:?}");
            expected.push((tag.to_string(), tag_shard(tag)));
        }
        // A long key (more than 16 bytes takes another xxh3 path) and a multi-row insert.
        let long = "a-much-longer-text-key-over-16-bytes";
        let sql =
            format!("INSERT INTO tags (tag, n) VALUES ('{long}', 100), ('zed', 101), ('yan', 102)");
        assert_eq!(c.execute(&sql, &[]).await.unwrap(), 3);
        expected.extend([long, "zed", "yan"].map(|t| (t.to_string(), tag_shard(t))));
        assert_all_shards(&expected);
        fx.assert_placement("tags", "tag", &expected).await;
        for tag in tags {
            let sql = "SELECT count(*) FROM tags WHERE tag = $1";
            let got: i64 = c.query_one(sql, &[&tag]).await.unwrap().get(0);
            assert_eq!(got, 1, "lookup of {tag:?}");
        }
        fx.finish().await;
    })
    .await;
}

/// Sends one INSERT with a text-format uuid parameter (type inferred) through `raw`.
async fn raw_insert_device(raw: &mut Raw, id: &str, label: &str) {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, "INSERT INTO devices (id, label) VALUES ($1, $2)");
    body.extend_from_slice(&0i16.to_be_bytes());
    let mut msgs = frame(b'P', &body);
    msgs.extend(exec_msgs("", &[id, label]));
    let answer = raw.round_trip(&msgs).await;
    assert_eq!(first_error(&answer), None, "text uuid {id}: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_keys_route_the_same_in_every_spelling() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        let mut raw = Raw::login(fx.proxy.addr, &fx.dbs.name).await;
        let uuids = [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "123e4567-e89b-12d3-a456-426614174000",
            "00000000-0000-0000-0000-000000000001",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        ];
        let mut expected = Vec::new();
        for u in uuids {
            let bytes = uuid_bytes(u);
            let upper = u.to_uppercase();
            let bare = u.replace('-', "");
            let literals = [
                format!("'{u}'"),
                format!("'{upper}'"),
                format!("'{bare}'"),
                format!("'{}'", bare.to_uppercase()),
                format!("'{{{u}}}'"),
                format!("'{upper}'::uuid"),
            ];
            for (i, lit) in literals.iter().enumerate() {
                let sql = format!("INSERT INTO devices (id, label) VALUES ({lit}, 'lit{i}')");
                assert_eq!(c.execute(&sql, &[]).await.unwrap(), 1, "{sql}");
            }
            let n = c
                .execute(
                    "INSERT INTO devices (id, label) VALUES ($1, 'bin')",
                    &[&BinaryUuid(bytes)],
                )
                .await
                .unwrap();
            assert_eq!(n, 1, "binary uuid {u}");
            raw_insert_device(&mut raw, &upper, "text-upper").await;
            raw_insert_device(&mut raw, &bare, "text-bare").await;
            let canonical = uuid_text(bytes);
            assert_eq!(canonical, u);
            for _ in 0..literals.len() + 3 {
                expected.push((canonical.clone(), device_shard(bytes)));
            }
            // Lookups in another spelling still find all of them.
            for spelled in [upper, bare] {
                let sql = format!("SELECT count(*) FROM devices WHERE id = '{spelled}'");
                assert_eq!(one_count(c, &sql).await, literals.len() as i64 + 3, "{sql}");
            }
            let sql = "SELECT count(*) FROM devices WHERE id = $1";
            let got: i64 = c
                .query_one(sql, &[&BinaryUuid(bytes)])
                .await
                .unwrap()
                .get(0);
            assert_eq!(got, literals.len() as i64 + 3, "binary lookup of {u}");
        }
        assert_all_shards(&expected);
        fx.assert_placement("devices", "id", &expected).await;
        fx.finish().await;
    })
    .await;
}
