//! What the session does with each client message: route, attach a backend, rewrite statement
//! names, and queue the expected answers.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::pipeline::{Action, Kind, Mode, Pending};
use super::session::{Session, Stop};
use super::statements::StmtDef;
use crate::protocol::encode;
use crate::protocol::frontend::{
    Bind, Close, Describe, Execute, FrontendMessage, Parse, Query, Target,
};

impl Session {
    /// Handles one decoded client message.
    pub(crate) async fn on_message(&mut self, msg: FrontendMessage) -> Result<(), Stop> {
        if self.skip_until_sync
            && !matches!(msg, FrontendMessage::Sync | FrontendMessage::Terminate)
        {
            return Ok(());
        }
        if self.in_lost_transaction() {
            return self.on_message_in_lost_transaction(msg);
        }
        match msg {
            FrontendMessage::Query(q) => self.on_query(q).await,
            FrontendMessage::Parse(p) => self.on_parse(p).await,
            FrontendMessage::Bind(b) => self.on_bind(b).await,
            FrontendMessage::Describe(d) => self.on_describe(d).await,
            FrontendMessage::Execute(e) => self.on_execute(e),
            FrontendMessage::Close(c) => self.on_close(c),
            FrontendMessage::Sync => self.on_sync(),
            FrontendMessage::Flush => {
                if self.backend.is_some() {
                    encode::flush(&mut self.bout);
                }
            }
            FrontendMessage::Terminate => return Err(Stop::Client),
            FrontendMessage::CopyData(raw) => {
                // Outside COPY the server ignores these too.
                if self.backend.is_some() {
                    self.bout.extend_from_slice(&raw);
                }
            }
            FrontendMessage::CopyFail(raw) => self.on_copy_end(&raw),
            FrontendMessage::CopyDone => self.on_copy_end(b"c\0\0\0\x04"),
            FrontendMessage::FunctionCall(raw) => self.on_function_call(raw).await,
            FrontendMessage::Password(_) => {
                encode::error_response(
                    &mut self.cout,
                    "FATAL",
                    "08P01",
                    "unexpected password message",
                );
                return Err(Stop::Client);
            }
        }
        Ok(())
    }

    /// An error the proxy itself produces for a simple Query (answered with ReadyForQuery).
    pub(crate) fn query_error(&mut self, code: &str, message: &str) {
        let mut bytes = BytesMut::new();
        encode::error_response(&mut bytes, "ERROR", code, message);
        encode::ready_for_query(&mut bytes, self.status);
        self.push_synthetic(Kind::Query, bytes.freeze());
    }

    /// An error the proxy itself produces in the extended protocol: like the server, ignore
    /// everything up to the next Sync.
    pub(crate) fn extended_error(&mut self, kind: Kind, code: &str, message: &str) {
        let mut bytes = BytesMut::new();
        encode::error_response(&mut bytes, "ERROR", code, message);
        self.push_synthetic(kind, bytes.freeze());
        self.skip_until_sync = true;
    }

    pub(crate) fn push_synthetic(&mut self, kind: Kind, bytes: Bytes) {
        self.pipeline.push(
            Pending {
                kind,
                mode: Mode::Synthetic(bytes),
                action: Action::None,
            },
            &mut self.cout,
        );
    }

    fn push_forward(&mut self, kind: Kind, action: Action) {
        self.pipeline.push(
            Pending {
                kind,
                mode: Mode::Forward,
                action,
            },
            &mut self.cout,
        );
    }

    /// The shard a statement text runs on, or the router's refusal.
    fn route(&self, sql: &str) -> Result<usize, (&'static str, String)> {
        let router = self.ctx.router.load();
        let plan = router.route_sql(sql).map_err(|e| (e.code, e.message))?;
        match plan.shards(self.ctx.pools.len()).as_slice() {
            [one] => Ok(*one),
            _ => Err((
                "0A000",
                format!(
                    "statement spans several shards ({}), which is not supported yet",
                    plan.reason
                ),
            )),
        }
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
        let shard = match self.route(sql) {
            Ok(s) => s,
            Err((code, message)) => return self.query_error(code, &message),
        };
        if let Err((code, message)) = self.ensure_backend(shard).await {
            return self.query_error(code, &message);
        }
        self.bout.extend_from_slice(&q.raw);
        if let Some(b) = self.backend.as_mut() {
            b.unnamed = None; // a simple Query destroys the unnamed statement
        }
        self.stmts.unnamed = None;
        let action = if effects.is_empty() {
            Action::None
        } else {
            Action::Effects(Box::new(effects))
        };
        self.push_forward(Kind::Query, action);
    }

    async fn on_parse(&mut self, p: Parse) {
        if !p.name.is_empty() && self.stmts.contains(&p.name) {
            let message = format!("prepared statement \"{}\" already exists", p.name);
            return self.extended_error(Kind::Parse, "42P05", &message);
        }
        // Drivers using the extended protocol re-send the same unnamed Parse every time: reuse
        // the client's current definition instead of going through the shared registry.
        let def = match &self.stmts.unnamed {
            Some(d)
                if p.name.is_empty() && d.query == p.query() && d.param_types == p.param_types =>
            {
                d.clone()
            }
            _ => self.ctx.statements.intern(p.query(), &p.param_types),
        };
        if self.backend.is_none() && def.is_validated() {
            // A server already accepted this text: answer now and prepare it lazily where the
            // Bind runs. Taking a backend just to re-check it could wait behind another client
            // of the same single-threaded program that holds the last backend (pgbench -j 1).
            self.stmts.insert(&p.name, def);
            let mut bytes = BytesMut::with_capacity(5);
            encode::parse_complete(&mut bytes);
            return self.push_synthetic(Kind::Parse, bytes.freeze());
        }
        let shard = match self.route(p.query()) {
            Ok(s) => s,
            Err((code, message)) => return self.extended_error(Kind::Parse, code, &message),
        };
        if let Err((code, message)) = self.ensure_backend(shard).await {
            return self.extended_error(Kind::Parse, code, &message);
        }
        self.stmts.insert(&p.name, def.clone());
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        if p.name.is_empty() {
            self.bout.extend_from_slice(&p.raw);
            b.unnamed = Some(def.id);
            self.push_forward(
                Kind::Parse,
                Action::Parsed {
                    def: def.clone(),
                    unnamed: true,
                    client_name: Some(String::new()),
                },
            );
        } else if b.prepared.contains(&def.id) {
            let mut bytes = BytesMut::with_capacity(5);
            encode::parse_complete(&mut bytes);
            self.push_synthetic(Kind::Parse, bytes.freeze());
        } else {
            self.bout.extend_from_slice(&def.parse_message);
            b.prepared.insert(def.id);
            self.push_forward(
                Kind::Parse,
                Action::Parsed {
                    def: def.clone(),
                    unnamed: false,
                    client_name: Some(p.name),
                },
            );
        }
    }

    /// Makes sure the attached backend has `def` (named or as its unnamed statement), injecting
    /// a Parse whose answer the client never sees.
    fn ensure_prepared(&mut self, def: &Arc<StmtDef>, unnamed: bool) {
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        if unnamed {
            if b.unnamed == Some(def.id) {
                return;
            }
            encode::parse(&mut self.bout, "", &def.query, &def.param_types);
            b.unnamed = Some(def.id);
        } else {
            if b.prepared.contains(&def.id) {
                return;
            }
            self.bout.extend_from_slice(&def.parse_message);
            b.prepared.insert(def.id);
        }
        self.pipeline.push(
            Pending {
                kind: Kind::Parse,
                mode: Mode::Swallow,
                action: Action::Parsed {
                    def: def.clone(),
                    unnamed,
                    client_name: None,
                },
            },
            &mut self.cout,
        );
    }

    /// Resolves a client statement name, or queues the "does not exist" error.
    fn lookup_statement(&mut self, name: &str, kind: Kind) -> Option<Arc<StmtDef>> {
        let found = self.stmts.get(name).cloned();
        if found.is_none() {
            let message = if name.is_empty() {
                "unnamed prepared statement does not exist".to_string()
            } else {
                format!("prepared statement \"{name}\" does not exist")
            };
            self.extended_error(kind, "26000", &message);
        }
        found
    }

    async fn on_bind(&mut self, b: Bind) {
        let Some(def) = self.lookup_statement(&b.statement, Kind::Bind) else {
            return;
        };
        let shard = match self.route(&def.query) {
            Ok(s) => s,
            Err((code, message)) => return self.extended_error(Kind::Bind, code, &message),
        };
        if let Err((code, message)) = self.ensure_backend(shard).await {
            return self.extended_error(Kind::Bind, code, &message);
        }
        let unnamed = b.statement.is_empty();
        self.ensure_prepared(&def, unnamed);
        if unnamed {
            self.bout.extend_from_slice(&b.raw);
        } else {
            b.write_with_statement(&mut self.bout, &def.server_name);
        }
        if def.effects.is_empty() {
            if !self.portal_effects.is_empty() {
                self.portal_effects.remove(&b.portal);
            }
        } else {
            self.portal_effects
                .insert(b.portal.clone(), Box::new(def.effects.clone()));
        }
        self.push_forward(Kind::Bind, Action::None);
    }

    async fn on_describe(&mut self, d: Describe) {
        match d.target {
            Target::Statement => {
                let Some(def) = self.lookup_statement(&d.name, Kind::DescribeStatement) else {
                    return;
                };
                let shard = match self.route(&def.query) {
                    Ok(s) => s,
                    Err((code, message)) => {
                        return self.extended_error(Kind::DescribeStatement, code, &message)
                    }
                };
                if let Err((code, message)) = self.ensure_backend(shard).await {
                    return self.extended_error(Kind::DescribeStatement, code, &message);
                }
                let unnamed = d.name.is_empty();
                self.ensure_prepared(&def, unnamed);
                let server_name = if unnamed {
                    ""
                } else {
                    def.server_name.as_str()
                };
                encode::describe(&mut self.bout, Target::Statement, server_name);
                self.push_forward(Kind::DescribeStatement, Action::None);
            }
            Target::Portal => {
                if self.backend.is_none() {
                    let message = format!("portal \"{}\" does not exist", d.name);
                    return self.extended_error(Kind::DescribePortal, "34000", &message);
                }
                self.bout.extend_from_slice(&d.raw);
                self.push_forward(Kind::DescribePortal, Action::None);
            }
        }
    }

    fn on_execute(&mut self, e: Execute) {
        if self.backend.is_none() {
            let message = format!("portal \"{}\" does not exist", e.portal);
            return self.extended_error(Kind::Execute, "34000", &message);
        }
        self.bout.extend_from_slice(&e.raw);
        let action = match self.portal_effects.get(&e.portal) {
            Some(fx) => Action::Effects(fx.clone()),
            None => Action::None,
        };
        self.push_forward(Kind::Execute, action);
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
                self.portal_effects.remove(&c.name);
                if self.backend.is_some() {
                    self.bout.extend_from_slice(&c.raw);
                    self.push_forward(Kind::Close, Action::None);
                } else {
                    let mut bytes = BytesMut::with_capacity(5);
                    encode::close_complete(&mut bytes);
                    self.push_synthetic(Kind::Close, bytes.freeze());
                }
            }
        }
    }

    fn on_copy_end(&mut self, raw: &[u8]) {
        if self.backend.is_some() {
            self.bout.extend_from_slice(raw);
            self.push_forward(Kind::CopyEnd, Action::None);
        }
    }

    fn on_sync(&mut self) {
        self.skip_until_sync = false;
        if self.backend.is_some() && self.pipeline.sync_ignored() {
            // The server is in copy-in mode and ignores Sync; so must we.
            encode::sync(&mut self.bout);
            return;
        }
        if self.backend.is_some() {
            encode::sync(&mut self.bout);
            self.push_forward(Kind::Sync, Action::None);
        } else {
            let mut bytes = BytesMut::with_capacity(6);
            encode::ready_for_query(&mut bytes, self.status);
            self.push_synthetic(Kind::Sync, bytes.freeze());
        }
    }

    async fn on_function_call(&mut self, raw: Bytes) {
        if let Err((code, message)) = self.ensure_backend(0).await {
            return self.query_error(code, &message);
        }
        self.bout.extend_from_slice(&raw);
        self.push_forward(Kind::FunctionCall, Action::None);
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
