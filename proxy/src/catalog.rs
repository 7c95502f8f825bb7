//! What the proxy must learn from a shard's catalog because the router is pure and cannot: the
//! position of a shard key column among a table's columns, for `COPY t FROM STDIN` without a
//! column list (as `pgbench -i` sends). Looked up on the default shard over a short-lived
//! connection of its own, cached per table, and forgotten whenever DDL passes through the proxy.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::context::ProxyContext;
use crate::control::{driver_config, quote_ident};

/// Cached key positions by (table, key column).
#[derive(Default)]
pub struct CatalogCache {
    key_positions: Mutex<HashMap<(String, String), usize>>,
}

impl CatalogCache {
    /// Forgets everything (a table's columns may have changed).
    pub fn clear(&self) {
        if let Ok(mut map) = self.key_positions.lock() {
            map.clear();
        }
    }

    /// Zero-based position of `column` among the columns `COPY table FROM STDIN` reads (all
    /// non-dropped, non-generated columns in order). Errors are client-facing.
    pub async fn key_position(
        &self,
        ctx: &ProxyContext,
        table: &str,
        column: &str,
    ) -> Result<usize, (&'static str, String)> {
        let key = (table.to_string(), column.to_string());
        if let Some(pos) = self
            .key_positions
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied())
        {
            return Ok(pos);
        }
        let pos = lookup(ctx, table, column).await?;
        if let Ok(mut map) = self.key_positions.lock() {
            map.insert(key, pos);
        }
        Ok(pos)
    }
}

async fn lookup(
    ctx: &ProxyContext,
    table: &str,
    column: &str,
) -> Result<usize, (&'static str, String)> {
    let config = ctx.config.load_full();
    let shard = config.default_shard();
    let unavailable = |e: String| {
        (
            "08006",
            format!(
                "could not read the columns of {table} on shard \"{}\": {e}",
                shard.name
            ),
        )
    };
    let (client, connection) = driver_config(&shard.url, config.pool.connect_timeout)
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let conn = tokio::spawn(connection);
    let sql = "SELECT count(*) FILTER (WHERE a.attnum < k.attnum)::int8 \
               FROM pg_attribute a, pg_attribute k \
               WHERE a.attrelid = $1::text::regclass AND k.attrelid = a.attrelid AND k.attname = $2 \
                 AND NOT k.attisdropped AND a.attnum > 0 AND NOT a.attisdropped \
                 AND a.attgenerated = '' \
               GROUP BY k.attnum";
    let rows = client
        .query(sql, &[&quote_ident(table), &column])
        .await
        .map_err(|e| unavailable(e.to_string()));
    drop(client);
    let _ = conn.await;
    let rows = rows?;
    match rows.first() {
        Some(row) => {
            let n: i64 = row.get(0);
            usize::try_from(n).map_err(|_| unavailable("bad column position".into()))
        }
        None => Err((
            "42703",
            format!("shard key column \"{column}\" of table \"{table}\" does not exist"),
        )),
    }
}
