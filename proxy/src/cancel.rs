//! Cancel requests: clients get proxy-made (pid, secret) keys; a CancelRequest with such a key
//! is forwarded to whichever backend is running that client's query right now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::backend::CancelKey;
use crate::protocol::encode;

/// The backends a session currently has attached (several once a statement spans shards).
#[derive(Default)]
pub struct CancelTarget {
    keys: Mutex<Vec<CancelKey>>,
}

impl CancelTarget {
    /// Records that `key`'s backend now runs this session's statements.
    pub fn attach(&self, key: CancelKey) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.push(key);
        }
    }

    /// Forgets `key` (its backend went back to the pool).
    pub fn detach(&self, key: &CancelKey) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.retain(|k| k != key);
        }
    }

    fn snapshot(&self) -> Vec<CancelKey> {
        self.keys.lock().map(|k| k.clone()).unwrap_or_default()
    }
}

/// Maps client-visible cancel keys to sessions.
#[derive(Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<(i32, i32), Arc<CancelTarget>>>,
}

impl CancelRegistry {
    /// Registers a new session with a fresh random key; the guard unregisters it on drop.
    pub fn register(self: &Arc<Self>) -> CancelRegistration {
        let target = Arc::new(CancelTarget::default());
        loop {
            let key = (rand::random::<i32>() & i32::MAX, rand::random::<i32>());
            let Ok(mut map) = self.sessions.lock() else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(v) = map.entry(key) {
                v.insert(target.clone());
                return CancelRegistration {
                    registry: self.clone(),
                    key,
                    target,
                };
            }
        }
    }

    /// Forwards a client's CancelRequest to the backends of the matching session, if any.
    /// Unknown keys are ignored silently, as PostgreSQL does.
    pub async fn cancel(&self, process_id: i32, secret_key: i32) {
        let target = self
            .sessions
            .lock()
            .ok()
            .and_then(|m| m.get(&(process_id, secret_key)).cloned());
        let Some(target) = target else {
            tracing::debug!("cancel request with unknown key ignored");
            return;
        };
        for key in target.snapshot() {
            if let Err(e) = send_cancel(&key).await {
                tracing::warn!(addr = %key.addr, error = %e, "could not forward cancel request");
            }
        }
    }
}

impl CancelRegistry {
    /// Cancels whatever every session's backends are running (shutdown after the drain
    /// timeout: the queries would otherwise run on for nobody).
    pub async fn cancel_all(&self) {
        let targets: Vec<Arc<CancelTarget>> = self
            .sessions
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let keys: Vec<CancelKey> = targets.iter().flat_map(|t| t.snapshot()).collect();
        let sends = keys.iter().map(send_cancel);
        for (key, result) in keys.iter().zip(futures::future::join_all(sends).await) {
            if let Err(e) = result {
                tracing::warn!(addr = %key.addr, error = %e, "could not cancel a running query");
            }
        }
    }
}

/// Keeps a session registered for cancellation while alive.
pub struct CancelRegistration {
    registry: Arc<CancelRegistry>,
    /// The (process id, secret key) sent to the client in BackendKeyData.
    pub key: (i32, i32),
    /// Where the session records its attached backends.
    pub target: Arc<CancelTarget>,
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.sessions.lock() {
            map.remove(&self.key);
        }
    }
}

/// Sends a CancelRequest to a backend server on a new connection.
pub async fn send_cancel(key: &CancelKey) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(key.addr).await?;
    let mut buf = BytesMut::with_capacity(16);
    encode::cancel_request(&mut buf, key.process_id, key.secret_key);
    stream.write_all(&buf).await?;
    stream.shutdown().await
}
