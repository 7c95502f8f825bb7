//! Reading one-row results in text and binary format, and other helpers of the merge_agg tests.

use std::error::Error;

use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Any column's raw binary bytes, as the server sent them.
pub struct RawValue<'a>(Option<&'a [u8]>);

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

/// The seed of this run (printed, and in every failure message).
pub fn seed() -> u64 {
    let seed = std::env::var("MERGE_AGG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("merge_agg seed: {seed} (MERGE_AGG_SEED={seed} to replay)");
    seed
}

/// A one-row result read in text and in binary format, with its column type OIDs.
pub struct Row {
    pub oids: Vec<u32>,
    pub text: Vec<Option<Vec<u8>>>,
    pub binary: Vec<Option<Vec<u8>>>,
}

impl Row {
    /// Column `i` in text or binary format.
    pub fn get(&self, i: usize, binary: bool) -> Option<&[u8]> {
        let values = if binary { &self.binary } else { &self.text };
        values[i].as_deref()
    }
}

/// Runs a one-row query in both formats.
pub async fn one_row(client: &Client, sql: &str) -> Row {
    let mut text = Vec::new();
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    for msg in messages {
        if let SimpleQueryMessage::Row(row) = msg {
            text = (0..row.len())
                .map(|i| row.get(i).map(|s| s.as_bytes().to_vec()))
                .collect();
        }
    }
    let stmt = client.prepare(sql).await.unwrap();
    let oids = stmt.columns().iter().map(|c| c.type_().oid()).collect();
    let row = client.query_one(&stmt, &[]).await.unwrap();
    let binary = (0..row.len())
        .map(|i| row.get::<_, RawValue>(i).0.map(<[u8]>::to_vec))
        .collect();
    Row { oids, text, binary }
}

/// Bytes as text for failure messages.
pub fn show(v: Option<&[u8]>) -> String {
    match v {
        None => "NULL".into(),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

/// The SQLSTATE and message of a statement that must fail.
pub async fn pg_error(client: &Client, sql: &str) -> (String, String) {
    let err = client
        .simple_query(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("{sql} did not fail"));
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: {err:?}"));
    (db.code().code().to_string(), db.message().to_string())
}
