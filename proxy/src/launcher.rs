//! Local PostgreSQL servers for the demo and the integration tests.
//!
//! initdb is slow, so a [`Template`] data directory is made once and copied for every
//! [`LocalPostgres`]. PostgreSQL refuses to run as root: when this process is root, every
//! PostgreSQL binary runs as the `postgres` OS user through `runuser`, and the directories it
//! needs are handed to that user. Each server has a [`Watchdog`] child that stops it and removes
//! its directory when this process dies, because a SIGKILLed test never runs `Drop`.

mod binaries;
mod server;
mod template;
mod watchdog;

pub use binaries::{find_tool, PgBinaries};
pub use server::LocalPostgres;
pub use template::Template;
pub use watchdog::Watchdog;

use std::path::PathBuf;

/// Errors of the launcher.
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    /// No PostgreSQL server binaries on this machine.
    #[error("PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or under /usr/lib/postgresql/*/bin; install them with `apt-get install postgresql`.")]
    NotFound,
    /// Running as root without a `postgres` OS user to run PostgreSQL as.
    #[error("running as root needs a `postgres` OS user to run PostgreSQL as (PostgreSQL refuses root); create one with `useradd --system postgres` or run as a normal user")]
    NoPostgresUser,
    /// The `postgres` OS user cannot enter a directory it needs.
    #[error("PostgreSQL runs as the `postgres` OS user, which cannot enter {0}; use a directory it can reach (for example under /tmp) or `chmod o+x` it")]
    Unreachable(PathBuf),
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external command exited unsuccessfully.
    #[error("{what} failed ({status}): {output}")]
    Command {
        /// The command, in words.
        what: String,
        /// Its exit status.
        status: String,
        /// Its trimmed stderr and stdout.
        output: String,
    },
    /// The server did not start; `log_tail` holds the last lines of its log.
    #[error("PostgreSQL in {data_dir} did not start on port {port}:\n{log_tail}")]
    StartFailed {
        /// The data directory.
        data_dir: PathBuf,
        /// The port it was asked to listen on.
        port: u16,
        /// The last lines of the server log.
        log_tail: String,
    },
    /// A client tool such as psql is missing.
    #[error("`{0}` was not found next to the PostgreSQL server binaries, on PATH or under /usr/lib/postgresql/*/bin; install the PostgreSQL client tools")]
    ToolNotFound(String),
    /// A server setting name that cannot be written to postgresql.conf.
    #[error("invalid PostgreSQL setting name {0:?}")]
    BadSetting(String),
}

impl LauncherError {
    /// Wraps an I/O error with what was being done.
    fn io(what: impl Into<String>, source: std::io::Error) -> LauncherError {
        LauncherError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Settings of a [`LocalPostgres`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Durable writes; off makes tests several times faster.
    pub fsync: bool,
    /// `max_connections`.
    pub max_connections: u32,
    /// `max_prepared_transactions` (two-phase commit needs it above 0).
    pub max_prepared_transactions: u32,
    /// Further `name = value` settings for postgresql.conf.
    pub extra: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            fsync: false,
            max_connections: 200,
            max_prepared_transactions: 100,
            extra: Vec::new(),
        }
    }
}
