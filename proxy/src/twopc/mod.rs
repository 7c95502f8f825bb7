//! Two-phase commit across shards, surviving proxy and shard crashes.
//!
//! A multi-shard write transaction commits as: PREPARE TRANSACTION '<gid>' on every participant,
//! then the COMMIT decision made durable in the decision log (`<state_dir>/2pc.log`), then
//! COMMIT PREPARED on every participant. A failure before the decision rolls everything back.
//! Recovery (at start and periodically) reads `pg_prepared_xacts` on every shard and commits
//! what the log decided, rolls back the rest once it cannot be in flight (presumed abort), and
//! lists what it cannot finish as in-doubt for an operator.
//!
//! - [`gid`]: `sp_<proxy_id>_<boot>_<seq>` and whose a gid is.
//! - [`record`] / [`log`]: the decision log's format and its writer (grouped fsync, compaction).
//! - [`commit`]: the protocol on the session's backend connections.
//! - [`failpoint`]: crash-test stops inside the protocol.
//! - [`recovery`]: the background task; [`resolve`]: the operator's decision.
//! - `shard_sql`: recovery's SQL on shards; `indoubt`: what is listed as in-doubt.

pub mod commit;
pub mod failpoint;
pub mod gid;
mod indoubt;
pub mod log;
pub mod record;
pub mod recovery;
pub mod resolve;
mod shard_sql;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use admin::{InDoubt, ProxyMetrics};
use nix::fcntl::{Flock, FlockArg};
use tokio::sync::Notify;

pub use commit::CommitError;
pub use failpoint::{Failpoint, Failpoints};
pub use gid::{Gid, Owner};
pub use log::{LogError, LogOptions};
pub use record::CommitRecord;

/// The lock file that keeps two proxies off one state_dir.
const LOCK_FILE: &str = "2pc.lock";

/// How long `open` retries a held lock (a proxy of this process that is still shutting down).
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Why the 2PC state could not be opened or a decision could not be logged.
#[derive(Debug, thiserror::Error)]
pub enum TwoPcError {
    /// state_dir does not exist and cannot be created.
    #[error("cannot create state_dir {path}: {source}")]
    CreateStateDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// state_dir exists but files cannot be created in it.
    #[error("state_dir {path} is not writable (the 2PC decision log lives there): {source}")]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Another shardproxy uses this state_dir.
    #[error(
        "state_dir {0} is in use by another shardproxy process; give each proxy its own state_dir"
    )]
    Locked(PathBuf),
    /// The decision log could not be read or repaired.
    #[error("2PC decision log: {0}")]
    Log(#[from] log::OpenError),
    /// `SHARDPROXY_FAILPOINTS` is malformed.
    #[error(transparent)]
    Failpoints(#[from] failpoint::FailpointError),
    /// This handle has no decision log (built by `ProxyContext::new` without a state_dir).
    #[error("the 2PC decision log is not open in this process")]
    NoLog,
    /// Writing the decision failed.
    #[error(transparent)]
    Write(#[from] LogError),
}

/// The proxy's two-phase commit state, shared by sessions, recovery and the admin API.
pub struct TwoPc {
    proxy_id: String,
    boot: u64,
    seq: AtomicU64,
    state_dir: Option<PathBuf>,
    failpoints: Failpoints,
    metrics: Arc<ProxyMetrics>,
    /// Gids claimed by a running commit, a recovery action or an operator's resolve.
    in_flight: Mutex<HashSet<String>>,
    /// Shards found with max_prepared_transactions = 0.
    prepared_disabled: Mutex<HashSet<String>>,
    /// The in-doubt list as of the last recovery pass.
    in_doubt: Mutex<Vec<InDoubt>>,
    /// Completed recovery passes (for tests and logs).
    passes: AtomicU64,
    /// Asks recovery for a pass soon (after a commit left work for it).
    wake: Notify,
    // Dropped in field order: the log's writer stops before the lock is released.
    log: Option<log::DecisionLog>,
    _lock: Option<Flock<File>>,
}

impl std::fmt::Debug for TwoPc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoPc")
            .field("proxy_id", &self.proxy_id)
            .field("boot", &self.boot)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl TwoPc {
    /// Opens the 2PC state in `state_dir` (created if missing): locks it, reads the decision log
    /// (cutting a torn tail), and reads failpoints from `SHARDPROXY_FAILPOINTS`. `proxy_id`
    /// `None` derives one from the canonical state_dir path.
    pub fn open(
        state_dir: &Path,
        proxy_id: Option<&str>,
        metrics: Arc<ProxyMetrics>,
    ) -> Result<TwoPc, TwoPcError> {
        Self::open_with(
            state_dir,
            proxy_id,
            metrics,
            Failpoints::from_env()?,
            LogOptions::default(),
        )
    }

    /// [`TwoPc::open`] with explicit failpoints and log options (tests).
    pub fn open_with(
        state_dir: &Path,
        proxy_id: Option<&str>,
        metrics: Arc<ProxyMetrics>,
        failpoints: Failpoints,
        options: LogOptions,
    ) -> Result<TwoPc, TwoPcError> {
        std::fs::create_dir_all(state_dir).map_err(|source| TwoPcError::CreateStateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let lock = lock_state_dir(state_dir)?;
        let canonical =
            std::fs::canonicalize(state_dir).map_err(|source| TwoPcError::CreateStateDir {
                path: state_dir.to_owned(),
                source,
            })?;
        let proxy_id = proxy_id.map_or_else(|| gid::default_proxy_id(&canonical), str::to_owned);
        let log = log::DecisionLog::open(&canonical, metrics.clone(), options)?;
        // A boot id later than any logged one, even if the clock went back: a reused boot
        // would reuse gids that may still be in the log.
        let last_boot = log
            .decisions()
            .iter()
            .filter_map(|c| Gid::parse(&c.gid))
            .filter(|g| g.proxy_id == proxy_id)
            .map(|g| g.boot)
            .max();
        let boot = match last_boot {
            Some(last) => log::now_ms().max(last.saturating_add(1)),
            None => log::now_ms(),
        };
        let live = log.decisions().len();
        tracing::info!(
            proxy_id,
            boot,
            state_dir = %canonical.display(),
            live_decisions = live,
            failpoints = failpoints.any(),
            "2PC decision log open"
        );
        Ok(TwoPc {
            log: Some(log),
            _lock: Some(lock),
            state_dir: Some(canonical),
            ..Self::base(proxy_id, boot, metrics, failpoints)
        })
    }

    /// A handle with no decision log: every multi-shard commit is refused (rolled back) with
    /// [`TwoPcError::NoLog`]. For contexts built without a state_dir (unit tests, tools).
    pub fn without_log(proxy_id: &str, metrics: Arc<ProxyMetrics>) -> TwoPc {
        Self::base(
            proxy_id.to_owned(),
            log::now_ms(),
            metrics,
            Failpoints::none(),
        )
    }

    fn base(
        proxy_id: String,
        boot: u64,
        metrics: Arc<ProxyMetrics>,
        failpoints: Failpoints,
    ) -> TwoPc {
        TwoPc {
            proxy_id,
            boot,
            seq: AtomicU64::new(1),
            state_dir: None,
            failpoints,
            metrics,
            in_flight: Mutex::new(HashSet::new()),
            prepared_disabled: Mutex::new(HashSet::new()),
            in_doubt: Mutex::new(Vec::new()),
            passes: AtomicU64::new(0),
            wake: Notify::new(),
            log: None,
            _lock: None,
        }
    }

    /// This proxy's id (in every gid it makes).
    pub fn proxy_id(&self) -> &str {
        &self.proxy_id
    }

    /// This process's boot id (in every gid it makes).
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// The canonical state_dir, when a log is open.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// A fresh gid: `sp_<proxy_id>_<boot>_<seq>`.
    pub fn next_gid(&self) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        Gid::format(&self.proxy_id, self.boot, seq)
    }

    /// Whose `gid` is, from this process's point of view.
    pub fn owner(&self, gid: &str) -> Owner {
        Gid::owner(gid, &self.proxy_id, self.boot)
    }

    /// Makes the COMMIT decision for `gid` durable (fdatasync, shared with concurrent callers).
    /// Cancel safe: the in-memory decision always matches the file.
    pub async fn log_commit(&self, gid: &str, shard_names: &[String]) -> Result<(), TwoPcError> {
        let log = self.log.as_ref().ok_or(TwoPcError::NoLog)?;
        Ok(log.commit(gid, shard_names).await?)
    }

    /// Records that `gid` committed on every participant (no sync needed).
    pub fn log_done(&self, gid: &str) {
        if let Some(log) = &self.log {
            log.done(gid);
        }
    }

    /// The logged COMMIT decision for `gid`, if it is live.
    pub fn decision(&self, gid: &str) -> Option<CommitRecord> {
        self.log.as_ref()?.decision(gid)
    }

    /// Every live COMMIT decision.
    pub fn decisions(&self) -> Vec<CommitRecord> {
        self.log
            .as_ref()
            .map(log::DecisionLog::decisions)
            .unwrap_or_default()
    }

    /// Syncs the log (DONE records included); called at shutdown.
    pub async fn flush(&self) -> Result<(), TwoPcError> {
        match &self.log {
            Some(log) => Ok(log.flush().await?),
            None => Ok(()),
        }
    }

    /// Claims `gid` as in flight; `None` when someone else (a commit, recovery, an operator)
    /// holds it. Recovery leaves claimed gids alone; the claim ends when the guard drops.
    pub fn try_claim(&self, gid: &str) -> Option<InFlight<'_>> {
        lock(&self.in_flight)
            .insert(gid.to_owned())
            .then(|| InFlight {
                twopc: self,
                gid: gid.to_owned(),
            })
    }

    /// True while `gid` is claimed.
    pub fn is_in_flight(&self, gid: &str) -> bool {
        lock(&self.in_flight).contains(gid)
    }

    /// The armed failpoints.
    pub fn failpoints(&self) -> &Failpoints {
        &self.failpoints
    }

    /// The metrics the 2PC code records into.
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// True when recovery found `shard` with max_prepared_transactions = 0.
    pub fn prepared_disabled(&self, shard: &str) -> bool {
        lock(&self.prepared_disabled).contains(shard)
    }

    /// The in-doubt transactions as of the last recovery pass.
    pub fn in_doubt(&self) -> Vec<InDoubt> {
        lock(&self.in_doubt).clone()
    }

    /// Completed recovery passes since start.
    pub fn recovery_passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Asks the recovery task for a pass as soon as possible.
    pub fn wake_recovery(&self) {
        self.wake.notify_one();
    }

    fn set_prepared_disabled(&self, shard: &str, disabled: bool) {
        let mut set = lock(&self.prepared_disabled);
        if disabled {
            set.insert(shard.to_owned());
        } else {
            set.remove(shard);
        }
    }

    fn set_in_doubt(&self, list: Vec<InDoubt>) {
        self.metrics.twopc_in_doubt(list.len());
        *lock(&self.in_doubt) = list;
    }

    fn forget_in_doubt(&self, gid: &str) {
        let mut list = lock(&self.in_doubt);
        list.retain(|t| t.gid != gid);
        self.metrics.twopc_in_doubt(list.len());
    }
}

/// A claim on a gid; dropping it releases the gid to recovery.
#[derive(Debug)]
pub struct InFlight<'a> {
    twopc: &'a TwoPc,
    gid: String,
}

impl InFlight<'_> {
    /// The claimed gid.
    pub fn gid(&self) -> &str {
        &self.gid
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.twopc.in_flight).remove(&self.gid);
    }
}

/// A mutex guard even if a holder panicked: every update under these locks is a single step.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the exclusive lock on `state_dir/2pc.lock`, retrying briefly: a proxy of this same
/// process that is shutting down may still hold it.
fn lock_state_dir(state_dir: &Path) -> Result<Flock<File>, TwoPcError> {
    let path = state_dir.join(LOCK_FILE);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| TwoPcError::NotWritable {
                path: state_dir.to_owned(),
                source,
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(TwoPcError::Locked(state_dir.to_owned()))
            }
            Err((_, errno)) => {
                return Err(TwoPcError::NotWritable {
                    path: state_dir.to_owned(),
                    source: std::io::Error::from(errno),
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
