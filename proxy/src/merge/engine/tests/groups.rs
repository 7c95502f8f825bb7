//! Grouped plans: aggregates finished from partials, HAVING, the final sort, implicit groups.

use shard_router::merge::{AggFunc, CmpOp, Filter, FinalColumn, Literal, Operand};

use super::*;

/// A grouped plan ordered by `keys` ascending.
fn groups_plan(keys: Vec<Col>, columns: Vec<FinalColumn>, visible: usize) -> MergePlan {
    let implicit = keys.is_empty();
    MergePlan {
        shard_sql: String::new(),
        shard_params: Vec::new(),
        shard_order: keys.iter().map(|&c| key(c, false, false)).collect(),
        shape: Shape::Groups {
            keys,
            columns,
            visible,
            implicit,
        },
        final_order: Vec::new(),
        needs_sort: false,
        having: None,
        limit: None,
        offset: None,
    }
}

fn agg(func: AggFunc, arg: usize) -> FinalColumn {
    FinalColumn::Agg {
        func,
        arg: Col::Start(arg),
        count: None,
    }
}

/// `left op number`.
fn cmp(op: CmpOp, column: usize, number: &str) -> Filter {
    Filter::Cmp {
        op,
        left: Operand::Column(column),
        right: Operand::Literal(Literal::Number(number.into())),
    }
}

/// SELECT g, count(*), sum(x), avg(x), min(s), max(s) ... GROUP BY g: shard columns are
/// g, count, sum, avg's sum, avg's count, min, max.
const SHARD_COLS: [(&str, u32, i16); 7] = [
    ("g", INT4, 0),
    ("count", INT8, 0),
    ("sum", INT8, 0),
    ("avg", INT8, 0),
    ("avg_count", INT8, 0),
    ("min", TEXT, 0),
    ("max", TEXT, 0),
];

fn full_plan() -> MergePlan {
    let columns = vec![
        FinalColumn::Shard(Col::Start(0)),
        agg(AggFunc::Count, 1),
        agg(AggFunc::Sum, 2),
        FinalColumn::Agg {
            func: AggFunc::Avg,
            arg: Col::Start(3),
            count: Some(Col::Start(4)),
        },
        agg(AggFunc::Min, 5),
        agg(AggFunc::Max, 6),
    ];
    groups_plan(vec![Col::Start(0)], columns, 6)
}

fn full_streams() -> Vec<Vec<Row>> {
    vec![
        vec![
            tr(&["1", "2", "10", "10", "2", "b", "d"]),
            tr(&["3", "1", "5", "5", "1", "x", "x"]),
        ],
        vec![
            tr(&["1", "1", "1", "1", "1", "a", "c"]),
            tr(&["2", "4", "-4", "-4", "4", "m", "n"]),
        ],
        vec![tr(&["3", "2", "6", "6", "2", "a", "z"])],
    ]
}

fn g1() -> Row {
    tr(&["1", "3", "11", "3.6666666666666667", "a", "d"])
}
fn g2() -> Row {
    tr(&["2", "4", "-4", "-1.00000000000000000000", "m", "n"])
}
fn g3() -> Row {
    tr(&["3", "3", "11", "3.6666666666666667", "a", "z"])
}

#[test]
fn groups_combine_partials() {
    let got = run_text(input(full_plan(), 3), &SHARD_COLS, &full_streams()).unwrap();
    assert_eq!(got.rows, vec![g1(), g2(), g3()]);
}

#[test]
fn having_and_final_sort() {
    // HAVING sum(x) > 0 ORDER BY count(*) DESC, g
    let mut plan = full_plan();
    plan.having = Some(cmp(CmpOp::Gt, 2, "0"));
    plan.final_order = vec![key(Col::Start(1), true, true), asc(0)];
    plan.needs_sort = true;
    let got = run_text(input(plan.clone(), 3), &SHARD_COLS, &full_streams()).unwrap();
    assert_eq!(got.rows, vec![g1(), g3()]);

    plan.having = None;
    let got = run_text(input(plan.clone(), 3), &SHARD_COLS, &full_streams()).unwrap();
    assert_eq!(got.rows, vec![g2(), g1(), g3()]);

    // OFFSET/LIMIT apply after the sort; portions too.
    let mut inp = input(plan, 3);
    inp.offset = 1;
    inp.limit = Some(1);
    let got = run_text(inp.clone(), &SHARD_COLS, &full_streams()).unwrap();
    assert_eq!(got.rows, vec![g1()]);
    let descs: Vec<Vec<u8>> = (0..3).map(|s| rd(&SHARD_COLS, s)).collect();
    inp.offset = 0;
    inp.limit = None;
    let got = drive(&mut Merge::new(inp), &descs, &full_streams(), Some(1)).unwrap();
    assert_eq!(got.rows, vec![g2(), g1(), g3()]);
}

#[test]
fn hidden_aggregate_filters_but_is_not_shown() {
    // SELECT g, count(*) ... HAVING sum(x) < 10: sum is a hidden final column.
    let columns = vec![
        FinalColumn::Shard(Col::Start(0)),
        agg(AggFunc::Count, 1),
        agg(AggFunc::Sum, 2),
    ];
    let mut plan = groups_plan(vec![Col::Start(0)], columns, 2);
    plan.having = Some(cmp(CmpOp::Lt, 2, "10"));
    let got = run_text(input(plan, 3), &SHARD_COLS[..3], &full_streams_narrow()).unwrap();
    assert_eq!(got.rows, vec![tr(&["2", "4"])]);
}

fn full_streams_narrow() -> Vec<Vec<Row>> {
    full_streams()
        .into_iter()
        .map(|s| s.into_iter().map(|r| r[..3].to_vec()).collect())
        .collect()
}

#[test]
fn limit_stops_grouping_early() {
    let mut inp = input(full_plan(), 3);
    inp.limit = Some(1);
    let got = run_text(inp, &SHARD_COLS, &full_streams()).unwrap();
    assert_eq!(got.rows, vec![g1()]);
}

#[test]
fn implicit_group_over_no_rows_is_one_row() {
    // SELECT count(*), sum(x), max(s) over nothing: 0, NULL, NULL.
    let columns = vec![
        agg(AggFunc::Count, 0),
        agg(AggFunc::Sum, 1),
        agg(AggFunc::Max, 2),
    ];
    let cols = [("count", INT8, 0), ("sum", INT8, 0), ("max", TEXT, 0)];
    let plan = groups_plan(vec![], columns, 3);
    let got = run_text(input(plan.clone(), 2), &cols, &[vec![], vec![]]).unwrap();
    assert_eq!(got.rows, vec![tr(&["0", "NULL", "NULL"])]);

    // With rows (each shard's one partial row), still one group.
    let streams = vec![
        vec![tr(&["2", "NULL", "b"])],
        vec![tr(&["0", "NULL", "NULL"])],
        vec![tr(&["5", "7", "a"])],
    ];
    let got = run_text(input(plan.clone(), 3), &cols, &streams).unwrap();
    assert_eq!(got.rows, vec![tr(&["7", "7", "b"])]);

    // OFFSET 1 skips the only row; HAVING false drops it.
    let mut inp = input(plan.clone(), 2);
    inp.offset = 1;
    assert!(run_text(inp, &cols, &[vec![], vec![]])
        .unwrap()
        .rows
        .is_empty());
    let mut plan = plan;
    plan.having = Some(cmp(CmpOp::Gt, 0, "0"));
    assert!(run_text(input(plan, 2), &cols, &[vec![], vec![]])
        .unwrap()
        .rows
        .is_empty());
}

#[test]
fn bool_aggregates() {
    let columns = vec![agg(AggFunc::BoolAnd, 0), agg(AggFunc::BoolOr, 1)];
    let cols = [("bool_and", BOOL, 0), ("bool_or", BOOL, 0)];
    let streams = vec![vec![tr(&["t", "f"])], vec![tr(&["f", "NULL"])]];
    let got = run_text(input(groups_plan(vec![], columns, 2), 2), &cols, &streams).unwrap();
    assert_eq!(got.rows, vec![tr(&["f", "f"])]);
}

#[test]
fn binary_client_formats_and_row_description() {
    let plan = full_plan();
    // All binary: g and min/max partials binary, every other partial text.
    let formats = Merge::shard_result_formats(&plan, &[1]);
    assert_eq!(formats, vec![1, 0, 0, 0, 0, 1, 1]);
    // Text everywhere: no codes at all.
    assert_eq!(Merge::shard_result_formats(&plan, &[]), Vec::<i16>::new());
    assert_eq!(
        Merge::shard_result_formats(&plan, &[0, 1, 0, 0, 0, 1]),
        vec![0, 0, 0, 0, 0, 0, 1]
    );

    let cols: Vec<(&str, u32, i16)> = SHARD_COLS
        .iter()
        .zip(&formats)
        .map(|(&(n, o, _), &f)| (n, o, f))
        .collect();
    let b4 = |v: i32| Some(v.to_be_bytes().to_vec());
    let b8 = |v: i64| Some(v.to_be_bytes().to_vec());
    let streams = vec![
        vec![vec![
            b4(1),
            t("2"),
            t("10"),
            t("10"),
            t("2"),
            t("b"),
            t("d"),
        ]],
        vec![vec![b4(1), t("1"), t("1"), t("1"), t("1"), t("a"), t("c")]],
    ];
    let mut inp = input(plan, 2);
    inp.client_formats = vec![1];
    let descs: Vec<Vec<u8>> = (0..2).map(|s| rd(&cols, s)).collect();
    let mut merge = Merge::new(inp);
    let got = drive(&mut merge, &descs, &streams, None).unwrap();
    assert_eq!(got.rows.len(), 1);
    let row = &got.rows[0];
    assert_eq!(row[0], b4(1));
    assert_eq!(row[1], b8(3));
    assert_eq!(row[2], b8(11));
    assert_eq!(row[4], t("a"));
    assert_eq!(row[5], t("d"));

    // The client's RowDescription: g as the shard described it, aggregates with their output
    // types, no table, typmod -1 and the client's format.
    let mut out = BytesMut::new();
    merge.client_row_description(&mut out).unwrap();
    let mut want_body = Vec::new();
    want_body.extend(6i16.to_be_bytes());
    let g = rd(&cols[..1], 0);
    want_body.extend(&g[2..]);
    for (name, oid, typlen) in [
        ("count", INT8, 8i16),
        ("sum", INT8, 8),
        ("avg", NUMERIC, -1),
        ("min", TEXT, -1),
        ("max", TEXT, -1),
    ] {
        want_body.extend(name.as_bytes());
        want_body.push(0);
        want_body.extend(0u32.to_be_bytes());
        want_body.extend(0i16.to_be_bytes());
        want_body.extend(oid.to_be_bytes());
        want_body.extend(typlen.to_be_bytes());
        want_body.extend((-1i32).to_be_bytes());
        want_body.extend(1i16.to_be_bytes());
    }
    let mut want = vec![b'T'];
    want.extend((want_body.len() as i32 + 4).to_be_bytes());
    want.extend(want_body);
    assert_eq!(&out[..], &want[..]);
}

#[test]
fn min_max_partials_must_arrive_in_the_client_format() {
    let mut inp = input(full_plan(), 1);
    inp.client_formats = vec![1];
    let err = Merge::new(inp)
        .row_description(0, &rd(&SHARD_COLS, 1))
        .unwrap_err();
    assert_eq!(err.sqlstate(), "XX000");
}

#[test]
fn group_keys_must_be_comparable() {
    let plan = groups_plan(vec![Col::Start(0)], vec![agg(AggFunc::Count, 1)], 1);
    let err = Merge::new(input(plan, 1))
        .row_description(0, &rd(&[("i", INTERVAL, 0), ("count", INT8, 0)], 1))
        .unwrap_err();
    assert_eq!(err.sqlstate(), "0A000");
}
