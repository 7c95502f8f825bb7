//! Per-shard pools of backend connections (deadpool), LIFO so hot connections are reused.

use std::time::Duration;

use config::{PoolConfig, ShardConfig};
use deadpool::managed::{self, Metrics, Object, PoolError, QueueMode, RecycleError, Timeouts};

use super::conn::{BackendConn, BackendError};

/// Creates and health-checks connections to one shard host.
pub struct Manager {
    shard: ShardConfig,
    index: usize,
    connect_timeout: Duration,
}

impl managed::Manager for Manager {
    type Type = BackendConn;
    type Error = BackendError;

    async fn create(&self) -> Result<BackendConn, BackendError> {
        let conn = BackendConn::connect(&self.shard.url, self.index, self.connect_timeout).await?;
        tracing::debug!(shard = %self.shard.name, pid = conn.cancel_key.process_id, "backend connected");
        Ok(conn)
    }

    async fn recycle(
        &self,
        conn: &mut BackendConn,
        _: &Metrics,
    ) -> managed::RecycleResult<BackendError> {
        // A backend is only returned idle and clean; anything else was marked broken. The idle
        // probe catches servers that went away while the connection sat in the pool.
        if conn.broken || conn.is_closed_while_idle() {
            return Err(RecycleError::message("backend connection closed"));
        }
        Ok(())
    }
}

/// A checked-out backend; returns to its pool when dropped unless detached.
pub type PooledBackend = Object<Manager>;

/// Why a client could not get a backend.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Every connection stayed busy for `checkout_timeout`.
    #[error("timed out after {0:?} waiting for a connection to shard \"{1}\"")]
    Timeout(Duration, String),
    /// A new connection could not be made.
    #[error(transparent)]
    Connect(#[from] BackendError),
    /// The pool is shutting down.
    #[error("shard \"{0}\" is shutting down")]
    Closed(String),
}

/// The pool of one shard.
pub struct ShardPool {
    /// Shard name (for errors and metrics).
    pub name: String,
    pool: managed::Pool<Manager>,
    checkout_timeout: Duration,
}

impl ShardPool {
    /// A pool for `shard` (index `index` in the config) with `[pool]` settings.
    pub fn new(shard: &ShardConfig, index: usize, cfg: &PoolConfig) -> ShardPool {
        let manager = Manager {
            shard: shard.clone(),
            index,
            connect_timeout: cfg.connect_timeout,
        };
        let mut pool_cfg = managed::PoolConfig::new(cfg.size);
        pool_cfg.queue_mode = QueueMode::Lifo;
        pool_cfg.timeouts = Timeouts {
            wait: Some(cfg.checkout_timeout),
            create: Some(cfg.connect_timeout),
            // recycle never waits (one non-blocking probe): no timer needed on the hot path
            recycle: None,
        };
        let pool = managed::Pool::builder(manager)
            .config(pool_cfg)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .unwrap_or_else(|_| unreachable!("runtime is set")); // ok: builder only fails without runtime
        ShardPool {
            name: shard.name.clone(),
            pool,
            checkout_timeout: cfg.checkout_timeout,
        }
    }

    /// Waits for an idle connection (or makes one) within the checkout timeout.
    pub async fn get(&self) -> Result<PooledBackend, CheckoutError> {
        // deadpool retries recycle failures by creating a fresh connection itself.
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(managed::TimeoutType::Create) => {
                CheckoutError::Connect(BackendError::ConnectTimeout(self.name.clone()))
            }
            PoolError::Timeout(_) => {
                CheckoutError::Timeout(self.checkout_timeout, self.name.clone())
            }
            PoolError::Backend(b) => CheckoutError::Connect(b),
            _ => CheckoutError::Closed(self.name.clone()),
        })
    }

    /// Connections in use and idle: (size, available, waiting).
    pub fn status(&self) -> managed::Status {
        self.pool.status()
    }

    /// Closes the pool: idle connections are dropped, new checkouts fail.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// Removes a connection from its pool for good (it is dropped, freeing the slot).
pub fn discard(backend: PooledBackend) {
    drop(Object::take(backend));
}
