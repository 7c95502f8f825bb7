//! Merge plans for typical queries (exact shard SQL), refusals, and odd inputs.

mod groups;
mod odd;
mod router;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::plan;
use crate::merge::{Col, Count, MergePlan, Shape, SortKey};
use crate::RouteError;

/// The plan of `sql` (not local), checking its shard SQL prints back to itself.
fn ok(sql: &str) -> MergePlan {
    checked(plan(sql, false), sql)
}

/// The plan of `sql` with groups local to shards.
fn local(sql: &str) -> MergePlan {
    checked(plan(sql, true), sql)
}

fn checked(result: Result<MergePlan, RouteError>, sql: &str) -> MergePlan {
    let plan = result.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let again = Parser::parse_sql(&PostgreSqlDialect {}, &plan.shard_sql)
        .unwrap_or_else(|e| panic!("{}: {e}", plan.shard_sql));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].to_string(), plan.shard_sql);
    plan
}

/// The refusal of `sql` (not local).
fn err(sql: &str) -> RouteError {
    match plan(sql, false) {
        Ok(p) => panic!("{sql}: planned {p:?}"),
        Err(e) => e,
    }
}

/// Asserts `sql` is refused with 0A000 and a message containing `part`.
fn refused(sql: &str, part: &str) {
    let e = err(sql);
    assert_eq!(e.code, "0A000", "{sql}: {e:?}");
    assert!(e.message.contains(part), "{sql}: {}", e.message);
}

fn asc(column: Col) -> SortKey {
    SortKey {
        column,
        descending: false,
        nulls_first: false,
    }
}

fn desc(column: Col) -> SortKey {
    SortKey {
        column,
        descending: true,
        nulls_first: true,
    }
}

fn rows(hidden: usize, distinct: bool) -> Shape {
    Shape::Rows { hidden, distinct }
}

use Col::{End, Start};

#[test]
fn order_by_alias_ordinal_and_hidden_expression() {
    let p =
        ok("SELECT a, b AS x FROM t WHERE c > $1 ORDER BY x DESC, 1, lower(c) LIMIT 10 OFFSET 5");
    assert_eq!(
        p.shard_sql,
        "SELECT a, b AS x, lower(c) AS _sp_o1 FROM t WHERE c > $1 ORDER BY x DESC, 1, lower(c) LIMIT 15"
    );
    assert_eq!(p.shape, rows(1, false));
    assert_eq!(
        p.shard_order,
        vec![desc(Start(1)), asc(Start(0)), asc(Start(2))]
    );
    assert!(p.final_order.is_empty());
    assert!(!p.needs_sort);
    assert_eq!(p.having, None);
    assert_eq!(p.limit, Some(Count::Const(10)));
    assert_eq!(p.offset, Some(Count::Const(5)));
}

#[test]
fn order_by_names_follow_postgres() {
    // A column's own name, a function's name, parenthesized and case-folded expressions.
    let p = ok("SELECT t.a, lower(b), c + 1 FROM t ORDER BY a, LOWER, (C + 1) DESC NULLS LAST");
    assert_eq!(p.shape, rows(0, false));
    let mut last = desc(Start(2));
    last.nulls_first = false;
    assert_eq!(p.shard_order, vec![asc(Start(0)), asc(Start(1)), last]);
    // Quoted names keep their case; an unquoted one folds and does not match "X".
    let p = ok("SELECT a AS \"X\" FROM t ORDER BY \"X\", x NULLS FIRST");
    assert_eq!(
        p.shard_sql,
        "SELECT a AS \"X\", x AS _sp_o1 FROM t ORDER BY \"X\", x NULLS FIRST"
    );
    let mut first = asc(Start(1));
    first.nulls_first = true;
    assert_eq!(p.shard_order, vec![asc(Start(0)), first]);
    // An output name wins over an input column (the shard resolves it the same way).
    let p = ok("SELECT b AS a, a AS b FROM t ORDER BY a, b");
    assert_eq!(p.shard_order, vec![asc(Start(0)), asc(Start(1))]);
    // The same hidden expression twice is one column.
    let p = ok("SELECT a FROM t ORDER BY c, c DESC");
    assert_eq!(
        p.shard_sql,
        "SELECT a, c AS _sp_o1 FROM t ORDER BY c, c DESC"
    );
    assert_eq!(p.shard_order, vec![asc(Start(1)), desc(Start(1))]);
}

#[test]
fn wildcards_count_from_the_end() {
    let p = ok("SELECT * FROM t ORDER BY a");
    assert_eq!(p.shard_sql, "SELECT *, a AS _sp_o1 FROM t ORDER BY a");
    assert_eq!(p.shape, rows(1, false));
    assert_eq!(p.shard_order, vec![asc(End(0))]);

    let p = ok("SELECT *, a, b AS x FROM t ORDER BY x DESC, a, c, 2");
    assert_eq!(
        p.shard_sql,
        "SELECT *, a, b AS x, c AS _sp_o1 FROM t ORDER BY x DESC, a, c, 2"
    );
    assert_eq!(
        p.shard_order,
        vec![desc(End(1)), asc(End(2)), asc(End(0)), asc(Start(1))]
    );

    let p = ok("SELECT a, t.* FROM t ORDER BY a");
    assert_eq!(p.shard_order, vec![asc(Start(0))]);
    assert_eq!(p.shape, rows(0, false));

    // Between two wildcards an item has no known position: it is computed again.
    let p = ok("SELECT *, a, u.* FROM t, u ORDER BY a");
    assert_eq!(
        p.shard_sql,
        "SELECT *, a, u.*, a AS _sp_o1 FROM t, u ORDER BY a"
    );
    assert_eq!(p.shard_order, vec![asc(End(0))]);
}

#[test]
fn ordinals_out_of_range() {
    let e = err("SELECT a, b FROM t ORDER BY 3");
    assert_eq!(e.code, "42P10");
    assert_eq!(e.message, "ORDER BY position 3 is not in select list");
    assert_eq!(err("SELECT a FROM t ORDER BY 0").code, "42P10");
    assert_eq!(err("SELECT a FROM t ORDER BY -1").code, "42P10");
    // With a wildcard the width is unknown: the shard checks.
    assert_eq!(
        ok("SELECT * FROM t ORDER BY 3").shard_order,
        vec![asc(Start(2))]
    );
}

#[test]
fn limits_and_offsets() {
    let p = ok("SELECT a FROM t ORDER BY a LIMIT 5");
    assert_eq!(p.shard_sql, "SELECT a FROM t ORDER BY a LIMIT 5");
    assert_eq!((p.limit, p.offset), (Some(Count::Const(5)), None));

    let p = ok("SELECT a FROM t ORDER BY a OFFSET 3");
    assert_eq!(p.shard_sql, "SELECT a FROM t ORDER BY a");
    assert_eq!((p.limit, p.offset), (None, Some(Count::Const(3))));

    let p = ok("SELECT a FROM t ORDER BY a LIMIT $1");
    assert_eq!(p.shard_sql, "SELECT a FROM t ORDER BY a LIMIT $1");
    assert_eq!(p.limit, Some(Count::Param(0)));

    let p = ok("SELECT a FROM t ORDER BY a LIMIT $2::int OFFSET $1");
    assert_eq!(
        p.shard_sql,
        "SELECT a FROM t ORDER BY a LIMIT ($2::INT)::BIGINT + ($1)::BIGINT"
    );
    assert_eq!(
        (p.limit, p.offset),
        (Some(Count::Param(1)), Some(Count::Param(0)))
    );

    let p = ok("SELECT a FROM t ORDER BY a LIMIT 10 OFFSET $1");
    assert_eq!(
        p.shard_sql,
        "SELECT a FROM t ORDER BY a LIMIT (10)::BIGINT + ($1)::BIGINT"
    );

    let p = ok("SELECT a FROM t ORDER BY a OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY");
    assert_eq!(p.shard_sql, "SELECT a FROM t ORDER BY a LIMIT 5");
    assert_eq!(
        (p.limit, p.offset),
        (Some(Count::Const(3)), Some(Count::Const(2)))
    );

    let p = ok("SELECT a FROM t ORDER BY a FETCH NEXT ROW ONLY");
    assert_eq!(p.limit, Some(Count::Const(1)));

    for sql in [
        "SELECT a FROM t ORDER BY a LIMIT ALL",
        "SELECT a FROM t ORDER BY a LIMIT NULL OFFSET 0",
        "SELECT a FROM t ORDER BY a LIMIT NULL::int OFFSET 7",
    ] {
        let p = ok(sql);
        assert_eq!(p.shard_sql, "SELECT a FROM t ORDER BY a", "{sql}");
        assert_eq!(p.limit, None);
    }
    assert_eq!(
        ok("SELECT a FROM t LIMIT '4' OFFSET 0").limit,
        Some(Count::Const(4))
    );
    assert_eq!(ok("SELECT a FROM t LIMIT 4 OFFSET 0").offset, None);

    let e = err("SELECT a FROM t ORDER BY a LIMIT -1");
    assert_eq!(
        (e.code, e.message.as_str()),
        ("2201W", "LIMIT must not be negative")
    );
    let e = err("SELECT a FROM t ORDER BY a OFFSET -1");
    assert_eq!(
        (e.code, e.message.as_str()),
        ("2201X", "OFFSET must not be negative")
    );
    assert_eq!(
        err("SELECT a FROM t LIMIT 99999999999999999999").code,
        "22003"
    );
    refused("SELECT a FROM t LIMIT 1 + 1", "LIMIT 1 + 1");
}

#[test]
fn distinct_sorts_by_every_column() {
    let p = ok("SELECT DISTINCT a, b, c FROM t ORDER BY b DESC LIMIT 3");
    assert_eq!(
        p.shard_sql,
        "SELECT DISTINCT a, b, c FROM t ORDER BY b DESC, 1, 3 LIMIT 3"
    );
    assert_eq!(p.shape, rows(0, true));
    assert_eq!(
        p.shard_order,
        vec![desc(Start(1)), asc(Start(0)), asc(Start(2))]
    );
    let p = ok("SELECT DISTINCT a, b FROM t");
    assert_eq!(p.shard_sql, "SELECT DISTINCT a, b FROM t ORDER BY 1, 2");
    assert_eq!(p.shard_order, vec![asc(Start(0)), asc(Start(1))]);
    let p = ok("SELECT DISTINCT a AS x, b FROM t ORDER BY 2, x");
    assert_eq!(
        p.shard_sql,
        "SELECT DISTINCT a AS x, b FROM t ORDER BY 2, x"
    );

    refused("SELECT DISTINCT * FROM t", "list the columns");
    refused("SELECT DISTINCT a, t.* FROM t", "list the columns");
    refused(
        "SELECT DISTINCT a FROM t ORDER BY b",
        "must name a select list item",
    );
}

#[test]
fn local_groups_stay_on_the_shards() {
    let p = local(
        "SELECT user_id, count(*) AS n FROM orders GROUP BY user_id HAVING count(*) > 1 \
         ORDER BY n DESC, sum(total) LIMIT 5",
    );
    assert_eq!(
        p.shard_sql,
        "SELECT user_id, count(*) AS n, sum(total) AS _sp_o1 FROM orders GROUP BY user_id \
         HAVING count(*) > 1 ORDER BY n DESC, sum(total) LIMIT 5"
    );
    assert_eq!(p.shape, rows(1, false));
    assert_eq!(p.shard_order, vec![desc(Start(1)), asc(Start(2))]);
    assert_eq!(p.having, None);

    let p = local("SELECT DISTINCT user_id, a FROM t ORDER BY a");
    assert_eq!(p.shard_sql, "SELECT DISTINCT user_id, a FROM t ORDER BY a");
    assert_eq!(p.shape, rows(0, false));

    let p =
        local("SELECT DISTINCT ON (user_id) id FROM orders ORDER BY user_id, created DESC LIMIT 2");
    assert_eq!(
        p.shard_sql,
        "SELECT DISTINCT ON (user_id) id, user_id AS _sp_o1, created AS _sp_o2 FROM orders \
         ORDER BY user_id, created DESC LIMIT 2"
    );
    assert_eq!(p.shard_order, vec![asc(Start(1)), desc(Start(2))]);

    // Without GROUP BY an aggregate is one group over every shard, local or not.
    assert!(matches!(
        local("SELECT count(*) FROM t").shape,
        Shape::Groups { implicit: true, .. }
    ));
}

#[test]
fn clauses_kept_verbatim() {
    let p = ok(
        "WITH r AS (SELECT id FROM users WHERE active) SELECT o.id, o.total FROM orders AS o \
         JOIN r ON r.id = o.user_id WHERE o.total > 10 ORDER BY o.total DESC FOR UPDATE",
    );
    assert_eq!(
        p.shard_sql,
        "WITH r AS (SELECT id FROM users WHERE active) SELECT o.id, o.total FROM orders AS o \
         JOIN r ON r.id = o.user_id WHERE o.total > 10 ORDER BY o.total DESC FOR UPDATE"
    );
    assert_eq!(p.shard_order, vec![desc(Start(1))]);

    let p = ok("(SELECT a FROM t) ORDER BY 1 FETCH FIRST 3 ROWS ONLY");
    assert_eq!(p.shard_sql, "SELECT a FROM t ORDER BY 1 LIMIT 3");

    // A subquery's aggregates are its own.
    let p = ok("SELECT a, (SELECT max(b) FROM r) FROM t ORDER BY a");
    assert_eq!(p.shape, rows(0, false));
}

#[test]
fn unsupported_query_shapes() {
    refused(
        "SELECT a FROM t UNION SELECT a FROM u ORDER BY 1",
        "UNION across shards",
    );
    refused(
        "SELECT a FROM t UNION ALL SELECT a FROM u LIMIT 1",
        "UNION ALL across",
    );
    refused("SELECT a FROM t INTERSECT SELECT a FROM u", "INTERSECT");
    refused("SELECT a FROM t EXCEPT SELECT a FROM u", "EXCEPT");
    refused("VALUES (1), (2) ORDER BY 1", "VALUES");
    refused("SELECT a, row_number() OVER () FROM t", "window functions");
    refused(
        "SELECT a FROM t ORDER BY rank() OVER (ORDER BY b)",
        "window functions",
    );
    refused(
        "SELECT DISTINCT ON (a) a, b FROM t ORDER BY a",
        "DISTINCT ON",
    );
    refused("SELECT a FROM t ORDER BY a USING <", "USING");
    refused("SELECT a FROM t ORDER BY a COLLATE \"C\"", "COLLATE");
    refused(
        "SELECT a FROM t ORDER BY a FETCH FIRST 2 ROWS WITH TIES",
        "WITH TIES",
    );
    refused("SELECT a INTO new_t FROM t ORDER BY a", "SELECT INTO");
    refused("INSERT INTO t VALUES (1)", "only a SELECT");
    refused("SELECT 1; SELECT 2", "several statements");
    refused("SELECT a FROM t ORDER BY (", "cannot read");
    refused("SELECT 'unclosed", "cannot read");
    refused("TABLE t ORDER BY a", "TABLE");
    refused("(SELECT a FROM t LIMIT 1) ORDER BY a", "parenthesized");
}
