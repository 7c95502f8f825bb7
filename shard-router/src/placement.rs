//! Runtime shard maps and placement (INTERFACE.md section 3).
//!
//! The rules here are the product's public contract: anyone with an xxh3 implementation must be
//! able to say where a row lives, so the hashed bytes are fixed (see [`hash_key`]).

use std::collections::BTreeMap;
use std::fmt;

use config::{KeyType, KeyValue, MapConfig, Placement, RangeAssign, Strategy};

/// Why a key cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A list map without default got a value it does not list.
    #[error("value {value} of map \"{map}\" is not listed and the map has no default shard")]
    Unlisted {
        /// map name
        map: String,
        /// the value
        value: String,
    },
    /// A range map has no range containing the key.
    #[error("value {value} of map \"{map}\" falls in no range")]
    NoRange {
        /// map name
        map: String,
        /// the value
        value: String,
    },
    /// The key's type does not match the map's key type.
    #[error("map \"{map}\" has {expected} keys, got {got}")]
    WrongType {
        /// map name
        map: String,
        /// the map's key type
        expected: KeyType,
        /// the value's key type
        got: KeyType,
    },
    /// A hash map with an empty bucket table (validation forbids it; kept so placement never
    /// divides by zero even on a hand-built map).
    #[error("hash map \"{map}\" has no buckets")]
    NoBuckets {
        /// map name
        map: String,
    },
}

impl PlacementError {
    /// SQLSTATE for a client: a value no shard accepts is a bad parameter value.
    pub fn sqlstate(&self) -> &'static str {
        "22023"
    }
}

/// `xxh3_64` (seed 0) of the key's canonical bytes: bigint as 8 bytes little-endian, text as its
/// UTF-8 bytes, uuid as its 16 raw bytes.
pub fn hash_key(key: &KeyValue) -> u64 {
    match key {
        KeyValue::Int(v) => xxhash_rust::xxh3::xxh3_64(&v.to_le_bytes()),
        KeyValue::Text(s) => xxhash_rust::xxh3::xxh3_64(s.as_bytes()),
        KeyValue::Uuid(b) => xxhash_rust::xxh3::xxh3_64(b),
    }
}

/// A key written the way a SQL reader expects in messages: numbers bare, text and uuids quoted.
pub fn show_key(key: &KeyValue) -> String {
    match key {
        KeyValue::Int(v) => v.to_string(),
        KeyValue::Text(s) => format!("'{}'", s.replace('\'', "''")),
        KeyValue::Uuid(_) => format!("'{key}'"),
    }
}

/// One part of a map's key space and the shard that holds it (for the admin API and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapPart {
    /// Hash buckets `first..=last`.
    Buckets {
        /// first bucket of the run
        first: u64,
        /// last bucket of the run (inclusive)
        last: u64,
        /// shard index
        shard: usize,
    },
    /// Keys in `[from, to)`; `None` is unbounded.
    Range {
        /// inclusive lower bound
        from: Option<KeyValue>,
        /// exclusive upper bound
        to: Option<KeyValue>,
        /// shard index
        shard: usize,
    },
    /// Listed values.
    List {
        /// the values, sorted
        values: Vec<KeyValue>,
        /// shard index
        shard: usize,
    },
    /// Every value a list map does not list.
    Default {
        /// shard index
        shard: usize,
    },
}

impl MapPart {
    /// The shard holding this part.
    pub fn shard(&self) -> usize {
        match self {
            MapPart::Buckets { shard, .. }
            | MapPart::Range { shard, .. }
            | MapPart::List { shard, .. }
            | MapPart::Default { shard } => *shard,
        }
    }
}

impl fmt::Display for MapPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapPart::Buckets { first, last, .. } if first == last => write!(f, "bucket {first}"),
            MapPart::Buckets { first, last, .. } => write!(f, "buckets {first}-{last}"),
            MapPart::Range { from, to, .. } => {
                let bound = |b: &Option<KeyValue>| b.as_ref().map(show_key).unwrap_or_default();
                write!(f, "[{}, {})", bound(from), bound(to))
            }
            MapPart::List { values, .. } => {
                let shown: Vec<String> = values.iter().map(show_key).collect();
                write!(f, "values {}", shown.join(", "))
            }
            MapPart::Default { .. } => f.write_str("default"),
        }
    }
}

/// A map's layout: strategy, key type and where each part of the key space lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDescription {
    /// Map name.
    pub name: String,
    /// Placement strategy.
    pub strategy: Strategy,
    /// Key type.
    pub key_type: KeyType,
    /// Bucket count (hash maps only).
    pub buckets: Option<u64>,
    /// Parts in key-space order (bucket runs, ranges by `from`, lists by shard, then default).
    pub parts: Vec<MapPart>,
}

/// One shard map, ready to place keys.
#[derive(Debug, Clone)]
pub struct ShardMap {
    config: MapConfig,
    /// List maps: value -> shard, for logarithmic lookups on the statement path.
    list_index: BTreeMap<KeyValue, usize>,
}

impl ShardMap {
    /// Builds the runtime map from a validated config entry.
    pub fn new(config: &MapConfig) -> ShardMap {
        let list_index = match &config.placement {
            Placement::List { values, .. } => values.iter().cloned().collect(),
            _ => BTreeMap::new(),
        };
        ShardMap {
            config: config.clone(),
            list_index,
        }
    }

    /// Map name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Key type.
    pub fn key_type(&self) -> KeyType {
        self.config.key_type
    }

    /// The validated config entry.
    pub fn config(&self) -> &MapConfig {
        &self.config
    }

    /// Number of hash buckets (`None` for range and list maps).
    pub fn bucket_count(&self) -> Option<u64> {
        match &self.config.placement {
            Placement::Hash { bucket_to_shard } => Some(bucket_to_shard.len() as u64),
            _ => None,
        }
    }

    /// The bucket of `key` in a hash map (`None` for other strategies, a key of the wrong
    /// type, or an empty bucket table).
    pub fn bucket(&self, key: &KeyValue) -> Option<u64> {
        let count = self.bucket_count()?;
        if key.key_type() != self.key_type() {
            return None;
        }
        hash_key(key).checked_rem(count)
    }

    /// The shard index that owns `key`.
    pub fn place(&self, key: &KeyValue) -> Result<usize, PlacementError> {
        if key.key_type() != self.key_type() {
            return Err(PlacementError::WrongType {
                map: self.name().to_owned(),
                expected: self.key_type(),
                got: key.key_type(),
            });
        }
        match &self.config.placement {
            Placement::Hash { bucket_to_shard } => {
                let no_buckets = || PlacementError::NoBuckets {
                    map: self.name().to_owned(),
                };
                let bucket = hash_key(key)
                    .checked_rem(bucket_to_shard.len() as u64)
                    .ok_or_else(no_buckets)?;
                usize::try_from(bucket)
                    .ok()
                    .and_then(|b| bucket_to_shard.get(b))
                    .copied()
                    .ok_or_else(no_buckets)
            }
            Placement::Range { ranges } => {
                range_of(ranges, key)
                    .map(|r| r.shard)
                    .ok_or_else(|| PlacementError::NoRange {
                        map: self.name().to_owned(),
                        value: show_key(key),
                    })
            }
            Placement::List { default, .. } => self
                .list_index
                .get(key)
                .copied()
                .or(*default)
                .ok_or_else(|| PlacementError::Unlisted {
                    map: self.name().to_owned(),
                    value: show_key(key),
                }),
        }
    }

    /// A one-line explanation of where `key` goes, e.g. `bucket 17 -> shard 1`, for plan reasons.
    /// Shard names are the caller's; this names the shard by index.
    pub fn explain(&self, key: &KeyValue) -> Result<(String, usize), PlacementError> {
        let shard = self.place(key)?;
        let how = match &self.config.placement {
            Placement::Hash { .. } => match self.bucket(key) {
                Some(b) => format!("bucket {b}"),
                None => "hash".to_owned(),
            },
            Placement::Range { ranges } => match range_of(ranges, key) {
                Some(r) => MapPart::Range {
                    from: r.from.clone(),
                    to: r.to.clone(),
                    shard,
                }
                .to_string(),
                None => "range".to_owned(),
            },
            Placement::List { .. } if self.list_index.contains_key(key) => "listed".to_owned(),
            Placement::List { .. } => "default".to_owned(),
        };
        Ok((how, shard))
    }

    /// The distinct shards this map places keys on, ascending.
    pub fn shards_of_map(&self) -> Vec<usize> {
        let mut shards: Vec<usize> = self.describe().parts.iter().map(MapPart::shard).collect();
        shards.sort_unstable();
        shards.dedup();
        shards
    }

    /// The map's layout for the admin API: bucket runs per shard, ranges, lists and default.
    pub fn describe(&self) -> MapDescription {
        let parts = match &self.config.placement {
            Placement::Hash { bucket_to_shard } => bucket_runs(bucket_to_shard),
            Placement::Range { ranges } => ranges
                .iter()
                .map(|r| MapPart::Range {
                    from: r.from.clone(),
                    to: r.to.clone(),
                    shard: r.shard,
                })
                .collect(),
            Placement::List { default, .. } => {
                let mut by_shard: BTreeMap<usize, Vec<KeyValue>> = BTreeMap::new();
                for (value, shard) in &self.list_index {
                    by_shard.entry(*shard).or_default().push(value.clone());
                }
                let mut parts: Vec<MapPart> = by_shard
                    .into_iter()
                    .map(|(shard, values)| MapPart::List { values, shard })
                    .collect();
                parts.extend(default.map(|shard| MapPart::Default { shard }));
                parts
            }
        };
        MapDescription {
            name: self.name().to_owned(),
            strategy: self.config.strategy,
            key_type: self.key_type(),
            buckets: self.bucket_count(),
            parts,
        }
    }
}

/// The range containing `key`; ranges are sorted by `from` and do not overlap (validated).
fn range_of<'a>(ranges: &'a [RangeAssign], key: &KeyValue) -> Option<&'a RangeAssign> {
    // `None` (unbounded) sorts before every value, so this counts ranges starting at or below key.
    let starts_at_or_below = ranges.partition_point(|r| match &r.from {
        None => true,
        Some(from) => from <= key,
    });
    let candidate = ranges.get(starts_at_or_below.checked_sub(1)?)?;
    match &candidate.to {
        Some(to) if key >= to => None,
        _ => Some(candidate),
    }
}

/// Contiguous runs of buckets on the same shard.
fn bucket_runs(bucket_to_shard: &[usize]) -> Vec<MapPart> {
    let mut parts: Vec<MapPart> = Vec::new();
    for (bucket, &shard) in bucket_to_shard.iter().enumerate() {
        let bucket = bucket as u64;
        match parts.last_mut() {
            Some(MapPart::Buckets { last, shard: s, .. }) if *s == shard && *last + 1 == bucket => {
                *last = bucket
            }
            _ => parts.push(MapPart::Buckets {
                first: bucket,
                last: bucket,
                shard,
            }),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
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
}
