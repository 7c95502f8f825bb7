//! HAVING evaluated at the proxy (`proxy::merge::filter`) against `SELECT <condition>` on the
//! server: random comparisons of typed values with numeric, string, boolean and NULL constants,
//! combined with AND / OR / NOT, read in text and binary format; results and error messages
//! must match.

use integration::util::bounded;
use proxy::merge::filter::{self, FilterError};
use proxy::merge::ColumnType;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shard_router::merge::{CmpOp, Filter, Literal, Operand};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::wire::{one_row, pg_error, seed};

/// A column type for the HAVING checks, with values and constants to compare it with.
struct HavingType {
    sql_type: &'static str,
    values: &'static [&'static str],
    numbers: &'static [&'static str],
    strings: &'static [&'static str],
}

const HAVING_TYPES: &[HavingType] = &[
    HavingType {
        sql_type: "int4",
        values: &["0", "3", "-2", "2147483647"],
        numbers: &["3", "2.5", "-2", "1e1", "99999999999", "-0.0"],
        strings: &["3", " -2 ", "abc", "2.5", "99999999999", "+0"],
    },
    HavingType {
        sql_type: "int8",
        values: &["9007199254740993", "-1", "0"],
        numbers: &["9007199254740993", "9007199254740992.0", "-1", "0.5"],
        strings: &["9007199254740993", "-1", "1x", "9223372036854775808"],
    },
    HavingType {
        sql_type: "numeric",
        values: &["1.50", "-2", "NaN", "Infinity", "0.000", "-Infinity"],
        numbers: &["1.5", "15e-1", "-2", "0", "1e-3"],
        strings: &["NaN", "Infinity", "1.5", "x", "-inf"],
    },
    HavingType {
        sql_type: "float8",
        values: &["0.1", "NaN", "Infinity", "-0", "1.5", "9007199254740992"],
        numbers: &["0.1", "1.5", "0", "9007199254740993"],
        strings: &["0.1", "NaN", "-Infinity", "abc", "1e400", "1e-400", "0"],
    },
    HavingType {
        sql_type: "float4",
        values: &["0.1", "1.5", "NaN", "16777216"],
        numbers: &["0.1", "1.5", "16777217"],
        strings: &["0.1", "16777217", "1e40", "nan"],
    },
    HavingType {
        sql_type: "text",
        values: &["a", "ab", "b ", "é", ""],
        numbers: &["1"],
        strings: &["a", "b", "b ", "z", ""],
    },
    HavingType {
        sql_type: "char(3)",
        values: &["a", "ab", "b  "],
        numbers: &[],
        strings: &["a", "a  ", "b", "ab "],
    },
    HavingType {
        sql_type: "bool",
        values: &["t", "f"],
        numbers: &["1"],
        strings: &["yes", "off", "maybe", "1", " t "],
    },
    HavingType {
        sql_type: "date",
        values: &["2024-01-02", "infinity", "1999-12-31"],
        numbers: &[],
        strings: &["2024-01-02", "2000-01-01", "-infinity", "1999-12-31"],
    },
    HavingType {
        sql_type: "timestamptz",
        values: &["2024-01-02 00:00:00+00", "2024-01-01 23:59:59.5+00"],
        numbers: &[],
        strings: &[
            "2024-01-02 03:00:00+03",
            "2024-01-01 22:00-02",
            "2024-01-01T23:59:59.5Z",
        ],
    },
];

/// A random comparison of column `col` (of type `ht`) with a constant: the filter and its SQL.
fn random_cmp(rng: &mut StdRng, col: usize, ht: &HavingType, col_sql: &str) -> (Filter, String) {
    let ops = [
        (CmpOp::Eq, "="),
        (CmpOp::NotEq, "<>"),
        (CmpOp::Lt, "<"),
        (CmpOp::LtEq, "<="),
        (CmpOp::Gt, ">"),
        (CmpOp::GtEq, ">="),
    ];
    let (op, op_sql) = ops[rng.random_range(0..ops.len())];
    let (constant, sql) = match rng.random_range(0..10) {
        0 if ht.sql_type == "bool" => {
            let b = rng.random_bool(0.5);
            (Literal::Bool(b), b.to_string())
        }
        0..=3 if !ht.numbers.is_empty() => {
            let n = ht.numbers[rng.random_range(0..ht.numbers.len())];
            (Literal::Number(n.into()), format!("({n})"))
        }
        9 => (Literal::Null, "NULL".into()),
        _ => {
            let s = ht.strings[rng.random_range(0..ht.strings.len())];
            (Literal::Text(s.into()), format!("'{s}'"))
        }
    };
    let (left, right, sql) = if rng.random_bool(0.5) {
        (
            Operand::Column(col),
            Operand::Literal(constant),
            format!("({col_sql} {op_sql} {sql})"),
        )
    } else {
        (
            Operand::Literal(constant),
            Operand::Column(col),
            format!("({sql} {op_sql} {col_sql})"),
        )
    };
    (Filter::Cmp { op, left, right }, sql)
}

/// What PostgreSQL answered: a truth value, or an error's message.
async fn pg_truth(client: &Client, sql: &str) -> Result<Option<bool>, String> {
    match client.simple_query(sql).await {
        Ok(messages) => {
            for msg in messages {
                if let SimpleQueryMessage::Row(row) = msg {
                    return Ok(row.get(0).map(|v| v == "t"));
                }
            }
            panic!("{sql}: no row");
        }
        Err(e) => Err(e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default()),
    }
}

#[tokio::test]
async fn having_evaluates_like_postgres() {
    let seed = seed();
    bounded(async move {
        let dbs = integration::fresh_dbs(1).await;
        let client = integration::connect_url(&dbs.oracle_url).await;
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..600 {
            // Two columns, each a random value (or NULL) of a random type.
            let types: Vec<&HavingType> = (0..2)
                .map(|_| &HAVING_TYPES[rng.random_range(0..HAVING_TYPES.len())])
                .collect();
            let values: Vec<Option<&str>> = types
                .iter()
                .map(|t| {
                    (!rng.random_bool(0.15)).then(|| t.values[rng.random_range(0..t.values.len())])
                })
                .collect();
            let cols_sql: Vec<String> = types
                .iter()
                .zip(&values)
                .map(|(t, v)| match v {
                    Some(v) => format!("'{v}'::{}", t.sql_type),
                    None => format!("NULL::{}", t.sql_type),
                })
                .collect();
            let row = one_row(&client, &format!("SELECT {}", cols_sql.join(", "))).await;
            let (a, a_sql) = random_cmp(&mut rng, 0, types[0], &cols_sql[0]);
            let (b, b_sql) = random_cmp(&mut rng, 1, types[1], &cols_sql[1]);
            let (filter, sql) = match rng.random_range(0..4) {
                0 => (a, a_sql),
                1 => (Filter::And(vec![a, b]), format!("({a_sql} AND {b_sql})")),
                2 => (Filter::Or(vec![a, b]), format!("({a_sql} OR {b_sql})")),
                _ => (Filter::Not(Box::new(a)), format!("(NOT {a_sql})")),
            };
            let want = pg_truth(&client, &format!("SELECT {sql}")).await;
            for binary in [false, true] {
                let fields = [row.get(0, binary), row.get(1, binary)];
                let col_types = [
                    ColumnType {
                        oid: row.oids[0],
                        binary,
                    },
                    ColumnType {
                        oid: row.oids[1],
                        binary,
                    },
                ];
                let got = filter::eval(&filter, &fields, &col_types, &[]);
                let context = format!("SELECT {sql} (binary {binary}, seed {seed})");
                match (&got, &want) {
                    (Ok(g), Ok(w)) => assert_eq!(g, w, "{context}"),
                    (Err(FilterError::Invalid(g)), Err(w)) => assert_eq!(g, w, "{context}"),
                    // Operators PostgreSQL lacks are refused with its message.
                    (Err(FilterError::Unsupported(g)), Err(w))
                        if w.starts_with("operator does not exist") =>
                    {
                        assert_eq!(g, w, "{context}")
                    }
                    _ => panic!("got {got:?}, PostgreSQL: {want:?} / {context}"),
                }
            }
        }
        // Bind parameters are typed like the column they meet.
        let row = one_row(&client, "SELECT 7::int4").await;
        let params = [Some("10".to_string()), None, Some("x".to_string())];
        for (p, want) in [(0, Ok(Some(true))), (1, Ok(None))] {
            let f = Filter::Cmp {
                op: CmpOp::Lt,
                left: Operand::Column(0),
                right: Operand::Param(p),
            };
            let ty = [ColumnType {
                oid: 23,
                binary: false,
            }];
            assert_eq!(filter::eval(&f, &[row.get(0, false)], &ty, &params), want);
        }
        let prepared = client.prepare("SELECT 7::int4 < $1").await.unwrap();
        assert_eq!(prepared.params()[0].oid(), 23);
        let (code, message) = pg_error(&client, "SELECT 7::int4 < 'x'").await;
        let f = Filter::Cmp {
            op: CmpOp::Lt,
            left: Operand::Column(0),
            right: Operand::Param(2),
        };
        let ty = [ColumnType {
            oid: 23,
            binary: false,
        }];
        let err = filter::eval(&f, &[row.get(0, false)], &ty, &params).unwrap_err();
        assert_eq!((err.sqlstate(), err.to_string()), (&code[..], message));
    })
    .await;
}
