//! Grouped merges: partial aggregates, group keys, HAVING, ORDER BY over groups.

use super::{asc, desc, err, ok, refused};
use crate::merge::{
    AggFunc, CmpOp, Col, Count, Filter, FinalColumn, Literal, MergePlan, Operand, Shape,
};

use Col::Start;

fn agg(func: AggFunc, arg: usize) -> FinalColumn {
    FinalColumn::Agg {
        func,
        arg: Start(arg),
        count: None,
    }
}

fn avg(arg: usize, count: usize) -> FinalColumn {
    FinalColumn::Agg {
        func: AggFunc::Avg,
        arg: Start(arg),
        count: Some(Start(count)),
    }
}

fn shard(col: usize) -> FinalColumn {
    FinalColumn::Shard(Start(col))
}

fn groups(keys: &[usize], columns: Vec<FinalColumn>, visible: usize) -> Shape {
    Shape::Groups {
        keys: keys.iter().map(|&k| Start(k)).collect(),
        columns,
        visible,
        implicit: keys.is_empty(),
    }
}

fn cmp(op: CmpOp, column: usize, literal: Literal) -> Filter {
    Filter::Cmp {
        op,
        left: Operand::Column(column),
        right: Operand::Literal(literal),
    }
}

fn number(n: &str) -> Literal {
    Literal::Number(n.to_owned())
}

fn having(p: &MergePlan) -> &Filter {
    p.having.as_ref().unwrap()
}

#[test]
fn implicit_group_with_every_aggregate() {
    let p = ok(
        "SELECT count(*), count(x) AS n, sum(x), min(DISTINCT x), max(x), avg(x), \
         bool_and(f), bool_or(f), every(f) AS \"All\" FROM t WHERE y = $1 LIMIT 1",
    );
    assert_eq!(
        p.shard_sql,
        "SELECT count(*) AS \"count\", count(x) AS n, sum(x) AS \"sum\", min(x) AS \"min\", \
         max(x) AS \"max\", sum(x) AS \"avg\", bool_and(f) AS \"bool_and\", \
         bool_or(f) AS \"bool_or\", bool_and(f) AS \"All\", count(x) AS _sp_c1 FROM t WHERE y = $1"
    );
    assert_eq!(
        p.shape,
        groups(
            &[],
            vec![
                agg(AggFunc::Count, 0),
                agg(AggFunc::Count, 1),
                agg(AggFunc::Sum, 2),
                agg(AggFunc::Min, 3),
                agg(AggFunc::Max, 4),
                avg(5, 9),
                agg(AggFunc::BoolAnd, 6),
                agg(AggFunc::BoolOr, 7),
                agg(AggFunc::BoolAnd, 8),
            ],
            9
        )
    );
    assert!(p.shard_order.is_empty() && p.final_order.is_empty() && !p.needs_sort);
    // LIMIT is never pushed down to grouped shard queries.
    assert_eq!(p.limit, Some(Count::Const(1)));

    let p = ok("SELECT every(f), pg_catalog.avg(x) FILTER (WHERE x > 0) FROM t");
    assert_eq!(
        p.shard_sql,
        "SELECT bool_and(f) AS \"every\", pg_catalog.sum(x) FILTER (WHERE x > 0) AS \"avg\", \
         pg_catalog.count(x) FILTER (WHERE x > 0) AS _sp_c1 FROM t"
    );
    // Constants next to aggregates pass through.
    let p = ok("SELECT 'x' AS label, COUNT(*) FROM t");
    assert_eq!(
        p.shard_sql,
        "SELECT 'x' AS label, COUNT(*) AS \"count\" FROM t"
    );
    assert_eq!(
        p.shape,
        groups(&[], vec![shard(0), agg(AggFunc::Count, 1)], 2)
    );
}

#[test]
fn group_keys_by_ordinal_alias_and_hidden() {
    let p = ok("SELECT a, count(*) FROM t GROUP BY 1");
    assert_eq!(
        p.shard_sql,
        "SELECT a, count(*) AS \"count\" FROM t GROUP BY a ORDER BY 1 ASC NULLS LAST"
    );
    assert_eq!(
        p.shape,
        groups(&[0], vec![shard(0), agg(AggFunc::Count, 1)], 2)
    );
    assert_eq!(p.shard_order, vec![asc(Start(0))]);

    let p = ok("SELECT date_trunc('day', ts) AS day, sum(x) FROM t GROUP BY day");
    assert_eq!(
        p.shard_sql,
        "SELECT date_trunc('day', ts) AS day, sum(x) AS \"sum\" FROM t \
         GROUP BY date_trunc('day', ts) ORDER BY 1 ASC NULLS LAST"
    );

    let p = ok("SELECT sum(x) AS s FROM t GROUP BY a, b, A");
    assert_eq!(
        p.shard_sql,
        "SELECT sum(x) AS s, a AS _sp_g1, b AS _sp_g2 FROM t GROUP BY a, b \
         ORDER BY 2 ASC NULLS LAST, 3 ASC NULLS LAST"
    );
    assert_eq!(p.shape, groups(&[1, 2], vec![agg(AggFunc::Sum, 0)], 1));

    // A selected input column named like an alias is the column, as in PostgreSQL.
    let p = ok("SELECT b AS a, a, count(*) FROM t GROUP BY a, b");
    assert_eq!(
        p.shape,
        groups(&[1, 0], vec![shard(0), shard(1), agg(AggFunc::Count, 2)], 3)
    );

    // Parenthesized lists group by their elements; `()` is the one group of all rows.
    let p = ok("SELECT a, count(*) FROM t GROUP BY (a, b), ()");
    assert_eq!(
        p.shard_sql,
        "SELECT a, count(*) AS \"count\", b AS _sp_g1 FROM t GROUP BY a, b \
         ORDER BY 1 ASC NULLS LAST, 3 ASC NULLS LAST"
    );
    let p = ok("SELECT count(*) FROM t GROUP BY ()");
    assert_eq!(p.shard_sql, "SELECT count(*) AS \"count\" FROM t");
    assert_eq!(p.shape, groups(&[], vec![agg(AggFunc::Count, 0)], 1));

    let e = err("SELECT a, count(*) FROM t GROUP BY 2");
    assert_eq!(e.code, "42803");
    assert_eq!(err("SELECT a, count(*) FROM t GROUP BY 3").code, "42P10");
}

#[test]
fn having_over_aggregates_not_selected() {
    let p = ok(
        "SELECT a, avg(x) FROM t GROUP BY a HAVING sum(y) > 10 AND (count(*) <> $1 OR \
         max(x) IS NULL) AND NOT bool_or(f) AND avg(x) NOT BETWEEN -1.5 AND '5'::int",
    );
    assert_eq!(
        p.shard_sql,
        "SELECT a, sum(x) AS \"avg\", count(x) AS _sp_c1, sum(y) AS _sp_a1, \
         count(*) AS _sp_a2, max(x) AS _sp_a3, bool_or(f) AS _sp_a4 FROM t GROUP BY a \
         ORDER BY 1 ASC NULLS LAST"
    );
    assert_eq!(
        p.shape,
        groups(
            &[0],
            vec![
                shard(0),
                avg(1, 2),
                agg(AggFunc::Sum, 3),
                agg(AggFunc::Count, 4),
                agg(AggFunc::Max, 5),
                agg(AggFunc::BoolOr, 6),
            ],
            2
        )
    );
    let expected = Filter::And(vec![
        cmp(CmpOp::Gt, 2, number("10")),
        Filter::Or(vec![
            Filter::Cmp {
                op: CmpOp::NotEq,
                left: Operand::Column(3),
                right: Operand::Param(0),
            },
            Filter::IsNull {
                operand: Operand::Column(4),
                negated: false,
            },
        ]),
        Filter::Not(Box::new(cmp(CmpOp::Eq, 5, Literal::Bool(true)))),
        Filter::Not(Box::new(Filter::And(vec![
            cmp(CmpOp::GtEq, 1, number("-1.5")),
            cmp(CmpOp::LtEq, 1, Literal::Text("5".into())),
        ]))),
    ]);
    assert_eq!(having(&p), &expected);
}

#[test]
fn having_over_group_keys_and_constants() {
    let p = ok(
        "SELECT count(*) FROM t GROUP BY a, b HAVING b IS NOT NULL AND a = 'x' AND \
         count(*) >= 2 AND TRUE AND a <> NULL AND max(d) < DATE '2020-01-01'",
    );
    assert_eq!(
        p.shard_sql,
        "SELECT count(*) AS \"count\", a AS _sp_g1, b AS _sp_g2, max(d) AS _sp_a1 FROM t \
         GROUP BY a, b ORDER BY 2 ASC NULLS LAST, 3 ASC NULLS LAST"
    );
    assert_eq!(
        p.shape,
        groups(
            &[1, 2],
            vec![
                agg(AggFunc::Count, 0),
                shard(2),
                shard(1),
                agg(AggFunc::Max, 3)
            ],
            1
        )
    );
    let expected = Filter::And(vec![
        Filter::IsNull {
            operand: Operand::Column(1),
            negated: true,
        },
        cmp(CmpOp::Eq, 2, Literal::Text("x".into())),
        cmp(CmpOp::GtEq, 0, number("2")),
        Filter::Cmp {
            op: CmpOp::Eq,
            left: Operand::Literal(Literal::Bool(true)),
            right: Operand::Literal(Literal::Bool(true)),
        },
        cmp(CmpOp::NotEq, 2, Literal::Null),
        cmp(CmpOp::Lt, 3, Literal::Text("2020-01-01".into())),
    ]);
    assert_eq!(having(&p), &expected);

    // A per-group expression the shards compute (they check it depends on the keys).
    let p = ok("SELECT a, count(*) FROM t GROUP BY a HAVING a % 2 = 0 OR a LIKE 'x%'");
    assert_eq!(
        p.shard_sql,
        "SELECT a, count(*) AS \"count\", a % 2 AS _sp_e1, a LIKE 'x%' AS _sp_e2 FROM t \
         GROUP BY a ORDER BY 1 ASC NULLS LAST"
    );
    let expected = Filter::Or(vec![
        cmp(CmpOp::Eq, 2, number("0")),
        cmp(CmpOp::Eq, 3, Literal::Bool(true)),
    ]);
    assert_eq!(having(&p), &expected);

    let p = ok("SELECT a FROM t GROUP BY a HAVING count(*) NOT IN (1, $1)");
    let expected = Filter::Not(Box::new(Filter::Or(vec![
        cmp(CmpOp::Eq, 1, number("1")),
        Filter::Cmp {
            op: CmpOp::Eq,
            left: Operand::Column(1),
            right: Operand::Param(0),
        },
    ])));
    assert_eq!(having(&p), &expected);

    // A HAVING without GROUP BY is one group.
    let p = ok("SELECT 1 FROM t HAVING count(*) > 0");
    assert!(matches!(p.shape, Shape::Groups { implicit: true, .. }));
}

#[test]
fn order_by_aggregate_needs_a_final_sort() {
    let p = ok("SELECT a, count(*) AS n FROM t GROUP BY a ORDER BY n DESC, sum(x) LIMIT 10");
    assert_eq!(
        p.shard_sql,
        "SELECT a, count(*) AS n, sum(x) AS _sp_a1 FROM t GROUP BY a ORDER BY 1 ASC NULLS LAST"
    );
    assert_eq!(
        p.shape,
        groups(
            &[0],
            vec![shard(0), agg(AggFunc::Count, 1), agg(AggFunc::Sum, 2)],
            2
        )
    );
    assert_eq!(p.shard_order, vec![asc(Start(0))]);
    assert_eq!(p.final_order, vec![desc(Start(1)), asc(Start(2))]);
    assert!(p.needs_sort);
    assert_eq!(p.limit, Some(Count::Const(10)));

    // By the aggregate's output name, and by the same call.
    for sql in [
        "SELECT a, count(*) FROM t GROUP BY a ORDER BY count DESC",
        "SELECT a, count(*) FROM t GROUP BY a ORDER BY COUNT(*) DESC",
        "SELECT a, count(*) FROM t GROUP BY a ORDER BY 2 DESC",
    ] {
        let p = ok(sql);
        assert_eq!(p.final_order, vec![desc(Start(1))], "{sql}");
        assert!(p.needs_sort, "{sql}");
    }
    // min(DISTINCT x) is min(x).
    let p = ok("SELECT a, min(x) FROM t GROUP BY a ORDER BY min(DISTINCT x)");
    assert_eq!(p.final_order, vec![asc(Start(1))]);
}

#[test]
fn order_by_group_keys_needs_no_sort() {
    let p = ok("SELECT a, b, count(*) FROM t GROUP BY a, b ORDER BY b DESC");
    assert_eq!(
        p.shard_sql,
        "SELECT a, b, count(*) AS \"count\" FROM t GROUP BY a, b \
         ORDER BY 2 DESC NULLS FIRST, 1 ASC NULLS LAST"
    );
    assert_eq!(p.shard_order, vec![desc(Start(1)), asc(Start(0))]);
    assert_eq!(p.final_order, vec![desc(Start(1))]);
    assert!(!p.needs_sort);

    // A key that is not selected gets a hidden final column.
    let p = ok("SELECT count(*) FROM t GROUP BY a ORDER BY a NULLS FIRST");
    assert_eq!(
        p.shard_sql,
        "SELECT count(*) AS \"count\", a AS _sp_g1 FROM t GROUP BY a ORDER BY 2 ASC NULLS FIRST"
    );
    assert_eq!(
        p.shape,
        groups(&[1], vec![agg(AggFunc::Count, 0), shard(1)], 1)
    );
    let mut first = asc(Start(1));
    first.nulls_first = true;
    assert_eq!(p.shard_order, vec![first]);
    assert!(!p.needs_sort);

    // A per-group expression that is not a key: the shards compute it, the proxy sorts.
    let p = ok("SELECT a, count(*) FROM t GROUP BY a ORDER BY a + 1 DESC");
    assert_eq!(
        p.shard_sql,
        "SELECT a, count(*) AS \"count\", a + 1 AS _sp_e1 FROM t GROUP BY a \
         ORDER BY 1 ASC NULLS LAST"
    );
    assert_eq!(p.final_order, vec![desc(Start(2))]);
    assert!(p.needs_sort);
}

#[test]
fn aliases_keep_their_quoting() {
    let p =
        ok("SELECT a AS \"Key\", count(*) AS \"Total\", avg(x) AS Mean FROM t GROUP BY \"Key\"");
    assert_eq!(
        p.shard_sql,
        "SELECT a AS \"Key\", count(*) AS \"Total\", sum(x) AS Mean, count(x) AS _sp_c1 FROM t \
         GROUP BY a ORDER BY 1 ASC NULLS LAST"
    );
}

#[test]
fn grouped_refusals() {
    refused("SELECT *, count(*) FROM t GROUP BY a", "list the columns");
    refused(
        "SELECT DISTINCT a, count(*) FROM t GROUP BY a",
        "SELECT DISTINCT",
    );
    refused("SELECT a, count(*) FROM t GROUP BY ROLLUP (a)", "ROLLUP");
    refused("SELECT a, count(*) FROM t GROUP BY CUBE (a)", "CUBE");
    refused(
        "SELECT a, count(*) FROM t GROUP BY GROUPING SETS ((a), ())",
        "GROUPING SETS",
    );
    refused("SELECT a FROM t GROUP BY ALL", "GROUP BY ALL");
    refused("SELECT count(DISTINCT x) FROM t", "count(DISTINCT ...)");
    refused("SELECT sum(DISTINCT x) FROM t", "sum(DISTINCT ...)");
    refused("SELECT avg(DISTINCT x) FROM t", "avg(DISTINCT ...)");
    refused("SELECT string_agg(a, ',') FROM t", "string_agg()");
    refused("SELECT array_agg(a) FROM t GROUP BY b", "array_agg()");
    refused("SELECT stddev(a) FROM t", "stddev()");
    refused("SELECT json_agg(a) FROM t", "json_agg()");
    refused(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t",
        "percentile_cont()",
    );
    refused("SELECT max(a ORDER BY b) FROM t", "ORDER BY inside max");
    for sql in [
        "SELECT sum(x) + 1 FROM t",
        "SELECT round(avg(x), 2) FROM t",
        "SELECT coalesce(sum(x), 0) FROM t GROUP BY a",
        "SELECT a, count(*) > 1 FROM t GROUP BY a",
        "SELECT a FROM t GROUP BY a ORDER BY count(*) + 1",
        "SELECT a FROM t GROUP BY a HAVING count(*) IS DISTINCT FROM 1",
    ] {
        refused(sql, "select the aggregate itself");
    }
    refused(
        "SELECT a FROM t GROUP BY a HAVING string_agg(b, '') = 'x'",
        "string_agg()",
    );
    let e = err("SELECT a FROM t GROUP BY a HAVING count(*)");
    assert_eq!(e.code, "42804");
    refused(
        "SELECT a, sum(x) OVER () FROM t GROUP BY a",
        "window functions",
    );
}
