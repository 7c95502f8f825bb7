//! Client side: one task per client connection. `startup` negotiates and authenticates, then
//! `session` runs the request/response loop against pooled backends.

pub mod aborted;
pub mod backends;
pub mod copy_split;
pub mod extended;
pub mod fanout;
pub mod lexer;
pub mod merge_run;
pub mod merged;
pub mod messages;
pub mod params;
pub mod pipeline;
pub mod routing;
pub mod session;
mod shard_errors;
pub mod startup;
pub mod statements;
pub mod two_phase;

pub use startup::handle_connection;
