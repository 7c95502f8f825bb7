//! Cleanup that survives SIGKILL: a child shell that acts when our end of its stdin closes.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::LauncherError;

/// Waits for EOF on stdin, runs the optional command, then removes the directory.
const SCRIPT: &str = r#"read _; if [ "$#" -gt 0 ]; then "$@" >/dev/null 2>&1; fi; rm -rf -- "$0""#;

/// A child `sh` that, when this process dies without dropping the guard, runs a command
/// (e.g. `pg_ctl stop -m immediate`) and removes a directory.
///
/// Only this process holds the write end of the child's stdin (std opens pipes close-on-exec,
/// so no other child inherits it): the kernel closes it when we exit for any reason, SIGKILL
/// included. Dropping the guard kills the child instead: the owner cleans up itself.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Arms a watchdog that runs `argv` (if not empty) and then removes `dir` when we die.
    pub fn spawn(argv: &[OsString], dir: &Path) -> Result<Watchdog, LauncherError> {
        let child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg(dir)
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so a terminal Ctrl-C does not kill it before we clean up.
            .process_group(0)
            .spawn()
            .map_err(|e| LauncherError::io("spawn the cleanup watchdog (sh)", e))?;
        Ok(Watchdog { child })
    }

    /// Arms a watchdog that only removes `dir` when we die.
    pub fn remove_on_exit(dir: &Path) -> Result<Watchdog, LauncherError> {
        Watchdog::spawn(&[], dir)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Our own child, by pid: it is blocked in `read`, so nothing half-done is interrupted.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_until_gone(path: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !path.exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn fires_when_the_pipe_closes() {
        let dir = tempfile::tempdir().unwrap().keep();
        let marker = dir.with_extension("ran");
        let argv: Vec<OsString> = vec!["touch".into(), marker.clone().into()];
        let mut dog = Watchdog::spawn(&argv, &dir).unwrap();
        // Simulates our death: closing the write end is what the kernel does on exit.
        drop(dog.child.stdin.take());
        assert!(wait_until_gone(&dir), "dir not removed");
        assert!(marker.exists(), "command did not run");
        std::fs::remove_file(marker).unwrap();
    }

    #[test]
    fn dropping_disarms() {
        let dir = tempfile::tempdir().unwrap();
        let dog = Watchdog::remove_on_exit(dir.path()).unwrap();
        drop(dog);
        std::thread::sleep(Duration::from_millis(100));
        assert!(dir.path().exists());
    }
}
