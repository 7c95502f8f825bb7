//! Finishing aggregates from per-shard partials (`proxy::merge::agg`) and HAVING
//! (`proxy::merge::filter`) against PostgreSQL itself.
//!
//! For many seeded random value sets (NULLs, extremes, numerics of mixed scales, NaN and
//! infinities, floats, booleans, text), each set is split into three parts; the server computes
//! the partial aggregates of each part and the real aggregate of the whole set, in text (simple
//! query) and binary (extended query) format. Combining the partials with `Accumulator` must give
//! the server's type OID and exactly its bytes, in both formats, from partials in either format.
//! Float values are multiples of 1/8 so that every sum is exact in any order (a binary float NaN
//! is only checked to be a NaN: its sign bit depends on the order of additions). HAVING conditions
//! are checked the same way against `SELECT <condition>`. Set MERGE_AGG_SEED to replay.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "merge_agg/having.rs"]
mod having;
#[path = "merge_agg/wire.rs"]
mod wire;

use integration::util::bounded;
use proxy::merge::agg::{Accumulator, AggError};
use proxy::merge::ColumnType;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use shard_router::merge::AggFunc;
use tokio_postgres::Client;
use wire::{one_row, pg_error, seed, show};

/// Whether binary bytes are a float4 or float8 NaN.
fn is_float_nan(v: Option<&[u8]>) -> bool {
    match v {
        Some(b) if b.len() == 4 => f32::from_be_bytes(b.try_into().unwrap()).is_nan(),
        Some(b) if b.len() == 8 => f64::from_be_bytes(b.try_into().unwrap()).is_nan(),
        _ => false,
    }
}

/// One aggregate to check: the client's expression and its partial (avg: plus count(x)).
#[derive(Clone, Copy)]
struct Agg {
    func: AggFunc,
    whole: &'static str,
    partial: &'static str,
}

const fn agg(func: AggFunc, whole: &'static str, partial: &'static str) -> Agg {
    Agg {
        func,
        whole,
        partial,
    }
}

const COUNT_STAR: Agg = agg(AggFunc::Count, "count(*)", "count(*)");
const COUNT: Agg = agg(AggFunc::Count, "count(x)", "count(x)");
const SUM: Agg = agg(AggFunc::Sum, "sum(x)", "sum(x)");
const MIN: Agg = agg(AggFunc::Min, "min(x)", "min(x)");
const MAX: Agg = agg(AggFunc::Max, "max(x)", "max(x)");
const AVG: Agg = agg(AggFunc::Avg, "avg(x)", "sum(x)");
const BOOL_AND: Agg = agg(AggFunc::BoolAnd, "bool_and(x)", "bool_and(x)");
const EVERY: Agg = agg(AggFunc::BoolAnd, "every(x)", "bool_and(x)");
const BOOL_OR: Agg = agg(AggFunc::BoolOr, "bool_or(x)", "bool_or(x)");

/// One column type: its aggregates and a generator of one value set.
struct Case {
    sql_type: &'static str,
    aggs: Vec<Agg>,
    generate: fn(&mut StdRng) -> Vec<String>,
    /// Values added to some sets (NaN, infinities, -0).
    specials: &'static [&'static str],
}

/// A random integer of up to `max_bits` significant bits, either sign.
fn int_of(rng: &mut StdRng, max_bits: u32) -> i64 {
    let bits = rng.random_range(0..max_bits);
    let magnitude = rng.random_range(0..=(1i64 << bits));
    if rng.random_bool(0.5) {
        -magnitude
    } else {
        magnitude
    }
}

/// `n` values from `one`, with some of `edges` mixed in.
fn pick(rng: &mut StdRng, edges: &[&str], one: impl Fn(&mut StdRng) -> String) -> Vec<String> {
    let n = rng.random_range(0..30);
    let mut v: Vec<String> = (0..n).map(|_| one(rng)).collect();
    for edge in edges {
        if rng.random_bool(0.1) {
            v.push(edge.to_string());
        }
    }
    v
}

/// A random decimal with up to `int_max` integer and `frac_max` fraction digits.
fn decimal(rng: &mut StdRng, int_max: usize, frac_max: usize) -> String {
    let digits = |rng: &mut StdRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect()
    };
    let int_len = rng.random_range(1..=int_max.max(1));
    let frac_len = rng.random_range(0..=frac_max);
    let sign = if rng.random_bool(0.4) { "-" } else { "" };
    let int = digits(rng, int_len);
    if frac_len == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{}", digits(rng, frac_len))
    }
}

/// A multiple of 1/8 below 2^`bits` in magnitude (sums of such values are exact).
fn eighths(rng: &mut StdRng, bits: u32) -> String {
    let k = int_of(rng, bits + 3);
    format!("{}", k as f64 / 8.0)
}

fn cases() -> Vec<Case> {
    let ints = vec![COUNT_STAR, COUNT, SUM, MIN, MAX, AVG];
    vec![
        Case {
            sql_type: "int2",
            aggs: ints.clone(),
            generate: |r| pick(r, &["-32768", "32767", "0"], |r| int_of(r, 15).to_string()),
            specials: &[],
        },
        Case {
            sql_type: "int4",
            aggs: ints.clone(),
            generate: |r| {
                pick(r, &["-2147483648", "2147483647", "0"], |r| {
                    int_of(r, 31).to_string()
                })
            },
            specials: &[],
        },
        Case {
            sql_type: "int8",
            aggs: ints,
            generate: |r| {
                pick(
                    r,
                    &["-9223372036854775808", "9223372036854775807", "0"],
                    |r| int_of(r, 63).to_string(),
                )
            },
            specials: &[],
        },
        Case {
            sql_type: "numeric",
            aggs: vec![COUNT, SUM, MIN, MAX, AVG],
            generate: |r| {
                let scale = r.random_range(0..25);
                pick(r, &["0", "0.000", "1.50", "-1.5"], move |r| {
                    match r.random_range(0..4) {
                        0 => decimal(r, 3, scale),
                        1 => decimal(r, 20, 2),
                        2 => {
                            let zeros = "0".repeat(r.random_range(0..20));
                            let sign = if r.random_bool(0.5) { "-" } else { "" };
                            format!("{sign}0.{zeros}{}", r.random_range(1..100_000))
                        }
                        _ => decimal(r, 1, scale),
                    }
                })
            },
            specials: &["NaN", "Infinity", "-Infinity"],
        },
        Case {
            sql_type: "float8",
            aggs: vec![COUNT, SUM, MIN, MAX, AVG],
            generate: |r| pick(r, &["0", "0.125"], |r| eighths(r, 40)),
            specials: &["NaN", "Infinity", "-Infinity", "-0"],
        },
        Case {
            sql_type: "float4",
            aggs: vec![SUM, MIN, MAX, AVG],
            generate: |r| pick(r, &["0", "-0.5"], |r| eighths(r, 12)),
            specials: &["NaN", "Infinity", "-Infinity", "-0"],
        },
        Case {
            sql_type: "bool",
            aggs: vec![BOOL_AND, EVERY, BOOL_OR, COUNT],
            generate: |r| {
                let p = r.random_range(0.0..1.0);
                pick(r, &[], move |r| {
                    (if r.random_bool(p) { "t" } else { "f" }).into()
                })
            },
            specials: &[],
        },
        Case {
            sql_type: "text COLLATE \"C\"",
            aggs: vec![MIN, MAX, COUNT],
            generate: |r| {
                pick(r, &["", "a ", "é"], |r| {
                    let len = r.random_range(0..4);
                    (0..len)
                        .map(|_| char::from(b'a' + r.random_range(0..3u8)))
                        .collect()
                })
            },
            specials: &[],
        },
        Case {
            sql_type: "date",
            aggs: vec![MIN, MAX],
            generate: |r| {
                pick(r, &["infinity", "-infinity"], |r| {
                    format!(
                        "{}-0{}-1{}",
                        r.random_range(1990..2030),
                        r.random_range(1..10),
                        r.random_range(0..9)
                    )
                })
            },
            specials: &[],
        },
    ]
}

/// Splits `n` rows into three parts (some may be empty): the part of each row.
fn split(rng: &mut StdRng, n: usize) -> Vec<i32> {
    let mut cuts = [rng.random_range(0..=n), rng.random_range(0..=n)];
    cuts.sort();
    (0..n)
        .map(|i| {
            if i < cuts[0] {
                0
            } else if i < cuts[1] {
                1
            } else {
                2
            }
        })
        .collect()
}

#[tokio::test]
async fn aggregates_combine_like_postgres() {
    let seed = seed();
    bounded(async move {
        let dbs = integration::fresh_dbs(1).await;
        let client = integration::connect_url(&dbs.oracle_url).await;
        let mut rng = StdRng::seed_from_u64(seed);
        for (n, case) in cases().iter().enumerate() {
            let table = format!("t{n}");
            let create = format!(
                "CREATE TABLE {table} (part int, ord int, x {})",
                case.sql_type
            );
            client.batch_execute(&create).await.unwrap();
            for set in 0..40 {
                let mut values: Vec<Option<String>> =
                    (case.generate)(&mut rng).into_iter().map(Some).collect();
                for special in case.specials {
                    if rng.random_bool(0.15) {
                        values.push(Some(special.to_string()));
                    }
                }
                let nulls = if set % 10 == 3 {
                    values.len() + 2
                } else {
                    rng.random_range(0..4)
                };
                if set % 10 == 3 {
                    values.clear();
                }
                values.extend(std::iter::repeat_n(None, nulls));
                if set % 10 == 7 {
                    values.clear();
                }
                values.shuffle(&mut rng);
                let context = format!("{} set {values:?} (seed {seed})", case.sql_type);
                check_set(&client, case, &table, &values, &mut rng, &context).await;
            }
        }
    })
    .await;
}

/// Loads one value set split in three parts and checks every aggregate of the case.
async fn check_set(
    client: &Client,
    case: &Case,
    table: &str,
    values: &[Option<String>],
    rng: &mut StdRng,
    context: &str,
) {
    let parts = split(rng, values.len());
    let ords: Vec<i32> = (0..values.len() as i32).collect();
    client
        .batch_execute(&format!("TRUNCATE {table}"))
        .await
        .unwrap();
    let insert = format!(
        "INSERT INTO {table} SELECT p, o, v::{} FROM unnest($1::int4[], $2::int4[], $3::text[]) u(p, o, v)",
        case.sql_type
    );
    client
        .execute(&insert, &[&parts, &ords, &values])
        .await
        .unwrap_or_else(|e| panic!("{insert}: {e:?} / {context}"));

    let wholes: Vec<&str> = case.aggs.iter().map(|a| a.whole).collect();
    let whole_sql = format!(
        "SELECT {} FROM (SELECT x FROM {table} ORDER BY part, ord) s",
        wholes.join(", ")
    );
    let whole = one_row(client, &whole_sql).await;
    // Partial columns: each aggregate's partial, then count(x) for avg.
    let mut partial_exprs: Vec<&str> = Vec::new();
    let mut columns = Vec::new();
    for a in &case.aggs {
        partial_exprs.push(a.partial);
        let count = (a.func == AggFunc::Avg).then(|| {
            partial_exprs.push("count(x)");
            partial_exprs.len() - 1
        });
        columns.push((
            partial_exprs.len() - 1 - usize::from(count.is_some()),
            count,
        ));
    }
    let mut partials = Vec::new();
    for part in 0..3 {
        let sql = format!(
            "SELECT {} FROM (SELECT x FROM {table} WHERE part = {part} ORDER BY ord) s",
            partial_exprs.join(", ")
        );
        partials.push(one_row(client, &sql).await);
    }

    for (i, (a, (arg, count))) in case.aggs.iter().zip(&columns).enumerate() {
        for partial_binary in [false, true] {
            let ty = |col: usize| ColumnType {
                oid: partials[0].oids[col],
                binary: partial_binary,
            };
            let mut acc = Accumulator::new(a.func, ty(*arg), count.map(ty))
                .unwrap_or_else(|e| panic!("{}: {e} / {context}", a.whole));
            for p in &partials {
                let c = count.and_then(|c| p.get(c, partial_binary));
                acc.add(p.get(*arg, partial_binary), c)
                    .unwrap_or_else(|e| panic!("{}: {e} / {context}", a.whole));
            }
            assert_eq!(
                acc.output_oid(),
                whole.oids[i],
                "{} type / {context}",
                a.whole
            );
            // min / max answer in the partial's format (the engine asks for that format).
            let formats: &[bool] = match a.func {
                AggFunc::Min | AggFunc::Max => &[partial_binary],
                _ => &[false, true],
            };
            for &out_binary in formats {
                let mut out = Vec::new();
                let got = acc
                    .finish(out_binary, &mut out)
                    .unwrap_or_else(|e| panic!("{}: {e} / {context}", a.whole))
                    .then_some(out);
                let want = whole.get(i, out_binary);
                // A float NaN's sign bit depends on how it arose (x86 makes -NaN from
                // Infinity + -Infinity, 'NaN' input is +NaN) and so on the order of additions,
                // and text partials do not carry it at all: only "a NaN" is matched.
                if out_binary && is_float_nan(got.as_deref()) {
                    assert!(is_float_nan(want), "{} NaN / {context}", a.whole);
                    continue;
                }
                assert_eq!(
                    got.as_deref(),
                    want,
                    "{} from {} partials, {} output: got {} want {} / {context}",
                    a.whole,
                    if partial_binary { "binary" } else { "text" },
                    if out_binary { "binary" } else { "text" },
                    show(got.as_deref()),
                    show(want),
                );
            }
        }
    }
}

#[tokio::test]
async fn avg_division_scale_like_postgres() {
    let seed = seed();
    bounded(async move {
        let dbs = integration::fresh_dbs(1).await;
        let client = integration::connect_url(&dbs.oracle_url).await;
        let mut rng = StdRng::seed_from_u64(seed);
        for trial in 0..300 {
            let digits = rng.random_range(0..13);
            let count: i64 = rng.random_range(1..=10i64.pow(digits));
            let (sum, cast) = if trial % 3 == 0 {
                (int_of(&mut rng, 63).to_string(), "int8")
            } else {
                let sum = match rng.random_range(0..3) {
                    0 => decimal(&mut rng, 30, 40),
                    1 => {
                        let zeros = "0".repeat(rng.random_range(0..30));
                        format!("0.{zeros}{}", rng.random_range(1..999))
                    }
                    _ => {
                        let scale = rng.random_range(0..6);
                        decimal(&mut rng, 4, scale)
                    }
                };
                (sum, "numeric")
            };
            let context = format!("avg: {sum}::{cast} / {count} (seed {seed})");
            let partial = one_row(&client, &format!("SELECT '{sum}'::{cast}, {count}::int8")).await;
            let whole = one_row(
                &client,
                &format!("SELECT '{sum}'::{cast}::numeric / {count}::int8"),
            )
            .await;
            for partial_binary in [false, true] {
                let ty = |oid| ColumnType {
                    oid,
                    binary: partial_binary,
                };
                let mut acc =
                    Accumulator::new(AggFunc::Avg, ty(partial.oids[0]), Some(ty(20))).unwrap();
                acc.add(
                    partial.get(0, partial_binary),
                    partial.get(1, partial_binary),
                )
                .unwrap();
                assert_eq!(acc.output_oid(), whole.oids[0], "{context}");
                for out_binary in [false, true] {
                    let mut out = Vec::new();
                    assert!(acc.finish(out_binary, &mut out).unwrap(), "{context}");
                    assert_eq!(
                        Some(&out[..]),
                        whole.get(0, out_binary),
                        "{} / {context}",
                        show(Some(&out))
                    );
                }
            }
        }
    })
    .await;
}

/// Float text output of one value through the aggregate path (a single binary partial).
fn float_text_via_sum(oid: u32, bytes: &[u8]) -> String {
    let ty = ColumnType { oid, binary: true };
    let mut acc = Accumulator::new(AggFunc::Sum, ty, None).unwrap();
    acc.add(Some(bytes), None).unwrap();
    let mut out = Vec::new();
    assert!(acc.finish(false, &mut out).unwrap());
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn float_text_like_postgres() {
    let seed = seed();
    bounded(async move {
        let dbs = integration::fresh_dbs(1).await;
        let client = integration::connect_url(&dbs.oracle_url).await;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut doubles: Vec<f64> = (0..3000).map(|_| f64::from_bits(rng.random())).collect();
        // Many significant bits and a short fraction: exact halfway cases between two
        // 17-digit candidates, and every decimal exponent around the fixed/exponent switch.
        doubles.extend((0..2000).map(|_| {
            let k = int_of(&mut rng, 63) as f64;
            k / f64::from(1u32 << rng.random_range(0..12))
        }));
        doubles.extend((-30..30).map(|e| 10f64.powi(e)));
        doubles.extend([
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::INFINITY,
        ]);
        let mut floats: Vec<f32> = (0..3000).map(|_| f32::from_bits(rng.random())).collect();
        floats.extend((0..2000).map(|_| {
            let k = int_of(&mut rng, 31) as f32;
            k / (1u32 << rng.random_range(0..12)) as f32
        }));
        floats.extend((-12..12).map(|e| 10f32.powi(e)));
        let rows = client
            .query("SELECT x::text FROM unnest($1::float8[]) x", &[&doubles])
            .await
            .unwrap();
        for (x, row) in doubles.iter().zip(&rows) {
            let want: String = row.get(0);
            assert_eq!(
                float_text_via_sum(701, &x.to_be_bytes()),
                want,
                "{x:e} (seed {seed})"
            );
        }
        let rows = client
            .query("SELECT x::text FROM unnest($1::float4[]) x", &[&floats])
            .await
            .unwrap();
        for (x, row) in floats.iter().zip(&rows) {
            let want: String = row.get(0);
            assert_eq!(
                float_text_via_sum(700, &x.to_be_bytes()),
                want,
                "{x:e} (seed {seed})"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn overflow_errors_like_postgres() {
    bounded(async {
        let dbs = integration::fresh_dbs(1).await;
        let client = integration::connect_url(&dbs.oracle_url).await;
        // int8 partial sums combine like int8pl.
        let (code, message) = pg_error(&client, "SELECT 9223372036854775807::int8 + 1::int8").await;
        let ty = ColumnType {
            oid: 20,
            binary: false,
        };
        let mut acc = Accumulator::new(AggFunc::Sum, ty, None).unwrap();
        acc.add(Some(b"9223372036854775807"), None).unwrap();
        let err = acc.add(Some(b"1"), None).unwrap_err();
        assert_eq!((err.sqlstate(), err.to_string()), (&code[..], message));
        assert_eq!(err, AggError::OutOfRange("bigint"));
        // float8 partial sums: an infinite sum of finite values is an overflow.
        let (code, _) = pg_error(
            &client,
            "SELECT sum(x) FROM (VALUES (1e308::float8), (1e308::float8)) v(x)",
        )
        .await;
        let ty = ColumnType {
            oid: 701,
            binary: false,
        };
        let mut acc = Accumulator::new(AggFunc::Sum, ty, None).unwrap();
        acc.add(Some(b"1e+308"), None).unwrap();
        assert_eq!(acc.add(Some(b"1e+308"), None).unwrap_err().sqlstate(), code);
    })
    .await;
}
