//! Prepared statements across pooled backends.
//!
//! A client's named statement maps to a proxy-wide statement definition with a stable id; on a
//! backend it exists under the proxy name `_sp<id>`. A backend that lacks it gets it prepared
//! lazily (an injected Parse) the first time a client Binds or Describes it there, so named
//! statements keep working in transaction pooling mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use super::params::{self, SessionEffects};
use crate::protocol::encode;

/// A statement definition shared by every client that prepares the same text and types.
#[derive(Debug)]
pub struct StmtDef {
    /// Proxy-wide id.
    pub id: u64,
    /// Name of the statement on backends.
    pub server_name: String,
    /// SQL text.
    pub query: String,
    /// Parameter type OIDs as the client gave them.
    pub param_types: Vec<u32>,
    /// The Parse message that creates it on a backend under `server_name`.
    pub parse_message: Bytes,
    /// Session-level effects of executing it (SET and friends).
    pub effects: SessionEffects,
    /// Some backend accepted a Parse of it: later Parses can be answered without a backend.
    pub validated: AtomicBool,
    /// Parameter types as a server resolved them (ParameterDescription of a Describe).
    pub described_types: std::sync::OnceLock<Vec<u32>>,
}

impl StmtDef {
    /// The type of parameter `i`: as declared, else as a server resolved it (0 if unknown).
    pub fn param_type(&self, i: usize) -> u32 {
        match self.param_types.get(i) {
            Some(&t) if t != 0 => t,
            _ => self
                .described_types
                .get()
                .and_then(|v| v.get(i).copied())
                .unwrap_or(0),
        }
    }

    /// True once a server has accepted the statement.
    pub fn is_validated(&self) -> bool {
        self.validated.load(Ordering::Relaxed)
    }
}

/// Above this many definitions, unreferenced ones are dropped from the registry.
const REGISTRY_SOFT_LIMIT: usize = 20_000;

/// Statement text and parameter types: what makes two Parses the same statement.
type StmtKey = (String, Vec<u32>);

/// Interns statement definitions by (text, parameter types).
#[derive(Default)]
pub struct StatementRegistry {
    by_text: Mutex<HashMap<StmtKey, Arc<StmtDef>>>,
    next_id: AtomicU64,
}

impl StatementRegistry {
    /// The shared definition for this text and these types, created on first use.
    pub fn intern(&self, query: &str, param_types: &[u32]) -> Arc<StmtDef> {
        let key = (query.to_string(), param_types.to_vec());
        let mut map = match self.by_text.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(def) = map.get(&key) {
            return def.clone();
        }
        if map.len() >= REGISTRY_SOFT_LIMIT {
            map.retain(|_, d| Arc::strong_count(d) > 1);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let server_name = format!("_sp{id}");
        let mut buf = BytesMut::new();
        encode::parse(&mut buf, &server_name, query, param_types);
        let def = Arc::new(StmtDef {
            id,
            server_name,
            query: key.0.clone(),
            param_types: key.1.clone(),
            parse_message: buf.freeze(),
            effects: params::analyze(query),
            validated: AtomicBool::new(false),
            described_types: std::sync::OnceLock::new(),
        });
        map.insert(key, def.clone());
        def
    }
}

/// A client's own statement names.
#[derive(Default)]
pub struct ClientStatements {
    named: HashMap<String, Arc<StmtDef>>,
    /// The unnamed statement, if the client has one.
    pub unnamed: Option<Arc<StmtDef>>,
}

impl ClientStatements {
    /// Looks up a statement by client name ("" = unnamed).
    pub fn get(&self, name: &str) -> Option<&Arc<StmtDef>> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// True if a named statement exists.
    pub fn contains(&self, name: &str) -> bool {
        self.named.contains_key(name)
    }

    /// Adds or replaces a statement ("" = unnamed).
    pub fn insert(&mut self, name: &str, def: Arc<StmtDef>) {
        if name.is_empty() {
            self.unnamed = Some(def);
        } else {
            self.named.insert(name.to_string(), def);
        }
    }

    /// Removes `name` if it still refers to statement `id` (a failed Parse must not remove a
    /// newer definition).
    pub fn forget(&mut self, name: &str, id: u64) {
        if name.is_empty() {
            if self.unnamed.as_ref().is_some_and(|d| d.id == id) {
                self.unnamed = None;
            }
        } else if self.named.get(name).is_some_and(|d| d.id == id) {
            self.named.remove(name);
        }
    }

    /// Removes a named statement (Close, DEALLOCATE).
    pub fn remove(&mut self, name: &str) -> bool {
        if name.is_empty() {
            self.unnamed.take().is_some()
        } else {
            self.named.remove(name).is_some()
        }
    }

    /// Removes every statement (DISCARD ALL, DEALLOCATE ALL).
    pub fn clear(&mut self) {
        self.named.clear();
        self.unnamed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_shares_ids_by_text_and_types() {
        let r = StatementRegistry::default();
        let a = r.intern("select 1", &[]);
        let b = r.intern("select 1", &[]);
        let c = r.intern("select 1", &[23]);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.server_name, format!("_sp{}", a.id));
    }

    #[test]
    fn forget_only_removes_matching_definition() {
        let r = StatementRegistry::default();
        let mut s = ClientStatements::default();
        let old = r.intern("select 1", &[]);
        let new = r.intern("select 2", &[]);
        s.insert("p", new.clone());
        s.forget("p", old.id);
        assert!(s.contains("p"));
        s.forget("p", new.id);
        assert!(!s.contains("p"));
    }
}
