//! Unit tests of `placement`.
use super::*;
use config::Config;

/// Values computed once with xxhash-rust and cross-checked with python-xxhash 3.x
/// (`xxhash.xxh3_64_intdigest(struct.pack('<q', v))`, `...(s.encode())`, `...(uuid.bytes)`).
#[test]
fn xxh3_known_vectors() {
    let int_vectors: [(i64, u64); 9] = [
        (0, 14374147212387527897),
        (1, 3439722301264460078),
        (5, 10233279695637096332),
        (-1, 5841669975847748627),
        (-5, 7602370513495869217),
        (42, 15395265915043915720),
        (1000000, 3181700808144611680),
        (i64::MAX, 11687913294787043142),
        (i64::MIN, 9407778237848358495),
    ];
    for (v, h) in int_vectors {
        assert_eq!(hash_key(&KeyValue::Int(v)), h, "{v}");
    }
    // Lengths 0, 1, 2, 5, 8 (multi-byte UTF-8), 50, 200 and 300 take different xxh3 paths.
    let text_vectors: [(String, u64); 9] = [
        (String::new(), 3244421341483603138),
        ("x".into(), 16929150178197425425),
        ("KR".into(), 4911188942291022718),
        ("JP".into(), 5350255057049568647),
        ("hello".into(), 10760762337991515389),
        ("é日本".into(), 13543869956888881140),
        ("b".repeat(50), 12000740892703875785),
        ("c".repeat(200), 9158454221273584971),
        ("a".repeat(300), 13966073120003161633),
    ];
    for (s, h) in text_vectors {
        assert_eq!(hash_key(&KeyValue::Text(s.clone())), h, "{s}");
    }
    let uuid = KeyValue::parse(KeyType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    assert_eq!(hash_key(&uuid), 6187780171734267751);
}

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

[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 1024
assign = [ { buckets = "0-511", shard = "s0" }, { buckets = "512-1023", shard = "s1" } ]

[maps.even]
strategy = "hash"
key_type = "text"
buckets = 3

[maps.ids]
strategy = "hash"
key_type = "uuid"
buckets = 1024

[maps.events]
strategy = "range"
key_type = "bigint"
ranges = [ { from = 0, to = 1000000, shard = "s0" }, { from = 1000000, shard = "s1" } ]

[maps.names]
strategy = "range"
key_type = "text"
ranges = [ { to = "M", shard = "s2" }, { from = "M", to = "m", shard = "s0" } ]

[maps.region]
strategy = "list"
key_type = "text"
lists = [ { values = ["KR", "JP"], shard = "s0" }, { values = ["US", "DE"], shard = "s1" } ]
default = "s1"

[maps.strict]
strategy = "list"
key_type = "bigint"
lists = [ { values = [1, 2], shard = "s2" } ]
"#;

fn map(name: &str) -> ShardMap {
    let config = Config::parse(CONFIG, "test.toml").unwrap();
    ShardMap::new(&config.maps[name])
}

fn int(v: i64) -> KeyValue {
    KeyValue::Int(v)
}

fn text(s: &str) -> KeyValue {
    KeyValue::Text(s.to_owned())
}

#[test]
fn hash_placement_vectors() {
    let users = map("users");
    for (key, bucket, shard) in [
        (5, 908, 1),
        (-5, 801, 1),
        (42, 968, 1),
        (1000000, 352, 0),
        (0, 217, 0),
    ] {
        assert_eq!(users.bucket(&int(key)), Some(bucket), "{key}");
        assert_eq!(users.place(&int(key)), Ok(shard), "{key}");
    }
    // Default split of 3 buckets over 3 shards: bucket b on shard b.
    let even = map("even");
    for (key, bucket) in [("KR", 1), ("US", 0), ("hello", 2)] {
        assert_eq!(even.bucket(&text(key)), Some(bucket), "{key}");
        assert_eq!(even.place(&text(key)), Ok(bucket as usize), "{key}");
    }
    let ids = map("ids");
    let uuid = KeyValue::parse(KeyType::Uuid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap();
    // 1024 buckets over 3 shards: 0-341 s0, 342-682 s1, 683-1023 s2.
    assert_eq!(ids.bucket(&uuid), Some(871));
    assert_eq!(ids.place(&uuid), Ok(2));
    assert_eq!(ids.bucket(&int(5)), None);
    assert_eq!(map("events").bucket(&int(5)), None);
}

#[test]
fn range_placement() {
    let events = map("events");
    assert_eq!(events.place(&int(0)), Ok(0));
    assert_eq!(events.place(&int(999_999)), Ok(0));
    assert_eq!(events.place(&int(1_000_000)), Ok(1));
    assert_eq!(events.place(&int(i64::MAX)), Ok(1));
    let err = events.place(&int(-1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "value -1 of map \"events\" falls in no range"
    );
    assert_eq!(err.sqlstate(), "22023");
    // Text ranges compare bytes: "Z" < "a", and "m" is the exclusive end.
    let names = map("names");
    assert_eq!(names.place(&text("")), Ok(2));
    assert_eq!(names.place(&text("Lz")), Ok(2));
    assert_eq!(names.place(&text("M")), Ok(0));
    assert_eq!(names.place(&text("Zebra")), Ok(0));
    assert_eq!(names.place(&text("apple")), Ok(0));
    assert!(matches!(
        names.place(&text("m")),
        Err(PlacementError::NoRange { .. })
    ));
    assert!(matches!(
        names.place(&text("é")),
        Err(PlacementError::NoRange { .. })
    ));
}

#[test]
fn list_placement() {
    let region = map("region");
    assert_eq!(region.place(&text("KR")), Ok(0));
    assert_eq!(region.place(&text("JP")), Ok(0));
    assert_eq!(region.place(&text("DE")), Ok(1));
    assert_eq!(region.place(&text("kr")), Ok(1), "default shard");
    let strict = map("strict");
    assert_eq!(strict.place(&int(2)), Ok(2));
    assert_eq!(
        strict.place(&int(3)).unwrap_err().to_string(),
        "value 3 of map \"strict\" is not listed and the map has no default shard"
    );
    let err = region.place(&int(3)).unwrap_err();
    assert_eq!(err.to_string(), "map \"region\" has text keys, got bigint");
}

#[test]
fn descriptions() {
    let users = map("users").describe();
    assert_eq!(users.buckets, Some(1024));
    assert_eq!(
        users.parts,
        vec![
            MapPart::Buckets {
                first: 0,
                last: 511,
                shard: 0
            },
            MapPart::Buckets {
                first: 512,
                last: 1023,
                shard: 1
            },
        ]
    );
    assert_eq!(users.parts[1].to_string(), "buckets 512-1023");
    assert_eq!(map("users").shards_of_map(), vec![0, 1]);
    assert_eq!(map("ids").shards_of_map(), vec![0, 1, 2]);
    assert_eq!(map("names").shards_of_map(), vec![0, 2]);
    let region = map("region").describe();
    assert_eq!(
        region.parts,
        vec![
            MapPart::List {
                values: vec![text("JP"), text("KR")],
                shard: 0
            },
            MapPart::List {
                values: vec![text("DE"), text("US")],
                shard: 1
            },
            MapPart::Default { shard: 1 },
        ]
    );
    assert_eq!(region.parts[0].to_string(), "values 'JP', 'KR'");
    assert_eq!(map("strict").shards_of_map(), vec![2]);
    let names = map("names").describe();
    assert_eq!(names.parts[0].to_string(), "[, 'M')");
    assert_eq!(names.parts[1].to_string(), "['M', 'm')");
}

#[test]
fn explanations() {
    assert_eq!(
        map("users").explain(&int(5)),
        Ok(("bucket 908".to_owned(), 1))
    );
    assert_eq!(
        map("events").explain(&int(7)),
        Ok(("[0, 1000000)".to_owned(), 0))
    );
    assert_eq!(
        map("region").explain(&text("KR")),
        Ok(("listed".to_owned(), 0))
    );
    assert_eq!(
        map("region").explain(&text("FR")),
        Ok(("default".to_owned(), 1))
    );
}

#[test]
fn empty_bucket_table_is_an_error_not_a_panic() {
    let mut config = map("users").config().clone();
    config.placement = Placement::Hash {
        bucket_to_shard: Vec::new(),
    };
    let empty = ShardMap::new(&config);
    assert!(matches!(
        empty.place(&int(1)),
        Err(PlacementError::NoBuckets { .. })
    ));
    assert_eq!(empty.bucket(&int(1)), None);
}
