//! Where rows land (INTERFACE.md section 3): rows inserted through the proxy in every way a
//! client can spell a key are found, by connecting to each shard directly, exactly on the shard
//! the placement rules say and nowhere else; key lookups through the proxy return them.
//! Other strategies and key types: routing_maps.rs; COPY: routing_copy.rs; writes, refusals,
//! transactions and catalog queries: routing_writes.rs.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod routing_support;

use config::KeyValue;
use integration::raw::{cstr, exec_msgs, first_error, frame, parse_msg, Raw};
use integration::util::bounded;
use routing_support::*;

/// xxh3_64 values computed outside Rust: python3 `xxhash.xxh3_64_intdigest(struct.pack('<q', k))`
/// for bigints and `xxh3_64_intdigest(s.encode())` for text.
const INT_VECTORS: &[(i64, u64)] = &[
    (1, 3439722301264460078),
    (2, 2343778756980564547),
    (4, 14565249271442862456),
    (10, 16621972490064177269),
    (0, 14374147212387527897),
    (-1, 5841669975847748627),
    (i64::MAX, 11687913294787043142),
    (i64::MIN, 9407778237848358495),
];
const TEXT_VECTORS: &[(&str, u64)] = &[
    ("alice", 5593767425381308080),
    ("bob", 1442208253991303397),
    ("", 3244421341483603138),
    ("héllo", 7657728615535385375),
    ("a-much-longer-text-key-over-16-bytes", 6360992326723994351),
];
/// python3 `xxhash.xxh3_64_intdigest(uuid.UUID(u).bytes)`.
const UUID_VECTORS: &[(&str, u64)] = &[
    ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 6187780171734267751),
    ("123e4567-e89b-12d3-a456-426614174000", 843390039161665528),
    ("00000000-0000-0000-0000-000000000001", 4706896644969173947),
    ("f47ac10b-58cc-4372-a567-0e02b2c3d479", 7651241200827789660),
    ("6ba7b810-9dad-11d1-80b4-00c04fd430c8", 9143905968562085142),
];

#[test]
fn placement_oracle_matches_python_xxhash_and_the_router() {
    for (k, h) in INT_VECTORS {
        assert_eq!(xxh3(&KeyValue::Int(*k)), *h, "xxh3 of bigint {k}");
    }
    for (t, h) in TEXT_VECTORS {
        assert_eq!(
            xxh3(&KeyValue::Text(t.to_string())),
            *h,
            "xxh3 of text {t:?}"
        );
    }
    for (u, h) in UUID_VECTORS {
        assert_eq!(xxh3(&KeyValue::Uuid(uuid_bytes(u))), *h, "xxh3 of uuid {u}");
    }
    // Whole (key -> shard) vectors, worked by hand from the python hashes: 16 buckets split
    // 0-5 / 6-10 / 11-15 and the tags/devices assign tables.
    let users = [(1, 2), (2, 0), (4, 1), (10, 0), (0, 1), (-1, 0)];
    for (k, s) in users.into_iter().chain([(i64::MAX, 1), (i64::MIN, 2)]) {
        assert_eq!(user_shard(k), s, "users key {k}");
    }
    for (t, s) in [("alice", 2), ("bob", 1), ("", 0), ("héllo", 1)] {
        assert_eq!(tag_shard(t), s, "tags key {t:?}");
    }
    let devices = [(0usize, 0usize), (1, 1), (2, 2), (3, 2), (4, 0)];
    for (i, s) in devices {
        assert_eq!(device_shard(uuid_bytes(UUID_VECTORS[i].0)), s, "device {i}");
    }
    // Cross-check: the router built from the same config agrees with the oracle everywhere.
    let mut toml = String::new();
    for i in 0..SHARDS {
        toml.push_str(&format!(
            "[[shards]]\nname = \"s{i}\"\nurl = \"postgres://postgres@127.0.0.1:1/x\"\n\n"
        ));
    }
    toml.push_str(MAPS_TOML);
    let router = shard_router::Router::new(&config::Config::parse(&toml, "maps.toml").unwrap());
    let place = |map: &str, key: KeyValue| router.map(map).unwrap().place(&key).ok();
    for k in (-300..300).chain([i64::MIN, i64::MAX]) {
        assert_eq!(place("users", KeyValue::Int(k)), Some(user_shard(k)), "{k}");
        assert_eq!(
            place("events", KeyValue::Int(k)),
            Some(event_shard(k)),
            "{k}"
        );
        assert_eq!(place("readings", KeyValue::Int(k)), reading_shard(k), "{k}");
        let t = format!("k{k}");
        assert_eq!(
            place("tags", KeyValue::Text(t.clone())),
            Some(tag_shard(&t))
        );
        let u = uuid_bytes(&format!(
            "{:032x}",
            (k as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ));
        assert_eq!(place("devices", KeyValue::Uuid(u)), Some(device_shard(u)));
    }
    for w in ["", "Zebra", "lz", "m", "mango", "émile", "zz"] {
        assert_eq!(
            place("words", KeyValue::Text(w.into())),
            Some(word_shard(w)),
            "{w}"
        );
    }
    for c in ["KR", "JP", "US", "DE", "FR", "kr"] {
        assert_eq!(
            place("region", KeyValue::Text(c.into())),
            Some(customer_shard(c))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_keys_land_on_their_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        type Spelling = fn(i64, &str) -> String;
        let spellings: [(&str, Spelling); 5] = [
            ("bare", |k, n| {
                format!("INSERT INTO users (id, name) VALUES ({k}, '{n}')")
            }),
            ("quoted", |k, n| {
                format!("INSERT INTO users (id, name) VALUES ('{k}', '{n}')")
            }),
            ("::int8", |k, n| {
                format!("INSERT INTO users (id, name) VALUES ({k}::int8, '{n}')")
            }),
            ("quoted-cast", |k, n| {
                format!("INSERT INTO users (id, name) VALUES ('{k}'::bigint, '{n}')")
            }),
            // Schema-qualified, upper case, key not the first column.
            ("public.USERS", |k, n| {
                format!("INSERT INTO public.USERS (name, ID) VALUES ('{n}', {k})")
            }),
        ];
        let mut expected = Vec::new();
        let mut names = Vec::new();
        for (f, (label, spell)) in spellings.iter().enumerate() {
            // A negative key too, except `-k::int8`, which is -(k::int8) (see
            // negative_keys_with_a_cast_land_on_their_shard).
            let base = 100 * f as i64;
            let negative = (f != 2).then_some(-(base + 99));
            let keys: Vec<i64> = user_keys(base + 1, 3).into_iter().chain(negative).collect();
            let mut placed = Vec::new();
            for (i, k) in keys.into_iter().enumerate() {
                let name = format!("{label}:{k}");
                let sql = spell(k, &name);
                // Half through the simple protocol, half through Parse/Bind without parameters.
                let n = if i % 2 == 0 {
                    fx.client.execute(&sql, &[]).await.unwrap()
                } else {
                    let done = fx.client.simple_query(&sql).await.unwrap();
                    match done.last() {
                        Some(tokio_postgres::SimpleQueryMessage::CommandComplete(n)) => *n,
                        other => panic!("{sql}: {other:?}"),
                    }
                };
                assert_eq!(n, 1, "{sql}");
                placed.push((k.to_string(), user_shard(k)));
                names.push((k, name));
            }
            assert_all_shards(&placed);
            expected.extend(placed);
        }
        fx.assert_placement("users", "id", &expected).await;
        for (k, name) in &names {
            assert_user(&fx.client, *k, name).await;
        }
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_keys_with_a_cast_land_on_their_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        // `-5::int8` parses as -(5::int8): still the constant -5 to PostgreSQL.
        let spellings = [
            "-{k}::int8",
            "-{k}::bigint",
            "(-{k})::int8",
            "CAST(-{k} AS bigint)",
        ];
        let mut expected = Vec::new();
        let mut refused = Vec::new();
        for (f, spelling) in spellings.iter().enumerate() {
            // -n for one n per shard.
            for shard in 0..SHARDS {
                let n = (100 * f as i64 + 1..)
                    .find(|n| user_shard(-n) == shard)
                    .unwrap();
                let literal = spelling.replace("{k}", &n.to_string());
                let sql = format!("INSERT INTO users (id, name) VALUES ({literal}, 'neg')");
                match fx.client.execute(&sql, &[]).await {
                    Ok(rows) => {
                        assert_eq!(rows, 1, "{sql}");
                        expected.push(((-n).to_string(), shard));
                    }
                    Err(e) => refused.push(format!("{sql}: {:?}", e.as_db_error())),
                }
            }
        }
        assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
        assert_all_shards(&expected);
        fx.assert_placement("users", "id", &expected).await;
        fx.finish().await;
    })
    .await;
}

/// Parse (unnamed, with these parameter type OIDs; 0 = let the server infer), Bind with text
/// parameters, Execute, Sync: the CommandComplete tag, or the SQLSTATE.
async fn exec_text(
    raw: &mut Raw,
    sql: &str,
    types: &[u32],
    params: &[&str],
) -> Result<String, String> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, sql);
    body.extend_from_slice(&(types.len() as i16).to_be_bytes());
    for t in types {
        body.extend_from_slice(&t.to_be_bytes());
    }
    let mut msgs = frame(b'P', &body);
    msgs.extend(exec_msgs("", params));
    let answer = raw.round_trip(&msgs).await;
    if let Some(code) = first_error(&answer) {
        return Err(code);
    }
    let (_, tag) = answer.iter().find(|(t, _)| *t == b'C').unwrap();
    Ok(String::from_utf8_lossy(tag)
        .trim_end_matches('\0')
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_parameters_land_on_their_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let mut raw = Raw::login(fx.proxy.addr, &fx.dbs.name).await;
        const INT8: u32 = 20;
        const INT2: u32 = 21;
        const INT4: u32 = 23;
        const TEXT: u32 = 25;
        let ways: [(&str, &[u32]); 5] = [
            ("INSERT INTO users (id, name) VALUES ($1, $2)", &[]),
            (
                "INSERT INTO users (id, name) VALUES ($1, $2)",
                &[INT8, TEXT],
            ),
            (
                "INSERT INTO users (id, name) VALUES ($1, $2)",
                &[INT4, TEXT],
            ),
            ("INSERT INTO users (id, name) VALUES ($1, $2)", &[INT2, 0]),
            ("INSERT INTO users (name, id) VALUES ($2, $1::int4)", &[]),
        ];
        let mut expected = Vec::new();
        let mut names = Vec::new();
        for (w, (sql, types)) in ways.iter().enumerate() {
            let base = 100 * w as i64;
            let mut placed = Vec::new();
            for k in user_keys(base + 1, 3).into_iter().chain([-(base + 99)]) {
                let name = format!("text-param-{w}:{k}");
                let tag = exec_text(&mut raw, sql, types, &[&k.to_string(), &name]).await;
                assert_eq!(
                    tag.as_deref(),
                    Ok("INSERT 0 1"),
                    "{sql} {types:?} with '{k}'"
                );
                placed.push((k.to_string(), user_shard(k)));
                names.push((k, name));
            }
            assert_all_shards(&placed);
            expected.extend(placed);
        }
        fx.assert_placement("users", "id", &expected).await;
        // Lookups with a text parameter, through a named statement used across transactions.
        let parsed = raw
            .round_trip(&parse_msg("look", "SELECT name FROM users WHERE id = $1"))
            .await;
        assert_eq!(first_error(&parsed), None, "{parsed:?}");
        for (k, name) in &names {
            assert_eq!(
                raw.exec("look", &[&k.to_string()]).await.as_deref(),
                Ok(name.as_str())
            );
            assert_user(&fx.client, *k, name).await;
        }
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_parameters_of_every_integer_width_land_on_their_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        let mut expected = Vec::new();
        let mut names = Vec::new();
        let int8 = c
            .prepare("INSERT INTO users (id, name) VALUES ($1, $2)")
            .await
            .unwrap();
        for k in user_keys(201, 3)
            .into_iter()
            .chain([0, -1, i64::MAX, i64::MIN])
        {
            let name = format!("int8:{k}");
            assert_eq!(c.execute(&int8, &[&k, &name]).await.unwrap(), 1, "int8 {k}");
            expected.push((k.to_string(), user_shard(k)));
            names.push((k, name));
        }
        let int4 = c
            .prepare("INSERT INTO users (id, name) VALUES ($1::int4, $2)")
            .await
            .unwrap();
        assert_eq!(int4.params()[0], tokio_postgres::types::Type::INT4);
        for k in user_keys(301, 3)
            .into_iter()
            .map(|k| k as i32)
            .chain([-319, i32::MAX, i32::MIN])
        {
            let name = format!("int4:{k}");
            assert_eq!(c.execute(&int4, &[&k, &name]).await.unwrap(), 1, "int4 {k}");
            expected.push((k.to_string(), user_shard(k.into())));
            names.push((k.into(), name));
        }
        let int2 = c
            .prepare("INSERT INTO users (id, name) VALUES ($1::int2, $2)")
            .await
            .unwrap();
        for k in user_keys(401, 3)
            .into_iter()
            .map(|k| k as i16)
            .chain([-419, i16::MAX, i16::MIN])
        {
            let name = format!("int2:{k}");
            assert_eq!(c.execute(&int2, &[&k, &name]).await.unwrap(), 1, "int2 {k}");
            expected.push((k.to_string(), user_shard(k.into())));
            names.push((k.into(), name));
        }
        assert_all_shards(&expected);
        fx.assert_placement("users", "id", &expected).await;
        for (k, name) in &names {
            assert_user(c, *k, name).await;
        }
        // Co-location: an order lives with its user, the key in the second parameter.
        let order = c
            .prepare("INSERT INTO orders (order_id, user_id, amount) VALUES ($1, $2, $3)")
            .await
            .unwrap();
        let mut orders = Vec::new();
        for (i, (k, _)) in names.iter().enumerate() {
            let n = c
                .execute(&order, &[&(i as i64), k, &(i as i32)])
                .await
                .unwrap();
            assert_eq!(n, 1);
            orders.push((k.to_string(), user_shard(*k)));
        }
        fx.assert_placement("orders", "user_id", &orders).await;
        let joined = "SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id \
                      WHERE u.id = $1";
        for (i, (k, name)) in names.iter().enumerate() {
            let rows = c.query(joined, &[k]).await.unwrap();
            let got: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            assert_eq!(got, [(name.clone(), i as i32)], "co-located join for {k}");
        }
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_row_values_are_split_per_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        let keys: Vec<i64> = (301..=312).collect();
        let values: Vec<String> = keys.iter().map(|k| format!("({k}, 'm{k}')")).collect();
        let sql = format!(
            "INSERT INTO users (id, name) VALUES {} RETURNING id, name",
            values.join(", ")
        );
        let rows = c.query(&sql, &[]).await.unwrap();
        let mut got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        got.sort();
        let want: Vec<(i64, String)> = keys.iter().map(|k| (*k, format!("m{k}"))).collect();
        assert_eq!(got, want, "RETURNING gives every inserted row once");
        let mut expected: Vec<(String, usize)> = keys
            .iter()
            .map(|k| (k.to_string(), user_shard(*k)))
            .collect();
        assert_all_shards(&expected);
        fx.assert_placement("users", "id", &expected).await;

        // ON CONFLICT DO NOTHING: only the new keys count, the old rows stay as they were.
        let sql = "INSERT INTO users (id, name) VALUES (301, 'dup'), (313, 'n313'), (305, 'dup'), \
                   (314, 'n314'), (312, 'dup'), (315, 'n315') ON CONFLICT DO NOTHING";
        let tag = c.simple_query(sql).await.unwrap();
        assert!(
            matches!(
                tag.last(),
                Some(tokio_postgres::SimpleQueryMessage::CommandComplete(3))
            ),
            "{tag:?}"
        );
        expected.extend((313..=315).map(|k| (k.to_string(), user_shard(k))));
        fx.assert_placement("users", "id", &expected).await;
        let dups = fx
            .column_per_shard("SELECT id::text FROM users WHERE name = 'dup'")
            .await;
        assert_eq!(dups, vec![Vec::<String>::new(); SHARDS]);

        // ON CONFLICT DO UPDATE with RETURNING, rows bound as parameters, a DEFAULT column.
        let sql =
            "INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4), ($5, DEFAULT), ($6, $7) \
                   ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id";
        let (a, b, d, e) = (302i64, 316i64, 317i64, 303i64);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
            [&a, &"upd302", &b, &"n316", &d, &e, &"upd303"];
        let rows = c.query(sql, &params).await.unwrap();
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort();
        assert_eq!(ids, [302, 303, 316, 317]);
        expected.extend([316, 317].map(|k| (k.to_string(), user_shard(k))));
        fx.assert_placement("users", "id", &expected).await;
        for (k, name) in [
            (302, "upd302"),
            (303, "upd303"),
            (316, "n316"),
            (313, "n313"),
            (301, "m301"),
        ] {
            assert_user(c, k, name).await;
        }
        let nulls = fx
            .column_per_shard("SELECT id::text FROM users WHERE name IS NULL")
            .await;
        let mut want = vec![Vec::new(); SHARDS];
        want[user_shard(317)].push("317".to_string());
        assert_eq!(nulls, want, "the DEFAULT row");
        fx.finish().await;
    })
    .await;
}
