//! The extended protocol: Parse (validated once, answered without a backend afterwards), Bind
//! (routed with its parameter values; split INSERTs get one statement per shard), Describe,
//! Execute (to the shards that hold the portal).

use std::sync::Arc;

use admin::RouteKind;
use bytes::BytesMut;
use shard_router::{Params, StatementKind};

use super::pipeline::{Action, Kind, Mode, Owed, Pending};

/// Where a Bind goes: targets, COPY split, route kind for metrics, statement kind.
type BindRoute = (
    Targets,
    Option<shard_router::CopyIn>,
    RouteKind,
    Option<StatementKind>,
);
use super::routing::Targets;
use super::session::{PortalRoute, Session};
use super::statements::StmtDef;
use crate::protocol::encode;
use crate::protocol::frontend::{Bind, Describe, Execute, Parse, Target};

impl Session {
    pub(crate) async fn on_parse(&mut self, p: Parse) {
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
        let router = self.router();
        if !router.tables().is_empty() {
            if let Err(e) = router.prepare(p.query()) {
                return self.extended_error(Kind::Parse, e.code, &e.message);
            }
        }
        if self.backends.is_empty() && def.is_validated() {
            // A server already accepted this text: answer now and prepare it lazily where the
            // Bind runs. Taking a backend just to re-check it could wait behind another client
            // of the same single-threaded program that holds the last backend (pgbench -j 1).
            self.stmts.insert(&p.name, def);
            let mut bytes = BytesMut::with_capacity(5);
            encode::parse_complete(&mut bytes);
            return self.push_synthetic(Kind::Parse, bytes.freeze());
        }
        // Validate on a backend the session holds, else on the default shard.
        let shard = self.backends.first().unwrap_or(0);
        if let Err((code, message)) = self.ensure_backend(shard).await {
            return self.extended_error(Kind::Parse, code, &message);
        }
        self.stmts.insert(&p.name, def.clone());
        let Some(b) = self.backends.get_mut(shard) else {
            return;
        };
        let unnamed = p.name.is_empty();
        if unnamed {
            b.write_buf.extend_from_slice(&p.raw);
            b.unnamed = Some(def.id);
        } else if b.prepared.contains(&def.id) {
            let mut bytes = BytesMut::with_capacity(5);
            encode::parse_complete(&mut bytes);
            return self.push_synthetic(Kind::Parse, bytes.freeze());
        } else {
            b.write_buf.extend_from_slice(&def.parse_message);
            b.prepared.insert(def.id);
        }
        let action = Action::Parsed {
            def,
            shard,
            unnamed,
            client_name: Some(p.name),
        };
        self.push_forward(Kind::Parse, action, &[shard]);
    }

    /// Makes sure `shard`'s backend has `def` (named, or as its unnamed statement), injecting
    /// a Parse whose answer the client never sees.
    pub(crate) fn ensure_prepared(&mut self, shard: usize, def: &Arc<StmtDef>, unnamed: bool) {
        let Some(b) = self.backends.get_mut(shard) else {
            return;
        };
        if unnamed {
            if b.unnamed == Some(def.id) {
                return;
            }
            encode::parse(&mut b.write_buf, "", &def.query, &def.param_types);
            b.unnamed = Some(def.id);
        } else {
            if b.prepared.contains(&def.id) {
                return;
            }
            b.write_buf.extend_from_slice(&def.parse_message);
            b.prepared.insert(def.id);
        }
        self.pipeline.push(
            Pending {
                kind: Kind::Parse,
                mode: Mode::Swallow,
                action: Action::Parsed {
                    def: def.clone(),
                    shard,
                    unnamed,
                    client_name: None,
                },
                owed: Owed::One(shard),
                stat: None,
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

    /// Where a Bind of `def` with these parameters goes (and, for a split COPY, how).
    fn route_bind(&self, def: &StmtDef, b: &Bind) -> Result<BindRoute, (&'static str, String)> {
        let router = self.router();
        if router.tables().is_empty() {
            return Ok((Targets::One(0), None, RouteKind::Default, None));
        }
        let stmt = router
            .prepare(&def.query)
            .map_err(|e| (e.code, e.message))?;
        let bound = b
            .params()
            .map_err(|e| ("08P01", format!("invalid Bind message: {e}")))?;
        let params = Params {
            values: &bound.values,
            formats: &bound.formats,
            types: &def.param_types,
        };
        let plan = router.plan(&stmt, &params).map_err(|e| {
            self.count_refusal(RouteKind::Default);
            (e.code, e.message)
        })?;
        let route = RouteKind::of(&plan);
        if plan.kind == shard_router::StatementKind::Ddl {
            self.ctx.catalog.clear();
        }
        let targets = self
            .resolve(&plan, &stmt, &def.query, !def.effects.is_empty())
            .inspect_err(|_| self.count_refusal(route))?;
        let copy = stmt
            .copy_in()
            .cloned()
            .filter(|_| matches!(targets, Targets::Many(_)));
        Ok((targets, copy, route, Some(plan.kind)))
    }

    pub(crate) async fn on_bind(&mut self, b: Bind) {
        let Some(def) = self.lookup_statement(&b.statement, Kind::Bind) else {
            return;
        };
        let (targets, mut copy, route_kind, kind) = match self.route_bind(&def, &b) {
            Ok(t) => t,
            Err((code, message)) => return self.extended_error(Kind::Bind, code, &message),
        };
        if let Some(info) = copy.as_mut() {
            if let Err((code, message)) = self.resolve_copy_key(info).await {
                return self.extended_error(Kind::Bind, code, &message);
            }
        }
        let shards = targets.shards();
        if let Err((code, message)) = self.ensure_backends(&shards).await {
            return self.extended_error(Kind::Bind, code, &message);
        }
        let unnamed = b.statement.is_empty();
        let mut merge = None;
        match &targets {
            Targets::Merge(_, plan) => {
                let Ok(bound) = b.params() else { return };
                let input = super::merged::merge_input(
                    plan.clone(),
                    shards.len(),
                    super::merged::Bound {
                        values: &bound.values,
                        formats: &bound.formats,
                        types: &(0..bound.values.len())
                            .map(|i| def.param_type(i))
                            .collect::<Vec<_>>(),
                    },
                    bound.result_formats.clone(),
                );
                let input = match input {
                    Ok(input) => input,
                    Err((code, message)) => return self.extended_error(Kind::Bind, code, &message),
                };
                // The shards run the merge plan's text, prepared under a proxy name, with the
                // client's parameters it uses.
                let used = &plan.shard_params;
                let types: Vec<u32> = used
                    .iter()
                    .map(|&i| def.param_types.get(i).copied().unwrap_or(0))
                    .collect();
                let formats: Vec<i16> = used
                    .iter()
                    .map(|&i| bound.formats.get(i).copied().unwrap_or(0))
                    .collect();
                let values: Vec<Option<&[u8]>> = used
                    .iter()
                    .map(|&i| bound.values.get(i).copied().flatten())
                    .collect();
                let merge_def = self.ctx.statements.intern(&plan.shard_sql, &types);
                let result_formats =
                    crate::merge::Merge::shard_result_formats(plan, &bound.result_formats);
                for &s in &shards {
                    self.ensure_prepared(s, &merge_def, false);
                    if let Some(backend) = self.backends.get_mut(s) {
                        encode::bind(
                            &mut backend.write_buf,
                            &b.portal,
                            &merge_def.server_name,
                            &formats,
                            &values,
                            &result_formats,
                        );
                    }
                }
                merge = Some(Box::new(input));
            }
            Targets::Split(parts) => {
                let Ok(bound) = b.params() else { return };
                for part in parts {
                    let types: Vec<u32> = part
                        .params
                        .iter()
                        .map(|&i| def.param_types.get(i).copied().unwrap_or(0))
                        .collect();
                    let part_def = self.ctx.statements.intern(&part.sql, &types);
                    self.ensure_prepared(part.shard, &part_def, false);
                    let formats: Vec<i16> = part
                        .params
                        .iter()
                        .map(|&i| bound.formats.get(i).copied().unwrap_or(0))
                        .collect();
                    let values: Vec<Option<&[u8]>> = part
                        .params
                        .iter()
                        .map(|&i| bound.values.get(i).copied().flatten())
                        .collect();
                    if let Some(backend) = self.backends.get_mut(part.shard) {
                        encode::bind(
                            &mut backend.write_buf,
                            &b.portal,
                            &part_def.server_name,
                            &formats,
                            &values,
                            &bound.result_formats,
                        );
                    }
                }
            }
            _ => {
                for &s in &shards {
                    self.ensure_prepared(s, &def, unnamed);
                    let Some(backend) = self.backends.get_mut(s) else {
                        continue;
                    };
                    if unnamed {
                        backend.write_buf.extend_from_slice(&b.raw);
                    } else {
                        b.write_with_statement(&mut backend.write_buf, &def.server_name);
                    }
                }
            }
        }
        let route = PortalRoute {
            shards: shards.clone(),
            replicated: targets.replicated(),
            route: Some(route_kind),
            copy,
            effects: (!def.effects.is_empty()).then(|| Box::new(def.effects.clone())),
            merge,
            writes: kind.is_some_and(|k| super::two_phase::writes(k, &def.query)),
            commit: kind == Some(StatementKind::Commit),
            block: match kind {
                Some(StatementKind::Begin) => Some(true),
                Some(StatementKind::Commit | StatementKind::Rollback) => Some(false),
                _ => None,
            },
        };
        self.parked.remove(&b.portal);
        self.portals.insert(b.portal.clone(), route);
        self.push_forward(Kind::Bind, Action::None, &shards);
    }

    pub(crate) async fn on_describe(&mut self, d: Describe) {
        match d.target {
            Target::Statement => {
                let Some(def) = self.lookup_statement(&d.name, Kind::DescribeStatement) else {
                    return;
                };
                // Every shard has the same schema: describe on one the session holds.
                let shard = self.backends.first().unwrap_or(0);
                if let Err((code, message)) = self.ensure_backend(shard).await {
                    return self.extended_error(Kind::DescribeStatement, code, &message);
                }
                let unnamed = d.name.is_empty();
                self.ensure_prepared(shard, &def, unnamed);
                let server_name = if unnamed {
                    ""
                } else {
                    def.server_name.as_str()
                };
                if let Some(b) = self.backends.get_mut(shard) {
                    encode::describe(&mut b.write_buf, Target::Statement, server_name);
                }
                self.push_forward(
                    Kind::DescribeStatement,
                    Action::Described(def.clone()),
                    &[shard],
                );
            }
            Target::Portal => {
                if let Some(route) = self.portals.get(&d.name).filter(|r| r.merge.is_some()) {
                    let shards: Vec<usize> = route.shards.clone();
                    let input = route.merge.as_deref().cloned();
                    if let Some(input) =
                        input.filter(|_| shards.iter().all(|s| self.backends.has(*s)))
                    {
                        for &s in &shards {
                            if let Some(b) = self.backends.get_mut(s) {
                                b.write_buf.extend_from_slice(&d.raw);
                            }
                        }
                        return self.push_merge(Kind::DescribePortal, input, &shards, None, true);
                    }
                }
                let shard = self
                    .portals
                    .get(&d.name)
                    .and_then(|r| r.shards.first().copied())
                    .filter(|s| self.backends.has(*s));
                let Some(shard) = shard else {
                    let message = format!("portal \"{}\" does not exist", d.name);
                    return self.extended_error(Kind::DescribePortal, "34000", &message);
                };
                if let Some(b) = self.backends.get_mut(shard) {
                    b.write_buf.extend_from_slice(&d.raw);
                }
                self.push_forward(Kind::DescribePortal, Action::None, &[shard]);
            }
        }
    }

    pub(crate) async fn on_execute(&mut self, e: Execute) {
        let route = self.portals.get(&e.portal).cloned().unwrap_or_default();
        let shards: Vec<usize> = route
            .shards
            .into_iter()
            .filter(|s| self.backends.has(*s))
            .collect();
        if shards.is_empty() {
            let message = format!("portal \"{}\" does not exist", e.portal);
            return self.extended_error(Kind::Execute, "34000", &message);
        }
        if route.commit && self.commit_explicit_extended().await {
            return;
        }
        if let Some(open) = route.block {
            self.block_sent = Some(open);
        }
        if route.merge.is_some() && self.pipeline.merging_portal(&e.portal) {
            return self.extended_error(
                Kind::Execute,
                "0A000",
                "the next part of a portal fetched in parts across shards was requested before the previous part was answered; wait for it",
            );
        }
        if let Some(mut run) = self.parked.remove(&e.portal) {
            // The next part of a merged portal fetched in parts.
            let ask = run.resume(e.max_rows);
            if ask.is_empty() {
                let mut out = BytesMut::new();
                match run.answer_from_queues(&mut out) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.parked.insert(e.portal.clone(), run);
                    }
                    Err(err) => {
                        return self.extended_error(Kind::Execute, err.sqlstate(), &err.to_string())
                    }
                }
                return self.push_synthetic(Kind::Execute, out.freeze());
            }
            for &s in &ask {
                if let Some(b) = self.backends.get_mut(s) {
                    encode::execute(&mut b.write_buf, &e.portal, e.max_rows);
                }
            }
            return self.push_merge_run(Kind::Execute, run, &ask, route.route);
        }
        if let Some(input) = route.merge {
            for &s in &shards {
                if let Some(b) = self.backends.get_mut(s) {
                    // The merge needs the column types: the portal's RowDescription first.
                    encode::describe(&mut b.write_buf, Target::Portal, &e.portal);
                    b.write_buf.extend_from_slice(&e.raw);
                }
            }
            let run = if e.max_rows > 0 {
                super::merge_run::MergeRun::in_parts(*input, &shards, &e.portal, e.max_rows)
            } else {
                super::merge_run::MergeRun::new(*input, &shards, false)
            };
            self.copy_targets.clear();
            return self.push_merge_run(Kind::Execute, Box::new(run), &shards, route.route);
        }
        if shards.len() > 1 && e.max_rows > 0 {
            return self.extended_error(
                Kind::Execute,
                "0A000",
                "fetching a portal that spans several shards in parts (Execute with a row limit) is not supported yet",
            );
        }
        if route.writes {
            // BEGIN (when the group now writes on several shards) goes before the Execute: a
            // COPY's Execute puts the server in copy mode.
            self.note_write(&shards, true);
        }
        for &s in &shards {
            if let Some(b) = self.backends.get_mut(s) {
                b.write_buf.extend_from_slice(&e.raw);
            }
        }
        // COPY data follows its statement; with one shard the attached backend is the target.
        self.copy_targets.clear();
        if shards.len() > 1 {
            self.copy_targets.extend_from_slice(&shards);
        }
        if let Some(info) = &route.copy {
            let router = self.router();
            self.start_copy_split(info, router, shards.clone());
        }
        let action = match route.effects {
            Some(fx) => Action::Effects(fx, shards.clone()),
            None => Action::None,
        };
        self.push_statement(
            Kind::Execute,
            action,
            &shards,
            route.route,
            route.replicated,
        );
    }
}
