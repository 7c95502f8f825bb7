//! SQL analysis (contract stub).

use std::sync::Arc;

use crate::{RouteError, Router};

/// Capacity of the parse cache (distinct statement texts).
pub(crate) const PARSE_CACHE_CAPACITY: usize = 4096;

/// An analysed statement (cached by text).
#[derive(Debug)]
pub struct Statement {}

/// Bounded LRU cache of analysed statements.
pub(crate) struct ParseCache {}

impl ParseCache {
    pub(crate) fn new(capacity: usize) -> ParseCache {
        let _ = capacity;
        ParseCache {}
    }
}

pub(crate) fn prepare(router: &Router, sql: &str) -> Result<Arc<Statement>, RouteError> {
    let _ = (&router.cache, sql);
    Ok(Arc::new(Statement {}))
}
