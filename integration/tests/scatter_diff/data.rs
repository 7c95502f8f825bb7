//! The seeded rows of table `t`, loaded identically into the oracle (directly) and into the
//! sharded table (through the proxy): half with COPY FROM STDIN (simple protocol, as psql
//! sends it), half with multi-row INSERTs.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::RngExt;

use crate::wire::Conn;

/// The table, the same on the oracle and (through the proxy) on every shard.
pub const SCHEMA: &str = "CREATE TABLE t (id bigint PRIMARY KEY, i int, s text, \
                          n numeric(12,2), f float8, b bool, ts timestamp)";

/// The config's maps and tables: `t` hash-sharded on `id` over s0..s2.
pub const MAPS_TOML: &str = r#"
[maps.t]
strategy = "hash"
key_type = "bigint"
buckets = 64

[tables]
t = { map = "t", key = "id" }
"#;

/// Characters of `s`: both cases (byte order puts 'B' before 'a'), a space and a non-ASCII
/// letter (two UTF-8 bytes sorting after 'z').
const ALPHABET: &[char] = &['a', 'A', 'b', 'B', 'z', ' ', 'é'];

/// One row; every value already in PostgreSQL's text input form (None = NULL).
pub struct Row {
    id: i64,
    values: [Option<String>; 6],
}

/// `count` rows with distinct keys, about 10% NULL in every other column.
pub fn rows(rng: &mut StdRng, count: usize) -> Vec<Row> {
    let mut ids = BTreeSet::new();
    while ids.len() < count {
        // Small and huge keys, negative ones too: they hash all over the buckets.
        let id = if rng.random_bool(0.5) {
            rng.random_range(-5_000..5_000)
        } else {
            rng.random_range(-1_000_000_000_000i64..1_000_000_000_000)
        };
        ids.insert(id);
    }
    let mut ids: Vec<i64> = ids.into_iter().collect();
    // Load order independent of key order.
    rand::seq::SliceRandom::shuffle(ids.as_mut_slice(), rng);
    ids.into_iter()
        .map(|id| Row {
            id,
            values: [
                maybe(rng, |r| r.random_range(-1000..=1000i32).to_string()),
                maybe(rng, text),
                maybe(rng, numeric),
                maybe(rng, float),
                maybe(rng, |r| r.random_bool(0.5).to_string()),
                maybe(rng, timestamp),
            ],
        })
        .collect()
}

/// A value from `make`, or NULL one time in ten.
fn maybe(rng: &mut StdRng, make: impl Fn(&mut StdRng) -> String) -> Option<String> {
    (!rng.random_ratio(1, 10)).then(|| make(rng))
}

/// 0 to 3 characters: many duplicates, the empty string included.
fn text(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..=3);
    (0..len)
        .map(|_| *ALPHABET.choose(rng).unwrap_or(&'a'))
        .collect()
}

/// numeric(12,2) in (-10000, 10000), always with two decimals.
fn numeric(rng: &mut StdRng) -> String {
    let cents: i64 = rng.random_range(-999_999..=999_999);
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// k/8 with |k| < 2^20: every sum of a few thousand of them is exact in float8, so sum/avg do
/// not depend on the order the values are added in (one server and a merge add in different
/// orders; with arbitrary floats the last bits could differ). Half from a narrow range, so
/// that values repeat (GROUP BY, DISTINCT). Never -0: min/max could return either zero.
fn float(rng: &mut StdRng) -> String {
    let k: i32 = if rng.random_bool(0.5) {
        rng.random_range(-64..=64)
    } else {
        rng.random_range(-(1 << 20) + 1..1 << 20)
    };
    format!("{}", f64::from(k) / 8.0)
}

/// A timestamp in 2019-2024, a third of them with microseconds.
fn timestamp(rng: &mut StdRng) -> String {
    let base = format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        rng.random_range(2019..=2024),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
    );
    if rng.random_ratio(1, 3) {
        format!("{base}.{:06}", rng.random_range(0..1_000_000))
    } else {
        base
    }
}

/// The rows as COPY text format lines (none of the values needs escaping).
fn copy_text(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str(&row.id.to_string());
        for v in &row.values {
            out.push('\t');
            out.push_str(v.as_deref().unwrap_or("\\N"));
        }
        out.push('\n');
    }
    out
}

/// One multi-row INSERT (no value contains a quote).
fn insert_sql(rows: &[Row]) -> String {
    let tuples: Vec<String> = rows
        .iter()
        .map(|row| {
            let values: Vec<String> = row
                .values
                .iter()
                .map(|v| v.as_ref().map_or("NULL".into(), |s| format!("'{s}'")))
                .collect();
            format!("({}, {})", row.id, values.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO t (id, i, s, n, f, b, ts) VALUES {}",
        tuples.join(", ")
    )
}

/// Loads `rows` through `conn`: the first half with COPY FROM STDIN, the rest in INSERTs of
/// 250 rows. Err: what failed.
pub async fn load(conn: &mut Conn, rows: &[Row]) -> Result<(), String> {
    let (copied, inserted) = rows.split_at(rows.len() / 2);
    let sql = "COPY t (id, i, s, n, f, b, ts) FROM STDIN";
    match conn.copy_in(sql, copy_text(copied).as_bytes()).await? {
        Ok(tag) if tag == format!("COPY {}", copied.len()) => {}
        Ok(tag) => return Err(format!("{sql}: tag {tag:?} for {} rows", copied.len())),
        Err(e) => return Err(format!("{sql}: {e:?}")),
    }
    for chunk in inserted.chunks(250) {
        match conn.simple(&insert_sql(chunk)).await? {
            Ok(answer) if answer.tag == format!("INSERT 0 {}", chunk.len()) => {}
            Ok(answer) => {
                return Err(format!(
                    "INSERT of {} rows: tag {:?}",
                    chunk.len(),
                    answer.tag
                ))
            }
            Err(e) => return Err(format!("INSERT: {e:?}")),
        }
    }
    Ok(())
}
