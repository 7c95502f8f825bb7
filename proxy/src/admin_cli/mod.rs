//! `shardproxy admin ...`: the command-line client of the admin HTTP API (INTERFACE.md §1, §5).
//!
//! - [`http`]: a minimal HTTP/1.1 client (no extra dependency).
//! - `request`: which endpoint and JSON body each subcommand uses.
//! - `render`: tables and the job progress bar.
//! - `error`: operator-facing error sentences.
//!
//! The URL defaults to `http://` + the config's `admin_listen` (else http://127.0.0.1:9187), the
//! token to env SHARDPROXY_ADMIN_TOKEN, else the config's `admin_token`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

mod error;
pub mod http;
mod render;
mod request;

#[cfg(test)]
mod fake_server_tests;

pub use error::{AdminCliError, ApiFailure};
pub use request::ArgError;

use http::Endpoint;
use request::ApiCall;

/// The admin URL when neither `--url` nor a config gives one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9187";
/// The config read for defaults when `-c` / SHARDPROXY_CONFIG are not given (if it exists).
pub const DEFAULT_CONFIG: &str = "config/shardproxy.toml";
/// The environment variable holding the admin token.
pub const TOKEN_ENV: &str = "SHARDPROXY_ADMIN_TOKEN";
/// How often `job ID --wait` polls.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Job states after which nothing changes any more.
const FINAL_STATES: [&str; 3] = ["done", "failed", "cancelled"];

/// `shardproxy admin [--url URL] [--token T] [--json] SUBCOMMAND`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API URL [default: http:// + admin_listen of the config, else http://127.0.0.1:9187].
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Admin token [default: env SHARDPROXY_ADMIN_TOKEN, else admin_token of the config].
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// The config file to take the defaults from (the binary fills it from `-c`).
    #[arg(skip)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Shards: hosts, role, health, pool use.
    Status,
    /// The live shard maps.
    Maps,
    /// Start an online move of part of a map's key space (and its rows) to another shard.
    Move(MoveArgs),
    /// Move hash buckets so that a map is even over all shards.
    Rebalance {
        /// The map's name.
        map: String,
    },
    /// Move jobs and their progress.
    Jobs,
    /// One job; with --wait, a progress bar until it is done (exit 1 if it failed).
    Job {
        /// The job id.
        id: String,
        /// Follow the job until done, failed or cancelled.
        #[arg(long)]
        wait: bool,
    },
    /// In-doubt two-phase transactions the proxy could not finish yet.
    Transactions,
    /// Commit or roll back one in-doubt transaction.
    Resolve {
        /// The global transaction id.
        gid: String,
        /// The decision.
        action: ResolveAction,
    },
}

/// `move MAP (--buckets B | --range FROM..TO | --values A,B) --to SHARD`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("keys").required(true).args(["buckets", "range", "values"])))]
pub struct MoveArgs {
    /// The map's name.
    pub map: String,
    /// Hash buckets, e.g. 0-63.
    #[arg(long)]
    pub buckets: Option<String>,
    /// A key range FROM..TO (FROM inclusive, TO exclusive; leave one out for an open end).
    #[arg(long, allow_hyphen_values = true)]
    pub range: Option<String>,
    /// List values, comma-separated.
    #[arg(long, allow_hyphen_values = true)]
    pub values: Option<String>,
    /// The destination shard.
    #[arg(long)]
    pub to: String,
}

/// The operator's decision for an in-doubt transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolveAction {
    /// COMMIT PREPARED on every shard.
    Commit,
    /// ROLLBACK PREPARED on every shard.
    Rollback,
}

/// Parses admin arguments as they follow `shardproxy admin` (for tests and embedding).
pub fn parse_args<I, T>(args: I) -> Result<AdminArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    /// A stand-alone parser around [`AdminArgs`].
    #[derive(Parser)]
    #[command(name = "shardproxy admin")]
    struct Standalone {
        #[command(flatten)]
        admin: AdminArgs,
    }
    let args =
        std::iter::once(std::ffi::OsString::from("admin")).chain(args.into_iter().map(Into::into));
    Standalone::try_parse_from(args).map(|s| s.admin)
}

/// Runs one admin command: results to `out`, `error: ...` lines to `err`. Returns the exit code
/// (0 success, 1 failure).
pub async fn run(args: AdminArgs, out: &mut impl Write, err: &mut impl Write) -> i32 {
    match execute(&args, out).await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}

/// Where to send requests, and with which token.
struct Client {
    endpoint: Endpoint,
    token: Option<String>,
}

/// A 2xx answer: the body as sent and parsed.
struct Reply {
    text: String,
    json: Value,
}

impl Client {
    /// Resolves URL and token from the arguments, environment and config.
    fn new(args: &AdminArgs) -> Result<Client, AdminCliError> {
        let env_token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        let needs_config = args.url.is_none() || (args.token.is_none() && env_token.is_none());
        let config = if needs_config {
            load_config(args.config.as_deref())?
        } else {
            None
        };
        let url = match (&args.url, &config) {
            (Some(url), _) => url.clone(),
            (None, Some(config)) => url_of(config.proxy.admin_listen),
            (None, None) => DEFAULT_URL.to_owned(),
        };
        let token = args
            .token
            .clone()
            .or(env_token)
            .or_else(|| config.and_then(|c| c.proxy.admin_token))
            .filter(|t| !t.is_empty());
        Ok(Client {
            endpoint: Endpoint::parse(&url)?,
            token,
        })
    }

    /// Makes `call`; a non-2xx status becomes [`AdminCliError::Api`].
    async fn call(&self, call: &ApiCall) -> Result<Reply, AdminCliError> {
        let body = call.body.as_ref().map(|b| b.to_string().into_bytes());
        let response = http::request(
            &self.endpoint,
            call.method,
            &call.path,
            self.token.as_deref(),
            body.as_deref(),
        )
        .await?;
        let text = String::from_utf8_lossy(&response.body).into_owned();
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if !(200..300).contains(&response.status) {
            let server_error = json
                .as_ref()
                .and_then(|j| j.get("error"))
                .and_then(Value::as_str);
            return Err(ApiFailure {
                url: self.endpoint.url(),
                status: response.status,
                reason: response.reason,
                message: server_error.map_or_else(|| snippet(&text), str::to_owned),
                json_error: server_error.is_some(),
                token_sent: self.token.is_some(),
            }
            .into());
        }
        let json = json.ok_or_else(|| AdminCliError::NotJson {
            url: self.endpoint.url(),
            path: call.path.clone(),
            snippet: snippet(&text),
        })?;
        Ok(Reply { text, json })
    }
}

/// The config for defaults: the named file (must load), else the default file when it exists.
fn load_config(explicit: Option<&Path>) -> Result<Option<config::Config>, AdminCliError> {
    let path = match explicit {
        Some(path) => path,
        None if Path::new(DEFAULT_CONFIG).exists() => Path::new(DEFAULT_CONFIG),
        None => return Ok(None),
    };
    config::Config::load(path)
        .map(Some)
        .map_err(|e| AdminCliError::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// `http://` + an admin_listen address; a wildcard address is reached over loopback.
fn url_of(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// The start of a body, for messages (one line, bounded).
fn snippet(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    let one_line = text.trim().replace(['\r', '\n'], " ");
    if one_line.is_empty() {
        return "(empty body)".to_owned();
    }
    match one_line.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// Runs the command; `Ok(exit code)` once the output is written.
async fn execute(args: &AdminArgs, out: &mut impl Write) -> Result<i32, AdminCliError> {
    let call = request::call_for(&args.command)?;
    let client = Client::new(args)?;
    if let AdminCommand::Job { id, wait: true } = &args.command {
        return wait_for_job(&client, &call, id, args.json, out).await;
    }
    let reply = client.call(&call).await?;
    if args.json {
        writeln!(out, "{}", reply.text.trim_end())?;
        return Ok(0);
    }
    let view = match &args.command {
        AdminCommand::Status => render::status(&reply.json),
        AdminCommand::Maps => render::maps(&reply.json),
        AdminCommand::Jobs => render::jobs(&reply.json),
        AdminCommand::Job { .. } => render::job_detail(&reply.json),
        AdminCommand::Transactions => render::transactions(&reply.json),
        AdminCommand::Move(m) => started(&reply.json, &format!("move on map {}", m.map)),
        AdminCommand::Rebalance { map } => started(&reply.json, &format!("rebalance of {map}")),
        // The proxy answers once it ran the action everywhere: show what it did.
        AdminCommand::Resolve { gid, action } => Some(match reply.json.get("status") {
            Some(Value::String(status)) => format!("transaction {gid}: {status}\n"),
            _ => format!("transaction {gid}: {} requested\n", action.as_str()),
        }),
    };
    match view {
        Some(text) => write!(out, "{text}")?,
        // A shape this CLI does not know: show the server's answer rather than nothing.
        None => writeln!(out, "{}", pretty(&reply.json))?,
    }
    Ok(0)
}

/// `started job 7 (move on map users)` plus how to follow it, from a 202 `{"job": ID}`.
fn started(reply: &Value, what: &str) -> Option<String> {
    let job = render::text(reply.get("job")?);
    Some(format!(
        "started job {job} ({what})\nfollow it with: shardproxy admin job {job} --wait\n"
    ))
}

/// Polls a job every [`POLL_INTERVAL`], redrawing one progress line, until a final state.
/// Exit code 1 when it failed.
async fn wait_for_job(
    client: &Client,
    call: &ApiCall,
    id: &str,
    json: bool,
    out: &mut impl Write,
) -> Result<i32, AdminCliError> {
    let mut drawn = 0usize;
    let job = loop {
        let reply = match client.call(call).await {
            Ok(reply) => reply,
            Err(e) => {
                if drawn > 0 {
                    writeln!(out)?;
                }
                return Err(e);
            }
        };
        let state = reply
            .json
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !json {
            let line = render::progress_bar(&reply.json);
            // Pad over the previous, possibly longer, line.
            let pad = drawn.saturating_sub(line.chars().count());
            write!(out, "\r{line}{}", " ".repeat(pad))?;
            out.flush()?;
            drawn = line.chars().count();
        }
        if FINAL_STATES.contains(&state.as_str()) {
            break reply;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    if json {
        writeln!(out, "{}", job.text.trim_end())?;
    } else {
        writeln!(out)?;
    }
    let state = job.json.get("state").and_then(Value::as_str);
    if state == Some("failed") {
        let reason = job
            .json
            .get("error")
            .map_or_else(String::new, |e| format!(": {}", render::text(e)));
        if !json {
            writeln!(out, "job {id} failed{reason}")?;
        }
        return Ok(1);
    }
    if !json {
        writeln!(out, "job {id} {}", state.unwrap_or("ended"))?;
    }
    Ok(0)
}

/// Pretty JSON (never fails for a `Value`; falls back to compact).
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn admin_listen_urls() {
        assert_eq!(
            url_of("0.0.0.0:9187".parse().unwrap()),
            "http://127.0.0.1:9187"
        );
        assert_eq!(url_of("[::]:9187".parse().unwrap()), "http://[::1]:9187");
        assert_eq!(url_of("10.1.2.3:80".parse().unwrap()), "http://10.1.2.3:80");
    }

    #[test]
    fn argument_parsing() {
        let a = parse_args([
            "--url",
            "http://h:1",
            "move",
            "users",
            "--range",
            "-5..",
            "--to",
            "s2",
        ])
        .unwrap();
        assert_eq!(a.url.as_deref(), Some("http://h:1"));
        match a.command {
            AdminCommand::Move(m) => assert_eq!(m.range.as_deref(), Some("-5..")),
            other => panic!("{other:?}"),
        }
        let a = parse_args(["status", "--json", "--token", "t"]).unwrap();
        assert!(a.json && a.token.as_deref() == Some("t"));
        assert!(parse_args(["move", "users", "--to", "s2"]).is_err());
        assert!(parse_args(["move", "u", "--buckets", "1", "--values", "a", "--to", "s"]).is_err());
        assert!(parse_args(["resolve", "g1", "maybe"]).is_err());
        let a = parse_args(["job", "7", "--wait"]).unwrap();
        assert!(matches!(a.command, AdminCommand::Job { wait: true, .. }));
    }

    #[test]
    fn snippets() {
        assert_eq!(snippet("  a\nb "), "a b");
        assert_eq!(snippet(""), "(empty body)");
        assert_eq!(snippet(&"é".repeat(300)).chars().count(), 203);
    }
}
