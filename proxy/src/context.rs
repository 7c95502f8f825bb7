//! The shared state of one running proxy, passed to every task as `Arc<ProxyContext>`.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use admin::ProxyMetrics;
use arc_swap::ArcSwap;
use config::{Config, PoolMode};
use shard_router::Router;

use crate::auth::AuthDb;
use crate::backend::ShardPool;
use crate::cancel::CancelRegistry;
use crate::client::statements::StatementRegistry;
use crate::reload::ReloadState;
use crate::twopc::TwoPc;

/// Everything sessions share. No globals: two proxies can run in one process.
pub struct ProxyContext {
    /// The config the proxy runs with (swapped on reload).
    pub config: ArcSwap<Config>,
    /// The routing state (swapped on reload); load it once per statement.
    pub router: ArcSwap<Router>,
    /// The file the config came from; `None` when started from text (no reload then).
    pub config_path: Option<PathBuf>,
    /// This proxy's metrics (its own registry, rendered by `GET /metrics`).
    pub metrics: Arc<ProxyMetrics>,
    /// Serialises reloads and remembers which file version was last read.
    pub reload_state: ReloadState,
    /// One pool per shard, in config order.
    pub pools: Vec<ShardPool>,
    /// Client credentials (built at start; a reload does not change them yet).
    pub auth: AuthDb,
    /// Client cancel keys -> running backends.
    pub cancels: Arc<CancelRegistry>,
    /// Prepared statement definitions shared across clients.
    pub statements: StatementRegistry,
    /// What the proxy learned from shard catalogs (key positions for COPY).
    pub catalog: crate::catalog::CatalogCache,
    /// ParameterStatus values reported to clients at login (from the default shard).
    pub server_params: tokio::sync::OnceCell<Vec<(String, String)>>,
    /// Session id counter (for logs).
    pub next_session_id: AtomicU64,
    /// Pooling mode.
    pub pool_mode: PoolMode,
    /// Largest client message accepted.
    pub max_message_bytes: usize,
    /// Two-phase commit: decision log, gids, in-flight claims, in-doubt list. `new` gives a
    /// handle without a log (multi-shard commits refused); `start` opens the real one.
    pub twopc: Arc<TwoPc>,
}

impl ProxyContext {
    /// Builds the context (pools connect lazily), with no config file behind it.
    pub fn new(config: Config) -> ProxyContext {
        let pools = config
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| ShardPool::new(s, i, &config.pool))
            .collect();
        let shard_names: Vec<String> = config.shards.iter().map(|s| s.name.clone()).collect();
        let metrics = Arc::new(ProxyMetrics::new(&shard_names));
        let proxy_id = config.proxy.proxy_id.as_deref().unwrap_or("unset");
        let twopc = Arc::new(TwoPc::without_log(proxy_id, metrics.clone()));
        ProxyContext {
            router: ArcSwap::from_pointee(Router::new(&config)),
            config_path: None,
            metrics,
            twopc,
            reload_state: ReloadState::default(),
            pools,
            auth: AuthDb::new(&config.auth),
            cancels: Arc::new(CancelRegistry::default()),
            statements: StatementRegistry::default(),
            catalog: Default::default(),
            server_params: tokio::sync::OnceCell::new(),
            next_session_id: AtomicU64::new(1),
            pool_mode: config.pool.mode,
            max_message_bytes: config.proxy.max_message_bytes,
            config: ArcSwap::from_pointee(config),
        }
    }

    /// The same context with the 2PC state opened in `[proxy] state_dir` (blocking file I/O:
    /// call from a blocking context). Fails when state_dir cannot be created or written, is
    /// used by another proxy, or the decision log cannot be read.
    pub fn with_twopc_opened(mut self) -> Result<ProxyContext, crate::twopc::TwoPcError> {
        let config = self.config.load_full();
        let twopc = TwoPc::open(
            &config.proxy.state_dir,
            config.proxy.proxy_id.as_deref(),
            self.metrics.clone(),
        )?;
        self.twopc = Arc::new(twopc);
        Ok(self)
    }

    /// The same context, reloadable from `path` (the file `config` was loaded from).
    pub fn with_config_path(mut self, path: Option<PathBuf>) -> ProxyContext {
        self.config_path = path;
        self
    }
}
