//! Failpoints for crash tests: stop the commit protocol at a named step.
//!
//! Armed by env `SHARDPROXY_FAILPOINTS="after_some_prepares=pause,after_decision=kill"`, read
//! once when the 2PC state opens. `pause` prints `shardproxy failpoint <name> reached` on stderr
//! and blocks that commit forever (the test then SIGKILLs the proxy); `kill` raises SIGKILL at
//! once. With nothing armed a check is one load of a small array.

use std::io::Write;

/// The environment variable that arms failpoints.
pub const ENV: &str = "SHARDPROXY_FAILPOINTS";

/// A step of the commit protocol a test can stop at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// The first PREPARE succeeded, the others are not sent yet.
    AfterSomePrepares,
    /// Every PREPARE succeeded; the decision is not logged yet.
    AfterAllPrepares,
    /// The commit decision is durable; no COMMIT PREPARED sent yet.
    AfterDecision,
    /// The first COMMIT PREPARED succeeded, the others are not sent yet.
    AfterSomeCommits,
}

impl Failpoint {
    /// Every failpoint.
    pub const ALL: [Failpoint; 4] = [
        Failpoint::AfterSomePrepares,
        Failpoint::AfterAllPrepares,
        Failpoint::AfterDecision,
        Failpoint::AfterSomeCommits,
    ];

    /// The name used in the environment variable and the stderr marker.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::AfterSomePrepares => "after_some_prepares",
            Failpoint::AfterAllPrepares => "after_all_prepares",
            Failpoint::AfterDecision => "after_decision",
            Failpoint::AfterSomeCommits => "after_some_commits",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What an armed failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Print the marker and block the commit forever.
    Pause,
    /// SIGKILL the whole process.
    Kill,
}

/// A bad `SHARDPROXY_FAILPOINTS` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ENV}: {0}")]
pub struct FailpointError(String);

/// The armed failpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failpoints {
    armed: [Option<Action>; 4],
}

impl Failpoints {
    /// None armed.
    pub fn none() -> Failpoints {
        Failpoints::default()
    }

    /// From the environment (unset or empty: none).
    pub fn from_env() -> Result<Failpoints, FailpointError> {
        match std::env::var(ENV) {
            Ok(spec) => Failpoints::parse(&spec),
            Err(std::env::VarError::NotPresent) => Ok(Failpoints::none()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(FailpointError("not valid UTF-8".to_owned()))
            }
        }
    }

    /// Parses `name=action[,name=action...]`; an unknown name or action is an error, so a typo
    /// never silently runs a crash test without its failpoint.
    pub fn parse(spec: &str) -> Result<Failpoints, FailpointError> {
        let mut points = Failpoints::none();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, action)) = item.split_once('=') else {
                return Err(FailpointError(format!(
                    "{item:?} is not name=pause or name=kill"
                )));
            };
            let point = Failpoint::ALL
                .into_iter()
                .find(|p| p.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Failpoint::ALL.iter().map(|p| p.name()).collect();
                    FailpointError(format!(
                        "unknown failpoint {name:?} (known: {})",
                        names.join(", ")
                    ))
                })?;
            let action = match action.trim() {
                "pause" => Action::Pause,
                "kill" => Action::Kill,
                other => {
                    return Err(FailpointError(format!(
                        "unknown action {other:?} for {name}: expected pause or kill"
                    )))
                }
            };
            points.armed[point.index()] = Some(action);
        }
        Ok(points)
    }

    /// What `point` does, if armed.
    pub fn action(&self, point: Failpoint) -> Option<Action> {
        self.armed.get(point.index()).copied().flatten()
    }

    /// True when `point` is armed.
    pub fn is_armed(&self, point: Failpoint) -> bool {
        self.action(point).is_some()
    }

    /// True when any failpoint is armed.
    pub fn any(&self) -> bool {
        self.armed.iter().any(Option::is_some)
    }

    /// Runs `point` if armed: `pause` never returns, `kill` ends the process. Not cancel safe in
    /// the sense that matters: a paused commit is meant to stay paused.
    pub async fn hit(&self, point: Failpoint) {
        match self.action(point) {
            None => {}
            Some(Action::Pause) => {
                tracing::warn!(
                    failpoint = point.name(),
                    "failpoint reached: pausing this commit"
                );
                announce(&format!("shardproxy failpoint {} reached", point.name()));
                std::future::pending::<()>().await;
            }
            Some(Action::Kill) => {
                announce(&format!(
                    "shardproxy failpoint {} reached: SIGKILL",
                    point.name()
                ));
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                // SIGKILL cannot be caught; should raise fail anyway, stop this commit here.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// One line on stderr, flushed (tests wait for it).
fn announce(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_actions() {
        let p = Failpoints::parse("after_some_prepares=pause, after_decision = kill").unwrap();
        assert_eq!(p.action(Failpoint::AfterSomePrepares), Some(Action::Pause));
        assert_eq!(p.action(Failpoint::AfterDecision), Some(Action::Kill));
        assert!(!p.is_armed(Failpoint::AfterAllPrepares));
        assert!(!p.is_armed(Failpoint::AfterSomeCommits));
        assert!(p.any());
        assert_eq!(Failpoints::parse("").unwrap(), Failpoints::none());
        assert!(!Failpoints::none().any());
        for name in Failpoint::ALL.map(Failpoint::name) {
            let p = Failpoints::parse(&format!("{name}=pause")).unwrap();
            assert!(p.any(), "{name}");
        }
    }

    #[test]
    fn typos_are_errors() {
        for bad in [
            "after_decison=pause",
            "after_decision",
            "after_decision=stop",
        ] {
            let err = Failpoints::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("SHARDPROXY_FAILPOINTS: "), "{err}");
        }
    }

    #[tokio::test]
    async fn unarmed_points_return_and_paused_ones_block() {
        Failpoints::none().hit(Failpoint::AfterDecision).await;
        let p = Failpoints::parse("after_decision=pause").unwrap();
        p.hit(Failpoint::AfterAllPrepares).await;
        let paused = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            p.hit(Failpoint::AfterDecision),
        )
        .await;
        assert!(paused.is_err());
    }
}
