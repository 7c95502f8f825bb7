//! What the session does with each client message: simple-protocol queries, Sync, Close, COPY
//! data and function calls here; Parse/Bind/Describe/Execute in `extended`.

use std::sync::Arc;
use std::time::Instant;

use admin::{Outcome, RouteKind};
use bytes::{Bytes, BytesMut};
use shard_router::{Router, StatementKind};

use super::fanout::FanOut;
use super::pipeline::{Action, Kind, Mode, Owed, Pending, Stat};
use super::routing::Targets;
use super::session::{Session, Stop};
use crate::protocol::backend::TransactionStatus;
use crate::protocol::encode;
use crate::protocol::frontend::{Close, FrontendMessage, Query, Target};

impl Session {
    /// Handles one decoded client message.
    pub(crate) async fn on_message(&mut self, msg: FrontendMessage) -> Result<(), Stop> {
        if self.skip_until_sync
            && !matches!(msg, FrontendMessage::Sync | FrontendMessage::Terminate)
        {
            return Ok(());
        }
        if self.hold_pending
            && !matches!(
                msg,
                FrontendMessage::CopyData(_)
                    | FrontendMessage::CopyDone
                    | FrontendMessage::CopyFail(_)
            )
        {
            // An implicit multi-shard transaction is being committed: nothing goes out behind it.
            self.finish_held().await;
        }
        if self.lost {
            return self.on_message_in_lost_transaction(msg);
        }
        match msg {
            FrontendMessage::Query(q) => self.on_query(q).await,
            FrontendMessage::Parse(p) => self.on_parse(p).await,
            FrontendMessage::Bind(b) => self.on_bind(b).await,
            FrontendMessage::Describe(d) => self.on_describe(d).await,
            FrontendMessage::Execute(e) => self.on_execute(e).await,
            FrontendMessage::Close(c) => self.on_close(c),
            FrontendMessage::Sync => self.on_sync(),
            FrontendMessage::Flush => {
                for (_, b) in self.backends.iter_mut() {
                    encode::flush(&mut b.write_buf);
                }
            }
            FrontendMessage::Terminate => return Err(Stop::Client),
            FrontendMessage::CopyData(raw) => self.copy_to_backends(&raw),
            FrontendMessage::CopyFail(raw) => self.on_copy_end(&raw),
            FrontendMessage::CopyDone => self.on_copy_end(b"c\0\0\0\x04"),
            FrontendMessage::FunctionCall(raw) => self.on_function_call(raw).await,
            FrontendMessage::Password(_) => return Err(self.unexpected_password()),
        }
        Ok(())
    }

    /// A password message outside authentication is a protocol violation: FATAL, and close.
    pub(crate) fn unexpected_password(&mut self) -> Stop {
        encode::error_response(
            &mut self.cout,
            "FATAL",
            "08P01",
            "unexpected password message",
        );
        Stop::Client
    }

    /// An error the proxy itself produces for a simple Query (answered with ReadyForQuery).
    pub(crate) fn query_error(&mut self, code: &str, message: &str) {
        self.abort_block_for_proxy_error();
        let mut bytes = BytesMut::new();
        encode::error_response(&mut bytes, "ERROR", code, message);
        encode::ready_for_query(&mut bytes, self.status);
        self.push_synthetic(Kind::Query, bytes.freeze());
    }

    /// An error the proxy itself produces in the extended protocol: like the server, ignore
    /// everything up to the next Sync.
    pub(crate) fn extended_error(&mut self, kind: Kind, code: &str, message: &str) {
        self.abort_block_for_proxy_error();
        let mut bytes = BytesMut::new();
        encode::error_response(&mut bytes, "ERROR", code, message);
        self.push_synthetic(kind, bytes.freeze());
        self.skip_until_sync = true;
    }

    /// Queues an answer the proxy makes itself.
    pub(crate) fn push_synthetic(&mut self, kind: Kind, bytes: Bytes) {
        self.pipeline.push(
            Pending {
                kind,
                mode: Mode::Synthetic(bytes),
                action: Action::None,
                owed: Owed::Nobody,
                stat: None,
            },
            &mut self.cout,
        );
    }

    /// Queues a request forwarded to `shards` (merged when several).
    pub(crate) fn push_forward(&mut self, kind: Kind, action: Action, shards: &[usize]) {
        self.push_statement(kind, action, shards, None, false);
    }

    /// Queues a client statement (Query or Execute) whose outcome the metrics count.
    pub(crate) fn push_statement(
        &mut self,
        kind: Kind,
        action: Action,
        shards: &[usize],
        route: Option<RouteKind>,
        replicated: bool,
    ) {
        let owed = match shards {
            [one] => Owed::One(*one),
            many => {
                let mut fan = FanOut::new(many.iter().copied());
                fan.replicated = replicated;
                Owed::Many(Box::new(fan))
            }
        };
        let stat = route.map(|kind| Stat {
            kind,
            started: Instant::now(),
            shard: match shards {
                [one] => Some(*one),
                _ => None,
            },
        });
        self.pipeline.push(
            Pending {
                kind,
                mode: Mode::Forward,
                action,
                owed,
                stat,
            },
            &mut self.cout,
        );
    }

    /// Counts a statement the router refused.
    pub(crate) fn count_refusal(&self, route: RouteKind) {
        self.ctx.metrics.statement(route, Outcome::Refused);
    }

    /// Attaches every backend of `shards`.
    pub(crate) async fn ensure_backends(
        &mut self,
        shards: &[usize],
    ) -> Result<(), (&'static str, String)> {
        for &s in shards {
            self.ensure_backend(s).await?;
        }
        Ok(())
    }

    /// The live router.
    pub(crate) fn router(&self) -> Arc<Router> {
        self.ctx.router.load_full()
    }

    async fn on_query(&mut self, q: Query) {
        let sql = q.sql();
        if let Some(name) = deallocate_target(sql) {
            // Protocol-level statements live under proxy names on the servers; DEALLOCATE of a
            // client name is answered here (drivers such as psycopg use it).
            if self.stmts.remove(&name) {
                let mut bytes = BytesMut::new();
                encode::command_complete(&mut bytes, "DEALLOCATE");
                encode::ready_for_query(&mut bytes, self.status);
                self.push_synthetic(Kind::Query, bytes.freeze());
                return;
            }
        }
        let effects = super::params::analyze(sql);
        let router = self.router();
        let mut copy = None;
        let mut route = RouteKind::Default;
        let mut writes = false;
        let targets = if router.tables().is_empty() {
            // Nothing is sharded: everything lives on the default shard.
            Targets::One(0)
        } else {
            // Texts that differ only in constants share one analysis (pgbench -S, ORMs
            // without bind parameters): the normalising cache plans with the constants.
            let routed = router.prepare_query(sql).and_then(|prepared| {
                router
                    .plan_query(&prepared)
                    .map(|plan| (prepared.statement().clone(), plan))
            });
            let (stmt, plan) = match routed {
                Ok(r) => r,
                Err(e) => {
                    self.count_refusal(RouteKind::Default);
                    return self.query_error(e.code, &e.message);
                }
            };
            route = RouteKind::of(&plan);
            let single = stmt.statement_kinds().len() == 1;
            if single && self.lazy_transaction_control(plan.kind, sql) {
                return;
            }
            if single && plan.kind == StatementKind::Commit && self.commit_explicit().await {
                return;
            }
            match plan.kind {
                StatementKind::Begin => self.block_sent = Some(true),
                StatementKind::Commit | StatementKind::Rollback if single => {
                    self.block_sent = Some(false)
                }
                _ => {}
            }
            writes = super::two_phase::writes(plan.kind, sql);
            let targets = match self.resolve(&plan, &stmt, sql, !effects.is_empty()) {
                Ok(t) => t,
                Err((code, message)) => {
                    self.count_refusal(route);
                    return self.query_error(code, &message);
                }
            };
            if let Targets::Merge(shards, merge) = targets {
                return self.merged_query(merge, shards, route).await;
            }
            if plan.kind == StatementKind::Ddl {
                // Columns may move: forget what the catalog told us.
                self.ctx.catalog.clear();
            }
            copy = stmt
                .copy_in()
                .cloned()
                .filter(|_| matches!(targets, Targets::Many(_)));
            if let Some(info) = copy.as_mut() {
                if let Err((code, message)) = self.resolve_copy_key(info).await {
                    return self.query_error(code, &message);
                }
            }
            targets
        };
        let shards = targets.shards();
        if let Err((code, message)) = self.ensure_backends(&shards).await {
            return self.query_error(code, &message);
        }
        let hold = writes && self.note_write(&shards, false);
        for (i, &s) in shards.iter().enumerate() {
            let Some(b) = self.backends.get_mut(s) else {
                continue;
            };
            match &targets {
                Targets::Split(parts) => {
                    if let Some(part) = parts.get(i) {
                        encode::query(&mut b.write_buf, &part.sql);
                    }
                }
                _ => b.write_buf.extend_from_slice(&q.raw),
            }
            b.unnamed = None; // a simple Query destroys the unnamed statement
        }
        self.stmts.unnamed = None;
        // COPY data follows its statement; with one shard the attached backend is the target.
        self.copy_targets.clear();
        if shards.len() > 1 {
            self.copy_targets.extend_from_slice(&shards);
        }
        if let Some(info) = &copy {
            self.start_copy_split(info, router, shards.clone());
        }
        let action = if effects.is_empty() {
            Action::None
        } else {
            Action::Effects(Box::new(effects), shards.clone())
        };
        self.push_statement(
            Kind::Query,
            action,
            &shards,
            Some(route),
            targets.replicated(),
        );
        if hold {
            self.hold_last();
        }
    }

    /// BEGIN opens the transaction lazily: each shard joins it when first used, so a
    /// transaction stays on the shards it touches. COMMIT/ROLLBACK with no shard joined yet are
    /// answered here. Returns true when the statement was answered.
    fn lazy_transaction_control(&mut self, kind: StatementKind, sql: &str) -> bool {
        if !self.backends.is_empty() {
            return false;
        }
        let (tag, status) = match (kind, self.status) {
            (StatementKind::Begin, TransactionStatus::Idle) => {
                self.txn_begin = Some(sql.trim().trim_end_matches(';').to_string() + ";");
                ("BEGIN", TransactionStatus::InBlock)
            }
            (StatementKind::Commit, TransactionStatus::InBlock) => {
                ("COMMIT", TransactionStatus::Idle)
            }
            (StatementKind::Commit | StatementKind::Rollback, TransactionStatus::Failed)
            | (StatementKind::Rollback, TransactionStatus::InBlock) => {
                ("ROLLBACK", TransactionStatus::Idle)
            }
            _ => return false,
        };
        if status == TransactionStatus::Idle {
            self.txn_begin = None;
        }
        self.status = status;
        self.block_sent = None; // the status just set is what the (absent) backends would see
        let mut bytes = BytesMut::new();
        encode::command_complete(&mut bytes, tag);
        encode::ready_for_query(&mut bytes, status);
        self.push_synthetic(Kind::Query, bytes.freeze());
        true
    }

    fn on_close(&mut self, c: Close) {
        match c.target {
            Target::Statement => {
                // The server-side statement stays cached for other clients; only the client's
                // name goes away.
                self.stmts.remove(&c.name);
                let mut bytes = BytesMut::with_capacity(5);
                encode::close_complete(&mut bytes);
                self.push_synthetic(Kind::Close, bytes.freeze());
            }
            Target::Portal => {
                self.parked.remove(&c.name);
                let shards: Vec<usize> = self
                    .portals
                    .remove(&c.name)
                    .map(|r| r.shards)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|s| self.backends.has(*s))
                    .collect();
                if shards.is_empty() {
                    let mut bytes = BytesMut::with_capacity(5);
                    encode::close_complete(&mut bytes);
                    return self.push_synthetic(Kind::Close, bytes.freeze());
                }
                for &s in &shards {
                    if let Some(b) = self.backends.get_mut(s) {
                        b.write_buf.extend_from_slice(&c.raw);
                    }
                }
                self.push_forward(Kind::Close, Action::None, &shards);
            }
        }
    }

    fn on_sync(&mut self) {
        self.skip_until_sync = false;
        let shards = self.backends.shards();
        if shards.is_empty() {
            let mut bytes = BytesMut::with_capacity(6);
            encode::ready_for_query(&mut bytes, self.status);
            return self.push_synthetic(Kind::Sync, bytes.freeze());
        }
        let ignored = self.pipeline.sync_ignored();
        for &s in &shards {
            if let Some(b) = self.backends.get_mut(s) {
                encode::sync(&mut b.write_buf);
            }
        }
        if !ignored {
            // (in copy-in mode the server ignores Sync; so must we)
            let hold = self.sync_holds();
            self.push_forward(Kind::Sync, Action::None, &shards);
            if hold {
                self.hold_last();
            }
        }
    }

    /// COPY data goes to the shards the COPY statement went to (all of them for a reference
    /// table; outside COPY the server ignores it, as do we).
    fn copy_to_backends(&mut self, raw: &[u8]) {
        if self.copy_split.is_some() {
            return self.split_copy_data(raw.get(5..).unwrap_or_default());
        }
        let targets = if self.copy_targets.is_empty() {
            self.backends.shards()
        } else {
            self.copy_targets.clone()
        };
        for s in targets {
            if let Some(b) = self.backends.get_mut(s) {
                b.write_buf.extend_from_slice(raw);
            }
        }
    }

    fn on_copy_end(&mut self, raw: &[u8]) {
        if self.backends.is_empty() {
            return;
        }
        if self.copy_split.is_some() {
            self.finish_copy_split(raw, raw.first() == Some(&b'c'));
        } else {
            self.copy_to_backends(raw);
        }
        self.pipeline.push(
            Pending {
                kind: Kind::CopyEnd,
                mode: Mode::Forward,
                action: Action::None,
                owed: Owed::Nobody,
                stat: None,
            },
            &mut self.cout,
        );
    }

    async fn on_function_call(&mut self, raw: Bytes) {
        if let Err((code, message)) = self.ensure_backend(0).await {
            return self.query_error(code, &message);
        }
        if let Some(b) = self.backends.get_mut(0) {
            b.write_buf.extend_from_slice(&raw);
        }
        self.push_forward(Kind::FunctionCall, Action::None, &[0]);
    }
}

/// `DEALLOCATE [PREPARE] name` as a single statement -> the (folded or quoted) name.
fn deallocate_target(sql: &str) -> Option<String> {
    let head = sql.trim_start();
    if !head
        .get(..10)
        .is_some_and(|h| h.eq_ignore_ascii_case("deallocate"))
    {
        return None;
    }
    let stmts = super::params::split_statements(sql);
    let [tokens] = stmts.as_slice() else {
        return None;
    };
    use super::params::Token;
    let mut words = tokens.iter().skip(1);
    let mut name = words.next()?;
    if matches!(name, Token::Word(w) if w.eq_ignore_ascii_case("prepare")) {
        name = words.next()?;
    }
    if words.next().is_some() {
        return None;
    }
    match name {
        Token::Word(w) if w.eq_ignore_ascii_case("all") => None,
        Token::Word(w) => Some(w.to_ascii_lowercase()),
        Token::Quoted(q) if q.starts_with('"') && q.len() >= 2 => {
            Some(q[1..q.len() - 1].replace("\"\"", "\""))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::deallocate_target;

    #[test]
    fn deallocate_names() {
        assert_eq!(deallocate_target("DEALLOCATE s1"), Some("s1".into()));
        assert_eq!(
            deallocate_target("deallocate prepare \"My\"\"S\";"),
            Some("My\"S".into())
        );
        assert_eq!(deallocate_target("DEALLOCATE ALL"), None);
        assert_eq!(deallocate_target("DEALLOCATE a; SELECT 1"), None);
        assert_eq!(deallocate_target("SELECT 1"), None);
    }
}
