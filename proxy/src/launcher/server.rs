//! One running PostgreSQL on 127.0.0.1, owned by this process.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::binaries::{run, tail};
use super::template::SERVER_CONF;
use super::{LauncherError, PgBinaries, ServerOptions, Template, Watchdog};

/// How often a start is retried when the chosen port was taken in the meantime.
const START_ATTEMPTS: usize = 5;

/// Lines of the server log quoted in a start error.
const LOG_TAIL_LINES: usize = 30;

/// The server log, inside the data directory.
const LOG_FILE: &str = "postgres.log";

/// A running PostgreSQL on 127.0.0.1:<ephemeral port>; stopped (immediate) and its dir removed on drop.
#[derive(Debug)]
pub struct LocalPostgres {
    bins: PgBinaries,
    root: Option<TempDir>,
    data: PathBuf,
    port: u16,
    running: bool,
    watchdog: Option<Watchdog>,
}

impl LocalPostgres {
    /// Copies the template to a fresh dir under `parent` (or a temp dir when None) and starts it.
    pub fn start(
        bins: &PgBinaries,
        template: &Template,
        parent: Option<&Path>,
        opts: &ServerOptions,
    ) -> Result<LocalPostgres, LauncherError> {
        let root = match parent {
            Some(parent) => {
                std::fs::create_dir_all(parent)
                    .map_err(|e| LauncherError::io(format!("create {}", parent.display()), e))?;
                tempfile::Builder::new().prefix("pg-").tempdir_in(parent)
            }
            None => tempfile::Builder::new().prefix("shardproxy-pg-").tempdir(),
        }
        .map_err(|e| LauncherError::io("create a server directory", e))?;
        let data = root.path().join("data");
        // Armed before anything runs, so a kill at any later point still cleans up.
        let watchdog = Watchdog::spawn(&stop_argv(bins, &data), root.path())?;
        bins.hand_over(root.path())?;
        run(
            bins.command("cp", root.path())
                .arg("-a")
                .arg(template.data_dir())
                .arg(&data),
            "copy the template data directory",
        )?;
        let mut server = LocalPostgres {
            bins: bins.clone(),
            root: Some(root),
            data,
            port: 0,
            running: false,
            watchdog: Some(watchdog),
        };
        for attempt in 1..=START_ATTEMPTS {
            server.port = free_port()?;
            let conf = server_conf(&server.data, server.port, opts)?;
            std::fs::write(server.data.join(SERVER_CONF), conf)
                .map_err(|e| LauncherError::io(format!("write {SERVER_CONF}"), e))?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(LauncherError::StartFailed { log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("already in use") =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        Err(LauncherError::StartFailed {
            data_dir: server.data.clone(),
            port: server.port,
            log_tail: "no free port found".into(),
        })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL as superuser `postgres` (trust from 127.0.0.1) to database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (for tests that take a shard down); `restart` brings it back on the SAME port.
    pub fn stop(&mut self) -> Result<(), LauncherError> {
        if !self.running {
            return Ok(());
        }
        self.pg_ctl_stop()?;
        self.running = false;
        Ok(())
    }

    /// Starts a stopped server again on the same port and data.
    pub fn restart(&mut self) -> Result<(), LauncherError> {
        if self.running {
            return Ok(());
        }
        self.pg_ctl_start()
    }

    /// True while the server runs (between start/restart and stop).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Runs SQL as superuser via psql (for setup: CREATE DATABASE, CREATE ROLE ...).
    ///
    /// The text is fed as a script, so each statement runs on its own (CREATE DATABASE cannot
    /// share a transaction); psql stops at the first error. Returns unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, LauncherError> {
        let psql = self
            .bins
            .tool("psql")
            .ok_or_else(|| LauncherError::ToolNotFound("psql".into()))?;
        let mut child = Command::new(&psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", db, "-f", "-"])
            .env_remove("PGOPTIONS")
            .env_remove("PGSERVICE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LauncherError::io(format!("run {}", psql.display()), e))?;
        // Written from a thread: a big script and a big result would otherwise deadlock.
        let writer = child.stdin.take().map(|mut stdin| {
            let sql = sql.to_owned();
            std::thread::spawn(move || stdin.write_all(sql.as_bytes()))
        });
        let out = child
            .wait_with_output()
            .map_err(|e| LauncherError::io("wait for psql", e))?;
        if let Some(writer) = writer {
            // A write error means psql exited early; its status and stderr say why.
            let _ = writer.join();
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(LauncherError::Command {
                what: format!("psql on port {}", self.port),
                status: out.status.to_string(),
                output: tail(&String::from_utf8_lossy(&out.stderr), 20),
            });
        }
        Ok(stdout)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// `pg_ctl start`, waiting until it accepts connections; on failure the log's tail.
    fn pg_ctl_start(&mut self) -> Result<(), LauncherError> {
        let log = self.data.join(LOG_FILE);
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let cwd = self.cwd();
        let started = run(
            self.bins
                .command(self.bins.server_binary("pg_ctl"), &cwd)
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
        match started {
            Ok(_) => {
                self.running = true;
                Ok(())
            }
            Err(err) => {
                // A failed `-w` start can leave a postmaster behind (e.g. after a timeout).
                let _ = self.pg_ctl_stop();
                let log_tail = read_tail(&log, log_start)
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| err.to_string());
                Err(LauncherError::StartFailed {
                    data_dir: self.data.clone(),
                    port: self.port,
                    log_tail,
                })
            }
        }
    }

    /// `pg_ctl stop -m immediate`, waiting until the server is gone.
    fn pg_ctl_stop(&self) -> Result<(), LauncherError> {
        let argv = stop_argv(&self.bins, &self.data);
        let Some((program, args)) = argv.split_first() else {
            return Ok(());
        };
        run(
            Command::new(program).args(args).current_dir(self.cwd()),
            "pg_ctl stop",
        )
        .map(|_| ())
    }

    /// Where server commands run: a directory the server's OS user can enter.
    fn cwd(&self) -> PathBuf {
        self.data
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.data.clone())
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if self.running || self.data.join("postmaster.pid").exists() {
            let _ = self.pg_ctl_stop();
        }
        // Disarmed only after the server is down: a kill before this point still cleans up.
        self.watchdog.take();
        if let Some(root) = self.root.take() {
            let _ = root.close();
        }
    }
}

/// argv of an immediate stop of the server in `data`, as the server's OS user.
fn stop_argv(bins: &PgBinaries, data: &Path) -> Vec<OsString> {
    let mut argv = bins.argv(bins.server_binary("pg_ctl"));
    argv.push("-D".into());
    argv.push(data.into());
    argv.extend(["-m", "immediate", "-w", "stop"].map(OsString::from));
    argv
}

/// A port the kernel just handed out on 127.0.0.1 (released again: PostgreSQL binds it).
fn free_port() -> Result<u16, LauncherError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| LauncherError::io("bind an ephemeral port on 127.0.0.1", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| LauncherError::io("read the ephemeral port", e))
}

/// The last lines of the log written after byte `from`.
fn read_tail(log: &Path, from: u64) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(tail(&String::from_utf8_lossy(&bytes), LOG_TAIL_LINES))
}

/// postgresql.conf settings for one server (included from the template's postgresql.conf).
fn server_conf(data: &Path, port: u16, opts: &ServerOptions) -> Result<String, LauncherError> {
    let durable = if opts.fsync { "on" } else { "off" };
    let mut settings: Vec<(String, String)> = vec![
        ("listen_addresses".into(), "127.0.0.1".into()),
        ("port".into(), port.to_string()),
        // Not /var/run/postgresql: it may not exist, and servers must not share sockets.
        ("unix_socket_directories".into(), data.display().to_string()),
        ("max_connections".into(), opts.max_connections.to_string()),
        (
            "max_prepared_transactions".into(),
            opts.max_prepared_transactions.to_string(),
        ),
        ("shared_buffers".into(), "32MB".into()),
        ("fsync".into(), durable.into()),
        ("full_page_writes".into(), durable.into()),
        // Always on: with it off a commit can sit in shared memory, and the immediate stop that
        // tests use to crash a shard would lose it. With fsync off it only costs a write().
        ("synchronous_commit".into(), "on".into()),
        ("password_encryption".into(), "scram-sha-256".into()),
        ("log_line_prefix".into(), "%m [%p] %q%u@%d ".into()),
    ];
    settings.extend(opts.extra.iter().cloned());
    let mut conf = String::from("# Written by shardproxy's launcher for this server.\n");
    for (name, value) in settings {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid {
            return Err(LauncherError::BadSetting(name));
        }
        // Every setting accepts a quoted value; quoting keeps paths and units intact.
        conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    Ok(conf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn conf_has_the_required_settings() {
        let conf = server_conf(Path::new("/tmp/x'y"), 5555, &ServerOptions::default()).unwrap();
        for line in [
            "listen_addresses = '127.0.0.1'",
            "port = '5555'",
            "unix_socket_directories = '/tmp/x''y'",
            "max_prepared_transactions = '100'",
            "max_connections = '200'",
            "fsync = 'off'",
            "synchronous_commit = 'on'",
            "full_page_writes = 'off'",
            "shared_buffers = '32MB'",
        ] {
            assert!(conf.lines().any(|l| l == line), "missing {line} in\n{conf}");
        }
    }

    #[test]
    fn fsync_on_and_extra_settings() {
        let opts = ServerOptions {
            fsync: true,
            extra: vec![("work_mem".into(), "8MB".into())],
            ..ServerOptions::default()
        };
        let conf = server_conf(Path::new("/d"), 1, &opts).unwrap();
        assert!(conf.contains("fsync = 'on'\n"));
        assert!(conf.ends_with("work_mem = '8MB'\n"));
        let bad = ServerOptions {
            extra: vec![("x = 1\nport".into(), "2".into())],
            ..ServerOptions::default()
        };
        assert!(matches!(
            server_conf(Path::new("/d"), 1, &bad),
            Err(LauncherError::BadSetting(_))
        ));
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
