//! Property: every spelling and wire format of the same key reduces to the same canonical key,
//! and hence the same shard (INTERFACE.md section 3).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use config::{Config, KeyType, KeyValue};
use proptest::prelude::*;
use shard_router::copy::{row_key, CopyFormat};
use shard_router::keys::{
    cast_param_key, key_from_literal, key_from_param, keys_from_array_param, literal_key, oid,
    KeyContext,
};
use shard_router::ShardMap;

const CONFIG: &str = r#"
[[shards]]
name = "s0"
url = "postgres://u:p@h0/db"
[[shards]]
name = "s1"
url = "postgres://u:p@h1/db"
[[shards]]
name = "s2"
url = "postgres://u:p@h2/db"

[maps.ints]
strategy = "hash"
key_type = "bigint"
buckets = 1024

[maps.int_ranges]
strategy = "range"
key_type = "bigint"
ranges = [ { to = 0, shard = "s0" }, { from = 0, to = 1000, shard = "s1" }, { from = 1000, shard = "s2" } ]

[maps.texts]
strategy = "hash"
key_type = "text"
buckets = 7

[maps.uuids]
strategy = "hash"
key_type = "uuid"
buckets = 1024
"#;

fn maps() -> Config {
    Config::parse(CONFIG, "test.toml").unwrap()
}

/// Every key must land on the same shard of every map of its type.
fn assert_same_shard(config: &Config, expected: &KeyValue, got: &KeyValue, how: &str) {
    assert_eq!(got, expected, "{how}");
    for map in config.maps.values() {
        let map = ShardMap::new(map);
        if map.key_type() == expected.key_type() {
            assert_eq!(
                map.place(got),
                map.place(expected),
                "{how} on {}",
                map.name()
            );
        }
    }
}

/// The binary numeric encoding of an integer (base-10000 digits, weight, sign, dscale 0).
fn numeric_binary(v: i64) -> Vec<u8> {
    let mut groups = Vec::new();
    let mut m = v.unsigned_abs();
    while m > 0 {
        groups.push((m % 10000) as u16);
        m /= 10000;
    }
    groups.reverse();
    let weight = groups.len() as i16 - 1;
    // Trailing zero groups are dropped by PostgreSQL; the weight keeps the magnitude.
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let mut out = Vec::new();
    out.extend((groups.len() as u16).to_be_bytes());
    out.extend(weight.max(0).to_be_bytes());
    out.extend((if v < 0 { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend(0u16.to_be_bytes());
    for g in groups {
        out.extend(g.to_be_bytes());
    }
    out
}

/// Text-format COPY escaping.
fn copy_text_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// One quoted element of a text-format array.
fn array_elem(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bigint_spellings_agree(v in any::<i64>()) {
        let config = maps();
        let expected = KeyValue::Int(v);
        let t = v.to_string();
        let b = KeyType::Bigint;
        let mut got: Vec<(String, KeyValue)> = Vec::new();
        macro_rules! add {
            ($how:expr, $r:expr) => {{
                let how: String = $how;
                match $r {
                    Ok(k) => got.push((how, k)),
                    Err(e) => panic!("{how}: {e:?}"),
                }
            }};
        }
        add!(format!("literal {t}"), key_from_literal(b, &t, false, None));
        add!(format!("string '{t}'"), key_from_literal(b, &t, true, None));
        add!(format!("padded ' {t} '"), key_from_literal(b, &format!(" {t}\n"), true, None));
        for cast in ["bigint", "int8", "BIGINT", "pg_catalog.int8", "numeric"] {
            add!(format!("{t}::{cast}"), key_from_literal(b, &t, false, Some(cast)));
            add!(format!("'{t}'::{cast}"), key_from_literal(b, &t, true, Some(cast)));
        }
        add!(format!("{t}.000"), key_from_literal(b, &format!("{t}.000"), false, None));
        add!(format!("{t}e0"), key_from_literal(b, &format!("{t}e0"), false, None));
        add!(format!("{t}0e-1"), key_from_literal(b, &format!("{t}0e-1"), false, None));
        add!("assign literal".into(), literal_key(KeyContext::Assign, b, &t, false, None));
        for oid in [oid::INT8, oid::UNSPECIFIED, oid::UNKNOWN, oid::NUMERIC] {
            add!(format!("text param oid {oid}"), key_from_param(b, Some(t.as_bytes()), 0, oid));
        }
        add!("binary int8".into(), key_from_param(b, Some(&v.to_be_bytes()), 1, oid::INT8));
        add!("binary untyped 8".into(), key_from_param(b, Some(&v.to_be_bytes()), 1, 0));
        add!("binary numeric".into(), key_from_param(b, Some(&numeric_binary(v)), 1, oid::NUMERIC));
        add!("param cast".into(), cast_param_key(KeyContext::Compare, b, Some(t.as_bytes()), 0, 0, Some("bigint")));
        if let Ok(v4) = i32::try_from(v) {
            add!("text int4".into(), key_from_param(b, Some(t.as_bytes()), 0, oid::INT4));
            add!("binary int4".into(), key_from_param(b, Some(&v4.to_be_bytes()), 1, oid::INT4));
            add!("binary untyped 4".into(), key_from_param(b, Some(&v4.to_be_bytes()), 1, 0));
            add!("::int4".into(), key_from_literal(b, &t, true, Some("integer")));
        }
        if let Ok(v2) = i16::try_from(v) {
            add!("text int2".into(), key_from_param(b, Some(t.as_bytes()), 0, oid::INT2));
            add!("binary int2".into(), key_from_param(b, Some(&v2.to_be_bytes()), 1, oid::INT2));
            add!("binary untyped 2".into(), key_from_param(b, Some(&v2.to_be_bytes()), 1, 0));
            add!("::smallint".into(), key_from_literal(b, &t, false, Some("smallint")));
        }
        let arr = keys_from_array_param(b, Some(format!("{{NULL,\"{t}\"}}").as_bytes()), 0, oid::INT8_ARRAY).unwrap();
        prop_assert_eq!(arr, vec![expected.clone()]);
        let text_row = format!("x\t{t}\n");
        add!("copy text".into(), row_key(text_row.as_bytes(), 1, "id", b, &CopyFormat::text()));
        let csv_row = format!("\"{t}\",x\r\n");
        add!("copy csv".into(), row_key(csv_row.as_bytes(), 0, "id", b, &CopyFormat::csv()));
        for (how, key) in &got {
            assert_same_shard(&config, &expected, key, how);
        }
    }

    #[test]
    fn uuid_spellings_agree(bytes in any::<[u8; 16]>(), upper in any::<bool>()) {
        let config = maps();
        let expected = KeyValue::Uuid(bytes);
        let canonical = expected.to_string();
        let cased = if upper { canonical.to_uppercase() } else { canonical.clone() };
        let plain = cased.replace('-', "");
        let fours: Vec<String> = plain.as_bytes().chunks(4).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        let u = KeyType::Uuid;
        for spelling in [cased.clone(), plain.clone(), format!("{{{cased}}}"), format!("{{{plain}}}"), fours.join("-")] {
            for (how, r) in [
                ("literal", key_from_literal(u, &spelling, true, None)),
                ("literal::uuid", key_from_literal(u, &spelling, true, Some("uuid"))),
                ("text param uuid", key_from_param(u, Some(spelling.as_bytes()), 0, oid::UUID)),
                ("text param untyped", key_from_param(u, Some(spelling.as_bytes()), 0, 0)),
            ] {
                let key = r.unwrap_or_else(|e| panic!("{how} {spelling}: {e:?}"));
                assert_same_shard(&config, &expected, &key, &format!("{how} {spelling}"));
            }
        }
        for oid in [oid::UUID, oid::UNSPECIFIED] {
            let key = key_from_param(u, Some(&bytes), 1, oid).unwrap();
            assert_same_shard(&config, &expected, &key, "binary");
        }
        let key = row_key(format!("{cased}\n").as_bytes(), 0, "id", u, &CopyFormat::text()).unwrap();
        assert_same_shard(&config, &expected, &key, "copy");
        let arr = keys_from_array_param(u, Some(format!("{{{plain}}}").as_bytes()), 0, oid::UUID_ARRAY).unwrap();
        prop_assert_eq!(arr, vec![expected.clone()]);
    }

    #[test]
    fn text_spellings_agree(s in "[^\u{0}]{0,40}") {
        let config = maps();
        let expected = KeyValue::Text(s.clone());
        let t = KeyType::Text;
        let mut got = vec![
            ("literal", key_from_literal(t, &s, true, None)),
            ("literal::text", key_from_literal(t, &s, true, Some("text"))),
            ("literal::varchar", key_from_literal(t, &s, true, Some("character varying"))),
        ];
        for oid in [oid::TEXT, oid::VARCHAR, oid::UNSPECIFIED, oid::UNKNOWN] {
            got.push(("text param", key_from_param(t, Some(s.as_bytes()), 0, oid)));
            got.push(("binary param", key_from_param(t, Some(s.as_bytes()), 1, oid)));
        }
        for (how, r) in got {
            let key = r.unwrap_or_else(|e| panic!("{how}: {e:?}"));
            assert_same_shard(&config, &expected, &key, how);
        }
        let arr = keys_from_array_param(t, Some(format!("{{{}}}", array_elem(&s)).as_bytes()), 0, oid::TEXT_ARRAY).unwrap();
        prop_assert_eq!(arr, vec![expected.clone()]);
        let text_row = format!("1\t{}\n", copy_text_escape(&s));
        let key = row_key(text_row.as_bytes(), 1, "k", t, &CopyFormat::text()).unwrap();
        assert_same_shard(&config, &expected, &key, "copy text");
        let csv_row = format!("\"{}\",1\n", s.replace('"', "\"\""));
        let key = row_key(csv_row.as_bytes(), 0, "k", t, &CopyFormat::csv()).unwrap();
        assert_same_shard(&config, &expected, &key, "copy csv");
    }

    #[test]
    fn arbitrary_input_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        text in ".{0,40}",
        format in -1i16..3,
        oid in prop_oneof![Just(0u32), Just(20), Just(21), Just(23), Just(25), Just(1042), Just(1700), Just(2950), Just(1016), Just(1007), Just(1231), Just(2951), Just(1009), any::<u32>()],
        is_string in any::<bool>(),
        cast in prop_oneof![Just(None), Just(Some("int2")), Just(Some("numeric(3,1)")), Just(Some("varchar(2)")), Just(Some("char")), Just(Some("uuid")), Just(Some("name"))],
    ) {
        for kt in [KeyType::Bigint, KeyType::Text, KeyType::Uuid] {
            for ctx in [KeyContext::Compare, KeyContext::Assign] {
                let _ = cast_param_key(ctx, kt, Some(&bytes), format, oid, cast);
                let _ = literal_key(ctx, kt, &text, is_string, cast);
            }
            let _ = keys_from_array_param(kt, Some(&bytes), format, oid);
            let _ = keys_from_array_param(kt, Some(text.as_bytes()), 0, oid);
        }
    }
}
