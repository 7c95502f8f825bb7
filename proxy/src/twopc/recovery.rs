//! The recovery task: at start and every `recovery_interval`, read `pg_prepared_xacts` on every
//! shard and finish our prepared transactions: COMMIT PREPARED what the log decided, ROLLBACK
//! PREPARED the rest once it cannot be in flight (presumed abort). A shard that cannot be
//! reached is retried sooner, with exponential backoff and jitter from 100 ms.
//!
//! A gid is acted on only under a claim ([`TwoPc::try_claim`]), the same claim a running commit
//! or an operator's resolve holds, so two of them never finish one gid differently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use config::{Config, ShardConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::gid::Owner;
use super::indoubt::{self, Inputs, ShardView, Tracked};
use super::shard_sql::{Finish, Listed, ShardClient, ShardSqlError};
use super::TwoPc;
use crate::context::ProxyContext;

/// A gid of this boot that nobody claims is rolled back only after recovery has seen it for this
/// long: a margin for anything we did not foresee between PREPARE and the claim's release.
pub const IN_FLIGHT_WINDOW: Duration = Duration::from_secs(60);

/// The first retry delay after a shard failed; doubled per failure up to the interval.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Longest wait for one statement on a shard.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// What recovery does to one listed gid (after claiming it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The log decided commit: COMMIT PREPARED.
    Commit,
    /// No decision and nothing can be in flight: ROLLBACK PREPARED.
    Rollback,
    /// Leave it for now (another proxy's, or too young to be sure).
    Wait,
}

/// The presumed-abort rule for a gid nobody claims: commit if decided; else roll back one of an
/// earlier boot at once, and one of this boot once seen for `window`.
pub fn decide(owner: Owner, decided: bool, seen_for: Duration, window: Duration) -> Verdict {
    match owner {
        Owner::NotOurs => Verdict::Wait,
        _ if decided => Verdict::Commit,
        Owner::EarlierBoot => Verdict::Rollback,
        Owner::ThisBoot if seen_for >= window => Verdict::Rollback,
        Owner::ThisBoot => Verdict::Wait,
    }
}

/// Delay before retrying a shard after `failures` failures in a row: 100 ms doubled per failure,
/// capped at `cap`, scaled by `0.5 + jitter / 2` (`jitter` in [0, 1)) so shards do not retry in
/// lockstep.
pub fn backoff(failures: u32, cap: Duration, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let delay = FIRST_RETRY.saturating_mul(1 << doublings).min(cap);
    delay.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// Starts the recovery task; it runs a first pass at once and stops when `shutdown` turns true.
pub fn spawn(ctx: Arc<ProxyContext>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(Recovery::new(ctx).run(shutdown))
}

/// Recovery's view of one shard.
struct ShardState {
    config: ShardConfig,
    client: Option<ShardClient>,
    /// max_prepared_transactions was checked on this connection's server.
    checked: bool,
    failures: u32,
    next_due: Instant,
    view: ShardView,
}

/// What one shard's pass did.
#[derive(Default)]
struct ShardReport {
    finished: Vec<(String, Finish)>,
    errors: Vec<(String, String)>,
}

/// The recovery task's state.
struct Recovery {
    ctx: Arc<ProxyContext>,
    shards: BTreeMap<String, ShardState>,
    tracked: HashMap<String, Tracked>,
    settled: HashMap<String, Instant>,
    window: Duration,
}

impl Recovery {
    fn new(ctx: Arc<ProxyContext>) -> Recovery {
        Recovery {
            ctx,
            shards: BTreeMap::new(),
            tracked: HashMap::new(),
            settled: HashMap::new(),
            window: IN_FLIGHT_WINDOW,
        }
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let ctx = self.ctx.clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                () = self.pass() => {}
                _ = shutdown.changed() => return,
            }
            let next = self.next_due();
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                () = ctx.twopc.wake.notified() => self.hurry(),
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The earliest time a shard is due (an interval from now when there are no shards).
    fn next_due(&self) -> Instant {
        let interval = self.ctx.config.load().proxy.recovery_interval;
        self.shards
            .values()
            .map(|s| s.next_due)
            .min()
            .unwrap_or_else(|| Instant::now() + interval)
    }

    /// A commit left work: healthy shards are checked now (failing ones keep their backoff).
    fn hurry(&mut self) {
        let now = Instant::now();
        for shard in self.shards.values_mut().filter(|s| s.failures == 0) {
            shard.next_due = shard.next_due.min(now);
        }
    }

    /// Follows the current config's shard list: new shards are due now, a changed URL reconnects.
    fn sync_shards(&mut self, config: &Config) {
        let now = Instant::now();
        self.shards
            .retain(|name, _| config.shards.iter().any(|s| &s.name == name));
        for shard in &config.shards {
            match self.shards.get_mut(&shard.name) {
                Some(state) if state.config.url == shard.url => {}
                Some(state) => {
                    state.config = shard.clone();
                    state.client = None;
                    state.checked = false;
                    state.next_due = now;
                }
                None => {
                    self.shards.insert(
                        shard.name.clone(),
                        ShardState {
                            config: shard.clone(),
                            client: None,
                            checked: false,
                            failures: 0,
                            next_due: now,
                            view: ShardView::default(),
                        },
                    );
                }
            }
        }
    }

    /// One pass over the shards that are due, then DONE records and the in-doubt list.
    async fn pass(&mut self) {
        let ctx = self.ctx.clone();
        let twopc = &ctx.twopc;
        let config = ctx.config.load_full();
        self.sync_shards(&config);
        let started = Instant::now();
        // Decisions not in flight now: any listing from here on is after their PREPAREs.
        for c in twopc.decisions() {
            if !twopc.is_in_flight(&c.gid) {
                self.settled.entry(c.gid).or_insert(started);
            }
        }
        let due: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, s)| s.next_due <= started)
            .map(|(n, _)| n.clone())
            .collect();
        let mut work: Vec<ShardState> = due.iter().filter_map(|n| self.shards.remove(n)).collect();
        let connect_timeout = config.pool.connect_timeout;
        let listings = futures::future::join_all(
            work.iter_mut()
                .map(|s| list_shard(s, twopc, connect_timeout)),
        )
        .await;
        // Claim and decide per gid; one claim covers the gid on every shard.
        let mut claims = HashMap::new();
        let mut plans: Vec<Vec<(String, Finish)>> = Vec::with_capacity(work.len());
        for listing in &listings {
            let mut plan = Vec::new();
            for listed in listing.as_ref().map(Vec::as_slice).unwrap_or_default() {
                let tracked = self.track(&listed.gid, listed.prepared);
                let seen_for = started.saturating_duration_since(tracked.seen_at);
                if !claims.contains_key(&listed.gid) {
                    match twopc.try_claim(&listed.gid) {
                        Some(claim) => {
                            claims.insert(listed.gid.clone(), claim);
                        }
                        None => continue,
                    }
                }
                let decided = twopc.decision(&listed.gid).is_some();
                let owner = twopc.owner(&listed.gid);
                match decide(owner, decided, seen_for, self.window) {
                    Verdict::Commit => plan.push((listed.gid.clone(), Finish::Commit)),
                    Verdict::Rollback => plan.push((listed.gid.clone(), Finish::Rollback)),
                    Verdict::Wait => {}
                }
            }
            plans.push(plan);
        }
        let reports = futures::future::join_all(
            work.iter()
                .zip(&plans)
                .map(|(s, plan)| finish_on_shard(s, plan)),
        )
        .await;
        drop(claims);
        let interval = config.proxy.recovery_interval;
        for ((mut shard, listing), report) in work.into_iter().zip(listings).zip(reports) {
            self.record(&mut shard, listing, report, started, interval);
            self.shards.insert(shard.config.name.clone(), shard);
        }
        self.evaluate(twopc, config.proxy.in_doubt_after);
        twopc.passes.fetch_add(1, Ordering::Relaxed);
    }

    /// The tracking entry of `gid`, created (or its first-seen time moved back) as needed.
    fn track(&mut self, gid: &str, prepared: SystemTime) -> &Tracked {
        let entry = self
            .tracked
            .entry(gid.to_owned())
            .or_insert_with(|| Tracked {
                first_seen: SystemTime::now(),
                seen_at: Instant::now(),
                last_error: None,
            });
        entry.first_seen = entry.first_seen.min(prepared);
        entry
    }

    /// Folds one shard's pass into its state: what it still holds, errors, next due time.
    fn record(
        &mut self,
        shard: &mut ShardState,
        listing: Result<Vec<Listed>, ShardSqlError>,
        report: ShardReport,
        started: Instant,
        interval: Duration,
    ) {
        let name = shard.config.name.clone();
        let healthy = match listing {
            Ok(listed) => {
                let mut held: BTreeSet<String> = listed.into_iter().map(|l| l.gid).collect();
                for (gid, how) in &report.finished {
                    held.remove(gid);
                    self.ctx.twopc.metrics.twopc_recovered(how.action());
                    tracing::info!(gid, shard = %name, action = how.action().as_str(), "2PC recovery finished a prepared transaction");
                    if let Some(t) = self.tracked.get_mut(gid) {
                        t.last_error = None;
                    }
                }
                for (gid, error) in &report.errors {
                    tracing::warn!(gid, shard = %name, %error, "2PC recovery could not finish a prepared transaction");
                    if let Some(t) = self.tracked.get_mut(gid) {
                        t.last_error = Some(error.clone());
                    }
                }
                shard.view.listed_at = Some(started);
                shard.view.held = held;
                shard.view.error = None;
                report.errors.is_empty()
            }
            Err(e) => {
                tracing::warn!(shard = %name, error = %e, failures = shard.failures + 1, "2PC recovery cannot check this shard");
                shard.client = None;
                shard.view.error = Some(e.to_string());
                false
            }
        };
        if healthy {
            shard.failures = 0;
            shard.next_due = Instant::now() + interval;
        } else {
            shard.failures = shard.failures.saturating_add(1);
            let jitter = rand::random_range(0.0..1.0);
            shard.next_due = Instant::now() + backoff(shard.failures, interval, jitter);
        }
    }

    /// Writes DONE for decisions finished everywhere, publishes the in-doubt list, forgets gids
    /// that are gone.
    fn evaluate(&mut self, twopc: &TwoPc, in_doubt_after: Duration) {
        let decisions: Vec<_> = twopc
            .decisions()
            .into_iter()
            .filter(|c| !twopc.is_in_flight(&c.gid))
            .collect();
        let views: BTreeMap<String, ShardView> = self
            .shards
            .iter()
            .map(|(n, s)| (n.clone(), s.view.clone()))
            .collect();
        let in_flight = |gid: &str| twopc.is_in_flight(gid);
        let result = indoubt::evaluate(&Inputs {
            decisions: &decisions,
            settled: &self.settled,
            shards: &views,
            tracked: &self.tracked,
            in_flight: &in_flight,
            now: SystemTime::now(),
            in_doubt_after,
        });
        for gid in &result.done {
            tracing::debug!(gid, "2PC decision finished on every participant");
            twopc.log_done(gid);
        }
        twopc.set_in_doubt(result.in_doubt);
        let live: BTreeSet<String> = twopc.decisions().into_iter().map(|c| c.gid).collect();
        let held: BTreeSet<&String> = views.values().flat_map(|v| &v.held).collect();
        self.settled.retain(|gid, _| live.contains(gid));
        self.tracked
            .retain(|gid, _| live.contains(gid) || held.contains(gid));
    }
}

/// Connects if needed, checks max_prepared_transactions once, lists our prepared gids.
async fn list_shard(
    shard: &mut ShardState,
    twopc: &TwoPc,
    connect_timeout: Duration,
) -> Result<Vec<Listed>, ShardSqlError> {
    if shard.client.as_ref().is_none_or(ShardClient::is_closed) {
        shard.checked = false;
        shard.client =
            Some(ShardClient::connect(&shard.config, connect_timeout, QUERY_TIMEOUT).await?);
    }
    let Some(client) = shard.client.as_ref() else {
        return Ok(Vec::new());
    };
    if !shard.checked {
        let max = client.max_prepared_transactions().await?;
        let name = &shard.config.name;
        if max == 0 {
            tracing::warn!(
                shard = %name,
                "shard {name} has max_prepared_transactions = 0: writes that touch it and another \
                 shard will fail; set max_prepared_transactions > 0 (e.g. = max_connections) in \
                 its postgresql.conf and restart it"
            );
        }
        twopc.set_prepared_disabled(name, max == 0);
        shard.checked = true;
    }
    let listed = client.list_prepared().await?;
    Ok(listed
        .into_iter()
        .filter(|l| twopc.owner(&l.gid) != Owner::NotOurs)
        .collect())
}

/// Runs the planned COMMIT/ROLLBACK PREPAREDs on one shard, in order.
async fn finish_on_shard(shard: &ShardState, plan: &[(String, Finish)]) -> ShardReport {
    let mut report = ShardReport::default();
    let Some(client) = shard.client.as_ref() else {
        return report;
    };
    for (gid, how) in plan {
        match client.finish(gid, *how).await {
            Ok(()) => report.finished.push((gid.clone(), *how)),
            // Includes NotPrepared: listed a moment ago and gone now means someone else
            // finished it. Not a success: it stays held until a new listing shows it gone.
            Err(e) => report.errors.push((gid.clone(), e.to_string())),
        }
    }
    report
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn presumed_abort() {
        let w = Duration::from_secs(60);
        let young = Duration::from_secs(1);
        let old = Duration::from_secs(61);
        assert_eq!(decide(Owner::EarlierBoot, true, young, w), Verdict::Commit);
        assert_eq!(decide(Owner::ThisBoot, true, young, w), Verdict::Commit);
        assert_eq!(
            decide(Owner::EarlierBoot, false, young, w),
            Verdict::Rollback
        );
        assert_eq!(decide(Owner::ThisBoot, false, young, w), Verdict::Wait);
        assert_eq!(decide(Owner::ThisBoot, false, old, w), Verdict::Rollback);
        assert_eq!(decide(Owner::NotOurs, true, old, w), Verdict::Wait);
        assert_eq!(decide(Owner::NotOurs, false, old, w), Verdict::Wait);
    }

    #[test]
    fn backoff_doubles_from_100ms_up_to_the_interval() {
        let cap = Duration::from_secs(5);
        let full = |n| backoff(n, cap, 1.0 - f64::EPSILON);
        assert!(full(1) <= Duration::from_millis(100) && full(1) > Duration::from_millis(99));
        assert!(full(2) > Duration::from_millis(199) && full(2) <= Duration::from_millis(200));
        assert!(full(4) > Duration::from_millis(799) && full(4) <= Duration::from_millis(800));
        assert!(full(10) <= cap && full(10) > Duration::from_millis(4999));
        assert!(full(u32::MAX) <= cap);
        // Jitter spreads each delay over its upper half.
        assert_eq!(backoff(1, cap, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(0, cap, 0.0), Duration::from_millis(50));
        for n in 1..30 {
            for j in [0.0, 0.3, 0.99] {
                let d = backoff(n, cap, j);
                assert!(d >= Duration::from_millis(50) && d <= cap, "{n} {j} {d:?}");
            }
        }
    }
}
