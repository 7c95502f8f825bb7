//! Two-phase commit metrics: commits, aborts, recoveries, in-doubt count, decision-log fsyncs.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Recorder, SharedString};
use metrics_exporter_prometheus::PrometheusRecorder;

use super::metadata;

/// Multi-shard transactions committed through two-phase commit (decision logged).
pub const TWOPC_COMMITS: &str = "shardproxy_2pc_commits_total";
/// Multi-shard transactions rolled back by two-phase commit (a failure before the decision).
pub const TWOPC_ABORTS: &str = "shardproxy_2pc_aborts_total";
/// Prepared transactions finished by recovery or an operator, by action.
pub const TWOPC_RECOVERED: &str = "shardproxy_2pc_recovered_total";
/// Prepared transactions recovery has not been able to finish for longer than in_doubt_after.
pub const TWOPC_IN_DOUBT: &str = "shardproxy_2pc_in_doubt";
/// Time of one fsync of the 2PC decision log, in seconds.
pub const TWOPC_LOG_FSYNC: &str = "shardproxy_2pc_log_fsync_seconds";

/// Histogram buckets (seconds) of the decision-log fsync: from tmpfs to a slow disk.
pub(super) const FSYNC_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// What recovery (or an operator) did to a prepared transaction: the `action` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAction {
    /// COMMIT PREPARED.
    Commit,
    /// ROLLBACK PREPARED.
    Rollback,
}

impl RecoveryAction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryAction::Commit => "commit",
            RecoveryAction::Rollback => "rollback",
        }
    }
}

/// The registered 2PC handles.
pub(super) struct TwoPcMetrics {
    pub commits: Counter,
    pub aborts: Counter,
    pub recovered_commit: Counter,
    pub recovered_rollback: Counter,
    pub in_doubt: Gauge,
    pub log_fsync: Histogram,
}

impl TwoPcMetrics {
    /// Registers (at zero) and describes every 2PC metric.
    pub(super) fn register(recorder: &PrometheusRecorder) -> TwoPcMetrics {
        describe(recorder);
        let meta = metadata();
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &meta);
        let recovered = |action: RecoveryAction| {
            let key = Key::from_parts(TWOPC_RECOVERED, vec![Label::new("action", action.as_str())]);
            recorder.register_counter(&key, &meta)
        };
        TwoPcMetrics {
            commits: counter(TWOPC_COMMITS),
            aborts: counter(TWOPC_ABORTS),
            recovered_commit: recovered(RecoveryAction::Commit),
            recovered_rollback: recovered(RecoveryAction::Rollback),
            in_doubt: recorder.register_gauge(&Key::from_static_name(TWOPC_IN_DOUBT), &meta),
            log_fsync: recorder.register_histogram(&Key::from_static_name(TWOPC_LOG_FSYNC), &meta),
        }
    }
}

/// HELP lines of the 2PC metrics.
fn describe(recorder: &PrometheusRecorder) {
    let text = SharedString::const_str;
    let name = KeyName::from_const_str;
    recorder.describe_counter(
        name(TWOPC_COMMITS),
        None,
        text("Multi-shard transactions committed through two-phase commit."),
    );
    recorder.describe_counter(
        name(TWOPC_ABORTS),
        None,
        text("Multi-shard transactions rolled back by two-phase commit (failure before the decision)."),
    );
    recorder.describe_counter(
        name(TWOPC_RECOVERED),
        None,
        text("Prepared transactions finished by recovery or an operator, by action."),
    );
    recorder.describe_gauge(
        name(TWOPC_IN_DOUBT),
        None,
        text("Prepared transactions not finished for longer than in_doubt_after."),
    );
    recorder.describe_histogram(
        name(TWOPC_LOG_FSYNC),
        None,
        text("Time of one fsync of the 2PC decision log, in seconds."),
    );
}
