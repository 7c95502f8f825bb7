//! The JSON view of the live shard maps (`GET /api/v1/maps[/{map}]`).
//!
//! Built from one `Router` snapshot (its maps, table rules and shard names), so a reload in the
//! middle of a request cannot mix two configs in one answer. The field names follow the config
//! file (`buckets`/`assign`, `ranges`, `lists`/`default`) so what the API shows can be pasted back.

use config::{KeyValue, Placement};
use serde::Serialize;
use serde_json::Value;
use shard_router::{Router, ShardMap, TableRule};

use crate::ShardRowCount;

/// One shard map.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MapView {
    /// Map name.
    pub name: String,
    /// "hash" | "range" | "list".
    pub strategy: String,
    /// "bigint" | "text" | "uuid".
    pub key_type: String,
    /// The tables on this map (co-located), by name.
    pub tables: Vec<TableView>,
    /// Where each part of the key space lives.
    #[serde(flatten)]
    pub placement: PlacementView,
    /// `?counts=true`: rows of each table on each shard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_counts: Option<Vec<ShardRowCount>>,
    /// `?counts=true`: rows of all the map's tables per shard, every shard listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_by_shard: Option<Vec<ShardRows>>,
}

/// A table on a map and its key column.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct TableView {
    /// Table name (folded as the config stores it).
    pub name: String,
    /// Shard key column.
    pub key: String,
}

/// Placement by strategy.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum PlacementView {
    /// Hash: bucket count and contiguous runs of buckets per shard.
    Hash {
        /// Bucket count.
        buckets: usize,
        /// Runs in bucket order.
        assign: Vec<BucketRun>,
    },
    /// Range: `[from, to)` per shard; `null` is unbounded.
    Range {
        /// Ranges in key order.
        ranges: Vec<RangeView>,
    },
    /// List: values per shard and the default shard.
    List {
        /// Values grouped by shard.
        lists: Vec<ListView>,
        /// Shard of unlisted values; `null` means they are an error.
        default: Option<String>,
    },
}

/// Buckets `first-last` on one shard.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct BucketRun {
    /// "first-last" (inclusive) or "n" for one bucket, as the config's `assign` writes it.
    pub buckets: String,
    /// Shard name.
    pub shard: String,
}

/// One range.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct RangeView {
    /// Inclusive lower bound, `null` when unbounded.
    pub from: Value,
    /// Exclusive upper bound, `null` when unbounded.
    pub to: Value,
    /// Shard name.
    pub shard: String,
}

/// The values of a list map on one shard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct ListView {
    /// Values in key order.
    pub values: Vec<Value>,
    /// Shard name.
    pub shard: String,
}

/// Row total of one shard.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ShardRows {
    /// Shard name.
    pub shard: String,
    /// Rows of all the map's tables on it.
    pub rows: i64,
}

/// Reference tables, for the map listing (they live on every shard, on no map).
pub(crate) fn reference_tables(router: &Router) -> Vec<String> {
    let mut names: Vec<String> = router
        .tables()
        .iter()
        .filter(|(_, rule)| matches!(rule, TableRule::Reference))
        .map(|(name, _)| name.to_owned())
        .collect();
    names.sort();
    names
}

/// Every map, in the router's order (by name).
pub(crate) fn all_maps(router: &Router) -> Vec<MapView> {
    (0..router.maps().len())
        .filter_map(|i| map_view(router, i))
        .collect()
}

/// The map named `name`.
pub(crate) fn one_map(router: &Router, name: &str) -> Option<MapView> {
    let index = router.maps().iter().position(|m| m.name() == name)?;
    map_view(router, index)
}

/// Adds `?counts=true` data to a view.
pub(crate) fn attach_counts(view: &mut MapView, router: &Router, counts: Vec<ShardRowCount>) {
    let rows_by_shard = router
        .shard_names()
        .iter()
        .map(|shard| ShardRows {
            shard: shard.clone(),
            rows: counts
                .iter()
                .filter(|c| &c.shard == shard)
                .map(|c| c.rows)
                .fold(0i64, i64::saturating_add),
        })
        .collect();
    view.row_counts = Some(counts);
    view.rows_by_shard = Some(rows_by_shard);
}

/// The view of map number `index` (None if out of range).
fn map_view(router: &Router, index: usize) -> Option<MapView> {
    let map: &ShardMap = router.maps().get(index)?;
    let config = map.config();
    let mut tables: Vec<TableView> = router
        .tables()
        .iter()
        .filter_map(|(name, rule)| match rule {
            TableRule::Sharded { map, key } if *map == index => Some(TableView {
                name: name.to_owned(),
                key: key.clone(),
            }),
            _ => None,
        })
        .collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let shard = |i: usize| shard_name(router.shard_names(), i);
    let placement = match &config.placement {
        Placement::Hash { bucket_to_shard } => PlacementView::Hash {
            buckets: bucket_to_shard.len(),
            assign: bucket_runs(bucket_to_shard)
                .into_iter()
                .map(|(first, last, s)| BucketRun {
                    buckets: if first == last {
                        first.to_string()
                    } else {
                        format!("{first}-{last}")
                    },
                    shard: shard(s),
                })
                .collect(),
        },
        Placement::Range { ranges } => PlacementView::Range {
            ranges: ranges
                .iter()
                .map(|r| RangeView {
                    from: r.from.as_ref().map_or(Value::Null, key_json),
                    to: r.to.as_ref().map_or(Value::Null, key_json),
                    shard: shard(r.shard),
                })
                .collect(),
        },
        Placement::List { values, default } => PlacementView::List {
            lists: list_groups(values)
                .into_iter()
                .map(|(s, values)| ListView {
                    values: values.into_iter().map(key_json).collect(),
                    shard: shard(s),
                })
                .collect(),
            default: default.map(shard),
        },
    };
    Some(MapView {
        name: config.name.clone(),
        strategy: config.strategy.to_string(),
        key_type: config.key_type.to_string(),
        tables,
        placement,
        row_counts: None,
        rows_by_shard: None,
    })
}

/// A shard's name; an index the router does not know (impossible for a validated config) is shown
/// rather than panicking.
fn shard_name(names: &[String], index: usize) -> String {
    names
        .get(index)
        .cloned()
        .unwrap_or_else(|| format!("#{index}"))
}

/// A key as JSON: bigints as numbers, text and uuids as strings.
fn key_json(key: &KeyValue) -> Value {
    match key {
        KeyValue::Int(v) => Value::from(*v),
        other => Value::from(other.to_string()),
    }
}

/// Contiguous runs `(first, last, shard)` of equal shards in bucket order.
fn bucket_runs(bucket_to_shard: &[usize]) -> Vec<(usize, usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (bucket, &shard) in bucket_to_shard.iter().enumerate() {
        match runs.last_mut() {
            Some((_, last, s)) if *s == shard => *last = bucket,
            _ => runs.push((bucket, bucket, shard)),
        }
    }
    runs
}

/// List values grouped by shard, shards in order of index, values in key order.
fn list_groups(values: &[(KeyValue, usize)]) -> Vec<(usize, Vec<&KeyValue>)> {
    let mut groups: std::collections::BTreeMap<usize, Vec<&KeyValue>> = Default::default();
    for (value, shard) in values {
        groups.entry(*shard).or_default().push(value);
    }
    groups
        .into_iter()
        .map(|(shard, mut values)| {
            values.sort();
            (shard, values)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONFIG: &str = r#"
[[shards]]
name = "s0"
url = "postgres://u:pw@h0/db"
[[shards]]
name = "s1"
url = "postgres://u:pw@h1/db"
[[shards]]
name = "s2"
url = "postgres://u:pw@h2/db"

[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 8
assign = [ { buckets = "0-2", shard = "s0" }, { buckets = "3", shard = "s2" }, { buckets = "4-7", shard = "s1" } ]

[maps.events]
strategy = "range"
key_type = "bigint"
ranges = [ { to = 0, shard = "s2" }, { from = 0, to = 1000, shard = "s0" }, { from = 1000, shard = "s1" } ]

[maps.region]
strategy = "list"
key_type = "text"
lists = [ { values = ["US", "DE"], shard = "s1" }, { values = ["KR", "JP"], shard = "s0" } ]

[tables]
users = { map = "users", key = "id" }
orders = { map = "users", key = "user_id" }
events = { map = "events", key = "event_id" }
customers = { map = "region", key = "country" }
countries = { reference = true }
"#;

    fn router() -> Router {
        Router::new(&config::Config::parse(CONFIG, "t.toml").unwrap())
    }

    fn json_of(name: &str) -> Value {
        serde_json::to_value(one_map(&router(), name).unwrap()).unwrap()
    }

    #[test]
    fn hash_map_runs() {
        assert_eq!(
            json_of("users"),
            json!({
                "name": "users", "strategy": "hash", "key_type": "bigint",
                "tables": [{"name": "orders", "key": "user_id"}, {"name": "users", "key": "id"}],
                "buckets": 8,
                "assign": [
                    {"buckets": "0-2", "shard": "s0"},
                    {"buckets": "3", "shard": "s2"},
                    {"buckets": "4-7", "shard": "s1"},
                ],
            })
        );
    }

    #[test]
    fn range_map_with_unbounded_ends() {
        assert_eq!(
            json_of("events"),
            json!({
                "name": "events", "strategy": "range", "key_type": "bigint",
                "tables": [{"name": "events", "key": "event_id"}],
                "ranges": [
                    {"from": null, "to": 0, "shard": "s2"},
                    {"from": 0, "to": 1000, "shard": "s0"},
                    {"from": 1000, "to": null, "shard": "s1"},
                ],
            })
        );
    }

    #[test]
    fn list_map_grouped_by_shard() {
        assert_eq!(
            json_of("region"),
            json!({
                "name": "region", "strategy": "list", "key_type": "text",
                "tables": [{"name": "customers", "key": "country"}],
                "lists": [
                    {"values": ["JP", "KR"], "shard": "s0"},
                    {"values": ["DE", "US"], "shard": "s1"},
                ],
                "default": null,
            })
        );
    }

    #[test]
    fn listing_and_reference_tables() {
        let router = router();
        let names: Vec<String> = all_maps(&router).into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["events", "region", "users"]);
        assert_eq!(reference_tables(&router), ["countries"]);
        assert!(one_map(&router, "nope").is_none());
    }

    #[test]
    fn counts_total_per_shard() {
        let router = router();
        let mut view = one_map(&router, "users").unwrap();
        let count = |shard: &str, table: &str, rows| ShardRowCount {
            shard: shard.into(),
            table: table.into(),
            rows,
        };
        attach_counts(
            &mut view,
            &router,
            vec![
                count("s0", "users", 3),
                count("s0", "orders", 4),
                count("s1", "users", 5),
            ],
        );
        let value = serde_json::to_value(&view).unwrap();
        assert_eq!(
            value["rows_by_shard"],
            json!([
                {"shard": "s0", "rows": 7},
                {"shard": "s1", "rows": 5},
                {"shard": "s2", "rows": 0},
            ])
        );
        assert_eq!(value["row_counts"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn runs_of_alternating_buckets() {
        assert_eq!(
            bucket_runs(&[0, 1, 1, 0]),
            [(0, 0, 0), (1, 2, 1), (3, 3, 0)]
        );
        assert!(bucket_runs(&[]).is_empty());
    }
}
