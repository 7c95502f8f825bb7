//! Backend side: our own raw-protocol connections to shard servers and their pools.

pub mod conn;
pub mod pool;

pub use conn::{BackendConn, BackendError, CancelKey};
pub use pool::{PooledBackend, ShardPool};
