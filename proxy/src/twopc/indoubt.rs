//! What recovery knows per gid and shard, and from it: which decisions are finished everywhere
//! (DONE) and which transactions are in-doubt. Pure: no I/O, no clock reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use admin::InDoubt;

use super::record::CommitRecord;

/// One gid recovery has seen prepared on a shard or in the log.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    /// The earliest wall time known for it (prepared at, decided at, or first seen).
    pub first_seen: SystemTime,
    /// When this process first saw it (for the in-flight window).
    pub seen_at: Instant,
    /// The last error finishing it.
    pub last_error: Option<String>,
}

/// What the last listing of one shard found.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardView {
    /// When the last successful listing started; `None` if there was none yet.
    pub listed_at: Option<Instant>,
    /// Our gids still prepared there after that pass's actions.
    pub held: BTreeSet<String>,
    /// Why the shard could not be checked last time, if it could not.
    pub error: Option<String>,
}

impl ShardView {
    /// True when a listing that started once `gid` was settled no longer shows it. Settled
    /// means its commit had ended, PREPAREs included, so such a listing cannot predate them.
    fn finished(&self, gid: &str, settled: Instant) -> bool {
        self.listed_at.is_some_and(|t| t >= settled) && !self.held.contains(gid)
    }
}

/// The outcome of evaluating every known gid.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Evaluation {
    /// COMMIT decisions no participant holds any more: write DONE.
    pub done: Vec<String>,
    /// Transactions unfinished for longer than the in-doubt threshold.
    pub in_doubt: Vec<InDoubt>,
}

/// Everything the evaluation reads.
pub(crate) struct Inputs<'a> {
    /// Live COMMIT decisions that are not in flight.
    pub decisions: &'a [CommitRecord],
    /// When recovery first saw each decision not in flight.
    pub settled: &'a HashMap<String, Instant>,
    /// Shards by name (the current config's).
    pub shards: &'a BTreeMap<String, ShardView>,
    /// Known gids.
    pub tracked: &'a HashMap<String, Tracked>,
    /// Gids in flight (left out).
    pub in_flight: &'a dyn Fn(&str) -> bool,
    /// The wall clock now.
    pub now: SystemTime,
    /// How long unfinished before in-doubt.
    pub in_doubt_after: Duration,
}

/// Decides DONE records and the in-doubt list.
pub(crate) fn evaluate(inputs: &Inputs<'_>) -> Evaluation {
    let mut out = Evaluation::default();
    let mut decided = BTreeSet::new();
    for c in inputs.decisions {
        decided.insert(c.gid.as_str());
        let Some(settled) = inputs.settled.get(&c.gid) else {
            continue;
        };
        // Finished on a shard only if a listing that started after the decision settled no
        // longer shows it: an older listing may predate the PREPARE.
        let pending: Vec<String> = c
            .shards
            .iter()
            .filter(|p| match inputs.shards.get(*p) {
                Some(v) => !v.finished(&c.gid, *settled),
                None => true,
            })
            .cloned()
            .collect();
        if pending.is_empty() {
            out.done.push(c.gid.clone());
            continue;
        }
        let decided_at = UNIX_EPOCH + Duration::from_millis(c.decided_at_ms);
        let tracked = inputs.tracked.get(&c.gid);
        let first_seen = tracked.map_or(decided_at, |t| t.first_seen.min(decided_at));
        push_if_overdue(
            &mut out.in_doubt,
            inputs,
            &c.gid,
            "commit",
            c.shards.clone(),
            pending,
            first_seen,
        );
    }
    let mut holders: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, view) in inputs.shards {
        for gid in &view.held {
            if !decided.contains(gid.as_str()) {
                holders.entry(gid).or_default().push(name.clone());
            }
        }
    }
    for (gid, shards) in holders {
        if (inputs.in_flight)(gid) {
            continue;
        }
        let Some(tracked) = inputs.tracked.get(gid) else {
            continue;
        };
        push_if_overdue(
            &mut out.in_doubt,
            inputs,
            gid,
            "unknown",
            shards.clone(),
            shards,
            tracked.first_seen,
        );
    }
    out.in_doubt
        .sort_by(|a, b| (&a.first_seen, &a.gid).cmp(&(&b.first_seen, &b.gid)));
    out
}

fn push_if_overdue(
    list: &mut Vec<InDoubt>,
    inputs: &Inputs<'_>,
    gid: &str,
    decision: &str,
    shards: Vec<String>,
    pending: Vec<String>,
    first_seen: SystemTime,
) {
    let age = inputs.now.duration_since(first_seen).unwrap_or_default();
    if age < inputs.in_doubt_after {
        return;
    }
    let last_error = inputs
        .tracked
        .get(gid)
        .and_then(|t| t.last_error.clone())
        .or_else(|| {
            pending.iter().find_map(|p| match inputs.shards.get(p) {
                Some(v) => v.error.clone(),
                None => Some(format!("shard {p} is not in the config any more")),
            })
        });
    list.push(InDoubt {
        gid: gid.to_owned(),
        decision: decision.to_owned(),
        shards,
        pending_shards: pending,
        first_seen: rfc3339(first_seen),
        last_error,
    });
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn decision(gid: &str, shards: &[&str], at: SystemTime) -> CommitRecord {
        CommitRecord {
            gid: gid.to_owned(),
            shards: shards.iter().map(|s| (*s).to_owned()).collect(),
            decided_at_ms: at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64,
        }
    }

    fn view(listed_at: Option<Instant>, held: &[&str], error: Option<&str>) -> ShardView {
        ShardView {
            listed_at,
            held: held.iter().map(|g| (*g).to_owned()).collect(),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn decisions_are_done_only_after_a_fresh_listing_everywhere() {
        let now_wall = SystemTime::now();
        let t0 = Instant::now();
        let settled_at = t0 + Duration::from_millis(10);
        let fresh = t0 + Duration::from_millis(20);
        let decisions = [decision("g", &["s0", "s1"], now_wall)];
        let settled = HashMap::from([("g".to_owned(), settled_at)]);
        let tracked = HashMap::new();
        let not_in_flight = |_: &str| false;
        let eval = |shards: &BTreeMap<String, ShardView>| {
            evaluate(&Inputs {
                decisions: &decisions,
                settled: &settled,
                shards,
                tracked: &tracked,
                in_flight: &not_in_flight,
                now: now_wall,
                in_doubt_after: Duration::ZERO,
            })
        };
        // s1's listing predates the decision: it may not show the PREPARE yet.
        let stale = BTreeMap::from([
            ("s0".to_owned(), view(Some(fresh), &[], None)),
            ("s1".to_owned(), view(Some(t0), &[], None)),
        ]);
        let e = eval(&stale);
        assert!(e.done.is_empty());
        assert_eq!(e.in_doubt.len(), 1);
        assert_eq!(e.in_doubt[0].pending_shards, vec!["s1".to_owned()]);
        assert_eq!(e.in_doubt[0].decision, "commit");
        // s1 still holds it.
        let held = BTreeMap::from([
            ("s0".to_owned(), view(Some(fresh), &[], None)),
            ("s1".to_owned(), view(Some(fresh), &["g"], Some("down"))),
        ]);
        assert!(eval(&held).done.is_empty());
        // s1 was never reached.
        let unreached = BTreeMap::from([
            ("s0".to_owned(), view(Some(fresh), &[], None)),
            (
                "s1".to_owned(),
                view(None, &[], Some("shard s1: cannot connect")),
            ),
        ]);
        let e = eval(&unreached);
        assert!(e.done.is_empty());
        assert_eq!(
            e.in_doubt[0].last_error.as_deref(),
            Some("shard s1: cannot connect")
        );
        // A participant removed from the config keeps it pending.
        let removed = BTreeMap::from([("s0".to_owned(), view(Some(fresh), &[], None))]);
        assert!(eval(&removed).done.is_empty());
        // Fresh listings everywhere without it (one from the pass that settled it): done.
        let finished = BTreeMap::from([
            ("s0".to_owned(), view(Some(fresh), &[], None)),
            ("s1".to_owned(), view(Some(settled_at), &[], None)),
        ]);
        let e = eval(&finished);
        assert_eq!(e.done, vec!["g".to_owned()]);
        assert!(e.in_doubt.is_empty());
    }

    #[test]
    fn undecided_gids_are_in_doubt_once_overdue() {
        let now_wall = SystemTime::now();
        let t0 = Instant::now();
        let shards = BTreeMap::from([
            (
                "s0".to_owned(),
                view(Some(t0), &["old", "young", "busy"], None),
            ),
            ("s1".to_owned(), view(Some(t0), &["old"], None)),
        ]);
        let tracked_at = |age: u64| Tracked {
            first_seen: now_wall - Duration::from_secs(age),
            seen_at: t0,
            last_error: None,
        };
        let tracked = HashMap::from([
            ("old".to_owned(), tracked_at(120)),
            ("young".to_owned(), tracked_at(5)),
            ("busy".to_owned(), tracked_at(120)),
        ]);
        let in_flight = |gid: &str| gid == "busy";
        let e = evaluate(&Inputs {
            decisions: &[],
            settled: &HashMap::new(),
            shards: &shards,
            tracked: &tracked,
            in_flight: &in_flight,
            now: now_wall,
            in_doubt_after: Duration::from_secs(60),
        });
        assert!(e.done.is_empty());
        assert_eq!(e.in_doubt.len(), 1, "{:?}", e.in_doubt);
        let t = &e.in_doubt[0];
        assert_eq!(t.gid, "old");
        assert_eq!(t.decision, "unknown");
        assert_eq!(t.shards, vec!["s0".to_owned(), "s1".to_owned()]);
        assert_eq!(t.pending_shards, t.shards);
    }
}
