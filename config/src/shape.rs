//! The shape of the file: each section, array element and map entry deserialized on its own
//! into the raw structs, so that every unknown key and wrong type is reported, not just the
//! first one serde meets.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::error::Reporter;
use crate::raw::{RawAuth, RawConfig, RawMap, RawPool, RawProxy, RawShard, RawTable};

/// Which sections parsed completely (later stages depend on them).
pub(crate) struct Shape {
    /// Every `[[shards]]` entry parsed, and there is at least one.
    pub(crate) shards_ok: bool,
    /// Every `[maps.NAME]` entry parsed.
    pub(crate) maps_ok: bool,
}

/// Deserializes each section, array element and map entry separately, reporting each failure.
pub(crate) fn read_sections(doc: DeTable<'_>, rep: &mut Reporter<'_>) -> (RawConfig, Shape) {
    let mut raw = RawConfig::default();
    let mut shape = Shape {
        shards_ok: true,
        maps_ok: true,
    };
    let mut shards_key = None;
    for (key, value) in doc {
        let key_span = key.span();
        match key.get_ref().as_ref() {
            "proxy" => raw.proxy = de::<RawProxy>(value, rep).unwrap_or_default(),
            "auth" => {
                raw.auth = de::<RawAuth>(value, rep).map(|a| Spanned::new(key_span.clone(), a));
            }
            "pool" => raw.pool = de::<RawPool>(value, rep).unwrap_or_default(),
            "shards" => {
                shards_key = Some(key_span.clone());
                let DeValue::Array(items) = value.into_inner() else {
                    rep.error(&key_span, "`shards` must be an array of tables: write [[shards]]");
                    shape.shards_ok = false;
                    continue;
                };
                for item in items {
                    match de::<Spanned<RawShard>>(item, rep) {
                        Some(s) => raw.shards.push(s),
                        None => shape.shards_ok = false,
                    }
                }
            }
            "maps" => shape.maps_ok = read_maps(value, &key_span, &mut raw.maps, rep),
            "tables" => read_tables(value, &key_span, &mut raw.tables, rep),
            other => rep.error(
                &key_span,
                format!(
                    "unknown section `{other}`: expected one of proxy, auth, pool, shards, maps, tables"
                ),
            ),
        }
    }
    if raw.shards.is_empty() && shape.shards_ok {
        rep.error(
            &shards_key.unwrap_or(0..0),
            "no shards: add at least one [[shards]] entry with a name and url",
        );
        shape.shards_ok = false;
    }
    (raw, shape)
}

/// Reads `[maps.NAME]` entries; `false` if any did not parse.
fn read_maps(
    value: Spanned<DeValue<'_>>,
    key_span: &Range<usize>,
    out: &mut Vec<(Spanned<String>, RawMap)>,
    rep: &mut Reporter<'_>,
) -> bool {
    let DeValue::Table(entries) = value.into_inner() else {
        rep.error(
            key_span,
            "`maps` must be a table of maps: write [maps.NAME]",
        );
        return false;
    };
    let mut ok = true;
    for (name, map) in entries {
        let name = Spanned::new(name.span(), name.into_inner().into_owned());
        match de::<RawMap>(map, rep) {
            Some(m) => out.push((name, m)),
            None => ok = false,
        }
    }
    ok
}

/// Reads `[tables]` entries, unfolding dotted keys (`public.users = {...}`) into qualified
/// names.
fn read_tables(
    value: Spanned<DeValue<'_>>,
    key_span: &Range<usize>,
    out: &mut Vec<(Spanned<String>, RawTable)>,
    rep: &mut Reporter<'_>,
) {
    let DeValue::Table(entries) = value.into_inner() else {
        rep.error(key_span, "`tables` must be a table: write [tables]");
        return;
    };
    for (name, entry) in entries {
        if is_schema_group(entry.get_ref()) {
            if let DeValue::Table(inner) = entry.into_inner() {
                // A bare dotted key `public.users` is a nested TOML table: schema, then table.
                for (table, inner_entry) in inner {
                    let qualified = format!("{}.{}", name.get_ref(), table.get_ref());
                    if let Some(t) = de::<RawTable>(inner_entry, rep) {
                        out.push((Spanned::new(table.span(), qualified), t));
                    }
                }
            }
            continue;
        }
        let name = Spanned::new(name.span(), name.into_inner().into_owned());
        if let Some(t) = de::<RawTable>(entry, rep) {
            out.push((name, t));
        }
    }
}

/// A `[tables]` value that is a group of tables (`public.users`) rather than a table entry.
fn is_schema_group(value: &DeValue<'_>) -> bool {
    let DeValue::Table(t) = value else {
        return false;
    };
    !t.is_empty()
        && t.iter().all(|(k, v)| {
            !matches!(k.get_ref().as_ref(), "map" | "key" | "reference") && v.get_ref().is_table()
        })
}

/// Deserializes one value, reporting every failure at toml's span (or the value's own).
///
/// serde stops at the first bad key of a table, so after each failure the offending key is
/// dropped and the table is tried again: a table with three bad keys yields three errors. The
/// result is `None` if anything failed.
fn de<'i, T: Deserialize<'i>>(value: Spanned<DeValue<'i>>, rep: &mut Reporter<'_>) -> Option<T> {
    let whole = value.span();
    let mut value = value;
    let mut dropped: Vec<String> = Vec::new();
    loop {
        let err = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => return dropped.is_empty().then_some(v),
            Err(e) => e,
        };
        let message = err.message().trim();
        // A key we dropped is now "missing": that is not a new problem, and nothing is left
        // to learn from this table.
        if dropped
            .iter()
            .any(|k| message == format!("missing field `{k}`"))
        {
            return None;
        }
        let span = err.span().unwrap_or_else(|| whole.clone());
        // serde speaks of fields; a TOML file has keys.
        let message = message
            .replace("unknown field", "unknown key")
            .replace("missing field", "missing key");
        rep.error(&span, message);
        let DeValue::Table(table) = value.get_mut() else {
            return None;
        };
        let culprit = table
            .iter()
            .find(|(k, v)| k.span().contains(&span.start) || v.span().contains(&span.start))
            .map(|(k, _)| k.get_ref().to_string());
        let key = culprit?;
        table.remove(key.as_str());
        dropped.push(key);
    }
}
