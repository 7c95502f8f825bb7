//! A query the way a real driver sends it: tokio-postgres prepares a named statement
//! (Parse/Describe/Sync), executes it with binary results (Bind/Execute/Sync) and closes it.
//! Each column is read as the raw bytes the server sent; the answer is put in the shape of
//! `wire::Answer` (the driver shows only names and type OIDs of the columns, and the row count
//! of the command tag).

use std::error::Error;
use std::net::SocketAddr;

use futures::TryStreamExt;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls};

use crate::wire::{Answer, Column, Outcome, ServerError};

/// Any column's raw binary bytes, as the server sent them.
struct RawValue(Option<Vec<u8>>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawValue(Some(raw.to_vec())))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawValue(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A tokio-postgres client (trust), its connection task spawned.
pub async fn connect(addr: SocketAddr, db: &str) -> Result<Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("postgres")
        .dbname(db);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs `sql` (no parameters): an error from the server is an `Outcome`, any other failure
/// (a closed connection) is `Err`.
pub async fn run(client: &Client, sql: &str) -> Result<Outcome, String> {
    match answer(client, sql).await {
        Ok(answer) => Ok(Ok(answer)),
        Err(e) => match e.as_db_error() {
            Some(db) => Ok(Err(ServerError {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            })),
            None => Err(format!("tokio-postgres: {e}")),
        },
    }
}

async fn answer(client: &Client, sql: &str) -> Result<Answer, tokio_postgres::Error> {
    let stmt = client.prepare(sql).await?;
    let columns: Vec<Column> = stmt
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_oid: c.type_().oid(),
            type_len: 0,
            type_mod: 0,
            format: 1,
        })
        .collect();
    let stream = client.query_raw(&stmt, std::iter::empty::<i32>()).await?;
    futures::pin_mut!(stream);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await? {
        let values = (0..row.len())
            .map(|i| row.try_get::<_, RawValue>(i).map(|v| v.0))
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(values);
    }
    let tag = format!("SELECT {}", stream.rows_affected().unwrap_or(u64::MAX));
    Ok(Answer {
        columns: (!columns.is_empty()).then_some(columns),
        rows,
        tag,
        described: None,
    })
}
