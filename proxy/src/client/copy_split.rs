//! COPY FROM STDIN into a sharded table: the client's data is cut into rows as it streams in
//! (rows may span CopyData messages; CSV fields may hold newlines), each row's key field is
//! placed by the table's shard map, and each shard receives its rows in one CopyData per
//! client message. Nothing is buffered beyond one incomplete row. A row whose key is NULL or
//! invalid aborts the COPY on every shard, and the client gets that row's error.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use shard_router::copy::{self, RowSplitter};
use shard_router::{CopyIn, RouteError, Router};

use super::session::Session;
use crate::protocol::encode;

/// An active split COPY.
pub(crate) struct CopySplit {
    splitter: RowSplitter,
    info: CopyIn,
    key_index: usize,
    router: Arc<Router>,
    shards: Vec<usize>,
    header_sent: bool,
    failed: bool,
    rows: u64,
}

impl Session {
    /// Fills in the key's position when the COPY has no column list (from the catalog).
    pub(crate) async fn resolve_copy_key(
        &self,
        info: &mut CopyIn,
    ) -> Result<(), (&'static str, String)> {
        if info.key_index.is_none() {
            let pos = self
                .ctx
                .catalog
                .key_position(&self.ctx, &info.table, &info.column)
                .await?;
            info.key_index = Some(pos);
        }
        Ok(())
    }

    /// The COPY statement went to `shards`; its data will be split among them.
    pub(crate) fn start_copy_split(
        &mut self,
        info: &CopyIn,
        router: Arc<Router>,
        shards: Vec<usize>,
    ) {
        self.copy_split = Some(CopySplit {
            splitter: RowSplitter::new(info.format.clone()),
            key_index: info.key_index.unwrap_or(0),
            info: info.clone(),
            router,
            shards,
            header_sent: false,
            failed: false,
            rows: 0,
        });
    }

    /// One CopyData payload from the client.
    pub(crate) fn split_copy_data(&mut self, payload: &[u8]) {
        let Some(cs) = self.copy_split.as_mut() else {
            return;
        };
        if cs.failed {
            return;
        }
        let rows = match cs.splitter.push(payload) {
            Ok(rows) => rows,
            Err(e) => {
                let err = e.to_route_error(&cs.info.table, &cs.info.column);
                return self.fail_copy(err);
            }
        };
        self.route_rows(rows);
    }

    /// The client ended the COPY: route the last row and end it on every shard.
    pub(crate) fn finish_copy_split(&mut self, raw_end: &[u8], done: bool) {
        let Some(cs) = self.copy_split.as_mut() else {
            return;
        };
        if cs.failed {
            self.copy_split = None;
            return;
        }
        if done {
            match cs.splitter.finish() {
                Ok(rows) => self.route_rows(rows),
                Err(e) => {
                    let err = e.to_route_error(&cs.info.table, &cs.info.column);
                    self.fail_copy(err);
                }
            }
        }
        if let Some(cs) = self.copy_split.take() {
            if !cs.failed {
                for s in cs.shards {
                    if let Some(b) = self.backends.get_mut(s) {
                        b.write_buf.extend_from_slice(raw_end);
                    }
                }
            }
        }
    }

    fn route_rows(&mut self, rows: Vec<Bytes>) {
        let Some(cs) = self.copy_split.as_mut() else {
            return;
        };
        if !cs.header_sent {
            if let Some(header) = cs.splitter.header().cloned() {
                // The shards' COPY statements keep HEADER: each skips one header line.
                for &s in &cs.shards {
                    if let Some(b) = self.backends.get_mut(s) {
                        encode::copy_data(&mut b.write_buf, &header);
                    }
                }
                cs.header_sent = true;
            }
        }
        if rows.is_empty() {
            return;
        }
        let Some(map) = cs.router.maps().get(cs.info.map) else {
            let err = RouteError::new("XX000", "shard map of the COPY table disappeared");
            return self.fail_copy(err);
        };
        let mut per_shard: Vec<(usize, BytesMut)> = Vec::new();
        for row in rows {
            cs.rows += 1;
            let placed = copy::row_key(
                &row,
                cs.key_index,
                &cs.info.column,
                map.key_type(),
                &cs.info.format,
            )
            .map_err(|e| e.to_route_error(&cs.info.table, &cs.info.column))
            .and_then(|key| {
                map.place(&key)
                    .map_err(|e| RouteError::new(e.sqlstate(), e.to_string()))
            });
            let shard = match placed {
                Ok(s) => s,
                Err(e) => {
                    let message = format!("{} (COPY row {})", e.message, cs.rows);
                    return self.fail_copy(RouteError::new(e.code, message));
                }
            };
            match per_shard.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, buf)) => buf.extend_from_slice(&row),
                None => per_shard.push((shard, BytesMut::from(&row[..]))),
            }
        }
        for (shard, rows) in per_shard {
            if let Some(b) = self.backends.get_mut(shard) {
                encode::copy_data(&mut b.write_buf, &rows);
            }
        }
    }

    /// Aborts the COPY on every shard; the client sees `err` instead of the shards' errors.
    fn fail_copy(&mut self, err: RouteError) {
        let Some(cs) = self.copy_split.as_mut() else {
            return;
        };
        cs.failed = true;
        let shards = cs.shards.clone();
        let mut bytes = BytesMut::new();
        encode::error_response(&mut bytes, "ERROR", err.code, &err.message);
        self.pipeline.replace_next_error = Some(bytes.freeze());
        for s in shards {
            if let Some(b) = self.backends.get_mut(s) {
                encode::copy_fail(&mut b.write_buf, &err.message);
            }
        }
    }
}
