//! Aggregate queries of the generator: aggregates over all rows, GROUP BY on columns and
//! expressions (by expression, alias or position), HAVING (aggregates selected or not),
//! ORDER BY group keys and aggregates.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::RngExt;

use crate::filters::filter;
use crate::querygen::{direction, limit_offset, reference, visible_index, Item, OrderCheck, Sql};

/// Aggregates the merge finishes from per-shard partials: count, sum, avg, min/max of every
/// type that has them, bool_and/bool_or/every, some over expressions.
const AGGS: &[&str] = &[
    "count(*)",
    "count(i)",
    "count(s)",
    "count(n)",
    "count(f)",
    "count(b)",
    "count(ts)",
    "count(id)",
    "sum(i)",
    "sum(n)",
    "sum(f)",
    "sum(id)",
    "sum(i * 2)",
    "avg(i)",
    "avg(n)",
    "avg(f)",
    "avg(id)",
    "min(id)",
    "max(id)",
    "min(i)",
    "max(i)",
    "min(s)",
    "max(s)",
    "min(n)",
    "max(n)",
    "min(f)",
    "max(f)",
    "min(ts)",
    "max(ts)",
    "bool_and(b)",
    "bool_or(b)",
    "every(b)",
    "min(length(s))",
    "max(upper(s))",
    "sum(length(s))",
];

/// GROUP BY keys: columns and expressions, few or many groups.
const GROUP_KEYS: &[&str] = &[
    "i",
    "s",
    "b",
    "i % 5",
    "i / 100",
    "lower(s)",
    "length(s)",
    "date_trunc('year', ts)",
    "f",
    "round(n, -3)",
];

/// `n` distinct aggregates, some aliased.
fn pick_aggs(rng: &mut StdRng, n: usize) -> Vec<Item> {
    AGGS.sample(rng, n)
        .enumerate()
        .map(|(k, a)| Item {
            expr: a.to_string(),
            alias: rng.random_bool(0.4).then(|| format!("a{k}")),
        })
        .collect()
}

/// Aggregates over all (filtered) rows: always one row, even over no rows.
pub fn aggregate(rng: &mut StdRng, sql: &mut Sql) -> OrderCheck {
    let n = rng.random_range(1..=4);
    let items = pick_aggs(rng, n);
    let select: Vec<String> = items.iter().map(Item::render).collect();
    sql.push("SELECT ");
    sql.push(&select.join(", "));
    sql.push(" FROM t");
    if rng.random_bool(0.6) {
        sql.push(" WHERE ");
        filter(rng, sql);
    }
    if rng.random_ratio(1, 10) {
        sql.push(" HAVING ");
        having(rng, sql, &[]);
    }
    if rng.random_ratio(1, 20) {
        let limit = rng.random_bool(0.6);
        let offset = !limit || rng.random_bool(0.5);
        limit_offset(rng, sql, limit, offset);
    }
    OrderCheck::Total
}

/// A grouped query; returns how to compare its answers.
pub fn grouped(rng: &mut StdRng, sql: &mut Sql) -> OrderCheck {
    let nkeys = if rng.random_bool(0.65) { 1 } else { 2 };
    let keys: Vec<&str> = GROUP_KEYS.sample(rng, nkeys).copied().collect();
    // (item, Some(key index) for a group key)
    let mut items: Vec<(Item, Option<usize>)> = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        if rng.random_bool(0.85) {
            let alias = rng.random_bool(0.25).then(|| format!("g{k}"));
            items.push((
                Item {
                    expr: key.to_string(),
                    alias,
                },
                Some(k),
            ));
        }
    }
    let naggs = if !items.is_empty() && rng.random_ratio(1, 10) {
        0
    } else {
        rng.random_range(1..=3)
    };
    items.extend(pick_aggs(rng, naggs).into_iter().map(|a| (a, None)));
    if rng.random_bool(0.3) {
        items.shuffle(rng);
    }
    let outputs: Vec<Item> = items.iter().map(|(item, _)| item.clone()).collect();
    let key_output = |k: usize| items.iter().position(|(_, key)| *key == Some(k));

    let select: Vec<String> = outputs.iter().map(Item::render).collect();
    sql.push("SELECT ");
    sql.push(&select.join(", "));
    sql.push(" FROM t");
    if rng.random_bool(0.6) {
        sql.push(" WHERE ");
        filter(rng, sql);
    }
    let group_by: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(k, key)| match key_output(k) {
            Some(idx) => match rng.random_range(0..3) {
                0 => (idx + 1).to_string(),
                1 => outputs[idx]
                    .alias
                    .clone()
                    .unwrap_or_else(|| key.to_string()),
                _ => key.to_string(),
            },
            None => key.to_string(),
        })
        .collect();
    sql.push(" GROUP BY ");
    sql.push(&group_by.join(", "));
    if rng.random_bool(0.3) {
        sql.push(" HAVING ");
        having(rng, sql, &keys);
    }
    if !rng.random_bool(0.6) {
        return OrderCheck::Unordered;
    }

    let limit = rng.random_bool(0.3);
    let offset = rng.random_bool(if limit { 0.3 } else { 0.08 });
    let total = limit || offset || rng.random_bool(0.3);
    let mut order = Vec::new();
    let mut visible = Vec::new();
    let mut all_visible = true;
    let mut covered = vec![false; keys.len()];
    let aggs_selected: Vec<usize> = (0..items.len()).filter(|i| items[*i].1.is_none()).collect();
    for _ in 0..rng.random_range(1..=3) {
        match rng.random_range(0..3) {
            0 => {
                let k = rng.random_range(0..keys.len());
                covered[k] = true;
                match key_output(k) {
                    Some(idx) => {
                        order.push(reference(rng, &outputs, idx));
                        visible.push(idx);
                    }
                    None => {
                        order.push(keys[k].to_string());
                        all_visible = false;
                    }
                }
            }
            1 if !aggs_selected.is_empty() => {
                let idx = *aggs_selected.choose(rng).unwrap_or(&0);
                order.push(reference(rng, &outputs, idx));
                visible.push(idx);
            }
            _ => {
                let agg = *AGGS.choose(rng).unwrap_or(&"count(*)");
                match visible_index(&outputs, agg) {
                    Some(idx) => visible.push(idx),
                    None => all_visible = false,
                }
                order.push(agg.to_string());
            }
        }
        let dir = direction(rng);
        if let Some(last) = order.last_mut() {
            last.push_str(&dir);
        }
    }
    if total {
        // Groups differ in some key: ordering by all of them is total.
        for (k, key) in keys.iter().enumerate() {
            if !covered[k] {
                let by = match key_output(k) {
                    Some(idx) => reference(rng, &outputs, idx),
                    None => key.to_string(),
                };
                order.push(by + &direction(rng));
            }
        }
    }
    sql.push(" ORDER BY ");
    sql.push(&order.join(", "));
    limit_offset(rng, sql, limit, offset);
    if total {
        OrderCheck::Total
    } else if all_visible {
        OrderCheck::Keys(visible)
    } else {
        OrderCheck::Unordered
    }
}

/// A HAVING condition: one or two comparisons of aggregates (selected or not), constants,
/// other aggregates and group keys, joined by AND/OR.
fn having(rng: &mut StdRng, sql: &mut Sql, keys: &[&str]) {
    having_atom(rng, sql, keys);
    if rng.random_bool(0.3) {
        sql.push(if rng.random_bool(0.5) {
            " AND "
        } else {
            " OR "
        });
        having_atom(rng, sql, keys);
    }
}

fn having_atom(rng: &mut StdRng, sql: &mut Sql, keys: &[&str]) {
    let int = |rng: &mut StdRng, values: &[i64]| values.choose(rng).unwrap_or(&0).to_string();
    match rng.random_range(0..12) {
        0 => {
            let k = int(rng, &[0, 1, 2, 5, 10, 20, 50]);
            sql.push("count(*) > ");
            sql.value(rng, &k, &k);
        }
        1 => {
            let k = int(rng, &[-1000, 0, 500, 2000]);
            sql.push("sum(i) > ");
            sql.value(rng, &k, &k);
        }
        2 => {
            let v = *["b", "B", "a", ""].choose(rng).unwrap_or(&"b");
            sql.push("min(s) < ");
            sql.value(rng, &format!("'{v}'"), v);
        }
        3 => sql.push("max(s) >= 'B'"),
        4 => {
            let v = *["-100.5", "0", "250"].choose(rng).unwrap_or(&"0");
            sql.push("avg(n) > ");
            sql.value(rng, v, v);
        }
        5 => sql.push("max(ts) > '2022-06-01'"),
        6 => sql.push(if rng.random_bool(0.7) {
            "bool_or(b) = true"
        } else {
            "bool_and(b)"
        }),
        7 => {
            let k = int(rng, &[1, 3, 10]);
            sql.push("count(s) >= ");
            sql.value(rng, &k, &k);
        }
        8 => sql.push("sum(f) > 0"),
        9 => sql.push("sum(i) > count(*)"),
        10 => sql.push(if rng.random_bool(0.5) {
            "min(i) IS NULL"
        } else {
            "max(n) IS NOT NULL"
        }),
        _ => match keys.choose(rng) {
            Some(key) => sql.push(&format!("{key} IS NOT NULL")),
            None => sql.push("count(*) <> 0"),
        },
    }
}
