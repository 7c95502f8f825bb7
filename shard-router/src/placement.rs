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
#[path = "placement_tests.rs"]
mod tests;
