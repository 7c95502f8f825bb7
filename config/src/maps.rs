//! `[maps.NAME]` validation: strategies, key types, bucket assignment, ranges and lists.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::Range;

use toml::Spanned;

use crate::error::Reporter;
use crate::raw::{RawMap, RawScalar};
use crate::validate::check_name;
use crate::{KeyType, KeyValue, MapConfig, Placement, RangeAssign, Strategy};

/// Most buckets a hash map may have: the bucket table lives in memory on every proxy.
pub(crate) const MAX_BUCKETS: i64 = 1 << 20;

/// Shard names in `[[shards]]` order and their indexes, for resolving references.
pub(crate) struct Shards<'a> {
    /// Names in file order (index = shard index).
    pub(crate) names: &'a [String],
    /// Name -> index (the first shard of that name).
    pub(crate) index: &'a HashMap<String, usize>,
}

impl Shards<'_> {
    /// Resolves a shard name, reporting an unknown one at its position.
    fn resolve(&self, name: &Spanned<String>, rep: &mut Reporter<'_>) -> Option<usize> {
        let found = self.index.get(name.get_ref()).copied();
        if found.is_none() {
            rep.error(
                &name.span(),
                format!(
                    "unknown shard {:?} (shards are: {})",
                    name.get_ref(),
                    self.names.join(", ")
                ),
            );
        }
        found
    }
}

/// Validates every map; maps with errors are reported and left out.
pub(crate) fn validate_maps(
    raw: &[(Spanned<String>, RawMap)],
    shards: &Shards<'_>,
    rep: &mut Reporter<'_>,
) -> BTreeMap<String, MapConfig> {
    let mut maps = BTreeMap::new();
    for (name, map) in raw {
        if let Some(m) = validate_map(name, map, shards, rep) {
            maps.insert(m.name.clone(), m);
        }
    }
    maps
}

/// One map, or `None` after reporting what is wrong with it.
fn validate_map(
    name: &Spanned<String>,
    map: &RawMap,
    shards: &Shards<'_>,
    rep: &mut Reporter<'_>,
) -> Option<MapConfig> {
    let name_ok = check_name(name, "map name", rep);
    let strategy = match map.strategy.get_ref().as_str() {
        "hash" => Some(Strategy::Hash),
        "range" => Some(Strategy::Range),
        "list" => Some(Strategy::List),
        other => {
            rep.error(
                &map.strategy.span(),
                format!("unknown strategy {other:?}: expected \"hash\", \"range\" or \"list\""),
            );
            None
        }
    };
    let key_type = match map.key_type.get_ref().as_str() {
        "bigint" => Some(KeyType::Bigint),
        "text" => Some(KeyType::Text),
        "uuid" => Some(KeyType::Uuid),
        other => {
            rep.error(
                &map.key_type.span(),
                format!("unknown key_type {other:?}: expected \"bigint\", \"text\" or \"uuid\""),
            );
            None
        }
    };
    let (strategy, key_type) = (strategy?, key_type?);
    let keys_ok = check_strategy_keys(map, strategy, rep);
    let placement = match strategy {
        Strategy::Hash => hash_placement(name, map, shards, rep),
        Strategy::Range => range_placement(name, map, key_type, shards, rep),
        Strategy::List => list_placement(name, map, key_type, shards, rep),
    }?;
    (name_ok && keys_ok).then(|| MapConfig {
        name: name.get_ref().clone(),
        strategy,
        key_type,
        placement,
    })
}

/// Reports keys that belong to another strategy; `false` if there were any.
fn check_strategy_keys(map: &RawMap, strategy: Strategy, rep: &mut Reporter<'_>) -> bool {
    let present: [(&str, Option<Range<usize>>, Strategy); 5] = [
        (
            "buckets",
            map.buckets.as_ref().map(Spanned::span),
            Strategy::Hash,
        ),
        (
            "assign",
            map.assign.as_ref().map(Spanned::span),
            Strategy::Hash,
        ),
        (
            "ranges",
            map.ranges.as_ref().map(Spanned::span),
            Strategy::Range,
        ),
        (
            "lists",
            map.lists.as_ref().map(Spanned::span),
            Strategy::List,
        ),
        (
            "default",
            map.default.as_ref().map(Spanned::span),
            Strategy::List,
        ),
    ];
    let mut ok = true;
    for (key, span, owner) in present {
        if let Some(span) = span.filter(|_| owner != strategy) {
            rep.error(
                &span,
                format!("`{key}` belongs to {owner} maps, not to a {strategy} map"),
            );
            ok = false;
        }
    }
    ok
}

/// Hash: bucket count and the bucket -> shard table.
fn hash_placement(
    name: &Spanned<String>,
    map: &RawMap,
    shards: &Shards<'_>,
    rep: &mut Reporter<'_>,
) -> Option<Placement> {
    let Some(buckets) = map.buckets.as_ref() else {
        rep.error(
            &name.span(),
            format!(
                "hash map {:?} needs `buckets` (for example 1024)",
                name.get_ref()
            ),
        );
        return None;
    };
    let count = *buckets.get_ref();
    if !(1..=MAX_BUCKETS).contains(&count) {
        rep.error(
            &buckets.span(),
            format!("buckets must be between 1 and {MAX_BUCKETS}, not {count}"),
        );
        return None;
    }
    let count = usize::try_from(count).ok()?;
    let Some(assign) = map.assign.as_ref() else {
        return Some(Placement::Hash {
            bucket_to_shard: default_split(count, shards.names.len()),
        });
    };
    // Per bucket, the index of the `assign` entry that took it (not the span itself: with up
    // to a million buckets this table should stay small).
    let mut owner: Vec<Option<usize>> = vec![None; count];
    let entries = assign.get_ref();
    let mut ok = true;
    for (i, entry) in entries.iter().enumerate() {
        let entry_span = entry.get_ref().buckets.span();
        let shard = shards.resolve(&entry.get_ref().shard, rep);
        let Some((first, last)) = bucket_run(entry.get_ref().buckets.get_ref(), count) else {
            rep.error(
                &entry_span,
                format!(
                    "{} is not a bucket or bucket range within 0-{} (like \"0-511\" or \"7\")",
                    scalar_text(entry.get_ref().buckets.get_ref()),
                    count - 1
                ),
            );
            ok = false;
            continue;
        };
        ok &= shard.is_some();
        let mut repeated = Vec::new();
        let mut first_owner = None;
        for (b, slot) in owner
            .iter_mut()
            .enumerate()
            .skip(first)
            .take(last + 1 - first)
        {
            match slot {
                Some(other) => {
                    repeated.push(b);
                    first_owner.get_or_insert(*other);
                }
                None => *slot = Some(i),
            }
        }
        if let Some(other) = first_owner.and_then(|o| entries.get(o)) {
            rep.error(
                &entry_span,
                format!(
                    "{} {} assigned twice (already assigned at {})",
                    describe_buckets(&repeated),
                    is_are(&repeated),
                    rep.place(&other.get_ref().buckets.span())
                ),
            );
            ok = false;
        }
    }
    let missing: Vec<usize> = owner
        .iter()
        .enumerate()
        .filter_map(|(b, o)| o.is_none().then_some(b))
        .collect();
    if ok && !missing.is_empty() {
        rep.error(
            &assign.span(),
            format!(
                "{} of map {:?} {} not assigned to any shard (buckets 0-{} must all be assigned)",
                describe_buckets(&missing),
                name.get_ref(),
                is_are(&missing),
                count - 1
            ),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let table: Option<Vec<usize>> = owner
        .into_iter()
        .map(|o| {
            let entry = entries.get(o?)?;
            shards.index.get(entry.get_ref().shard.get_ref()).copied()
        })
        .collect();
    table.map(|bucket_to_shard| Placement::Hash { bucket_to_shard })
}

/// Contiguous runs in shard order; the first `buckets % shards` shards get one bucket more.
pub(crate) fn default_split(buckets: usize, shards: usize) -> Vec<usize> {
    if shards == 0 {
        return Vec::new();
    }
    let (base, extra) = (buckets / shards, buckets % shards);
    (0..shards)
        .flat_map(|s| std::iter::repeat_n(s, base + usize::from(s < extra)))
        .collect()
}

/// `"a-b"`, `"a"` or an integer, as an inclusive run inside `0..count`.
fn bucket_run(spec: &RawScalar, count: usize) -> Option<(usize, usize)> {
    let (first, last) = match spec {
        RawScalar::Int(n) => (usize::try_from(*n).ok()?, usize::try_from(*n).ok()?),
        RawScalar::Text(s) => {
            let number = |t: &str| {
                let t = t.trim();
                // Only plain digits: "+3" or " 3 4" are typos, not buckets.
                (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse::<usize>().ok())
                    .flatten()
            };
            match s.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => (number(s)?, number(s)?),
            }
        }
    };
    (first <= last && last < count).then_some((first, last))
}

/// Bucket runs listed in one message; a file assigning every other bucket must not produce a
/// megabyte-long line.
const MAX_RUNS_SHOWN: usize = 8;

/// "bucket 5" or "buckets 0-3, 7, 9-10".
fn describe_buckets(buckets: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &b in buckets {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == b => *end = b,
            _ => runs.push((b, b)),
        }
    }
    let mut out = String::from(if buckets.len() == 1 {
        "bucket "
    } else {
        "buckets "
    });
    for (i, (a, b)) in runs.iter().enumerate() {
        if i == MAX_RUNS_SHOWN {
            let _ = write!(out, " and {} more runs", runs.len() - i);
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        if a == b {
            let _ = write!(out, "{a}");
        } else {
            let _ = write!(out, "{a}-{b}");
        }
    }
    out
}

/// "is" for one bucket, "are" for several.
fn is_are(buckets: &[usize]) -> &'static str {
    if buckets.len() == 1 {
        "is"
    } else {
        "are"
    }
}

/// How a raw scalar was written, for messages.
fn scalar_text(v: &RawScalar) -> String {
    match v {
        RawScalar::Int(n) => n.to_string(),
        RawScalar::Text(s) => format!("{s:?}"),
    }
}

/// A key value written in the file, checked against the map's key type.
fn key_value(
    v: &Spanned<RawScalar>,
    key_type: KeyType,
    what: &str,
    rep: &mut Reporter<'_>,
) -> Option<KeyValue> {
    let parsed = match (key_type, v.get_ref()) {
        (KeyType::Bigint, RawScalar::Int(n)) => Ok(KeyValue::Int(*n)),
        (KeyType::Text, RawScalar::Text(s)) => Ok(KeyValue::Text(s.clone())),
        (KeyType::Uuid, RawScalar::Text(s)) => KeyValue::parse(KeyType::Uuid, s),
        (KeyType::Bigint, other) => Err(format!(
            "{what} must be an integer for a bigint map, found {} {}",
            other.type_name(),
            scalar_text(other)
        )),
        (KeyType::Text | KeyType::Uuid, other) => Err(format!(
            "{what} must be a string for a {key_type} map, found {} {}",
            other.type_name(),
            scalar_text(other)
        )),
    };
    parsed.map_err(|e| rep.error(&v.span(), e)).ok()
}

/// Range: typed, non-empty, non-overlapping `[from, to)` ranges, sorted by `from`.
fn range_placement(
    name: &Spanned<String>,
    map: &RawMap,
    key_type: KeyType,
    shards: &Shards<'_>,
    rep: &mut Reporter<'_>,
) -> Option<Placement> {
    let Some(raw_ranges) = map.ranges.as_ref().filter(|r| !r.get_ref().is_empty()) else {
        let span = map.ranges.as_ref().map_or(name.span(), Spanned::span);
        rep.error(
            &span,
            format!(
                "range map {:?} needs at least one entry in `ranges`",
                name.get_ref()
            ),
        );
        return None;
    };
    let mut ok = true;
    let mut ranges: Vec<(RangeAssign, Range<usize>)> = Vec::new();
    for r in raw_ranges.get_ref() {
        let raw = r.get_ref();
        let from = raw
            .from
            .as_ref()
            .map(|v| key_value(v, key_type, "range bound `from`", rep));
        let to = raw
            .to
            .as_ref()
            .map(|v| key_value(v, key_type, "range bound `to`", rep));
        let shard = shards.resolve(&raw.shard, rep);
        let (Some(from), Some(to), Some(shard)) = (flip(from), flip(to), shard) else {
            ok = false;
            continue;
        };
        if let (Some(f), Some(t)) = (&from, &to) {
            if f >= t {
                rep.error(
                    &r.span(),
                    format!("empty range: `from` ({f}) must be less than `to` ({t})"),
                );
                ok = false;
                continue;
            }
        }
        ranges.push((RangeAssign { from, to, shard }, r.span()));
    }
    ranges.sort_by(|a, b| a.0.from.cmp(&b.0.from));
    // The range reaching furthest so far: any later start below its end overlaps it.
    let mut reach: Option<&(RangeAssign, Range<usize>)> = None;
    for cur in &ranges {
        if let Some(prev) = reach {
            if ends_after(&prev.0.to, &cur.0.from) {
                // Report at whichever of the two comes later in the file.
                let (here, there) = if prev.1.start > cur.1.start {
                    (prev, cur)
                } else {
                    (cur, prev)
                };
                rep.error(
                    &here.1,
                    format!(
                        "range {} overlaps range {} at {}",
                        show_range(&here.0),
                        show_range(&there.0),
                        rep.place(&there.1)
                    ),
                );
                ok = false;
            }
        }
        if reach.is_none_or(|r| ends_later(&cur.0.to, &r.0.to)) {
            reach = Some(cur);
        }
    }
    ok.then(|| Placement::Range {
        ranges: ranges.into_iter().map(|(r, _)| r).collect(),
    })
}

/// `Some(None)` (absent bound) stays a valid bound; `Some(Err)` marks a bad one.
fn flip(v: Option<Option<KeyValue>>) -> Option<Option<KeyValue>> {
    match v {
        None => Some(None),
        Some(Some(k)) => Some(Some(k)),
        Some(None) => None,
    }
}

/// Whether a range ending at `to` (None = unbounded) extends past a start at `from`.
fn ends_after(to: &Option<KeyValue>, from: &Option<KeyValue>) -> bool {
    match (to, from) {
        (None, _) | (_, None) => true,
        (Some(t), Some(f)) => t > f,
    }
}

/// Whether end `a` is later than end `b` (None = unbounded).
fn ends_later(a: &Option<KeyValue>, b: &Option<KeyValue>) -> bool {
    match (a, b) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
    }
}

/// `[from, to)` with `..` for unbounded ends.
fn show_range(r: &RangeAssign) -> String {
    let show = |v: &Option<KeyValue>| match v {
        None => "..".to_owned(),
        Some(KeyValue::Text(s)) => format!("{s:?}"),
        Some(k) => k.to_string(),
    };
    format!("[{}, {})", show(&r.from), show(&r.to))
}

/// List: typed values, each on exactly one shard, and the optional default shard.
fn list_placement(
    name: &Spanned<String>,
    map: &RawMap,
    key_type: KeyType,
    shards: &Shards<'_>,
    rep: &mut Reporter<'_>,
) -> Option<Placement> {
    let mut ok = true;
    let default = match map.default.as_ref() {
        Some(d) => {
            let found = shards.resolve(d, rep);
            ok &= found.is_some();
            found
        }
        None => None,
    };
    let Some(lists) = map.lists.as_ref() else {
        rep.error(
            &name.span(),
            format!("list map {:?} needs `lists`", name.get_ref()),
        );
        return None;
    };
    if lists.get_ref().is_empty() && map.default.is_none() {
        rep.error(
            &lists.span(),
            format!(
                "list map {:?} needs at least one list or a `default`",
                name.get_ref()
            ),
        );
        return None;
    }
    let mut values: Vec<(KeyValue, usize)> = Vec::new();
    let mut seen: BTreeMap<KeyValue, (usize, Range<usize>)> = BTreeMap::new();
    for list in lists.get_ref() {
        let shard = shards.resolve(&list.get_ref().shard, rep);
        ok &= shard.is_some();
        if list.get_ref().values.is_empty() {
            rep.error(&list.span(), "a list needs at least one value");
            ok = false;
        }
        for v in &list.get_ref().values {
            let Some(key) = key_value(v, key_type, "list value", rep) else {
                ok = false;
                continue;
            };
            let Some(shard) = shard else { continue };
            if let Some((other, place)) = seen.get(&key) {
                let message = if *other == shard {
                    format!(
                        "value {} is listed twice (first at {})",
                        show_key(&key),
                        rep.place(place)
                    )
                } else {
                    format!(
                        "value {} is on two shards: {} (at {}) and {}",
                        show_key(&key),
                        shards.names.get(*other).map_or("?", String::as_str),
                        rep.place(place),
                        shards.names.get(shard).map_or("?", String::as_str)
                    )
                };
                rep.error(&v.span(), message);
                ok = false;
                continue;
            }
            seen.insert(key.clone(), (shard, v.span()));
            values.push((key, shard));
        }
    }
    ok.then_some(Placement::List { values, default })
}

/// A key for messages: text quoted, numbers and uuids plain.
fn show_key(k: &KeyValue) -> String {
    match k {
        KeyValue::Text(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "maps_tests.rs"]
mod tests;
