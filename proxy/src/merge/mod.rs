//! Scatter-gather merge: combining several shards' result streams into the one result a single
//! PostgreSQL holding all the rows would return.
//!
//! [`compare`] is the foundation: it orders two values of one ORDER BY key exactly as PostgreSQL
//! does, straight from their wire bytes (text or binary format), so the merge never re-encodes
//! rows. Text-like types compare by bytes, which is PostgreSQL's `C` collation.
//! [`agg`] finishes aggregates from partials, [`filter`] evaluates HAVING, and [`engine`]
//! runs a whole merge (k-way merge, groups, DISTINCT, sort, OFFSET/LIMIT) as a pure state machine.

pub mod agg;
pub mod compare;
mod decimal;
pub mod engine;
pub mod filter;
mod filter_input;
mod float_text;
mod numeric;

pub use compare::{compare, data_row_fields, supported, ColumnType, CompareError, SortSpec};
pub use engine::{Merge, MergeError, MergeInput};
