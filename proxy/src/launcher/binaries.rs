//! Finding the PostgreSQL binaries and running them as the right OS user.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::{Gid, Uid, User};

use super::LauncherError;

/// The binaries a server needs; client tools are looked up separately.
const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Where Debian/Ubuntu install versioned PostgreSQL binaries.
const DEBIAN_LIB_ROOT: &str = "/usr/lib/postgresql";

/// The OS user PostgreSQL runs as when this process is root.
const POSTGRES_USER: &str = "postgres";

/// The directory holding `initdb`, `pg_ctl` and `postgres`, and the user to run them as.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
}

/// The `postgres` OS user, used when this process is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

impl PgBinaries {
    /// PATH first, else the highest /usr/lib/postgresql/*/bin; an error naming what to install.
    pub fn find() -> Result<PgBinaries, LauncherError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dir =
            find_server_dir(&path, Path::new(DEBIAN_LIB_ROOT)).ok_or(LauncherError::NotFound)?;
        PgBinaries::in_dir(dir)
    }

    /// Uses the server binaries in `dir`.
    pub fn in_dir(dir: PathBuf) -> Result<PgBinaries, LauncherError> {
        if !has_server_binaries(&dir) {
            return Err(LauncherError::NotFound);
        }
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name(POSTGRES_USER)
                .ok()
                .flatten()
                .ok_or(LauncherError::NoPostgresUser)?;
            Some(RunAs {
                uid: user.uid,
                gid: user.gid,
            })
        } else {
            None
        };
        Ok(PgBinaries {
            bin_dir: dir,
            run_as,
        })
    }

    /// The directory the server binaries are in.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// True when servers run as the `postgres` OS user because this process is root.
    pub fn runs_as_postgres(&self) -> bool {
        self.run_as.is_some()
    }

    /// A client tool (`psql`, `pgbench`...): the server's bin dir first, then [`find_tool`].
    pub fn tool(&self, name: &str) -> Option<PathBuf> {
        let here = self.bin_dir.join(name);
        if is_executable(&here) {
            return Some(here);
        }
        find_tool(name)
    }

    /// The argv prefix that runs `program` as the server's OS user.
    pub(crate) fn argv(&self, program: impl Into<OsString>) -> Vec<OsString> {
        let program = program.into();
        match self.run_as {
            Some(_) => vec![
                "runuser".into(),
                "-u".into(),
                POSTGRES_USER.into(),
                "--".into(),
                program,
            ],
            None => vec![program],
        }
    }

    /// The path of server binary `name`.
    pub(crate) fn server_binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// A `Command` running `program` as the server's OS user from `cwd`.
    pub(crate) fn command(&self, program: impl Into<OsString>, cwd: &Path) -> Command {
        let mut cmd = match self.run_as {
            Some(_) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", POSTGRES_USER, "--"]).arg(program.into());
                cmd
            }
            None => Command::new(program.into()),
        };
        cmd.current_dir(cwd);
        // A caller's PGDATA/PGPORT must not redirect our servers.
        for var in [
            "PGDATA",
            "PGPORT",
            "PGHOST",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Gives a directory we created to the server's OS user and checks that user can reach it.
    pub(crate) fn hand_over(&self, dir: &Path) -> Result<(), LauncherError> {
        let Some(run_as) = self.run_as else {
            return Ok(());
        };
        nix::unistd::chown(dir, Some(run_as.uid), Some(run_as.gid)).map_err(|e| {
            LauncherError::io(format!("chown {} to postgres", dir.display()), e.into())
        })?;
        let dir = dir
            .canonicalize()
            .map_err(|e| LauncherError::io(format!("resolve {}", dir.display()), e))?;
        for ancestor in dir.ancestors().skip(1) {
            let meta = std::fs::metadata(ancestor)
                .map_err(|e| LauncherError::io(format!("stat {}", ancestor.display()), e))?;
            let mode = meta.mode();
            let enterable = meta.uid() == run_as.uid.as_raw()
                || mode & 0o001 != 0
                || (meta.gid() == run_as.gid.as_raw() && mode & 0o010 != 0);
            if !enterable {
                return Err(LauncherError::Unreachable(ancestor.to_path_buf()));
            }
        }
        Ok(())
    }
}

/// A PostgreSQL client tool: PATH first, else the highest /usr/lib/postgresql/*/bin.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .or_else(|| {
            versioned_bin_dirs(Path::new(DEBIAN_LIB_ROOT))
                .into_iter()
                .rev()
                .map(|(_, dir)| dir.join(name))
                .find(|p| is_executable(p))
        })
}

/// Runs `cmd` to completion; its stdout, or an error with its output.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<String, LauncherError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LauncherError::io(format!("run {what}"), e))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(LauncherError::Command {
        what: what.to_string(),
        status: out.status.to_string(),
        output: tail(&format!("{}\n{}", stderr.trim(), stdout.trim()), 40),
    })
}

/// The last `n` non-empty lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The first PATH entry with server binaries (resolved through symlinks, so a
/// `/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb` link finds the real bin dir),
/// else the highest-versioned `lib_root/*/bin`.
fn find_server_dir(path: &OsStr, lib_root: &Path) -> Option<PathBuf> {
    for dir in std::env::split_paths(path) {
        let initdb = dir.join("initdb");
        if !is_executable(&initdb) {
            continue;
        }
        let real = initdb
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(real) = real.filter(|d| has_server_binaries(d)) {
            return Some(real);
        }
        if has_server_binaries(&dir) {
            return Some(dir);
        }
    }
    versioned_bin_dirs(lib_root)
        .into_iter()
        .rev()
        .map(|(_, dir)| dir)
        .find(|dir| has_server_binaries(dir))
}

/// `lib_root/<version>/bin` directories, sorted by version (lowest first).
fn versioned_bin_dirs(lib_root: &Path) -> Vec<(Vec<u32>, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(lib_root) else {
        return Vec::new();
    };
    let mut dirs: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let version: Option<Vec<u32>> = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect();
            Some((version?, entry.path().join("bin")))
        })
        .collect();
    dirs.sort();
    dirs
}

/// True when `dir` holds all of [`SERVER_BINARIES`].
fn has_server_binaries(dir: &Path) -> bool {
    SERVER_BINARIES.iter().all(|b| is_executable(&dir.join(b)))
}

/// True for an existing file with an execute bit.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn fake_bin(dir: &Path, names: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for name in names {
            let p = dir.join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn not_found_is_one_sentence() {
        let msg = LauncherError::NotFound.to_string();
        assert!(msg.starts_with("PostgreSQL server binaries (initdb, pg_ctl, postgres)"));
        assert_eq!(msg.matches(". ").count(), 0);
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn highest_version_wins_when_path_has_none() {
        let root = tempfile::tempdir().unwrap();
        fake_bin(&root.path().join("9.6/bin"), &SERVER_BINARIES);
        fake_bin(&root.path().join("15/bin"), &SERVER_BINARIES);
        fake_bin(&root.path().join("16/bin"), &["initdb"]); // incomplete: skipped
        fake_bin(&root.path().join("10/bin"), &SERVER_BINARIES);
        let empty = tempfile::tempdir().unwrap();
        let found = find_server_dir(empty.path().as_os_str(), root.path());
        assert_eq!(found, Some(root.path().join("15/bin")));
    }

    #[test]
    fn path_wins_over_lib_root() {
        let root = tempfile::tempdir().unwrap();
        fake_bin(&root.path().join("15/bin"), &SERVER_BINARIES);
        let on_path = tempfile::tempdir().unwrap();
        fake_bin(on_path.path(), &SERVER_BINARIES);
        let path = std::env::join_paths([Path::new("/nonexistent"), on_path.path()]).unwrap();
        assert_eq!(
            find_server_dir(&path, root.path()),
            Some(on_path.path().to_path_buf())
        );
    }

    #[test]
    fn path_symlink_resolves_to_real_bin_dir() {
        let real = tempfile::tempdir().unwrap();
        fake_bin(real.path(), &SERVER_BINARIES);
        let links = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(real.path().join("initdb"), links.path().join("initdb"))
            .unwrap();
        let found = find_server_dir(links.path().as_os_str(), Path::new("/nonexistent"));
        assert_eq!(found, Some(real.path().canonicalize().unwrap()));
    }

    #[test]
    fn nothing_found() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            find_server_dir(empty.path().as_os_str(), empty.path()),
            None
        );
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn failing_command_reports_output() {
        let err = run(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "sh",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("boom") && msg.contains("sh failed"), "{msg}");
    }
}
