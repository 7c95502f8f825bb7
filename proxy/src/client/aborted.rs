//! A transaction whose backend was lost. PostgreSQL would have closed the connection; we keep the
//! client's connection, so we must keep its promise instead: the transaction is aborted, every
//! statement fails with 25P02 until the client ends it with ROLLBACK (or COMMIT, which reports
//! ROLLBACK), and nothing runs outside the transaction the client believes it is in.

use bytes::BytesMut;

use super::params::{split_statements, Token};
use super::pipeline::Kind;
use super::session::{Session, Stop};
use crate::protocol::backend::TransactionStatus;
use crate::protocol::encode;
use crate::protocol::frontend::{FrontendMessage, Target};

const ABORTED: &str =
    "current transaction is aborted, commands ignored until end of transaction block";

impl Session {
    /// An error the proxy raises itself inside a transaction block aborts the block, as a
    /// server error would: the client sees it failed, every statement gets 25P02 until it ends
    /// the block, and the shards' part of it is rolled back then (never committed).
    pub(crate) fn abort_block_for_proxy_error(&mut self) {
        if self.lost || !self.in_block() {
            return;
        }
        self.lost = true;
        self.lost_in_transaction = None;
        self.status = TransactionStatus::Failed;
    }

    /// The error for a statement in the lost transaction: first the loss itself, then 25P02.
    fn lost_error(&mut self) -> (&'static str, String) {
        match self.lost_in_transaction.take() {
            Some(message) => ("08006", message),
            None => ("25P02", ABORTED.to_string()),
        }
    }

    /// Handles a client message while in a lost transaction (no backend is involved).
    pub(crate) fn on_message_in_lost_transaction(
        &mut self,
        msg: FrontendMessage,
    ) -> Result<(), Stop> {
        match msg {
            FrontendMessage::Query(q) => {
                if ends_transaction(q.sql()) {
                    self.end_lost_transaction();
                    let mut bytes = BytesMut::new();
                    encode::command_complete(&mut bytes, "ROLLBACK");
                    encode::ready_for_query(&mut bytes, TransactionStatus::Idle);
                    self.push_synthetic(Kind::Query, bytes.freeze());
                } else {
                    let (code, message) = self.lost_error();
                    self.query_error(code, &message);
                }
            }
            FrontendMessage::Parse(p) => {
                let def = self.ctx.statements.intern(p.query(), &p.param_types);
                self.stmts.insert(&p.name, def);
                let mut bytes = BytesMut::new();
                encode::parse_complete(&mut bytes);
                self.push_synthetic(Kind::Parse, bytes.freeze());
            }
            FrontendMessage::Bind(b) => {
                let ends = self
                    .stmts
                    .get(&b.statement)
                    .is_some_and(|d| ends_transaction(&d.query));
                if ends {
                    self.lost_portal_ends = true;
                    let mut bytes = BytesMut::new();
                    encode::bind_complete(&mut bytes);
                    self.push_synthetic(Kind::Bind, bytes.freeze());
                } else {
                    let (code, message) = self.lost_error();
                    self.extended_error(Kind::Bind, code, &message);
                }
            }
            FrontendMessage::Describe(d) => {
                let mut bytes = BytesMut::new();
                if d.target == Target::Statement {
                    encode::parameter_description(&mut bytes, &[]);
                }
                encode::no_data(&mut bytes);
                self.push_synthetic(Kind::DescribePortal, bytes.freeze());
            }
            FrontendMessage::Execute(_) => {
                if std::mem::take(&mut self.lost_portal_ends) {
                    self.end_lost_transaction();
                    let mut bytes = BytesMut::new();
                    encode::command_complete(&mut bytes, "ROLLBACK");
                    self.push_synthetic(Kind::Execute, bytes.freeze());
                } else {
                    let (code, message) = self.lost_error();
                    self.extended_error(Kind::Execute, code, &message);
                }
            }
            FrontendMessage::Close(c) => {
                if c.target == Target::Statement {
                    self.stmts.remove(&c.name);
                }
                let mut bytes = BytesMut::new();
                encode::close_complete(&mut bytes);
                self.push_synthetic(Kind::Close, bytes.freeze());
            }
            FrontendMessage::Sync => {
                self.skip_until_sync = false;
                // Backends still attached (the block failed on a proxy error) may hold answers
                // to this group's earlier messages: they come with a Sync.
                for shard in self.backends.shards() {
                    if let Some(b) = self.backends.get_mut(shard) {
                        encode::sync(&mut b.write_buf);
                    }
                    self.push_injected(Kind::Sync, shard);
                }
                let mut bytes = BytesMut::new();
                encode::ready_for_query(&mut bytes, self.status);
                self.push_synthetic(Kind::Sync, bytes.freeze());
            }
            FrontendMessage::FunctionCall(_) => {
                let (code, message) = self.lost_error();
                self.query_error(code, &message);
            }
            FrontendMessage::Terminate => return Err(Stop::Client),
            FrontendMessage::Password(_) => return Err(self.unexpected_password()),
            FrontendMessage::Flush
            | FrontendMessage::CopyData(_)
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail(_) => {}
        }
        Ok(())
    }

    fn end_lost_transaction(&mut self) {
        // Backends still attached (a proxy error failed the block) roll their part back.
        for shard in self.backends.shards() {
            if let Some(b) = self.backends.get_mut(shard) {
                encode::query(&mut b.write_buf, "ROLLBACK");
            }
            self.push_injected(Kind::Query, shard);
        }
        self.forget_writes();
        self.block_sent = None;
        self.status = TransactionStatus::Idle;
        self.lost = false;
        self.lost_in_transaction = None;
        // The SETs of the lost transaction were rolled back with it.
        self.restore_params_after_rollback();
    }
}

/// ROLLBACK / ABORT / COMMIT / END as the only statement (not ROLLBACK TO, not ... PREPARED).
fn ends_transaction(sql: &str) -> bool {
    let stmts = split_statements(sql);
    let [tokens] = stmts.as_slice() else {
        return false;
    };
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
        _ => None,
    };
    let Some(first) = word(0) else { return false };
    if !matches!(first.as_str(), "rollback" | "abort" | "commit" | "end") {
        return false;
    }
    !tokens[1..].iter().any(|t| {
        matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("to") || w.eq_ignore_ascii_case("prepared") || w.eq_ignore_ascii_case("savepoint"))
    })
}

#[cfg(test)]
mod tests {
    use super::ends_transaction;

    #[test]
    fn recognises_transaction_ends() {
        for s in [
            "ROLLBACK",
            "rollback;",
            "ABORT",
            "COMMIT",
            "END",
            "ROLLBACK WORK",
            "COMMIT TRANSACTION",
        ] {
            assert!(ends_transaction(s), "{s}");
        }
        for s in [
            "ROLLBACK TO SAVEPOINT a",
            "ROLLBACK TO a",
            "COMMIT PREPARED 'x'",
            "SELECT 1",
            "ROLLBACK; SELECT 1",
            "",
        ] {
            assert!(!ends_transaction(s), "{s}");
        }
    }
}
