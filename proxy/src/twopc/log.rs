//! The decision log `<state_dir>/2pc.log`: an append-only file of COMMIT and DONE records.
//!
//! A COMMIT record is durable (fdatasync) before [`DecisionLog::commit`] returns. One writer
//! thread owns the file: it takes every request waiting in its channel, writes them in one
//! `write`, syncs once and answers them all, so concurrent committers share an fsync. DONE
//! records are not synced: losing one only makes recovery check that gid again. When DONE
//! records pile up, the writer rewrites the live COMMIT records to a temp file, syncs it and
//! renames it over the log.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use admin::ProxyMetrics;
use tokio::sync::oneshot;

use super::record::{self, CommitRecord, Record, RecordError};

/// The log's file name inside state_dir.
pub const LOG_FILE: &str = "2pc.log";

/// The compaction temp file's name inside state_dir.
const TEMP_FILE: &str = "2pc.log.tmp";

/// Most requests written by one `write` + fsync.
const MAX_BATCH: usize = 4096;

/// Compact once more than this many DONE records were written since the last compaction...
pub const COMPACT_MIN_DONE: usize = 1000;

/// Why the log could not record something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// Writing or syncing failed; the record was removed again, so nothing was decided.
    #[error("the 2PC decision log could not be written: {0}")]
    Write(String),
    /// A write failed and the record could not be removed: the log refuses new decisions.
    #[error("the 2PC decision log is unusable after a failed write; restart the proxy")]
    Poisoned,
    /// The writer thread has stopped (the proxy is shutting down).
    #[error("the 2PC decision log is closed")]
    Closed,
    /// The record could not be encoded (a name too long).
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Reading, truncating or creating the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A record with a good checksum that does not decode: not a torn tail, so it is not cut.
    #[error("{path}: record at offset {offset}: {error}; refusing to guess (move the file away only if no transaction can be in doubt)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: usize,
        /// What is wrong with it.
        error: RecordError,
    },
}

/// Tuning of the writer (tests shrink the compaction threshold).
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    /// DONE records since the last compaction before compacting is considered.
    pub compact_min_done: usize,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            compact_min_done: COMPACT_MIN_DONE,
        }
    }
}

/// A request to the writer thread.
enum Request {
    Commit {
        record: CommitRecord,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    Done {
        gid: String,
        bytes: Vec<u8>,
    },
    Flush {
        reply: oneshot::Sender<Result<(), LogError>>,
    },
}

/// Handle on the open decision log. Dropping it lets the writer finish (a final sync) and
/// waits for it, so the file is quiet before anything reopens it.
pub struct DecisionLog {
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    /// Live COMMIT decisions (not yet DONE), by gid; the writer adds a decision before it
    /// answers, so the map never lags the disk even when a committer is cancelled.
    live: Arc<Mutex<HashMap<String, CommitRecord>>>,
    syncs: Arc<AtomicU64>,
}

impl DecisionLog {
    /// Opens (or creates) `dir/2pc.log`: reads every record, cuts a torn or corrupt tail (with a
    /// warning), and starts the writer thread.
    pub fn open(
        dir: &Path,
        metrics: Arc<ProxyMetrics>,
        options: LogOptions,
    ) -> Result<DecisionLog, OpenError> {
        let path = dir.join(LOG_FILE);
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        let temp = dir.join(TEMP_FILE);
        if temp.exists() {
            std::fs::remove_file(&temp).map_err(io)?;
        }
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        if !existed {
            sync_dir(dir).map_err(io)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let scan = record::scan(&bytes).map_err(|(offset, error)| OpenError::Corrupt {
            path: path.clone(),
            offset,
            error,
        })?;
        if let Some(why) = &scan.bad_tail {
            tracing::warn!(
                path = %path.display(),
                cut = bytes.len() - scan.good_len,
                "2PC decision log ends in {why}: cutting it off (a write the crash interrupted)"
            );
            file.set_len(scan.good_len as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let mut state = WriterState {
            file_len: scan.good_len as u64,
            ..WriterState::default()
        };
        let mut live = HashMap::new();
        for record in scan.records {
            state.apply(&record);
            match record {
                Record::Commit(c) => {
                    live.insert(c.gid.clone(), c);
                }
                Record::Done { gid } => {
                    live.remove(&gid);
                }
            }
        }
        let (tx, rx) = mpsc::channel();
        let syncs = Arc::new(AtomicU64::new(0));
        let live = Arc::new(Mutex::new(live));
        let mut writer = Writer {
            shared: live.clone(),
            file,
            dir: dir.to_owned(),
            path,
            state,
            options,
            metrics,
            syncs: syncs.clone(),
            poisoned: false,
        };
        let handle = std::thread::Builder::new()
            .name("2pc-log".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|source| OpenError::Io {
                path: dir.to_owned(),
                source,
            })?;
        Ok(DecisionLog {
            tx: Some(tx),
            writer: Some(handle),
            live,
            syncs,
        })
    }

    /// Makes the COMMIT decision for `gid` durable. Returns once it is on disk (fdatasync),
    /// sharing the sync with concurrent callers. Cancel safe: dropped early, the record may or
    /// may not be written, exactly as if the process had stopped.
    pub async fn commit(&self, gid: &str, shards: &[String]) -> Result<(), LogError> {
        let record = CommitRecord {
            gid: gid.to_owned(),
            shards: shards.to_vec(),
            decided_at_ms: now_ms(),
        };
        let bytes = Record::Commit(record.clone()).encode()?;
        let (reply, answer) = oneshot::channel();
        self.send(Request::Commit {
            record,
            bytes,
            reply,
        })?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// Records that every participant committed `gid` (not synced; see the module doc).
    pub fn done(&self, gid: &str) {
        if self.live_map().remove(gid).is_none() {
            return;
        }
        let record = Record::Done {
            gid: gid.to_owned(),
        };
        match record.encode() {
            Ok(bytes) => {
                let _ = self.send(Request::Done {
                    gid: gid.to_owned(),
                    bytes,
                });
            }
            // Cannot happen for a gid that was encoded as a COMMIT record.
            Err(e) => tracing::warn!(gid, error = %e, "could not encode a DONE record"),
        }
    }

    /// Syncs everything written so far (DONE records included), e.g. at shutdown.
    pub async fn flush(&self) -> Result<(), LogError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Flush { reply })?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// The live COMMIT decision for `gid`, if any.
    pub fn decision(&self, gid: &str) -> Option<CommitRecord> {
        self.live_map().get(gid).cloned()
    }

    /// Every live COMMIT decision.
    pub fn decisions(&self) -> Vec<CommitRecord> {
        self.live_map().values().cloned().collect()
    }

    /// How many fsyncs the writer has done (grouping makes it less than the commits).
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn send(&self, request: Request) -> Result<(), LogError> {
        let tx = self.tx.as_ref().ok_or(LogError::Closed)?;
        tx.send(request).map_err(|_| LogError::Closed)
    }

    fn live_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, CommitRecord>> {
        lock(&self.live)
    }
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Milliseconds since the Unix epoch (0 for a clock before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the writer knows about the file, for compaction.
#[derive(Debug, Default)]
struct WriterState {
    /// Encoded live COMMIT records by gid.
    live: HashMap<String, Vec<u8>>,
    /// Sum of their lengths.
    live_bytes: u64,
    /// Length of the file.
    file_len: u64,
    /// DONE records in the file (since the last compaction).
    done: usize,
}

impl WriterState {
    /// Accounts for a record already in the file (read at open).
    fn apply(&mut self, record: &Record) {
        // A record that was decoded always encodes again (its lengths came from u16 fields).
        let bytes = record.encode().unwrap_or_default();
        match record {
            Record::Commit(c) => self.add_live(&c.gid, bytes),
            Record::Done { gid } => self.remove_live(gid),
        }
    }

    fn add_live(&mut self, gid: &str, bytes: Vec<u8>) {
        self.live_bytes += bytes.len() as u64;
        if let Some(old) = self.live.insert(gid.to_owned(), bytes) {
            self.live_bytes -= old.len() as u64;
        }
    }

    fn remove_live(&mut self, gid: &str) {
        self.done += 1;
        if let Some(old) = self.live.remove(gid) {
            self.live_bytes -= old.len() as u64;
        }
    }
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Mutex<HashMap<String, CommitRecord>>>,
    file: File,
    dir: PathBuf,
    path: PathBuf,
    state: WriterState,
    options: LogOptions,
    metrics: Arc<ProxyMetrics>,
    syncs: Arc<AtomicU64>,
    poisoned: bool,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Request>) {
        self.maybe_compact();
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.write_batch(batch);
            self.maybe_compact();
        }
        // Channel closed: the proxy is stopping. Make the unsynced DONE records durable.
        if !self.poisoned {
            if let Err(e) = self.file.sync_data() {
                tracing::warn!(error = %e, "2PC decision log: final sync failed");
            }
        }
    }

    fn write_batch(&mut self, batch: Vec<Request>) {
        let mut buf = Vec::new();
        let mut sync = false;
        for request in &batch {
            match request {
                Request::Commit { bytes, .. } => {
                    buf.extend_from_slice(bytes);
                    sync = true;
                }
                Request::Done { bytes, .. } => buf.extend_from_slice(bytes),
                Request::Flush { .. } => sync = true,
            }
        }
        let result = if self.poisoned {
            Err(LogError::Poisoned)
        } else {
            self.append(&buf, sync)
        };
        if result.is_ok() {
            self.state.file_len += buf.len() as u64;
        }
        for request in batch {
            match request {
                Request::Commit {
                    record,
                    bytes,
                    reply,
                } => {
                    if result.is_ok() {
                        self.state.add_live(&record.gid, bytes);
                        lock(&self.shared).insert(record.gid.clone(), record);
                    }
                    let _ = reply.send(result.clone());
                }
                Request::Done { gid, .. } => {
                    if result.is_ok() {
                        self.state.remove_live(&gid);
                    }
                }
                Request::Flush { reply } => {
                    let _ = reply.send(result.clone());
                }
            }
        }
    }

    /// Writes `buf` (and syncs when asked). On failure the file is cut back to where it was, so
    /// a record that may be half on disk can never be read back as a decision.
    fn append(&mut self, buf: &[u8], sync: bool) -> Result<(), LogError> {
        let written = self.file.write_all(buf).and_then(|()| {
            if !sync {
                return Ok(());
            }
            let started = Instant::now();
            let synced = self.file.sync_data();
            self.metrics
                .twopc_log_fsync(started.elapsed().as_secs_f64());
            self.syncs.fetch_add(1, Ordering::Relaxed);
            synced
        });
        let Err(e) = written else {
            return Ok(());
        };
        tracing::error!(path = %self.path.display(), error = %e, "2PC decision log write failed");
        let undone = self
            .file
            .set_len(self.state.file_len)
            .and_then(|()| self.file.sync_all());
        if let Err(e2) = undone {
            tracing::error!(error = %e2, "2PC decision log: could not cut the failed write off; refusing further decisions");
            self.poisoned = true;
            return Err(LogError::Poisoned);
        }
        Err(LogError::Write(e.to_string()))
    }

    fn maybe_compact(&mut self) {
        let worth_it = self.state.done > self.options.compact_min_done
            && self.state.live_bytes.saturating_mul(2) < self.state.file_len;
        if !worth_it || self.poisoned {
            return;
        }
        match self.compact() {
            Ok(()) => tracing::debug!(
                live = self.state.live.len(),
                bytes = self.state.file_len,
                "2PC decision log compacted"
            ),
            Err(e) => tracing::warn!(error = %e, "2PC decision log compaction failed"),
        }
    }

    /// Rewrites the live COMMIT records to a temp file, syncs it, renames it over the log and
    /// syncs the directory: at every instant the log on disk holds every live decision.
    fn compact(&mut self) -> std::io::Result<()> {
        let temp = self.dir.join(TEMP_FILE);
        let mut bytes = Vec::with_capacity(usize::try_from(self.state.live_bytes).unwrap_or(0));
        for record in self.state.live.values() {
            bytes.extend_from_slice(record);
        }
        let written = (|| {
            let mut out = File::create(&temp)?;
            out.write_all(&bytes)?;
            out.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        std::fs::rename(&temp, &self.path)?;
        // The old handle now points at the replaced file: reopen before anything else.
        match OpenOptions::new().append(true).open(&self.path) {
            Ok(file) => self.file = file,
            Err(e) => {
                self.poisoned = true;
                return Err(e);
            }
        }
        self.state.file_len = bytes.len() as u64;
        self.state.done = 0;
        sync_dir(&self.dir)
    }
}

/// The map, even if a holder panicked: every update is a single insert or remove.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// fsyncs a directory, so a file created or renamed in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
