//! The proxy as a real OS process, for tests that SIGKILL it and start it again.
//!
//! Tests pass `env!("CARGO_BIN_EXE_sp-under-test")`: the `shardproxy` command line built inside
//! this crate (cargo only builds a package's own binaries for its tests). The config is written
//! to a temp dir with two free ports in place of `127.0.0.1:0`, so a restart listens where the
//! clients reconnect. stderr is captured line by line (failpoint markers, errors); the process
//! is SIGKILLed on drop, and by a watchdog when the test process itself dies.
#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy::launcher::Watchdog;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a start may take until both ports accept connections.
const START_LIMIT: Duration = Duration::from_secs(30);

/// How often waits poll.
const POLL: Duration = Duration::from_millis(20);

/// Lines of stderr quoted in a failure message.
const TAIL_LINES: usize = 40;

/// A `shardproxy run -c FILE` process under test.
pub struct ProxyProcess {
    bin: PathBuf,
    dir: TempDir,
    config_path: PathBuf,
    /// The PostgreSQL-protocol address (the same after every restart).
    pub addr: SocketAddr,
    /// The admin HTTP address (the same after every restart).
    pub admin_addr: SocketAddr,
    child: Option<Child>,
    watchdog: Option<Watchdog>,
    stderr: Arc<Mutex<Vec<String>>>,
    run_start: usize,
    runs: usize,
}

impl ProxyProcess {
    /// Writes `toml` (with `listen`/`admin_listen` set to free ports) and starts the proxy with
    /// the extra environment `env`, e.g. `[("SHARDPROXY_FAILPOINTS", "after_decision=pause")]`.
    pub async fn start(bin: &str, toml: &str, env: &[(&str, &str)]) -> ProxyProcess {
        let dir = tempfile::Builder::new()
            .prefix("sp-under-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create the proxy's temp dir: {e}"));
        let config_path = dir.path().join("shardproxy.toml");
        let mut proc = ProxyProcess {
            bin: PathBuf::from(bin),
            dir,
            config_path,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            watchdog: None,
            stderr: Arc::new(Mutex::new(Vec::new())),
            run_start: 0,
            runs: 0,
        };
        // The ports are free when picked, but another test may take one before the proxy binds.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (port, admin_port) = free_port_pair();
            proc.addr.set_port(port);
            proc.admin_addr.set_port(admin_port);
            std::fs::write(&proc.config_path, with_ports(toml, port, admin_port)).unwrap();
            match proc.try_run(env).await {
                Ok(()) => return proc,
                Err(failure) if attempts < 3 && failure.contains("could not listen") => continue,
                Err(failure) => panic!("{failure}"),
            }
        }
    }

    /// Starts the stopped proxy again with the same config file (so the same ports, state_dir
    /// and proxy_id) and the environment `env` (failpoints are not inherited).
    pub async fn restart(&mut self, env: &[(&str, &str)]) {
        assert!(
            self.child.is_none(),
            "restart: the proxy still runs; kill() it first"
        );
        if let Err(failure) = self.try_run(env).await {
            panic!("{failure}");
        }
    }

    /// SIGKILL (no shutdown code runs), then reaps the process. Nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The watchdog's only job was this kill.
        self.watchdog = None;
    }

    /// Waits (bounded) for the process to exit on its own, e.g. a `kill` failpoint.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            let child = self
                .child
                .as_mut()
                .unwrap_or_else(|| panic!("wait_exit: the proxy is not running"));
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                self.watchdog = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the proxy did not exit within {limit:?}\n{}",
                self.stderr_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Waits (bounded) until the current run wrote a stderr line containing `needle`.
    pub async fn wait_for_stderr(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.current_lines().iter().any(|l| l.contains(needle)) {
                return;
            }
            let exited = !self.is_running();
            // The reader thread may still hold the last lines of an exited process.
            if exited || Instant::now() >= deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if self.current_lines().iter().any(|l| l.contains(needle)) {
                    return;
                }
                let why = if exited {
                    "the proxy exited"
                } else {
                    "timed out"
                };
                panic!(
                    "waiting for `{needle}` on the proxy's stderr: {why} after {limit:?}\n{}",
                    self.stderr_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `SHARDPROXY_FAILPOINTS` failpoint `name` was reached.
    pub async fn wait_for_failpoint(&mut self, name: &str, limit: Duration) {
        self.wait_for_stderr(&format!("shardproxy failpoint {name} reached"), limit)
            .await;
    }

    /// Every stderr line of every run so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The last stderr lines, headed, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        let from = lines.len().saturating_sub(TAIL_LINES);
        format!(
            "--- proxy stderr (last {} lines) ---\n{}",
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// The config file the process runs with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// `GET path` on the admin API with the test token: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http(self.admin_addr, "GET", path, "").await
    }

    /// `POST path` with a JSON body on the admin API with the test token: (status, body).
    pub async fn admin_post(&self, path: &str, json: &str) -> (u16, String) {
        http(self.admin_addr, "POST", path, json).await
    }

    fn current_lines(&self) -> Vec<String> {
        let lines = self.stderr.lock().unwrap();
        lines[self.run_start.min(lines.len())..].to_vec()
    }

    /// Spawns the process and waits until both ports accept; Err(message with stderr) if it
    /// exits first or takes too long.
    async fn try_run(&mut self, env: &[(&str, &str)]) -> Result<(), String> {
        self.runs += 1;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("-c")
            .arg(&self.config_path)
            .args(["--log-level", "info"])
            .env_remove("SHARDPROXY_FAILPOINTS")
            .env_remove("SHARDPROXY_CONFIG")
            .env_remove("SHARDPROXY_ADMIN_TOKEN")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let kill_argv = ["kill", "-9", &child.id().to_string()].map(std::ffi::OsString::from);
        // Removes the config dir too, but only when this test process dies without cleaning up.
        self.watchdog = Some(Watchdog::spawn(&kill_argv, self.dir.path()).unwrap());
        {
            let mut lines = self.stderr.lock().unwrap();
            lines.push(format!("=== run {} (pid {}) ===", self.runs, child.id()));
            self.run_start = lines.len();
        }
        let stderr = child.stderr.take().unwrap();
        let sink = self.stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let up = tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && tokio::net::TcpStream::connect(self.admin_addr)
                    .await
                    .is_ok();
            if up {
                return Ok(());
            }
            if !self.is_running() || Instant::now() >= deadline {
                self.kill();
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Err(format!(
                    "the proxy did not start listening on {} and {} within {START_LIMIT:?}\n{}",
                    self.addr,
                    self.admin_addr,
                    self.stderr_tail()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.stderr_tail());
        }
    }
}

/// Two distinct free ports on 127.0.0.1 (bound together, so they differ).
fn free_port_pair() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// `toml` with its `listen` and `admin_listen` lines on these ports.
fn with_ports(toml: &str, port: u16, admin_port: u16) -> String {
    let mut found = (false, false);
    let mut out = String::new();
    for line in toml.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match key {
            "listen" if !found.0 => {
                found.0 = true;
                out.push_str(&format!("listen = \"127.0.0.1:{port}\""));
            }
            "admin_listen" if !found.1 => {
                found.1 = true;
                out.push_str(&format!("admin_listen = \"127.0.0.1:{admin_port}\""));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    assert!(
        found == (true, true),
        "the config needs `listen` and `admin_listen` lines:\n{toml}"
    );
    out
}

/// `[proxy]` keys added to `toml` only where the config crate knows them (probed by parsing),
/// for settings another change introduces, e.g. `("recovery_interval_ms", "200")`.
pub fn with_proxy_keys_if_known(toml: &str, keys: &[(&str, &str)]) -> String {
    let mut out = toml.to_owned();
    for (key, value) in keys {
        let candidate = out.replacen("[proxy]\n", &format!("[proxy]\n{key} = {value}\n"), 1);
        if config::Config::parse(&candidate, "probe.toml").is_ok() {
            out = candidate;
        }
    }
    out
}

/// One HTTP/1.1 request with the test admin token; (status, body). Bounded by 10 s.
async fn http(addr: SocketAddr, method: &str, path: &str, json: &str) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        crate::ADMIN_TOKEN,
        json.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 10 s"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP answer: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line: {head:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// A chunked HTTP body, joined.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size in {body:?}"));
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The string values of every `"key": "..."` in a JSON text (no escapes inside; enough for
/// gids, shard names and decisions).
pub fn json_strings(json: &str, key: &str) -> Vec<String> {
    let quoted = format!("\"{key}\"");
    let mut out = Vec::new();
    let mut rest = json;
    while let Some(at) = rest.find(&quoted) {
        rest = &rest[at + quoted.len()..];
        let after = rest.trim_start();
        let Some(after) = after.strip_prefix(':') else {
            continue;
        };
        let Some(value) = after.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some(end) = value.find('"') {
            out.push(value[..end].to_owned());
        }
    }
    out
}

/// The sum of every sample of metric `name` (all label sets) in Prometheus text, if any.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_replace_the_listen_lines() {
        let toml = "[proxy]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nx = 1\n";
        let out = with_ports(toml, 5, 6);
        assert_eq!(
            out,
            "[proxy]\nlisten = \"127.0.0.1:5\"\nadmin_listen = \"127.0.0.1:6\"\nx = 1\n"
        );
    }

    #[test]
    fn json_strings_and_metrics() {
        let json = r#"{"transactions": [{"gid":"sp_a_1_2","shards": ["s0"]}, {"gid" : "g2"}]}"#;
        assert_eq!(json_strings(json, "gid"), ["sp_a_1_2", "g2"]);
        let text = "# HELP x\nm_total 2\nm_total_other 9\nm{a=\"b\"} 3\nm 1.5\n";
        assert_eq!(metric_sum(text, "m"), Some(4.5));
        assert_eq!(metric_sum(text, "m_total"), Some(2.0));
        assert_eq!(metric_sum(text, "none"), None);
        assert_eq!(dechunk("4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"), "abcdef");
    }
}
