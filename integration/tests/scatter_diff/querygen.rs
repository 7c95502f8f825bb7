//! The seeded random SELECT generator over table `t` (see data.rs): projections, ORDER BY,
//! LIMIT/OFFSET, DISTINCT (this file); WHERE conditions (filters.rs); aggregates, GROUP BY,
//! HAVING (aggregates.rs).
//!
//! Every query comes with how its answer may be compared: PostgreSQL's row order is only
//! defined as far as ORDER BY goes, so a query with LIMIT/OFFSET always ends its ORDER BY with a
//! total key (`id`, all DISTINCT columns, all group keys) and is compared as an ordered list;
//! other ordered queries compare the sequence of their (visible) sort key values plus the rows
//! as a multiset; unordered ones compare multisets.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

use crate::aggregates;
use crate::filters::filter;
use crate::wire::ParamFormat;

/// What a query exercises (for the per-shape summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Plain rows: filters, projections, ORDER BY, LIMIT/OFFSET.
    Rows,
    /// SELECT DISTINCT.
    Distinct,
    /// Aggregates without GROUP BY (one row).
    Aggregate,
    /// GROUP BY, HAVING, ORDER BY aggregates.
    Grouped,
    /// A shape the merge cannot answer exactly (should be refused with 0A000).
    Unsupported,
}

/// How two answers to a query are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCheck {
    /// The ORDER BY is total: rows in the same order.
    Total,
    /// Ordered by these output columns, not totally: the sequences of their values must be
    /// equal, and the rows as multisets.
    Keys(Vec<usize>),
    /// No defined order: the rows as multisets.
    Unordered,
}

/// One generated SELECT.
#[derive(Debug, Clone)]
pub struct Query {
    /// Its shape.
    pub kind: Kind,
    /// The SQL with every value written as a literal (simple protocol).
    pub sql: String,
    /// The same query with some values as `$n`, their text values and how to send them
    /// (extended protocol); None: it runs as `sql` without parameters.
    pub with_params: Option<(String, Vec<String>, ParamFormat)>,
    /// How answers compare.
    pub order: OrderCheck,
}

/// SQL text being written twice at once: with literals, and with some of them as `$n`.
pub struct Sql {
    lit: String,
    par: String,
    params: Vec<String>,
    /// Whether this query gets parameters at all.
    parameterize: bool,
}

impl Sql {
    /// Appends text to both forms.
    pub fn push(&mut self, s: &str) {
        self.lit.push_str(s);
        self.par.push_str(s);
    }

    /// A constant: `literal` in the literal form; in the other, `$n` bound to `value` (the
    /// literal without quotes) for some constants of a parameterized query.
    pub fn value(&mut self, rng: &mut StdRng, literal: &str, value: &str) {
        if self.parameterize && rng.random_bool(0.6) {
            self.bind(literal, value);
        } else {
            self.push(literal);
        }
    }

    /// A LIMIT/OFFSET count: always a parameter in a parameterized query.
    fn count(&mut self, n: u64) {
        let s = n.to_string();
        if self.parameterize {
            self.bind(&s, &s);
        } else {
            self.push(&s);
        }
    }

    fn bind(&mut self, literal: &str, value: &str) {
        self.params.push(value.to_string());
        self.lit.push_str(literal);
        self.par.push_str(&format!("${}", self.params.len()));
    }
}

/// One select-list entry.
#[derive(Debug, Clone)]
pub struct Item {
    /// The expression as written.
    pub expr: String,
    /// `AS alias`.
    pub alias: Option<String>,
}

impl Item {
    /// A plain expression without alias.
    pub fn new(expr: &str) -> Item {
        Item {
            expr: expr.to_string(),
            alias: None,
        }
    }

    /// Its output column name when ORDER BY/GROUP BY can use it: the alias, or the column's
    /// name for a bare column and a cast of one (`n::float8` is named `n`, as in PostgreSQL).
    pub fn name(&self) -> Option<&str> {
        if let Some(alias) = &self.alias {
            return Some(alias);
        }
        let column = self.expr.split("::").next().unwrap_or("");
        COLUMNS.contains(&column).then_some(column)
    }

    /// As written in the select list.
    pub fn render(&self) -> String {
        match &self.alias {
            Some(a) => format!("{} AS {a}", self.expr),
            None => self.expr.clone(),
        }
    }
}

/// The columns of `t`, in table order (what `*` expands to).
pub const COLUMNS: &[&str] = &["id", "i", "s", "n", "f", "b", "ts"];

/// Select-list candidates of plain row queries: every column and expressions over them.
const ROW_EXPRS: &[&str] = &[
    "id",
    "i",
    "s",
    "n",
    "f",
    "b",
    "ts",
    "i * 2",
    "i + 1",
    "id % 1000",
    "n * 2",
    "upper(s)",
    "coalesce(s, '-')",
    "f / 4",
    "b IS NULL",
    "length(s)",
    "ts::date",
    "-i",
    "abs(n)",
    "i % 7",
    "s || '.'",
    "date_trunc('month', ts)",
    "-f",
    "n::float8",
];

/// DISTINCT candidates: mostly few distinct values.
const DISTINCT_EXPRS: &[&str] = &[
    "b",
    "s",
    "i % 5",
    "lower(s)",
    "date_trunc('year', ts)",
    "length(s)",
    "i / 100",
    "b IS NULL",
    "upper(s)",
    "i",
    "f",
    "round(n, -3)",
];

/// Sort keys that may or may not be selected.
const SORT_EXPRS: &[&str] = &[
    "i",
    "s",
    "n",
    "f",
    "b",
    "ts",
    "id",
    "i % 10",
    "length(s)",
    "-f",
    "upper(s)",
    "n * -1",
];

/// `count` queries from `seed` (the same seed always gives the same queries).
pub fn generate(seed: u64, count: usize) -> Vec<Query> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count).map(|_| one(&mut rng)).collect()
}

/// One query: mostly plain rows and grouped queries, a few unsupported shapes.
fn one(rng: &mut StdRng) -> Query {
    let roll = rng.random_range(0..1000);
    if roll < 15 {
        return unsupported(rng);
    }
    let mut sql = Sql {
        lit: String::new(),
        par: String::new(),
        params: Vec::new(),
        parameterize: rng.random_ratio(1, 8),
    };
    let (kind, order) = match roll {
        15..=349 => (Kind::Rows, rows(rng, &mut sql, false)),
        350..=469 => (Kind::Distinct, rows(rng, &mut sql, true)),
        470..=629 => (Kind::Aggregate, aggregates::aggregate(rng, &mut sql)),
        _ => (Kind::Grouped, aggregates::grouped(rng, &mut sql)),
    };
    let with_params = (!sql.params.is_empty()).then(|| {
        let format = if rng.random_bool(0.5) {
            ParamFormat::Binary
        } else {
            ParamFormat::Text
        };
        (sql.par, sql.params, format)
    });
    Query {
        kind,
        sql: sql.lit,
        with_params,
        order,
    }
}

/// A plain or DISTINCT row query; returns how to compare its answers.
fn rows(rng: &mut StdRng, sql: &mut Sql, distinct: bool) -> OrderCheck {
    let mut outputs: Vec<Item> = Vec::new();
    let mut select = Vec::new();
    if !distinct && rng.random_ratio(1, 4) {
        let extra = rng.random_bool(0.3).then(|| Item {
            expr: ROW_EXPRS.choose(rng).unwrap_or(&"i").to_string(),
            alias: Some("x".into()),
        });
        let star = if rng.random_bool(0.2) { "t.*" } else { "*" };
        let extra_first = rng.random_bool(0.5);
        if let (Some(e), true) = (&extra, extra_first) {
            select.push(e.render());
            outputs.push(e.clone());
        }
        select.push(star.to_string());
        outputs.extend(COLUMNS.iter().map(|c| Item::new(c)));
        if let (Some(e), false) = (&extra, extra_first) {
            select.push(e.render());
            outputs.push(e.clone());
        }
    } else {
        let pool = if distinct { DISTINCT_EXPRS } else { ROW_EXPRS };
        let n = rng.random_range(1..=4);
        for (k, expr) in pool.sample(rng, n).enumerate() {
            let alias = rng.random_bool(0.3).then(|| format!("c{k}"));
            let mut item = Item {
                expr: expr.to_string(),
                alias,
            };
            // Two outputs named alike (`n` and `n::float8`) make ORDER BY n ambiguous.
            if item.name().is_some() && outputs.iter().any(|o| o.name() == item.name()) {
                item.alias = Some(format!("c{k}"));
            }
            select.push(item.render());
            outputs.push(item);
        }
    }
    sql.push(if distinct {
        "SELECT DISTINCT "
    } else {
        "SELECT "
    });
    sql.push(&select.join(", "));
    sql.push(" FROM t");
    if rng.random_bool(0.7) {
        sql.push(" WHERE ");
        filter(rng, sql);
    }
    if !rng.random_bool(if distinct { 0.6 } else { 0.65 }) {
        return OrderCheck::Unordered;
    }
    let limit = rng.random_bool(0.35);
    let offset = rng.random_bool(if limit { 0.4 } else { 0.1 });
    let total = limit || offset || rng.random_bool(0.25);
    let mut keys = Vec::new();
    let mut visible = Vec::new();
    let mut all_visible = true;
    for _ in 0..rng.random_range(1..=3) {
        if distinct || rng.random_bool(0.6) {
            let idx = rng.random_range(0..outputs.len());
            keys.push(reference(rng, &outputs, idx) + &direction(rng));
            visible.push(idx);
        } else {
            let expr = *SORT_EXPRS.choose(rng).unwrap_or(&"i");
            match visible_index(&outputs, expr) {
                Some(idx) => visible.push(idx),
                None => all_visible = false,
            }
            keys.push(format!("{expr}{}", direction(rng)));
        }
    }
    if total {
        if distinct {
            // DISTINCT rows differ in some column: ordering by all of them is total.
            for idx in 0..outputs.len() {
                if !visible.contains(&idx) {
                    keys.push(reference(rng, &outputs, idx) + &direction(rng));
                }
            }
        } else {
            match visible_index(&outputs, "id") {
                Some(idx) => keys.push(reference(rng, &outputs, idx) + &direction(rng)),
                None => keys.push(format!("id{}", direction(rng))),
            }
        }
    }
    sql.push(" ORDER BY ");
    sql.push(&keys.join(", "));
    limit_offset(rng, sql, limit, offset);
    if total {
        OrderCheck::Total
    } else if all_visible {
        OrderCheck::Keys(visible)
    } else {
        OrderCheck::Unordered
    }
}

/// The output an ORDER BY key written as `expr` sorts by, if it is one: PostgreSQL matches a
/// bare name with output names first, then any key with the select-list expressions.
pub fn visible_index(outputs: &[Item], expr: &str) -> Option<usize> {
    let by_name = COLUMNS
        .contains(&expr)
        .then(|| outputs.iter().position(|o| o.name() == Some(expr)))
        .flatten();
    by_name.or_else(|| outputs.iter().position(|o| o.expr == expr))
}

/// How ORDER BY/GROUP BY names output `idx`: by name, by position or by its expression.
pub fn reference(rng: &mut StdRng, outputs: &[Item], idx: usize) -> String {
    let item = &outputs[idx];
    match (rng.random_range(0..3), item.name()) {
        (0, Some(name)) => name.to_string(),
        (1, _) => (idx + 1).to_string(),
        _ => item.expr.clone(),
    }
}

/// ASC/DESC and NULLS FIRST/LAST, each sometimes left to the default.
pub fn direction(rng: &mut StdRng) -> String {
    let dir = *["", " ASC", " DESC"].choose(rng).unwrap_or(&"");
    let nulls = *["", "", " NULLS FIRST", " NULLS LAST"]
        .choose(rng)
        .unwrap_or(&"");
    format!("{dir}{nulls}")
}

/// ` LIMIT n` and/or ` OFFSET m`, as asked.
pub fn limit_offset(rng: &mut StdRng, sql: &mut Sql, limit: bool, offset: bool) {
    if limit {
        sql.push(" LIMIT ");
        sql.count(*[0, 1, 3, 10, 25, 100, 1000].choose(rng).unwrap_or(&10));
    }
    if offset {
        sql.push(" OFFSET ");
        sql.count(*[0, 1, 7, 50, 500, 2999, 5000].choose(rng).unwrap_or(&1));
    }
}

/// A shape the merge cannot answer exactly; the proxy should refuse it with 0A000.
fn unsupported(rng: &mut StdRng) -> Query {
    let shapes: &[(&str, OrderCheck)] = &[
        ("SELECT count(DISTINCT i) FROM t", OrderCheck::Total),
        (
            "SELECT b, count(DISTINCT s) FROM t GROUP BY b",
            OrderCheck::Unordered,
        ),
        (
            "SELECT id, row_number() OVER (ORDER BY id) FROM t ORDER BY id",
            OrderCheck::Total,
        ),
        (
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY f) FROM t",
            OrderCheck::Total,
        ),
        (
            "SELECT i FROM t WHERE i < -900 UNION SELECT i FROM t WHERE i > 900",
            OrderCheck::Unordered,
        ),
        (
            "SELECT string_agg(s, ',' ORDER BY id) FROM t",
            OrderCheck::Total,
        ),
    ];
    let (sql, order) = shapes.choose(rng).unwrap_or(&shapes[0]).clone();
    Query {
        kind: Kind::Unsupported,
        sql: sql.to_string(),
        with_params: None,
        order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_covers_every_shape() {
        let a = generate(7, 2000);
        let b = generate(7, 2000);
        assert_eq!(
            a.iter().map(|q| &q.sql).collect::<Vec<_>>(),
            b.iter().map(|q| &q.sql).collect::<Vec<_>>()
        );
        for kind in [
            Kind::Rows,
            Kind::Distinct,
            Kind::Aggregate,
            Kind::Grouped,
            Kind::Unsupported,
        ] {
            assert!(a.iter().any(|q| q.kind == kind), "no {kind:?} query");
        }
        for needle in [
            "ORDER BY",
            "LIMIT",
            "OFFSET",
            "GROUP BY",
            "HAVING",
            "DISTINCT",
            "NULLS FIRST",
            "NULLS LAST",
            "DESC",
            "IS NULL",
            "count(*)",
            "avg(f)",
            "bool_or(b)",
        ] {
            assert!(a.iter().any(|q| q.sql.contains(needle)), "no {needle}");
        }
        let with_params = a.iter().filter(|q| q.with_params.is_some()).count();
        assert!(
            with_params > 50,
            "only {with_params} queries with parameters"
        );
        let limit_params = a.iter().filter_map(|q| q.with_params.as_ref());
        assert!(limit_params
            .clone()
            .any(|(sql, _, _)| sql.contains("LIMIT $")));
        assert!(limit_params
            .clone()
            .any(|(sql, _, _)| sql.contains("WHERE") && sql.contains("i > $")));
    }
}
