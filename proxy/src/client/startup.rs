//! Connection start: SSL/GSS negotiation (refused: no TLS configured), CancelRequest dispatch,
//! StartupMessage, client authentication, and the login greeting.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use super::params::{quote_literal, ParamSet};
use super::session::Session;
use crate::auth::AuthStep;
use crate::context::ProxyContext;
use crate::protocol::backend::TransactionStatus;
use crate::protocol::frontend::{self, FrontendMessage, StartupMessage};
use crate::protocol::{encode, MAX_STARTUP_PACKET};

/// Time a client has to finish startup and authentication (PostgreSQL's authentication_timeout).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a connection ended before becoming a session.
#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error("client closed the connection during startup")]
    Closed,
    #[error("I/O error during startup: {0}")]
    Io(#[from] std::io::Error),
    #[error("{message}")]
    Refused { code: &'static str, message: String },
}

/// Runs one client connection to the end. Never panics on client input.
pub async fn handle_connection(
    ctx: Arc<ProxyContext>,
    stream: TcpStream,
    shutdown: watch::Receiver<bool>,
) {
    let id = ctx.next_session_id.fetch_add(1, Ordering::Relaxed);
    let peer = stream.peer_addr().ok();
    let span = tracing::info_span!("session", id, peer = ?peer, user = tracing::field::Empty, db = tracing::field::Empty);
    async move {
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        let mut buf = BytesMut::with_capacity(1024);
        let started =
            tokio::time::timeout(STARTUP_TIMEOUT, startup(&ctx, &mut stream, &mut buf)).await;
        let login = match started {
            Ok(Ok(Some(login))) => login,
            Ok(Ok(None)) => return,
            Ok(Err(StartupError::Refused { code, message })) => {
                tracing::info!(code, %message, "login refused");
                let mut out = BytesMut::new();
                encode::error_response(&mut out, "FATAL", code, &message);
                let _ = stream.write_all(&out).await;
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "connection ended during startup");
                return;
            }
            Err(_) => {
                let mut out = BytesMut::new();
                encode::error_response(
                    &mut out,
                    "FATAL",
                    "08006",
                    "canceling authentication due to timeout",
                );
                let _ = stream.write_all(&out).await;
                return;
            }
        };
        tracing::Span::current().record("user", login.user.as_str());
        tracing::Span::current().record("db", login.database.as_str());
        tracing::debug!("client logged in");
        let session = Session::new(ctx, stream, buf, login.params, shutdown);
        session.run().await;
    }
    .instrument(span)
    .await
}

/// A client that passed startup.
struct Login {
    user: String,
    database: String,
    params: ParamSet,
}

async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), StartupError> {
    if stream.read_buf(buf).await? == 0 {
        return Err(StartupError::Closed);
    }
    Ok(())
}

fn refused(code: &'static str, message: impl Into<String>) -> StartupError {
    StartupError::Refused {
        code,
        message: message.into(),
    }
}

async fn startup(
    ctx: &ProxyContext,
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Option<Login>, StartupError> {
    let params = loop {
        let msg = match frontend::decode_startup(buf) {
            Ok(Some(m)) => m,
            Ok(None) => {
                if buf.len() > MAX_STARTUP_PACKET {
                    return Err(refused("08P01", "invalid startup packet"));
                }
                read_more(stream, buf).await?;
                continue;
            }
            Err(e) => return Err(refused("08P01", format!("invalid startup packet: {e}"))),
        };
        match msg {
            StartupMessage::SslRequest | StartupMessage::GssEncRequest => {
                // No TLS/GSS configured: 'N' tells the client to continue in plain text.
                stream.write_all(b"N").await?;
            }
            StartupMessage::Cancel {
                process_id,
                secret_key,
            } => {
                ctx.cancels.cancel(process_id, secret_key).await;
                return Ok(None);
            }
            StartupMessage::Startup { params, minor } => {
                // Newer clients may ask for protocol 3.x and _pq_ options: tell them we speak
                // 3.0 and know none of the options (only when asked: 3.0 clients reject it).
                let unknown: Vec<&str> = params
                    .iter()
                    .filter(|(k, _)| k.starts_with("_pq_."))
                    .map(|(k, _)| k.as_str())
                    .collect();
                if minor > 0 || !unknown.is_empty() {
                    let mut out = BytesMut::new();
                    encode::negotiate_protocol_version(&mut out, 0, &unknown);
                    stream.write_all(&out).await?;
                }
                break params;
            }
        }
    };
    let login = read_params(params)?;
    authenticate(ctx, stream, buf, &login.user).await?;
    greet(ctx, stream, &login).await?;
    Ok(Some(login))
}

fn read_params(raw: Vec<(String, String)>) -> Result<Login, StartupError> {
    let mut user = None;
    let mut database = None;
    let mut params = ParamSet::default();
    for (name, value) in raw {
        match name.as_str() {
            "user" => user = Some(value),
            "database" => database = Some(value),
            "replication" if value != "false" && value != "off" && value != "0" => {
                return Err(refused(
                    "0A000",
                    "replication connections are not supported by shardproxy",
                ))
            }
            "replication" => {}
            "options" => {
                for (k, v) in parse_options(&value)? {
                    params.set(&k, &quote_literal(&v));
                }
            }
            // Protocol extension options (_pq_.*) are not GUCs.
            n if n.starts_with("_pq_.") => {}
            _ => params.set(&name, &quote_literal(&value)),
        }
    }
    let user = user.filter(|u| !u.is_empty()).ok_or_else(|| {
        refused(
            "28000",
            "no PostgreSQL user name specified in startup packet",
        )
    })?;
    let database = database
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());
    Ok(Login {
        user,
        database,
        params,
    })
}

/// Parses libpq's `options` (`-c name=value` and `--name=value`, backslash escapes spaces).
fn parse_options(options: &str) -> Result<Vec<(String, String)>, StartupError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let setting = if w == "-c" {
            it.next()
        } else if let Some(rest) = w.strip_prefix("-c") {
            Some(rest.to_string())
        } else {
            w.strip_prefix("--").map(str::to_string)
        };
        let Some(setting) = setting else {
            return Err(refused(
                "08P01",
                format!("invalid command-line argument in options: {w}"),
            ));
        };
        let Some((k, v)) = setting.split_once('=') else {
            return Err(refused("42601", format!("--{setting} requires a value")));
        };
        out.push((k.replace('-', "_"), v.to_string()));
    }
    Ok(out)
}

async fn authenticate(
    ctx: &ProxyContext,
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    user: &str,
) -> Result<(), StartupError> {
    let mut exchange = ctx.auth.start(user);
    let mut step = exchange.begin();
    loop {
        match step {
            AuthStep::Send(bytes) => {
                stream.write_all(&bytes).await?;
                let body = loop {
                    match frontend::decode(buf, 64 * 1024) {
                        Ok(Some(FrontendMessage::Password(body))) => break body,
                        Ok(Some(FrontendMessage::Terminate)) => return Err(StartupError::Closed),
                        Ok(Some(_)) => {
                            return Err(refused("08P01", "expected a password response"))
                        }
                        Ok(None) => read_more(stream, buf).await?,
                        Err(e) => return Err(refused("08P01", format!("invalid message: {e}"))),
                    }
                };
                step = exchange.step(&body);
            }
            AuthStep::Done { final_message } => {
                let mut out = BytesMut::with_capacity(final_message.len() + 9);
                out.put_slice(&final_message);
                encode::auth_ok(&mut out);
                stream.write_all(&out).await?;
                return Ok(());
            }
            AuthStep::Fail { code, message } => return Err(refused(code, message)),
        }
    }
}

/// Sends ParameterStatus (the default shard's, with the client's own startup values),
/// BackendKeyData is sent by the session (it owns the cancel key), then ReadyForQuery.
async fn greet(
    ctx: &ProxyContext,
    stream: &mut TcpStream,
    login: &Login,
) -> Result<(), StartupError> {
    let server_params = ctx
        .server_params
        .get_or_try_init(|| async {
            let backend = ctx.pools[0].get().await?;
            Ok::<_, crate::backend::pool::CheckoutError>(backend.server_params.clone())
        })
        .await
        .map_err(|e| refused("08006", format!("could not reach the default shard: {e}")))?;
    let mut out = BytesMut::with_capacity(512);
    for (name, value) in server_params {
        let client_value = login.params.get(name).map(unquote_literal);
        let value = match name.as_str() {
            "session_authorization" => login.user.clone(),
            _ => client_value.unwrap_or_else(|| value.clone()),
        };
        encode::parameter_status(&mut out, name, &value);
    }
    stream.write_all(&out).await?;
    let _ = TransactionStatus::Idle;
    Ok(())
}

/// Inverse of `quote_literal` for values we quoted ourselves.
fn unquote_literal(v: &str) -> String {
    v.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .map(|s| s.replace("''", "'"))
        .unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_like_libpq() {
        let o = parse_options("-c search_path=a,b --statement-timeout=5s -cwork_mem=1MB").unwrap();
        assert_eq!(
            o,
            vec![
                ("search_path".into(), "a,b".into()),
                ("statement_timeout".into(), "5s".into()),
                ("work_mem".into(), "1MB".into())
            ]
        );
        assert_eq!(
            parse_options(r"-c x=a\ b").unwrap(),
            vec![("x".into(), "a b".into())]
        );
        assert!(parse_options("-c").is_err());
        assert!(parse_options("bogus").is_err());
    }

    #[test]
    fn startup_params_become_session_params() {
        let login = read_params(vec![
            ("user".into(), "app".into()),
            ("application_name".into(), "it's".into()),
            ("_pq_.x".into(), "1".into()),
        ])
        .unwrap();
        assert_eq!(login.database, "app");
        assert_eq!(login.params.get("application_name"), Some("'it''s'"));
        assert_eq!(unquote_literal("'it''s'"), "it's");
        assert!(read_params(vec![("database".into(), "x".into())]).is_err());
        assert!(read_params(vec![
            ("user".into(), "u".into()),
            ("replication".into(), "database".into())
        ])
        .is_err());
    }
}
