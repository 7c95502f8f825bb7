//! Every metric the proxy exports, defined in one place with fixed-cardinality labels.
//!
//! Each proxy owns its own `PrometheusRecorder` (no global recorder: two proxies can run in one
//! process). Handles are registered once at construction, so recording on the statement path is
//! an atomic add: no allocation, no lock, no name lookup.

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::ShardStatus;

mod twopc;

pub use twopc::{
    RecoveryAction, TWOPC_ABORTS, TWOPC_COMMITS, TWOPC_IN_DOUBT, TWOPC_LOG_FSYNC, TWOPC_RECOVERED,
};

/// Statements executed, by route kind and outcome.
pub const STATEMENTS: &str = "shardproxy_statements_total";
/// Latency of one request to one shard, in seconds.
pub const SHARD_LATENCY: &str = "shardproxy_shard_request_duration_seconds";
/// Client connections currently open.
pub const CLIENT_CONNECTIONS: &str = "shardproxy_client_connections";
/// Backend connections checked out, per shard (all hosts of the shard added up).
pub const POOL_IN_USE: &str = "shardproxy_pool_in_use";
/// Backend connections open and idle, per shard.
pub const POOL_IDLE: &str = "shardproxy_pool_idle";
/// Clients waiting for a backend connection, per shard.
pub const POOL_WAITING: &str = "shardproxy_pool_waiting";
/// 1 when the shard's primary is healthy, else 0.
pub const SHARD_HEALTHY: &str = "shardproxy_shard_healthy";

/// The `shard` label of latencies recorded for a shard index this registry did not know at start
/// (a shard added at run time); keeps the label set fixed instead of dropping the sample.
pub const OTHER_SHARD: &str = "other";

/// Histogram buckets (seconds): from sub-millisecond lookups to slow scatter queries.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Where a statement was routed (the `kind` label), as `POST /api/v1/route` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// One shard.
    Single,
    /// Several shards, fewer than all.
    Multi,
    /// Every shard.
    All,
    /// Reference tables.
    Reference,
    /// The default shard (unlisted tables, catalog, utility).
    Default,
}

impl RouteKind {
    /// Every kind, in label order.
    pub const ALL: [RouteKind; 5] = [
        RouteKind::Single,
        RouteKind::Multi,
        RouteKind::All,
        RouteKind::Reference,
        RouteKind::Default,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Single => "single",
            RouteKind::Multi => "multi",
            RouteKind::All => "all",
            RouteKind::Reference => "reference",
            RouteKind::Default => "default",
        }
    }

    /// The kind of a router plan (the same classification as `Plan::route_kind`).
    pub fn of(plan: &shard_router::Plan) -> RouteKind {
        use shard_router::Target;
        // Matched on the target, not on the string, so a new target variant fails to compile here.
        match &plan.target {
            Target::Default => RouteKind::Default,
            Target::Shards(s) if s.len() == 1 => RouteKind::Single,
            Target::Shards(_) => RouteKind::Multi,
            Target::Split(p) if p.len() == 1 => RouteKind::Single,
            Target::Split(_) => RouteKind::Multi,
            Target::All => RouteKind::All,
            Target::ReferenceRead | Target::ReferenceWrite => RouteKind::Reference,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a statement ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed without error.
    Ok,
    /// A backend or proxy error after routing.
    Error,
    /// Refused by the router (cannot be done across shards, bad key...).
    Refused,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Refused];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Refused => "refused",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Pool and health gauges of one shard.
struct ShardGauges {
    in_use: Gauge,
    idle: Gauge,
    waiting: Gauge,
    healthy: Gauge,
}

/// The metrics of one running proxy.
pub struct ProxyMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    statements: [[Counter; Outcome::ALL.len()]; RouteKind::ALL.len()],
    shard_names: Vec<String>,
    latency: Vec<Histogram>,
    latency_other: Histogram,
    client_connections: Gauge,
    twopc: twopc::TwoPcMetrics,
}

impl std::fmt::Debug for ProxyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyMetrics")
            .field("shard_names", &self.shard_names)
            .finish_non_exhaustive()
    }
}

/// Registration metadata; the Prometheus recorder ignores it but the trait requires one.
fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

impl ProxyMetrics {
    /// A fresh registry with every metric registered (zero) for these shards.
    pub fn new(shard_names: &[String]) -> ProxyMetrics {
        let builder = PrometheusBuilder::new();
        // Only fails on an empty bucket list, which a constant is not; a summary is the fallback.
        let builder = builder
            .set_buckets_for_metric(Matcher::Full(SHARD_LATENCY.to_owned()), &LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(TWOPC_LOG_FSYNC.to_owned()),
                    &twopc::FSYNC_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        describe(&recorder);
        let handle = recorder.handle();
        let meta = metadata();
        let statements = RouteKind::ALL.map(|kind| {
            Outcome::ALL.map(|outcome| {
                let key = Key::from_parts(
                    STATEMENTS,
                    vec![
                        Label::new("kind", kind.as_str()),
                        Label::new("outcome", outcome.as_str()),
                    ],
                );
                recorder.register_counter(&key, &meta)
            })
        });
        let latency_for = |shard: &str| {
            let key = Key::from_parts(SHARD_LATENCY, vec![Label::new("shard", shard.to_owned())]);
            recorder.register_histogram(&key, &meta)
        };
        let latency = shard_names.iter().map(|s| latency_for(s)).collect();
        let latency_other = latency_for(OTHER_SHARD);
        let client_connections =
            recorder.register_gauge(&Key::from_static_name(CLIENT_CONNECTIONS), &meta);
        let twopc = twopc::TwoPcMetrics::register(&recorder);
        let metrics = ProxyMetrics {
            twopc,
            recorder,
            handle,
            statements,
            shard_names: shard_names.to_vec(),
            latency,
            latency_other,
            client_connections,
        };
        // Pool gauges exist (at zero) from the start so dashboards see every shard at once.
        for name in shard_names {
            metrics.shard_gauges(name);
        }
        metrics
    }

    /// Counts one statement by route kind and outcome.
    pub fn statement(&self, kind: RouteKind, outcome: Outcome) {
        if let Some(counter) = self
            .statements
            .get(kind.index())
            .and_then(|row| row.get(outcome.index()))
        {
            counter.increment(1);
        }
    }

    /// Records one request to shard `shard` (index in the shard list given to `new`) that took
    /// `seconds`.
    pub fn shard_latency(&self, shard: usize, seconds: f64) {
        self.latency
            .get(shard)
            .unwrap_or(&self.latency_other)
            .record(seconds);
    }

    /// Adds `delta` (negative when clients leave) to the open client connection gauge.
    pub fn client_connections(&self, delta: i64) {
        // i64 -> f64 is exact for any realistic connection count.
        self.client_connections.increment(delta as f64);
    }

    /// Counts a multi-shard transaction committed through two-phase commit.
    pub fn twopc_commit(&self) {
        self.twopc.commits.increment(1);
    }

    /// Counts a multi-shard transaction rolled back before its commit decision.
    pub fn twopc_abort(&self) {
        self.twopc.aborts.increment(1);
    }

    /// Counts a prepared transaction finished by recovery or an operator.
    pub fn twopc_recovered(&self, action: RecoveryAction) {
        match action {
            RecoveryAction::Commit => self.twopc.recovered_commit.increment(1),
            RecoveryAction::Rollback => self.twopc.recovered_rollback.increment(1),
        }
    }

    /// Sets the number of in-doubt transactions.
    pub fn twopc_in_doubt(&self, count: usize) {
        // usize -> f64 is exact for any realistic count.
        self.twopc.in_doubt.set(count as f64);
    }

    /// Records one decision-log fsync that took `seconds`.
    pub fn twopc_log_fsync(&self, seconds: f64) {
        self.twopc.log_fsync.record(seconds);
    }

    /// Folds latency samples recorded since the last call into the histogram buckets, so they do
    /// not pile up in memory between scrapes. `server::serve` calls it periodically.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Renders the Prometheus text; pool gauges are set from `shards` just before rendering.
    pub fn render(&self, shards: &[ShardStatus]) -> String {
        for shard in shards {
            let gauges = self.shard_gauges(&shard.name);
            let sum = |f: fn(&crate::HostStatus) -> usize| -> f64 {
                shard.hosts.iter().map(f).sum::<usize>() as f64
            };
            gauges.in_use.set(sum(|h| h.pool_in_use));
            gauges.idle.set(sum(|h| h.pool_idle));
            gauges.waiting.set(sum(|h| h.pool_waiting));
            let primary_healthy = shard
                .hosts
                .iter()
                .find(|h| h.role == crate::ROLE_PRIMARY)
                .is_some_and(|h| h.healthy);
            gauges.healthy.set(if primary_healthy { 1.0 } else { 0.0 });
        }
        self.handle.render()
    }

    /// The pool gauges of one shard; registering is get-or-create, so this is also the lookup.
    /// Rendering is rare (a scrape), so looking the handles up by name here costs nothing that
    /// matters, and it covers shards added after start.
    fn shard_gauges(&self, shard: &str) -> ShardGauges {
        let meta = metadata();
        let gauge = |name: &'static str| {
            let key = Key::from_parts(name, vec![Label::new("shard", shard.to_owned())]);
            self.recorder.register_gauge(&key, &meta)
        };
        ShardGauges {
            in_use: gauge(POOL_IN_USE),
            idle: gauge(POOL_IDLE),
            waiting: gauge(POOL_WAITING),
            healthy: gauge(SHARD_HEALTHY),
        }
    }
}

/// Which `describe_*` a metric needs.
#[derive(Clone, Copy)]
enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

/// HELP text of every metric.
const HELP: [(&str, MetricType, &str); 7] = [
    (
        STATEMENTS,
        MetricType::Counter,
        "Statements executed, by route kind and outcome.",
    ),
    (
        SHARD_LATENCY,
        MetricType::Histogram,
        "Latency of one request to one shard, in seconds.",
    ),
    (
        CLIENT_CONNECTIONS,
        MetricType::Gauge,
        "Client connections currently open.",
    ),
    (
        POOL_IN_USE,
        MetricType::Gauge,
        "Backend connections checked out, per shard.",
    ),
    (
        POOL_IDLE,
        MetricType::Gauge,
        "Backend connections open and idle, per shard.",
    ),
    (
        POOL_WAITING,
        MetricType::Gauge,
        "Clients waiting for a backend connection, per shard.",
    ),
    (
        SHARD_HEALTHY,
        MetricType::Gauge,
        "1 when the shard's primary is healthy, else 0.",
    ),
];

/// Adds the HELP lines to the recorder.
fn describe(recorder: &PrometheusRecorder) {
    for (name, metric_type, text) in HELP {
        let name = KeyName::from_const_str(name);
        let text = SharedString::const_str(text);
        match metric_type {
            MetricType::Counter => recorder.describe_counter(name, None, text),
            MetricType::Gauge => recorder.describe_gauge(name, None, text),
            MetricType::Histogram => recorder.describe_histogram(name, None, text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostStatus;

    fn names() -> Vec<String> {
        vec!["s0".to_owned(), "s1".to_owned()]
    }

    fn host(role: &str, healthy: bool, in_use: usize, idle: usize, waiting: usize) -> HostStatus {
        HostStatus {
            url: "postgres://u:***@h:5432/db".to_owned(),
            role: role.to_owned(),
            healthy,
            circuit: "closed".to_owned(),
            pool_size: 10,
            pool_in_use: in_use,
            pool_idle: idle,
            pool_waiting: waiting,
        }
    }

    fn line_value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn statements_by_kind_and_outcome() {
        let m = ProxyMetrics::new(&names());
        m.statement(RouteKind::Single, Outcome::Ok);
        m.statement(RouteKind::Single, Outcome::Ok);
        m.statement(RouteKind::All, Outcome::Refused);
        let text = m.render(&[]);
        assert_eq!(
            line_value(
                &text,
                r#"shardproxy_statements_total{kind="single",outcome="ok"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            line_value(
                &text,
                r#"shardproxy_statements_total{kind="all",outcome="refused"}"#
            ),
            Some(1.0)
        );
        // Every combination is present from the start, at zero.
        for kind in RouteKind::ALL {
            for outcome in Outcome::ALL {
                let series = format!(
                    "{STATEMENTS}{{kind=\"{}\",outcome=\"{}\"}}",
                    kind.as_str(),
                    outcome.as_str()
                );
                assert!(line_value(&text, &series).is_some(), "{series}");
            }
        }
        assert!(text.contains("# TYPE shardproxy_statements_total counter"));
        assert!(text.contains("# HELP shardproxy_statements_total "));
    }

    #[test]
    fn latency_histogram_per_shard() {
        let m = ProxyMetrics::new(&names());
        m.shard_latency(1, 0.002);
        m.shard_latency(1, 0.2);
        m.shard_latency(7, 0.1);
        let text = m.render(&[]);
        assert!(
            text.contains("# TYPE shardproxy_shard_request_duration_seconds histogram"),
            "{text}"
        );
        assert_eq!(
            line_value(
                &text,
                r#"shardproxy_shard_request_duration_seconds_count{shard="s1"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"shardproxy_shard_request_duration_seconds_bucket{shard="s1",le="0.0025"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            line_value(
                &text,
                r#"shardproxy_shard_request_duration_seconds_count{shard="other"}"#
            ),
            Some(1.0)
        );
    }

    #[test]
    fn client_connections_gauge() {
        let m = ProxyMetrics::new(&names());
        m.client_connections(3);
        m.client_connections(-1);
        let text = m.render(&[]);
        assert_eq!(line_value(&text, CLIENT_CONNECTIONS), Some(2.0), "{text}");
    }

    #[test]
    fn pool_gauges_from_shard_status() {
        let m = ProxyMetrics::new(&names());
        let before = m.render(&[]);
        assert_eq!(
            line_value(&before, r#"shardproxy_pool_in_use{shard="s1"}"#),
            Some(0.0),
            "{before}"
        );
        let shards = [
            ShardStatus {
                name: "s0".to_owned(),
                hosts: vec![
                    host(crate::ROLE_PRIMARY, true, 2, 3, 1),
                    host(crate::ROLE_REPLICA, false, 1, 0, 0),
                ],
            },
            ShardStatus {
                name: "s1".to_owned(),
                hosts: vec![host(crate::ROLE_PRIMARY, false, 0, 0, 4)],
            },
        ];
        let text = m.render(&shards);
        let value = |metric: &str, shard: &str| {
            line_value(&text, &format!("{metric}{{shard=\"{shard}\"}}"))
        };
        assert_eq!(value(POOL_IN_USE, "s0"), Some(3.0), "{text}");
        assert_eq!(value(POOL_IDLE, "s0"), Some(3.0));
        assert_eq!(value(POOL_WAITING, "s0"), Some(1.0));
        assert_eq!(value(POOL_WAITING, "s1"), Some(4.0));
        assert_eq!(value(SHARD_HEALTHY, "s0"), Some(1.0));
        assert_eq!(value(SHARD_HEALTHY, "s1"), Some(0.0));
    }

    #[test]
    fn registries_are_independent() {
        let a = ProxyMetrics::new(&names());
        let b = ProxyMetrics::new(&names());
        a.statement(RouteKind::Default, Outcome::Error);
        let series = r#"shardproxy_statements_total{kind="default",outcome="error"}"#;
        assert_eq!(line_value(&a.render(&[]), series), Some(1.0));
        assert_eq!(line_value(&b.render(&[]), series), Some(0.0));
    }

    #[test]
    fn two_phase_commit_metrics() {
        let m = ProxyMetrics::new(&names());
        let before = m.render(&[]);
        for series in [
            TWOPC_COMMITS,
            TWOPC_ABORTS,
            r#"shardproxy_2pc_recovered_total{action="commit"}"#,
            r#"shardproxy_2pc_recovered_total{action="rollback"}"#,
            TWOPC_IN_DOUBT,
        ] {
            assert_eq!(line_value(&before, series), Some(0.0), "{series}\n{before}");
        }
        m.twopc_commit();
        m.twopc_commit();
        m.twopc_abort();
        m.twopc_recovered(RecoveryAction::Rollback);
        m.twopc_in_doubt(3);
        m.twopc_log_fsync(0.0003);
        let text = m.render(&[]);
        assert_eq!(line_value(&text, TWOPC_COMMITS), Some(2.0), "{text}");
        assert_eq!(line_value(&text, TWOPC_ABORTS), Some(1.0));
        assert_eq!(
            line_value(
                &text,
                r#"shardproxy_2pc_recovered_total{action="rollback"}"#
            ),
            Some(1.0)
        );
        assert_eq!(line_value(&text, TWOPC_IN_DOUBT), Some(3.0));
        assert!(text.contains("# TYPE shardproxy_2pc_log_fsync_seconds histogram"));
        assert_eq!(
            line_value(
                &text,
                r#"shardproxy_2pc_log_fsync_seconds_bucket{le="0.0005"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert!(text.contains("# HELP shardproxy_2pc_commits_total "));
    }

    #[test]
    fn route_kind_of_plan() {
        use shard_router::{Plan, StatementKind, Target};
        let plan = |target| Plan {
            target,
            kind: StatementKind::Read,
            reason: String::new(),
        };
        for (target, kind) in [
            (Target::Default, RouteKind::Default),
            (Target::Shards(vec![1]), RouteKind::Single),
            (Target::Shards(vec![0, 1]), RouteKind::Multi),
            (Target::All, RouteKind::All),
            (Target::ReferenceRead, RouteKind::Reference),
            (Target::ReferenceWrite, RouteKind::Reference),
        ] {
            let plan = plan(target);
            assert_eq!(RouteKind::of(&plan), kind);
            assert_eq!(RouteKind::of(&plan).as_str(), plan.route_kind());
        }
    }
}
