//! Engine tests: hand-built RowDescription/DataRow bodies fed the way the session feeds them.

mod groups;
mod sorted_union;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use shard_router::merge::{Col, MergePlan, Shape, SortKey};

use super::*;

pub(super) const BOOL: u32 = 16;
pub(super) const INT8: u32 = 20;
pub(super) const INT4: u32 = 23;
pub(super) const TEXT: u32 = 25;
pub(super) const NUMERIC: u32 = 1700;
pub(super) const INTERVAL: u32 = 1186;

/// A row as the tests see it: field values, None = NULL.
pub(super) type Row = Vec<Option<Vec<u8>>>;

/// A RowDescription body; `table` varies per shard in real life (and must be ignored).
pub(super) fn rd(cols: &[(&str, u32, i16)], table: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend((cols.len() as i16).to_be_bytes());
    for (i, (name, oid, format)) in cols.iter().enumerate() {
        b.extend(name.as_bytes());
        b.push(0);
        b.extend(table.to_be_bytes());
        b.extend((i as i16 + 1).to_be_bytes());
        b.extend(oid.to_be_bytes());
        let typlen: i16 = match *oid {
            INT4 => 4,
            INT8 => 8,
            _ => -1,
        };
        b.extend(typlen.to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.extend(format.to_be_bytes());
    }
    b
}

/// A DataRow body.
pub(super) fn dr(row: &Row) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend((row.len() as i16).to_be_bytes());
    for v in row {
        match v {
            Some(v) => {
                b.extend((v.len() as i32).to_be_bytes());
                b.extend(v);
            }
            None => b.extend((-1i32).to_be_bytes()),
        }
    }
    b
}

/// A text value.
pub(super) fn t(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

/// A row of text values ("NULL" = NULL).
pub(super) fn tr(vals: &[&str]) -> Row {
    vals.iter()
        .map(|v| if *v == "NULL" { None } else { t(v) })
        .collect()
}

/// One sort key.
pub(super) fn key(col: Col, descending: bool, nulls_first: bool) -> SortKey {
    SortKey {
        column: col,
        descending,
        nulls_first,
    }
}

/// An ASC key on shard column `i`.
pub(super) fn asc(i: usize) -> SortKey {
    key(Col::Start(i), false, false)
}

/// An ungrouped plan.
pub(super) fn rows_plan(order: Vec<SortKey>, hidden: usize, distinct: bool) -> MergePlan {
    MergePlan {
        shard_sql: String::new(),
        shard_params: Vec::new(),
        shape: Shape::Rows { hidden, distinct },
        shard_order: order,
        final_order: Vec::new(),
        needs_sort: false,
        having: None,
        limit: None,
        offset: None,
    }
}

/// Merge input for `plan` over `streams` streams.
pub(super) fn input(plan: MergePlan, streams: usize) -> MergeInput {
    MergeInput {
        plan: Arc::new(plan),
        streams,
        limit: None,
        offset: 0,
        params: Vec::new(),
        client_formats: Vec::new(),
    }
}

/// What a driven merge produced.
#[derive(Debug)]
pub(super) struct Outcome {
    pub rows: Vec<Row>,
    /// Messages (rows and ends) the merge asked for, per stream.
    pub read: Vec<usize>,
}

/// Splits DataRow messages back into rows.
pub(super) fn parse_rows(mut out: BytesMut) -> Vec<Row> {
    let mut rows = Vec::new();
    while out.has_remaining() {
        assert_eq!(out.get_u8(), b'D');
        let len = out.get_i32() as usize;
        let mut body = out.split_to(len - 4);
        let n = body.get_i16();
        let mut row = Vec::new();
        for _ in 0..n {
            let l = body.get_i32();
            if l < 0 {
                row.push(None);
            } else {
                row.push(Some(body.split_to(l as usize).to_vec()));
            }
        }
        assert!(body.is_empty());
        rows.push(row);
    }
    rows
}

/// Runs a merge the way the session does: emit, then read what `wants` names, until done.
pub(super) fn drive(
    merge: &mut Merge,
    descs: &[Vec<u8>],
    streams: &[Vec<Row>],
    max_rows: Option<u64>,
) -> Result<Outcome, MergeError> {
    let mut queues: Vec<VecDeque<&Row>> = streams.iter().map(|s| s.iter().collect()).collect();
    let mut described = vec![false; streams.len()];
    let mut ended = vec![false; streams.len()];
    let mut read = vec![0; streams.len()];
    let mut out = BytesMut::new();
    loop {
        let before = out.len();
        let n = merge.emit(&mut out, max_rows)?;
        if let Some(max) = max_rows {
            assert!(n <= max, "emitted {n} rows with max_rows {max}");
        }
        match merge.wants() {
            Some(s) if !described[s] => {
                merge.row_description(s, &descs[s])?;
                described[s] = true;
            }
            Some(s) => {
                assert!(!ended[s], "asked for stream {s} after its end");
                read[s] += 1;
                match queues[s].pop_front() {
                    Some(row) => merge.data_row(s, &dr(row))?,
                    None => {
                        ended[s] = true;
                        merge.end(s)?;
                    }
                }
            }
            None if merge.done() => break,
            None => {
                // Only a full max_rows portion may leave rows ready without asking for input.
                assert!(max_rows == Some(n) && out.len() > before, "merge stuck");
            }
        }
    }
    assert_eq!(merge.wants(), None);
    let mut extra = BytesMut::new();
    assert_eq!(merge.emit(&mut extra, None)?, 0);
    let rows = parse_rows(out);
    assert_eq!(merge.rows_sent(), rows.len() as u64);
    Ok(Outcome { rows, read })
}

/// Drives a text-only merge whose streams all have `cols`.
pub(super) fn run_text(
    input: MergeInput,
    cols: &[(&str, u32, i16)],
    streams: &[Vec<Row>],
) -> Result<Outcome, MergeError> {
    let descs: Vec<Vec<u8>> = (0..streams.len())
        .map(|s| rd(cols, 1000 + s as u32))
        .collect();
    drive(&mut Merge::new(input), &descs, streams, None)
}

const AB: [(&str, u32, i16); 2] = [("a", INT4, 0), ("b", TEXT, 0)];

#[test]
fn merges_ascending_streams_in_order() {
    let streams = vec![
        vec![tr(&["1", "s0"]), tr(&["4", "s0"]), tr(&["9", "s0"])],
        vec![tr(&["2", "s1"]), tr(&["3", "s1"]), tr(&["10", "s1"])],
        vec![],
        vec![tr(&["-5", "s3"]), tr(&["4", "s3"])],
    ];
    let got = run_text(input(rows_plan(vec![asc(0)], 0, false), 4), &AB, &streams).unwrap();
    let keys: Vec<&str> = got
        .rows
        .iter()
        .map(|r| std::str::from_utf8(r[0].as_deref().unwrap()).unwrap())
        .collect();
    // Numeric order (not text order: "10" after "9"); the tie at 4 goes to the lower stream.
    assert_eq!(keys, ["-5", "1", "2", "3", "4", "4", "9", "10"]);
    assert_eq!(got.rows[4], tr(&["4", "s0"]));
    assert_eq!(got.rows[5], tr(&["4", "s3"]));
}

#[test]
fn desc_nulls_and_multiple_keys() {
    // ORDER BY a DESC NULLS FIRST, b ASC NULLS LAST
    let order = vec![
        key(Col::Start(0), true, true),
        key(Col::Start(1), false, false),
    ];
    let streams = vec![
        vec![
            tr(&["NULL", "b"]),
            tr(&["5", "a"]),
            tr(&["5", "NULL"]),
            tr(&["1", "z"]),
        ],
        vec![tr(&["NULL", "a"]), tr(&["5", "b"]), tr(&["2", "a"])],
    ];
    let got = run_text(input(rows_plan(order, 0, false), 2), &AB, &streams).unwrap();
    let want = vec![
        tr(&["NULL", "a"]),
        tr(&["NULL", "b"]),
        tr(&["5", "a"]),
        tr(&["5", "b"]),
        tr(&["5", "NULL"]),
        tr(&["2", "a"]),
        tr(&["1", "z"]),
    ];
    assert_eq!(got.rows, want);

    // ORDER BY a ASC NULLS FIRST, b DESC NULLS LAST
    let order = vec![
        key(Col::Start(0), false, true),
        key(Col::Start(1), true, false),
    ];
    let streams = vec![
        vec![tr(&["NULL", "a"]), tr(&["3", "b"]), tr(&["3", "NULL"])],
        vec![tr(&["NULL", "NULL"]), tr(&["3", "c"]), tr(&["4", "a"])],
    ];
    let got = run_text(input(rows_plan(order, 0, false), 2), &AB, &streams).unwrap();
    let want = vec![
        tr(&["NULL", "a"]),
        tr(&["NULL", "NULL"]),
        tr(&["3", "c"]),
        tr(&["3", "b"]),
        tr(&["3", "NULL"]),
        tr(&["4", "a"]),
    ];
    assert_eq!(got.rows, want);
}

#[test]
fn binary_int8_and_text_numeric_keys() {
    let cols = [("k", INT8, 1), ("n", NUMERIC, 0)];
    let b8 = |v: i64| Some(v.to_be_bytes().to_vec());
    let streams = vec![
        vec![vec![b8(-3), t("1.50")], vec![b8(7), t("0")]],
        vec![
            vec![b8(-3), t("2")],
            vec![b8(-3), t("1.5")],
            vec![b8(300), t("NaN")],
        ],
    ];
    let order = vec![asc(0), key(Col::Start(1), true, true)];
    let got = run_text(input(rows_plan(order, 0, false), 2), &cols, &streams).unwrap();
    let want = vec![
        vec![b8(-3), t("2")],
        vec![b8(-3), t("1.50")], // equal to 1.5: the lower stream first
        vec![b8(-3), t("1.5")],
        vec![b8(7), t("0")],
        vec![b8(300), t("NaN")],
    ];
    assert_eq!(got.rows, want);
}

#[test]
fn hidden_columns_are_stripped_and_col_end_resolves() {
    // SELECT * FROM t ORDER BY x, where x is not selected: shards return (*, x) and the sort
    // key is the last column, counted from the end.
    let cols = [("id", INT4, 0), ("name", TEXT, 0), ("x", INT4, 0)];
    let streams = vec![
        vec![tr(&["1", "one", "10"]), tr(&["3", "three", "30"])],
        vec![tr(&["2", "two", "20"]), tr(&["4", "NULL", "40"])],
    ];
    let plan = rows_plan(vec![key(Col::End(0), false, false)], 1, false);
    let got = run_text(input(plan.clone(), 2), &cols, &streams).unwrap();
    let want = vec![
        tr(&["1", "one"]),
        tr(&["2", "two"]),
        tr(&["3", "three"]),
        tr(&["4", "NULL"]),
    ];
    assert_eq!(got.rows, want);

    // The client's RowDescription is the shard's without the hidden column.
    let mut merge = Merge::new(input(plan, 2));
    merge.row_description(0, &rd(&cols, 1)).unwrap();
    merge.row_description(1, &rd(&cols, 2)).unwrap();
    let mut out = BytesMut::new();
    merge.client_row_description(&mut out).unwrap();
    let body = rd(&cols[..2], 1);
    let mut want = vec![b'T'];
    want.extend((body.len() as i32 + 4).to_be_bytes());
    want.extend(body);
    assert_eq!(&out[..], &want[..]);
}

#[test]
fn offset_and_limit_stop_reading() {
    let stream = |base: i32| -> Vec<Row> {
        (0..100)
            .map(|i| tr(&[&(base + 2 * i).to_string(), "x"]))
            .collect()
    };
    let streams = vec![stream(0), stream(1)];
    let mut inp = input(rows_plan(vec![asc(0)], 0, false), 2);
    inp.limit = Some(3);
    inp.offset = 2;
    let got = run_text(inp, &AB, &streams).unwrap();
    let keys: Vec<Row> = got.rows.iter().map(|r| vec![r[0].clone()]).collect();
    assert_eq!(keys, vec![tr(&["2"]), tr(&["3"]), tr(&["4"])]);
    // Bounded reading: a head per stream beyond what was emitted, not the whole streams.
    assert!(got.read.iter().all(|&n| n <= 4), "read {:?}", got.read);

    let mut inp = input(rows_plan(vec![asc(0)], 0, false), 2);
    inp.limit = Some(0);
    let got = run_text(inp, &AB, &streams).unwrap();
    assert!(got.rows.is_empty());
    assert_eq!(got.read, vec![0, 0]);

    // Offset beyond the rows.
    let mut inp = input(rows_plan(vec![asc(0)], 0, false), 2);
    inp.offset = 500;
    assert!(run_text(inp, &AB, &streams).unwrap().rows.is_empty());
}

#[test]
fn limit_reached_means_done_and_no_more_input() {
    let mut merge = Merge::new({
        let mut i = input(rows_plan(vec![asc(0)], 0, false), 2);
        i.limit = Some(1);
        i
    });
    merge.row_description(0, &rd(&AB, 1)).unwrap();
    merge.row_description(1, &rd(&AB, 2)).unwrap();
    assert_eq!(merge.wants(), Some(0));
    merge.data_row(0, &dr(&tr(&["1", "a"]))).unwrap();
    assert_eq!(merge.wants(), Some(1));
    merge.data_row(1, &dr(&tr(&["2", "b"]))).unwrap();
    assert_eq!(merge.wants(), None);
    assert!(!merge.done());
    let mut out = BytesMut::new();
    assert_eq!(merge.emit(&mut out, None).unwrap(), 1);
    assert!(merge.done());
    assert_eq!(merge.wants(), None);
    assert_eq!(merge.rows_sent(), 1);
    // Rows still in flight are discarded.
    merge.data_row(0, &dr(&tr(&["3", "c"]))).unwrap();
    merge.end(1).unwrap();
    assert_eq!(merge.emit(&mut out, None).unwrap(), 0);
    assert_eq!(parse_rows(out), vec![tr(&["1", "a"])]);
}

#[test]
fn distinct_drops_adjacent_duplicates_across_streams() {
    let streams = vec![
        vec![tr(&["1", "a"]), tr(&["1", "b"]), tr(&["2", "a"])],
        vec![tr(&["1", "a"]), tr(&["2", "a"]), tr(&["2", "NULL"])],
        vec![tr(&["1", "b"]), tr(&["2", "NULL"])],
    ];
    let plan = rows_plan(vec![asc(0), asc(1)], 0, true);
    let got = run_text(input(plan, 3), &AB, &streams).unwrap();
    let want = vec![
        tr(&["1", "a"]),
        tr(&["1", "b"]),
        tr(&["2", "a"]),
        tr(&["2", "NULL"]),
    ];
    assert_eq!(got.rows, want);

    // OFFSET counts distinct rows; numeric equality (01 = 1) is what DISTINCT uses.
    let streams = vec![
        vec![tr(&["1", "a"]), tr(&["2", "a"])],
        vec![tr(&["01", "a"]), tr(&["3", "a"])],
    ];
    let mut inp = input(rows_plan(vec![asc(0), asc(1)], 0, true), 2);
    inp.offset = 1;
    let got = run_text(inp, &AB, &streams).unwrap();
    assert_eq!(got.rows, vec![tr(&["2", "a"]), tr(&["3", "a"])]);
}

#[test]
fn max_rows_portions_add_up() {
    let streams: Vec<Vec<Row>> = (0..3)
        .map(|s| {
            (0..7)
                .map(|i| tr(&[&(i * 3 + s).to_string(), "v"]))
                .collect()
        })
        .collect();
    let descs: Vec<Vec<u8>> = (0..3).map(|s| rd(&AB, s)).collect();
    for max in [1, 2, 5, 100] {
        let mut merge = Merge::new(input(rows_plan(vec![asc(0)], 0, false), 3));
        let got = drive(&mut merge, &descs, &streams, Some(max)).unwrap();
        let keys: Vec<Row> = got.rows.iter().map(|r| vec![r[0].clone()]).collect();
        let want: Vec<Row> = (0..21).map(|i| tr(&[&i.to_string()])).collect();
        assert_eq!(keys, want, "max_rows {max}");
    }
}

#[test]
fn unordered_merge_passes_every_row() {
    let streams = vec![
        vec![tr(&["3", "a"]), tr(&["1", "b"])],
        vec![tr(&["2", "c"])],
        vec![],
    ];
    let got = run_text(input(rows_plan(vec![], 0, false), 3), &AB, &streams).unwrap();
    let mut rows = got.rows;
    rows.sort();
    let mut want: Vec<Row> = streams.concat();
    want.sort();
    assert_eq!(rows, want);
}

#[test]
fn unordered_merge_reads_streams_in_turn() {
    let mut merge = Merge::new(input(rows_plan(vec![], 0, false), 3));
    for s in 0..3 {
        merge.row_description(s, &rd(&AB, 1)).unwrap();
    }
    let mut asked = Vec::new();
    let mut out = BytesMut::new();
    for _ in 0..6 {
        let s = merge.wants().unwrap();
        asked.push(s);
        merge.data_row(s, &dr(&tr(&["1", "x"]))).unwrap();
        assert_eq!(merge.wants(), None, "one head is enough to go on");
        assert_eq!(merge.emit(&mut out, None).unwrap(), 1);
    }
    assert_eq!(asked, [0, 1, 2, 0, 1, 2]);
    merge.end(0).unwrap();
    assert_eq!(merge.wants(), Some(1));
}

#[test]
fn shards_must_describe_the_same_columns() {
    let check = |other: Vec<u8>| {
        let mut merge = Merge::new(input(rows_plan(vec![asc(0)], 0, false), 2));
        merge.row_description(0, &rd(&AB, 1)).unwrap();
        merge.row_description(1, &other)
    };
    // Table OIDs and attnums differ per shard: fine.
    assert_eq!(check(rd(&AB, 99)), Ok(()));
    let err = check(rd(&AB[..1], 1)).unwrap_err();
    assert!(matches!(err, MergeError::Mismatch(_)), "{err:?}");
    assert_eq!(err.sqlstate(), "XX000");
    let err = check(rd(&[("a", INT8, 0), ("b", TEXT, 0)], 1)).unwrap_err();
    assert!(matches!(err, MergeError::Mismatch(_)), "{err:?}");
    let err = check(rd(&[("a", INT4, 1), ("b", TEXT, 0)], 1)).unwrap_err();
    assert!(matches!(err, MergeError::Mismatch(_)), "{err:?}");
}

#[test]
fn unsupported_sort_type_is_refused_up_front() {
    let mut merge = Merge::new(input(rows_plan(vec![asc(0)], 0, false), 1));
    let err = merge
        .row_description(0, &rd(&[("i", INTERVAL, 0)], 1))
        .unwrap_err();
    assert_eq!(err.sqlstate(), "0A000");
    assert!(err.to_string().contains("ORDER BY on type 1186"), "{err}");
    // A sort key outside the row.
    let mut merge = Merge::new(input(rows_plan(vec![asc(5)], 0, false), 1));
    let err = merge.row_description(0, &rd(&AB, 1)).unwrap_err();
    assert!(matches!(err, MergeError::Mismatch(_)), "{err:?}");
}

#[test]
fn malformed_shard_messages_are_errors_not_panics() {
    let mut merge = Merge::new(input(rows_plan(vec![asc(0)], 0, false), 2));
    for body in [
        &b""[..],
        b"\x00",
        b"\x00\x01a",
        b"\x00\x01a\x00\x00",
        b"\xff\xff",
    ] {
        let err = merge.row_description(0, body).unwrap_err();
        assert!(matches!(err, MergeError::Protocol(_)), "{err:?}");
    }
    merge.row_description(0, &rd(&AB, 1)).unwrap();
    assert!(matches!(
        merge.row_description(0, &rd(&AB, 1)),
        Err(MergeError::Protocol(_))
    ));
    // Rows before the stream described, or for a stream that does not exist.
    assert!(merge.data_row(1, &dr(&tr(&["1", "a"]))).is_err());
    assert!(merge.data_row(7, &dr(&tr(&["1", "a"]))).is_err());
    merge.row_description(1, &rd(&AB, 2)).unwrap();
    let good = dr(&tr(&["1", "a"]));
    let bad_bodies: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        dr(&tr(&["1"])),
        dr(&tr(&["1", "a", "x"])),
        good[..good.len() - 1].to_vec(),
        [&good[..], b"!"].concat(),
        vec![0, 2, 0, 0, 0, 1, b'1', 0xff, 0xff, 0xff, 0xfe],
        vec![0, 2, 0x7f, 0xff, 0xff, 0xff],
    ];
    for body in &bad_bodies {
        let err = merge.data_row(0, body).unwrap_err();
        assert!(matches!(err, MergeError::Protocol(_)), "{body:?}: {err:?}");
    }
    merge.data_row(0, &good).unwrap();
    // A second head before the first was merged is a session bug, reported.
    assert!(merge.data_row(0, &good).is_err());
    // Invalid values surface when compared.
    merge.data_row(1, &dr(&tr(&["one", "a"]))).unwrap();
    let err = merge.emit(&mut BytesMut::new(), None).unwrap_err();
    assert!(matches!(err, MergeError::Value { .. }), "{err:?}");
}

#[test]
fn shard_result_formats_for_rows() {
    let plan = rows_plan(vec![asc(2)], 2, false);
    assert_eq!(Merge::shard_result_formats(&plan, &[]), Vec::<i16>::new());
    assert_eq!(Merge::shard_result_formats(&plan, &[1]), vec![1]);
    assert_eq!(
        Merge::shard_result_formats(&plan, &[1, 0]),
        vec![1, 0, 0, 0]
    );
}

#[test]
fn zero_streams_is_done_at_once() {
    let mut merge = Merge::new(input(rows_plan(vec![asc(0)], 0, false), 0));
    assert_eq!(merge.wants(), None);
    assert!(merge.done());
    assert_eq!(merge.emit(&mut BytesMut::new(), None).unwrap(), 0);
}

#[test]
fn binary_rows_pass_through_byte_for_byte() {
    let cols = [("k", INT4, 1), ("v", TEXT, 1), ("h", INT4, 1)];
    let b4 = |v: i32| Some(v.to_be_bytes().to_vec());
    let streams = vec![
        vec![vec![b4(1), t("x"), b4(-1)], vec![b4(5), None, b4(-5)]],
        vec![vec![b4(-2), t(""), b4(2)], vec![b4(3), t("y"), b4(-3)]],
    ];
    let plan = rows_plan(vec![key(Col::End(0), true, false)], 1, false);
    let got = run_text(input(plan, 2), &cols, &streams).unwrap();
    let want = vec![
        vec![b4(-2), t("")],
        vec![b4(1), t("x")],
        vec![b4(3), t("y")],
        vec![b4(5), None],
    ];
    assert_eq!(got.rows, want);
}
