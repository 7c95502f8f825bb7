//! An operator's decision for one in-doubt transaction (`POST /api/v1/transactions/{gid}/resolve`).
//!
//! Runs under the gid's claim, so recovery and a running commit keep off it meanwhile. A commit
//! is logged as the decision before any COMMIT PREPARED, so recovery finishes it on shards that
//! cannot be reached now. A rollback is refused once a commit decision is logged: some shards
//! may already have committed, and only commit keeps the transaction atomic.

use std::time::Duration;

use admin::{ResolveAction, ResolveError};

use super::gid::Owner;
use super::shard_sql::{Finish, ShardClient, ShardSqlError};
use crate::context::ProxyContext;

/// Longest wait for one statement on a shard.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `action` for `gid` on every shard of the current config that holds it prepared.
pub async fn resolve(
    ctx: &ProxyContext,
    gid: &str,
    action: ResolveAction,
) -> Result<(), ResolveError> {
    let twopc = &ctx.twopc;
    if twopc.owner(gid) == Owner::NotOurs {
        return Err(ResolveError::NotFound(format!(
            "{gid} is not a transaction of this proxy (proxy_id {})",
            twopc.proxy_id()
        )));
    }
    let Some(_claim) = twopc.try_claim(gid) else {
        return Err(ResolveError::Conflict(format!(
            "{gid} is being committed or recovered right now; look again in a moment"
        )));
    };
    let decision = twopc.decision(gid);
    if let (ResolveAction::Rollback, Some(d)) = (action, &decision) {
        return Err(ResolveError::Conflict(format!(
            "{gid} has a logged commit decision (shards {}): some shards may have committed \
             already, so it can only be committed",
            d.shards.join(", ")
        )));
    }
    let config = ctx.config.load_full();
    let connect_timeout = config.pool.connect_timeout;
    let checks = config.shards.iter().map(|shard| async move {
        let client = ShardClient::connect(shard, connect_timeout, QUERY_TIMEOUT).await?;
        let holds = client.list_prepared().await?.iter().any(|l| l.gid == gid);
        Ok::<_, ShardSqlError>((shard.name.clone(), client, holds))
    });
    let mut holders = Vec::new();
    let mut reached = Vec::new();
    let mut unreachable = Vec::new();
    for check in futures::future::join_all(checks).await {
        match check {
            Ok((name, client, holds)) => {
                if holds {
                    holders.push((name.clone(), client));
                }
                reached.push(name);
            }
            Err(e) => unreachable.push(e.to_string()),
        }
    }
    if holders.is_empty() && decision.is_none() {
        if !unreachable.is_empty() {
            return Err(ResolveError::Backend(format!(
                "{gid} is not prepared on any shard that could be reached; {}",
                unreachable.join("; ")
            )));
        }
        twopc.forget_in_doubt(gid);
        return Err(ResolveError::NotFound(format!(
            "no shard holds {gid} prepared"
        )));
    }
    // Without a decision, a shard we cannot see might hold it: deciding now could split it.
    if decision.is_none() && !unreachable.is_empty() {
        return Err(ResolveError::Backend(format!(
            "nothing was changed: {}",
            unreachable.join("; ")
        )));
    }
    let how = match action {
        ResolveAction::Commit => Finish::Commit,
        ResolveAction::Rollback => Finish::Rollback,
    };
    if how == Finish::Commit && decision.is_none() {
        let shards: Vec<String> = holders.iter().map(|(n, _)| n.clone()).collect();
        twopc
            .log_commit(gid, &shards)
            .await
            .map_err(|e| ResolveError::Backend(format!("could not log the decision: {e}")))?;
    }
    let mut failed = unreachable;
    for (name, client) in &holders {
        match client.finish(gid, how).await {
            Ok(()) => {
                twopc.metrics.twopc_recovered(how.action());
                tracing::info!(gid, shard = %name, action = action.as_str(), "operator resolved a prepared transaction on a shard");
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        let next = match how {
            Finish::Commit => "the commit decision is logged: recovery finishes it",
            Finish::Rollback => "recovery rolls back what is left",
        };
        twopc.wake_recovery();
        return Err(ResolveError::Backend(format!(
            "{} on some shards only ({}); {next}",
            action.done_status(),
            failed.join("; ")
        )));
    }
    if let Some(d) = &decision {
        // Participants no longer in the config cannot be checked; the operator decided for them.
        if d.shards
            .iter()
            .all(|p| reached.contains(p) || !config.shards.iter().any(|s| &s.name == p))
        {
            twopc.log_done(gid);
        }
    } else if how == Finish::Commit {
        twopc.log_done(gid);
    }
    twopc.forget_in_doubt(gid);
    Ok(())
}
