//! WHERE conditions of the generator: comparisons, ranges, IN lists, LIKE, boolean tests and
//! IS [NOT] NULL over every column, combined with AND/OR/NOT, some matching no row at all.
//! Constants go through `Sql::value`, so a parameterized query binds some of them.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::RngExt;

use crate::querygen::{Sql, COLUMNS};

/// A WHERE condition: one to three predicates joined by AND/OR, sometimes negated.
pub fn filter(rng: &mut StdRng, sql: &mut Sql) {
    let n = *[1, 1, 1, 2, 2, 3].choose(rng).unwrap_or(&1);
    let negate = rng.random_ratio(1, 20);
    if negate {
        sql.push("NOT (");
    }
    if n == 3 {
        sql.push("(");
    }
    predicate(rng, sql);
    for k in 1..n {
        if k == 2 {
            sql.push(")");
        }
        sql.push(if rng.random_bool(0.6) {
            " AND "
        } else {
            " OR "
        });
        predicate(rng, sql);
    }
    if negate {
        sql.push(")");
    }
}

/// One predicate over one column.
fn predicate(rng: &mut StdRng, sql: &mut Sql) {
    let cmp = *["<", "<=", ">", ">=", "=", "<>"]
        .choose(rng)
        .unwrap_or(&"<");
    match rng.random_range(0..13) {
        0 | 1 => {
            let v = rng.random_range(-1000..=1000).to_string();
            sql.push(&format!("i {cmp} "));
            sql.value(rng, &v, &v);
        }
        2 => {
            let lo = rng.random_range(-1000..=900);
            let hi = lo + rng.random_range(0..=400);
            sql.push("i BETWEEN ");
            sql.value(rng, &lo.to_string(), &lo.to_string());
            sql.push(" AND ");
            sql.value(rng, &hi.to_string(), &hi.to_string());
        }
        3 => {
            let vs: Vec<String> = (0..3)
                .map(|_| rng.random_range(-20..=20).to_string())
                .collect();
            sql.push(&format!("i % 50 IN ({})", vs.join(", ")));
        }
        4 => {
            let v = format!(
                "{}.{:02}",
                rng.random_range(-9999..=9999),
                rng.random_range(0..100)
            );
            sql.push(&format!("n {cmp} "));
            sql.value(rng, &v, &v);
        }
        5 => {
            let v = *["", "a", "B", "b", "Ab", "z", "é"]
                .choose(rng)
                .unwrap_or(&"a");
            if rng.random_ratio(1, 4) {
                sql.push("s LIKE ");
                sql.value(rng, &format!("'{v}%'"), &format!("{v}%"));
            } else {
                sql.push(&format!("s {cmp} "));
                sql.value(rng, &format!("'{v}'"), v);
            }
        }
        6 => {
            let p = *["b", "NOT b", "b IS TRUE", "b IS NOT FALSE", "b IS UNKNOWN"]
                .choose(rng)
                .unwrap_or(&"b");
            if rng.random_bool(0.3) {
                let v = rng.random_bool(0.5).to_string();
                sql.push("b = ");
                sql.value(rng, &v, &v);
            } else {
                sql.push(p);
            }
        }
        7 => {
            let v = format!(
                "{}-{:02}-01 12:00:00",
                rng.random_range(2019..=2024),
                rng.random_range(1..=12)
            );
            sql.push(&format!("ts {cmp} "));
            sql.value(rng, &format!("'{v}'"), &v);
        }
        8 => {
            let v = format!("{}", f64::from(rng.random_range(-4000..=4000)) / 8.0);
            sql.push(&format!("f {cmp} "));
            sql.value(rng, &v, &v);
        }
        9 => {
            let col = COLUMNS[1..].choose(rng).unwrap_or(&"i");
            let not = if rng.random_bool(0.5) { " NOT" } else { "" };
            sql.push(&format!("{col} IS{not} NULL"));
        }
        10 => {
            let v = rng
                .random_range(-1_000_000_000_000i64..1_000_000_000_000)
                .to_string();
            sql.push(&format!("id {cmp} "));
            sql.value(rng, &v, &v);
        }
        11 => {
            let p = *[
                "coalesce(i, 0) > 0",
                "length(s) = 2",
                "i % 5 = 0",
                "upper(s) = s",
            ]
            .choose(rng)
            .unwrap_or(&"i % 5 = 0");
            sql.push(p);
        }
        // Matches nothing: empty inputs (aggregates over no rows, no groups).
        _ => sql.push(if rng.random_bool(0.5) {
            "i > 5000"
        } else {
            "s = 'none'"
        }),
    }
}
