//! The merge's sort-key comparison (`proxy::merge::compare`) against PostgreSQL itself: for each
//! supported type, seeded random values (NULLs, extremes, NaN, infinities, -0, long numerics,
//! non-ASCII text, bpchar padding, BC dates, several time zones) are sorted by a real server in
//! every direction / NULLS placement, in text (simple query) and binary (extended query) format;
//! `compare` must order every pair exactly as the server ranks them. Text-like columns are sorted
//! `COLLATE "C"`: the merge matches the C collation (byte order). Set MERGE_COMPARE_SEED to replay.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::error::Error;

use integration::util::bounded;
use proxy::merge::{compare, supported, ColumnType, CompareError, SortSpec};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Any column's raw binary bytes, as the server sent them.
struct RawValue<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawValue(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawValue(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One column type to check.
struct Case {
    /// The column's SQL type.
    sql_type: &'static str,
    /// The type OID the server reports for it.
    oid: u32,
    /// Whether ORDER BY needs `COLLATE "C"`.
    collate: bool,
    /// Input literals (None = NULL).
    values: Vec<Option<String>>,
    /// Session settings to read the values under (each a SET statement; text output varies).
    sessions: Vec<String>,
}

/// The seed of this run (printed, and in every failure message).
fn seed() -> u64 {
    let seed = std::env::var("MERGE_COMPARE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("merge_compare seed: {seed} (MERGE_COMPARE_SEED={seed} to replay)");
    seed
}

/// Checks every case in its own table of a fresh database.
async fn check_cases(cases: Vec<Case>, seed: u64) {
    let dbs = integration::fresh_dbs(1).await;
    let client = integration::connect_url(&dbs.oracle_url).await;
    let mut rng = StdRng::seed_from_u64(seed);
    for (n, case) in cases.iter().enumerate() {
        let table = format!("t{n}");
        let setup = format!("CREATE TABLE {table} (v {})", case.sql_type);
        client.batch_execute(&setup).await.unwrap();
        let insert = format!(
            "INSERT INTO {table} SELECT x::{} FROM unnest($1::text[]) x",
            case.sql_type
        );
        client
            .execute(&insert, &[&case.values])
            .await
            .unwrap_or_else(|e| panic!("{insert} (seed {seed}): {e:?}"));
        for session in &case.sessions {
            client.batch_execute(session).await.unwrap();
            for descending in [false, true] {
                for nulls_first in [false, true] {
                    let spec = SortSpec {
                        descending,
                        nulls_first,
                    };
                    check_one(&client, case, &table, spec, session, seed, &mut rng).await;
                }
            }
        }
    }
}

/// Compares one ORDER BY's server order with `compare`, in text and binary format.
async fn check_one(
    client: &Client,
    case: &Case,
    table: &str,
    spec: SortSpec,
    session: &str,
    seed: u64,
    rng: &mut StdRng,
) {
    let order = format!(
        "v{} {} NULLS {}",
        if case.collate { " COLLATE \"C\"" } else { "" },
        if spec.descending { "DESC" } else { "ASC" },
        if spec.nulls_first { "FIRST" } else { "LAST" },
    );
    let sql =
        format!("SELECT v, dense_rank() OVER (ORDER BY {order}) FROM {table} ORDER BY {order}");
    let context = format!("{} / {sql} / {session} / seed {seed}", case.sql_type);

    let mut text_rows = Vec::new();
    for msg in client.simple_query(&sql).await.unwrap() {
        if let SimpleQueryMessage::Row(row) = msg {
            let rank: i64 = row.get(1).unwrap().parse().unwrap();
            text_rows.push((row.get(0).map(|s| s.as_bytes().to_vec()), rank));
        }
    }
    let ty = ColumnType {
        oid: case.oid,
        binary: false,
    };
    check_order(&text_rows, ty, spec, &format!("text: {context}"), rng);

    let stmt = client.prepare(&sql).await.unwrap();
    assert_eq!(stmt.columns()[0].type_().oid(), case.oid, "{context}");
    let binary_rows: Vec<(Option<Vec<u8>>, i64)> = client
        .query(&stmt, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let raw: RawValue = row.get(0);
            (raw.0.map(<[u8]>::to_vec), row.get::<_, i64>(1))
        })
        .collect();
    let ty = ColumnType {
        oid: case.oid,
        binary: true,
    };
    check_order(&binary_rows, ty, spec, &format!("binary: {context}"), rng);
}

/// `compare` must agree with the server's dense rank on every pair, and sorting a shuffled copy
/// with it must give the server's order.
fn check_order(
    rows: &[(Option<Vec<u8>>, i64)],
    ty: ColumnType,
    spec: SortSpec,
    context: &str,
    rng: &mut StdRng,
) {
    assert!(rows.len() > 20, "too few rows: {context}");
    let show = |v: &Option<Vec<u8>>| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    for (a, rank_a) in rows {
        for (b, rank_b) in rows {
            let got = compare(a.as_deref(), b.as_deref(), ty, spec)
                .unwrap_or_else(|e| panic!("{e} for {:?} vs {:?}: {context}", show(a), show(b)));
            assert_eq!(
                got,
                rank_a.cmp(rank_b),
                "{:?} vs {:?}: {context}",
                show(a),
                show(b)
            );
        }
    }
    let mut shuffled = rows.to_vec();
    shuffled.shuffle(rng);
    shuffled.sort_by(|a, b| compare(a.0.as_deref(), b.0.as_deref(), ty, spec).unwrap());
    let ranks: Vec<i64> = shuffled.iter().map(|r| r.1).collect();
    let expected: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(ranks, expected, "sorted order: {context}");
}

/// `values` plus some repeats (ties) and NULLs, as SQL literals.
fn with_ties_and_nulls(rng: &mut StdRng, values: Vec<String>) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = values.iter().cloned().map(Some).collect();
    for _ in 0..values.len() / 5 {
        out.push(Some(values[rng.random_range(0..values.len())].clone()));
    }
    out.extend(std::iter::repeat_n(None, 4));
    out.shuffle(rng);
    out
}

/// `n` random picks of `generate` after the fixed `edge` values.
fn values(
    rng: &mut StdRng,
    edge: &[&str],
    n: usize,
    generate: impl Fn(&mut StdRng) -> String,
) -> Vec<Option<String>> {
    let mut v: Vec<String> = edge.iter().map(|s| s.to_string()).collect();
    for _ in 0..n {
        v.push(generate(rng));
    }
    with_ties_and_nulls(rng, v)
}

/// One case read in the default session only.
fn case(sql_type: &'static str, oid: u32, values: Vec<Option<String>>) -> Case {
    Case {
        sql_type,
        oid,
        collate: false,
        values,
        sessions: vec!["SET DateStyle = 'ISO'".to_string()],
    }
}

/// A random integer of `bits` significant bits (so small and large magnitudes both appear).
fn int_of(rng: &mut StdRng, max_bits: u32) -> i64 {
    let bits = rng.random_range(0..max_bits);
    let magnitude = rng.random_range(0..=(1i64 << bits));
    if rng.random_bool(0.5) {
        -magnitude
    } else {
        magnitude
    }
}

#[tokio::test]
async fn integers_and_oid_sort_like_postgres() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let cases = vec![
        case(
            "int2",
            21,
            values(&mut rng, &["-32768", "32767", "0", "-1", "1"], 80, |r| {
                int_of(r, 15).to_string()
            }),
        ),
        case(
            "int4",
            23,
            values(
                &mut rng,
                &["-2147483648", "2147483647", "0", "-1"],
                80,
                |r| int_of(r, 31).to_string(),
            ),
        ),
        case(
            "int8",
            20,
            values(
                &mut rng,
                &["-9223372036854775808", "9223372036854775807", "0"],
                80,
                |r| int_of(r, 63).to_string(),
            ),
        ),
        case(
            "oid",
            26,
            values(
                &mut rng,
                &["0", "2147483647", "2147483648", "4294967295"],
                80,
                |r| r.random::<u32>().to_string(),
            ),
        ),
    ];
    bounded(check_cases(cases, seed)).await;
}

#[tokio::test]
async fn floats_sort_like_postgres() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let float4_edges = [
        "NaN",
        "Infinity",
        "-Infinity",
        "0",
        "-0",
        "3.4028235e38",
        "-3.4028235e38",
        "1.4e-45",
        "-1.4e-45",
        "1.1754944e-38",
        "1",
        "1.0",
    ];
    let float8_edges = [
        "NaN",
        "Infinity",
        "-Infinity",
        "0",
        "-0",
        "1.7976931348623157e308",
        "-5e-324",
        "5e-324",
        "2.2250738585072014e-308",
        "0.1",
        "0.10",
        "1e-1",
    ];
    let cases = vec![
        case(
            "float4",
            700,
            values(&mut rng, &float4_edges, 100, |r| {
                if r.random_bool(0.3) {
                    format!("{}.{}", int_of(r, 10), r.random_range(0..100))
                } else {
                    format!("{:e}", f32::from_bits(r.random::<u32>()))
                }
            }),
        ),
        case(
            "float8",
            701,
            values(&mut rng, &float8_edges, 100, |r| {
                if r.random_bool(0.3) {
                    format!("{}.{}", int_of(r, 10), r.random_range(0..100))
                } else {
                    format!("{:e}", f64::from_bits(r.random::<u64>()))
                }
            }),
        ),
    ];
    bounded(check_cases(cases, seed)).await;
}

/// A random decimal string with up to `max` digits on each side of the point.
fn decimal(rng: &mut StdRng, max: usize) -> String {
    let digits = |rng: &mut StdRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect()
    };
    let int_len = rng.random_range(0..=max);
    let frac_len = rng.random_range(0..=max);
    let sign = if rng.random_bool(0.4) { "-" } else { "" };
    let int = digits(rng, int_len.max(1));
    if frac_len == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{}", digits(rng, frac_len))
    }
}

#[tokio::test]
async fn numeric_sorts_like_postgres() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let edges = [
        "NaN",
        "Infinity",
        "-Infinity",
        "0",
        "-0.000",
        "1.5",
        "1.50",
        "15e-1",
        "-1.5",
        "0.000000000000000000000000000000000000001",
        "-0.000000000000000000000000000000000000001",
        "123456789012345678901234567890123456789012345678901234567890",
        "123456789012345678901234567890123456789012345678901234567891",
        "123456789012345678901234567890123456789012345678901234567890.0000000000000000000001",
        "9999.9999",
        "10000",
        "0.0001",
        "0.00009999",
    ];
    let cases = vec![case(
        "numeric",
        1700,
        values(&mut rng, &edges, 150, |r| {
            match r.random_range(0..4) {
                0 => decimal(r, 3),
                1 => decimal(r, 12),
                2 => decimal(r, 40),
                // Long shared prefixes: only the last digits decide.
                _ => format!("1234567890123456789.{}", r.random_range(0..1000)),
            }
        }),
    )];
    bounded(check_cases(cases, seed)).await;
}

/// A random short string from an alphabet with ASCII, spaces, tabs and multi-byte characters.
fn short_text(rng: &mut StdRng) -> String {
    const ALPHABET: &[&str] = &[
        "a", "b", "A", "Z", " ", "\t", "~", "0", "é", "ß", "한", "😀",
    ];
    let len = rng.random_range(0..7);
    let mut s: String = (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect();
    if rng.random_bool(0.3) {
        s.push_str(&" ".repeat(rng.random_range(1..3)));
    }
    s
}

#[tokio::test]
async fn text_types_sort_like_postgres_c_collation() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let edges = ["", " ", "a", "a ", "a\t", "ab", "A", "é", "한", "😀"];
    let mut cases = Vec::new();
    for (sql_type, oid) in [
        ("text", 25),
        ("varchar", 1043),
        ("name", 19),
        ("char(8)", 1042),
        ("bpchar", 1042),
    ] {
        cases.push(Case {
            collate: true,
            ..case(sql_type, oid, values(&mut rng, &edges, 100, short_text))
        });
    }
    bounded(check_cases(cases, seed)).await;
}

/// Random 16 bytes as uuid text, sometimes upper-case (the server prints lower-case).
fn uuid_text(rng: &mut StdRng) -> String {
    let bytes: [u8; 16] = rng.random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let s = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    if rng.random_bool(0.3) {
        s.to_uppercase()
    } else {
        s
    }
}

/// A random short byte string as a bytea hex literal.
fn bytea_text(rng: &mut StdRng) -> String {
    const BYTES: &[u8] = &[0x00, 0x01, 0x5c, 0x27, 0x61, 0x7f, 0x80, 0xfe, 0xff];
    let len = rng.random_range(0..6);
    let hex: String = (0..len)
        .map(|_| format!("{:02x}", BYTES[rng.random_range(0..BYTES.len())]))
        .collect();
    format!("\\x{hex}")
}

#[tokio::test]
async fn bool_uuid_and_bytea_sort_like_postgres() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let uuid_edges = [
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "7fffffff-ffff-ffff-ffff-ffffffffffff",
        "80000000-0000-0000-0000-000000000000",
    ];
    let mut bytea = case(
        "bytea",
        17,
        values(
            &mut rng,
            &["\\x", "\\x00", "\\xff", "\\x0000"],
            100,
            bytea_text,
        ),
    );
    bytea.sessions = vec![
        "SET bytea_output = 'hex'".to_string(),
        "SET bytea_output = 'escape'".to_string(),
    ];
    let cases = vec![
        case(
            "bool",
            16,
            values(&mut rng, &["t", "f"], 30, |r| {
                r.random_bool(0.5).to_string()
            }),
        ),
        case("uuid", 2950, values(&mut rng, &uuid_edges, 100, uuid_text)),
        bytea,
    ];
    bounded(check_cases(cases, seed)).await;
}

/// A random ISO date `YYYY-MM-DD[ BC]` inside PostgreSQL's range, years up to `max_year`.
fn date_text(rng: &mut StdRng, max_year: i64) -> String {
    let bc = rng.random_bool(0.15);
    let year = if bc {
        rng.random_range(1..=4712)
    } else if rng.random_bool(0.7) {
        rng.random_range(1900..=2100)
    } else {
        rng.random_range(1..=max_year)
    };
    let day = format!(
        "{year:04}-{:02}-{:02}",
        rng.random_range(1..=12),
        rng.random_range(1..=28)
    );
    if bc {
        format!("{day} BC")
    } else {
        day
    }
}

/// A random ISO timestamp (microseconds sometimes) after `date_text`'s date.
fn timestamp_text(rng: &mut StdRng, max_year: i64) -> String {
    let date = date_text(rng, max_year);
    let (day, bc) = match date.strip_suffix(" BC") {
        Some(d) => (d.to_string(), " BC"),
        None => (date, ""),
    };
    let mut time = format!(
        "{:02}:{:02}:{:02}",
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60)
    );
    if rng.random_bool(0.5) {
        time.push_str(&format!(".{:06}", rng.random_range(0..1_000_000)));
    }
    format!("{day} {time}{bc}")
}

#[tokio::test]
async fn dates_and_timestamps_sort_like_postgres() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let date_edges = [
        "infinity",
        "-infinity",
        "4713-11-24 BC",
        "5874897-12-31",
        "0001-01-01",
        "0001-12-31 BC",
        "2000-01-01",
        "1999-12-31",
        "2000-02-29",
        "2000-03-01",
    ];
    let ts_edges = [
        "infinity",
        "-infinity",
        "4713-11-24 00:00:00 BC",
        "294276-12-31 23:59:59.999999",
        "2000-01-01 00:00:00",
        "1999-12-31 23:59:59.999999",
        "2000-01-01 00:00:00.000001",
        "0001-12-31 23:59:59 BC",
    ];
    let cases = vec![
        case(
            "date",
            1082,
            values(&mut rng, &date_edges, 120, |r| date_text(r, 5_874_896)),
        ),
        case(
            "timestamp",
            1114,
            values(&mut rng, &ts_edges, 120, |r| timestamp_text(r, 294_275)),
        ),
    ];
    bounded(check_cases(cases, seed)).await;
}

#[tokio::test]
async fn timestamptz_sorts_like_postgres_in_every_time_zone() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    const OFFSETS: &[&str] = &["+00", "+05:30", "-03:30", "+14", "-12", "+00:19:32", "-08"];
    let edges = [
        "infinity",
        "-infinity",
        "4713-11-25 00:00:00+00 BC",
        "294276-12-30 23:59:59.999999+00",
        "2024-01-02 03:00:00+00",
        "2024-01-02 08:30:00+05:30",
        "2024-01-02 03:00:00.000001+00",
        "1900-01-01 00:00:00+00",
    ];
    // Instants around offset changes, where local wall-clock order differs from time order:
    // Los Angeles and Amsterdam falling back, and Amsterdam leaving +00:19:32 in 1937.
    let mut edges: Vec<String> = edges.iter().map(|s| s.to_string()).collect();
    for minute in (0..240).step_by(10) {
        edges.push(format!(
            "2024-11-03 {:02}:{:02}:00+00",
            7 + minute / 60,
            minute % 60
        ));
        edges.push(format!(
            "2024-10-27 {:02}:{:02}:00+00",
            minute / 120,
            minute / 2 % 60
        ));
    }
    for second in (0..60).step_by(7) {
        edges.push(format!("1937-06-30 23:59:{second:02}+00"));
        edges.push(format!("1937-07-01 00:00:{second:02}+00"));
    }
    let edges: Vec<&str> = edges.iter().map(String::as_str).collect();
    let mut tz = case(
        "timestamptz",
        1184,
        values(&mut rng, &edges, 150, |r| {
            let ts = timestamp_text(r, 200_000);
            let offset = OFFSETS[r.random_range(0..OFFSETS.len())];
            match ts.strip_suffix(" BC") {
                Some(t) => format!("{t}{offset} BC"),
                None => format!("{ts}{offset}"),
            }
        }),
    );
    tz.sessions = [
        "UTC",
        "Asia/Kolkata",
        "America/St_Johns",
        "Europe/Amsterdam",
        "Pacific/Kiritimati",
        "America/Los_Angeles",
    ]
    .iter()
    .map(|zone| format!("SET DateStyle = 'ISO'; SET TimeZone = '{zone}'"))
    .collect();
    bounded(check_cases(vec![tz], seed)).await;
}

#[tokio::test]
async fn interval_is_refused_up_front() {
    let interval = ColumnType {
        oid: 1186,
        binary: false,
    };
    assert!(!supported(1186));
    let spec = SortSpec::new(false, None);
    assert_eq!(
        compare(Some(&b"1 day"[..]), Some(&b"24:00:00"[..]), interval, spec),
        Err(CompareError::Unsupported(1186))
    );
}
