//! The initdb'd data directory every local server is copied from.

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::binaries::run;
use super::{LauncherError, PgBinaries, Watchdog};

/// The per-server settings file, written by `LocalPostgres::start` next to postgresql.conf.
pub(crate) const SERVER_CONF: &str = "shardproxy.conf";

/// An initdb'd data directory to copy from (initdb is slow: do it once, copy per server).
#[derive(Debug)]
pub struct Template {
    // Field order is drop order: the directory goes first, then its watchdog is disarmed.
    dir: TempDir,
    data: PathBuf,
    major_version: u32,
    _watchdog: Watchdog,
}

impl Template {
    /// Runs initdb (superuser `postgres`, UTF8, C locale) and writes our pg_hba.conf.
    pub fn create(bins: &PgBinaries) -> Result<Template, LauncherError> {
        let dir = tempfile::Builder::new()
            .prefix("shardproxy-template-")
            .tempdir()
            .map_err(|e| LauncherError::io("create a temporary directory", e))?;
        let watchdog = Watchdog::remove_on_exit(dir.path())?;
        bins.hand_over(dir.path())?;
        let data = dir.path().join("data");
        run(
            bins.command(bins.server_binary("initdb"), dir.path())
                .arg("-D")
                .arg(&data)
                // C collation: byte order, the same on every server, so merged ORDER BY matches.
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
                // The copies are what run; syncing the template buys nothing.
                .arg("--no-sync"),
            "initdb",
        )?;
        let version_file = data.join("PG_VERSION");
        let version = std::fs::read_to_string(&version_file)
            .map_err(|e| LauncherError::io(format!("read {}", version_file.display()), e))?;
        let major_version = version
            .trim()
            .split('.')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        write_file(&data.join("pg_hba.conf"), &hba_conf(major_version), false)?;
        write_file(
            &data.join("postgresql.conf"),
            &format!("\n# Per-server settings written by shardproxy.\ninclude_if_exists = '{SERVER_CONF}'\n"),
            true,
        )?;
        Ok(Template {
            dir,
            data,
            major_version,
            _watchdog: watchdog,
        })
    }

    /// The template's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// PostgreSQL major version of the template (from PG_VERSION).
    pub fn major_version(&self) -> u32 {
        self.major_version
    }

    /// The temporary directory holding the template.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Writes (or appends to) a file that keeps its owner and mode.
fn write_file(path: &Path, text: &str, append: bool) -> Result<(), LauncherError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|e| LauncherError::io(format!("open {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| LauncherError::io(format!("write {}", path.display()), e))
}

/// Client authentication: the superuser `postgres` is trusted from 127.0.0.1 (setup and
/// shards in tests), other roles need their password so tests exercise backend auth.
fn hba_conf(major_version: u32) -> String {
    let mut hba = String::from(
        "# Written by shardproxy's launcher. First match wins.\n\
         local all all trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         # Cleartext password auth for a role with exactly this name.\n\
         host all pwuser 127.0.0.1/32 password\n",
    );
    if major_version >= 16 {
        hba.push_str(
            "# Roles named md5... use md5 (create them after SET password_encryption = 'md5').\n\
             host all /^md5 127.0.0.1/32 md5\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        );
    } else {
        // Before 16 the user column has no regular expressions. The md5 method asks for md5
        // when the role's stored password is md5 and runs SCRAM when it is SCRAM, which gives
        // md5 roles md5 and every other role SCRAM.
        hba.push_str(
            "# md5 for roles whose stored password is md5 (SET password_encryption = 'md5'),\n\
             # SCRAM for roles whose stored password is SCRAM.\n\
             host all all 127.0.0.1/32 md5\n",
        );
    }
    hba
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn hba_orders_trust_before_password_lines() {
        for version in [15, 16] {
            let hba = hba_conf(version);
            let lines: Vec<&str> = hba.lines().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(lines[0], "local all all trust");
            assert_eq!(lines[1], "host all postgres 127.0.0.1/32 trust");
            assert!(lines
                .last()
                .unwrap()
                .starts_with("host all all 127.0.0.1/32"));
        }
        assert!(hba_conf(16).contains("host all /^md5 127.0.0.1/32 md5\n"));
        assert!(!hba_conf(15).contains("/^md5"));
    }
}
