//! From a router plan to the backends a request goes to, given what the session holds
//! (transaction control and session-parameter statements follow the attached backends).

use std::sync::Arc;

use shard_router::merge::MergePlan;
use shard_router::{Plan, ShardPart, Statement, StatementKind, Target};

use super::session::Session;

/// Where one request goes.
#[derive(Debug, Clone)]
pub(crate) enum Targets {
    /// One shard.
    One(usize),
    /// The same request to several shards, answers merged.
    Many(Vec<usize>),
    /// A different statement per shard (a split INSERT), answers merged.
    Split(Vec<ShardPart>),
    /// The same write on every copy of a reference table: one shard's answer stands for all.
    Replicated(Vec<usize>),
    /// A read on several shards whose answers are merged by this plan (the shards run its
    /// `shard_sql` instead of the client's text).
    Merge(Vec<usize>, Arc<MergePlan>),
}

impl Targets {
    fn from_shards(mut shards: Vec<usize>) -> Targets {
        if shards.len() == 1 {
            Targets::One(shards.remove(0))
        } else {
            Targets::Many(shards)
        }
    }

    /// The shards involved.
    pub(crate) fn shards(&self) -> Vec<usize> {
        match self {
            Targets::One(s) => vec![*s],
            Targets::Many(v) | Targets::Merge(v, _) => v.clone(),
            Targets::Split(parts) => parts.iter().map(|p| p.shard).collect(),
            Targets::Replicated(v) => v.clone(),
        }
    }

    /// True for reference-table writes.
    pub(crate) fn replicated(&self) -> bool {
        matches!(self, Targets::Replicated(v) if v.len() > 1)
    }
}

impl Session {
    /// Resolves a plan. `session_effects`: the statement changes session state (SET...), so it
    /// must reach every backend the session holds. `sql`: the statement's exact text (a merged
    /// read is planned from it).
    pub(crate) fn resolve(
        &self,
        plan: &Plan,
        stmt: &Statement,
        sql: &str,
        session_effects: bool,
    ) -> Result<Targets, (&'static str, String)> {
        let attached = self.backends.shards();
        let follow_attached = matches!(
            plan.kind,
            StatementKind::Begin
                | StatementKind::Commit
                | StatementKind::Rollback
                | StatementKind::Savepoint
        ) || (session_effects && plan.target == Target::Default);
        if follow_attached {
            return Ok(if attached.is_empty() {
                Targets::One(0)
            } else {
                Targets::from_shards(attached)
            });
        }
        let shard_count = self.ctx.pools.len();
        let targets = match &plan.target {
            Target::Default => Targets::One(0),
            Target::Shards(v) if v.is_empty() => Targets::One(0),
            Target::Shards(v) => Targets::from_shards(v.clone()),
            Target::All => Targets::from_shards((0..shard_count).collect()),
            Target::ReferenceWrite if shard_count == 1 => Targets::One(0),
            Target::ReferenceWrite => Targets::Replicated((0..shard_count).collect()),
            Target::ReferenceRead => Targets::One(attached.first().copied().unwrap_or(0)),
            Target::Split(parts) if parts.len() == 1 => Targets::Split(parts.clone()),
            Target::Split(parts) => Targets::Split(parts.clone()),
        };
        if !matches!(targets, Targets::One(_)) {
            if stmt.statement_kinds().len() > 1 {
                return Err((
                    "0A000",
                    format!(
                        "a multi-statement query that runs on several shards is not supported ({}); send its statements separately",
                        plan.reason
                    ),
                ));
            }
            if plan.kind == StatementKind::Write {
                if let Some(why) = stmt.merge_requirement() {
                    // FOR UPDATE, or functions that may write: each shard's part must commit
                    // with the others, which a merged read does not do.
                    return Err((
                        "0A000",
                        format!(
                            "a query that locks rows or may write on several shards and needs {why} merged across them is not supported ({})",
                            plan.reason
                        ),
                    ));
                }
            }
            if plan.kind == StatementKind::Read {
                if let Some(why) = stmt.merge_requirement() {
                    let Some(local_groups) = stmt.merge_groups_local() else {
                        return Err((
                            "0A000",
                            format!(
                                "this query reads several shards and returns {why}, which cannot be merged exactly ({})",
                                plan.reason
                            ),
                        ));
                    };
                    let merge = self
                        .ctx
                        .router
                        .load()
                        .merge_plan(sql, local_groups)
                        .map_err(|e| (e.code, e.message))?;
                    return Ok(Targets::Merge(targets.shards(), merge));
                }
            }
        }
        Ok(targets)
    }
}
