//! Recovery's SQL on one shard, over a tokio-postgres connection of its own (never a pooled
//! backend): list our prepared transactions, finish one, check max_prepared_transactions.

use std::time::{Duration, SystemTime};

use config::ShardConfig;

/// `application_name` of recovery's connections, so DBAs can tell them apart.
const APPLICATION_NAME: &str = "shardproxy-2pc-recovery";

/// SQLSTATE undefined_object: COMMIT/ROLLBACK PREPARED of a gid that is not prepared.
const UNDEFINED_OBJECT: &str = "42704";

/// A prepared transaction found on a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its gid.
    pub gid: String,
    /// When it was prepared (the server's clock).
    pub prepared: SystemTime,
}

/// COMMIT PREPARED or ROLLBACK PREPARED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// COMMIT PREPARED.
    Commit,
    /// ROLLBACK PREPARED.
    Rollback,
}

impl Finish {
    /// The metric's action.
    pub(crate) fn action(self) -> admin::RecoveryAction {
        match self {
            Finish::Commit => admin::RecoveryAction::Commit,
            Finish::Rollback => admin::RecoveryAction::Rollback,
        }
    }

    fn sql(self, gid: &str) -> String {
        // Our gids are [A-Za-z0-9_-] only; doubling quotes keeps any other text literal too.
        let gid = gid.replace('\'', "''");
        match self {
            Finish::Commit => format!("COMMIT PREPARED '{gid}'"),
            Finish::Rollback => format!("ROLLBACK PREPARED '{gid}'"),
        }
    }
}

/// Why something failed on a shard.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShardSqlError {
    /// No connection (refused, timed out, authentication...).
    #[error("shard {shard}: cannot connect to {url}: {reason}")]
    Connect {
        /// Shard name.
        shard: String,
        /// The URL, password hidden.
        url: String,
        /// What the driver said.
        reason: String,
    },
    /// The gid is not prepared there (any more): someone else finished it. Not a success.
    #[error("shard {shard}: {gid} is not prepared there any more")]
    NotPrepared {
        /// Shard name.
        shard: String,
        /// The gid.
        gid: String,
    },
    /// The statement failed or the connection broke.
    #[error("shard {shard}: {what} failed: {reason}")]
    Query {
        /// Shard name.
        shard: String,
        /// What was run.
        what: String,
        /// The server's or driver's message.
        reason: String,
    },
    /// No answer in time.
    #[error("shard {shard}: no answer within {seconds} s")]
    Timeout {
        /// Shard name.
        shard: String,
        /// The limit.
        seconds: u64,
    },
}

/// A connection to one shard for recovery.
pub(crate) struct ShardClient {
    shard: String,
    client: tokio_postgres::Client,
    timeout: Duration,
}

impl ShardClient {
    /// Connects to the shard's primary.
    pub(crate) async fn connect(
        shard: &ShardConfig,
        connect_timeout: Duration,
        query_timeout: Duration,
    ) -> Result<ShardClient, ShardSqlError> {
        let mut cfg = crate::control::driver_config(&shard.url, connect_timeout);
        cfg.application_name(APPLICATION_NAME);
        let connect_failed = |reason: String| ShardSqlError::Connect {
            shard: shard.name.clone(),
            url: shard.url.to_string(),
            reason,
        };
        let connecting = tokio::time::timeout(
            connect_timeout + Duration::from_secs(1),
            cfg.connect(tokio_postgres::NoTls),
        );
        let (client, connection) = connecting
            .await
            .map_err(|_| connect_failed("timed out".to_owned()))?
            .map_err(|e| connect_failed(e.to_string()))?;
        // Ends by itself when `client` is dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(ShardClient {
            shard: shard.name.clone(),
            client,
            timeout: query_timeout,
        })
    }

    /// True when the connection has gone away.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// `SHOW max_prepared_transactions`.
    pub(crate) async fn max_prepared_transactions(&self) -> Result<i64, ShardSqlError> {
        let what = "SHOW max_prepared_transactions";
        let rows = self.timed(what, self.client.simple_query(what)).await?;
        let value = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        });
        value
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| self.query_error(what, "no number in the answer".to_owned()))
    }

    /// The prepared transactions of this shard's database.
    pub(crate) async fn list_prepared(&self) -> Result<Vec<Listed>, ShardSqlError> {
        let what = "SELECT FROM pg_prepared_xacts";
        let sql = "SELECT gid, prepared FROM pg_prepared_xacts WHERE database = current_database()";
        let rows = self.timed(what, self.client.query(sql, &[])).await?;
        rows.iter()
            .map(|row| {
                Ok(Listed {
                    gid: row
                        .try_get(0)
                        .map_err(|e| self.query_error(what, e.to_string()))?,
                    prepared: row
                        .try_get(1)
                        .map_err(|e| self.query_error(what, e.to_string()))?,
                })
            })
            .collect()
    }

    /// COMMIT PREPARED / ROLLBACK PREPARED `gid`. "Not prepared" is its own error, never Ok.
    pub(crate) async fn finish(&self, gid: &str, how: Finish) -> Result<(), ShardSqlError> {
        let sql = how.sql(gid);
        let answer = tokio::time::timeout(self.timeout, self.client.batch_execute(&sql)).await;
        match answer {
            Err(_) => Err(self.timeout_error()),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.code().map(|c| c.code()) == Some(UNDEFINED_OBJECT) => {
                Err(ShardSqlError::NotPrepared {
                    shard: self.shard.clone(),
                    gid: gid.to_owned(),
                })
            }
            Ok(Err(e)) => Err(self.query_error(&sql, db_message(&e))),
        }
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, ShardSqlError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(self.timeout_error()),
            Ok(r) => r.map_err(|e| self.query_error(what, db_message(&e))),
        }
    }

    fn query_error(&self, what: &str, reason: String) -> ShardSqlError {
        ShardSqlError::Query {
            shard: self.shard.clone(),
            what: what.to_owned(),
            reason,
        }
    }

    fn timeout_error(&self) -> ShardSqlError {
        ShardSqlError::Timeout {
            shard: self.shard.clone(),
            seconds: self.timeout.as_secs(),
        }
    }
}

/// The server's message when there is one (tokio-postgres' Display says only "db error").
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
