//! One raw-protocol connection of ours to a PostgreSQL server: connect, authenticate, and the
//! per-connection state the session needs (applied session parameters, prepared statements).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use config::ShardUrl;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::backend::{self as be, AuthRequest, ErrorFields, TransactionStatus};
use crate::protocol::encode;

/// Largest message we accept from a backend (PostgreSQL's own limit is 1 GiB).
pub const MAX_BACKEND_MESSAGE: usize = 1 << 30;

/// Why a backend connection could not be established or used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// TCP connect or I/O failure.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// host:port
        addr: String,
        /// cause
        source: std::io::Error,
    },
    /// Connection attempt took too long.
    #[error("timed out connecting to {0}")]
    ConnectTimeout(String),
    /// The server sent an error during startup or authentication.
    #[error("server {addr} refused the connection: {} ({})", .fields.message(), .fields.code())]
    Server {
        /// host:port
        addr: String,
        /// the server's error
        fields: ErrorFields,
    },
    /// The server asked for something we cannot do or sent invalid data.
    #[error("protocol error from {addr}: {detail}")]
    Protocol {
        /// host:port
        addr: String,
        /// what went wrong
        detail: String,
    },
    /// I/O error after connecting.
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        /// host:port
        addr: String,
        /// cause
        source: std::io::Error,
    },
}

/// Identity of the server-side process, used to forward cancel requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelKey {
    /// Server address.
    pub addr: SocketAddr,
    /// Backend process id.
    pub process_id: i32,
    /// Secret key.
    pub secret_key: i32,
}

/// A live backend connection. Owned by one client session at a time while checked out.
pub struct BackendConn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read from the server not yet processed.
    pub read_buf: BytesMut,
    /// Bytes for the server not yet written.
    pub write_buf: BytesMut,
    /// Where to send cancel requests for this connection.
    pub cancel_key: CancelKey,
    /// ParameterStatus values the server sent at startup.
    pub server_params: Vec<(String, String)>,
    /// Session parameters applied on this connection by SET (sorted by name) and their hash.
    pub applied_params: crate::client::params::ParamSet,
    /// Ids of the proxy-named prepared statements that exist on this connection.
    pub prepared: HashSet<u64>,
    /// Statement id of the unnamed prepared statement, when it is one we know.
    pub unnamed: Option<u64>,
    /// Last transaction status reported by ReadyForQuery.
    pub status: TransactionStatus,
    /// Set when the connection must not be reused (I/O error, protocol confusion, FATAL).
    pub broken: bool,
    /// Shard index this connection belongs to.
    pub shard: usize,
}

impl BackendConn {
    /// Connects and authenticates to `url`, returning once the server is ready for queries.
    pub async fn connect(
        url: &ShardUrl,
        shard: usize,
        timeout: Duration,
    ) -> Result<BackendConn, BackendError> {
        let addr_text = format!("{}:{}", url.host, url.port);
        match tokio::time::timeout(timeout, Self::connect_inner(url, shard, &addr_text)).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::ConnectTimeout(addr_text)),
        }
    }

    async fn connect_inner(
        url: &ShardUrl,
        shard: usize,
        addr_text: &str,
    ) -> Result<BackendConn, BackendError> {
        let connect_err = |source| BackendError::Connect {
            addr: addr_text.to_string(),
            source,
        };
        let stream = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        let peer = stream.peer_addr().map_err(connect_err)?;
        let mut conn = BackendConn {
            stream,
            read_buf: BytesMut::with_capacity(16 * 1024),
            write_buf: BytesMut::with_capacity(4 * 1024),
            cancel_key: CancelKey {
                addr: peer,
                process_id: 0,
                secret_key: 0,
            },
            server_params: Vec::new(),
            applied_params: Default::default(),
            prepared: HashSet::new(),
            unnamed: None,
            status: TransactionStatus::Idle,
            broken: false,
            shard,
        };
        let mut out = BytesMut::new();
        encode::startup_message(
            &mut out,
            &[
                ("user", url.user.as_str()),
                ("database", url.dbname.as_str()),
                ("application_name", "shardproxy"),
                ("client_encoding", "UTF8"),
            ],
        );
        conn.write_all(&out).await?;
        conn.authenticate(url).await?;
        conn.finish_startup().await?;
        Ok(conn)
    }

    fn protocol_error(&self, detail: impl Into<String>) -> BackendError {
        BackendError::Protocol {
            addr: self.cancel_key.addr.to_string(),
            detail: detail.into(),
        }
    }

    fn io_error(&self, source: std::io::Error) -> BackendError {
        BackendError::Io {
            addr: self.cancel_key.addr.to_string(),
            source,
        }
    }

    /// Writes all bytes (used during startup; sessions write through their own path).
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| BackendError::Io {
                addr: self.cancel_key.addr.to_string(),
                source: e,
            })
    }

    /// Reads one whole message: (tag, body). Not cancel safe as a whole, used during startup only.
    async fn read_message(&mut self) -> Result<(u8, Bytes), BackendError> {
        loop {
            match be::frame_len(&self.read_buf, MAX_BACKEND_MESSAGE) {
                Ok(Some((tag, len))) => {
                    let frame = self.read_buf.split_to(len).freeze();
                    return Ok((tag, frame.slice(5..)));
                }
                Ok(None) => {}
                Err(e) => return Err(self.protocol_error(e.to_string())),
            }
            let n = self
                .stream
                .read_buf(&mut self.read_buf)
                .await
                .map_err(|e| self.io_error(e))?;
            if n == 0 {
                return Err(self.io_error(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    fn server_error(&self, body: &[u8]) -> BackendError {
        match be::parse_error_fields(body) {
            Ok(fields) => BackendError::Server {
                addr: self.cancel_key.addr.to_string(),
                fields,
            },
            Err(e) => self.protocol_error(e.to_string()),
        }
    }

    async fn authenticate(&mut self, url: &ShardUrl) -> Result<(), BackendError> {
        let password = url.password.as_deref().unwrap_or("");
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'R' => {}
                b'E' => return Err(self.server_error(&body)),
                b'N' => continue,
                other => {
                    return Err(self.protocol_error(format!(
                        "unexpected message {:?} during authentication",
                        other as char
                    )))
                }
            }
            let request =
                be::parse_auth_request(&body).map_err(|e| self.protocol_error(e.to_string()))?;
            let mut out = BytesMut::new();
            match request {
                AuthRequest::Ok => return Ok(()),
                AuthRequest::CleartextPassword => {
                    let mut data = password.as_bytes().to_vec();
                    data.push(0);
                    encode::password_message(&mut out, &data);
                }
                AuthRequest::Md5Password { salt } => {
                    let hash = postgres_protocol::authentication::md5_hash(
                        url.user.as_bytes(),
                        password.as_bytes(),
                        salt,
                    );
                    let mut data = hash.into_bytes();
                    data.push(0);
                    encode::password_message(&mut out, &data);
                }
                AuthRequest::Sasl { mechanisms } => {
                    if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                        return Err(self.protocol_error(format!(
                            "server offers no supported SASL mechanism ({})",
                            mechanisms.join(", ")
                        )));
                    }
                    let s = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                    encode::sasl_initial_response(&mut out, "SCRAM-SHA-256", s.message());
                    scram = Some(s);
                }
                AuthRequest::SaslContinue(data) => {
                    let Some(s) = scram.as_mut() else {
                        return Err(self.protocol_error("SASL continue without SASL start"));
                    };
                    s.update(&data)
                        .map_err(|e| self.protocol_error(format!("SCRAM: {e}")))?;
                    encode::sasl_response(&mut out, s.message());
                }
                AuthRequest::SaslFinal(data) => {
                    let Some(s) = scram.as_mut() else {
                        return Err(self.protocol_error("SASL final without SASL start"));
                    };
                    s.finish(&data)
                        .map_err(|e| self.protocol_error(format!("SCRAM: {e}")))?;
                    continue;
                }
                AuthRequest::Other(code) => {
                    return Err(
                        self.protocol_error(format!("unsupported authentication request {code}"))
                    )
                }
            }
            self.write_all(&out).await?;
        }
    }

    async fn finish_startup(&mut self) -> Result<(), BackendError> {
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'S' => {
                    let (k, v) = be::parse_parameter_status(&body)
                        .map_err(|e| self.protocol_error(e.to_string()))?;
                    self.server_params.push((k, v));
                }
                b'K' => {
                    let (pid, key) = be::parse_backend_key_data(&body)
                        .map_err(|e| self.protocol_error(e.to_string()))?;
                    self.cancel_key.process_id = pid;
                    self.cancel_key.secret_key = key;
                }
                b'Z' => {
                    self.status = be::parse_ready_for_query(&body)
                        .map_err(|e| self.protocol_error(e.to_string()))?;
                    return Ok(());
                }
                b'E' => return Err(self.server_error(&body)),
                b'N' => {}
                other => {
                    return Err(self.protocol_error(format!(
                        "unexpected message {:?} during startup",
                        other as char
                    )))
                }
            }
        }
    }

    /// True when the server has closed the socket or sent something while idle (e.g. a FATAL
    /// after pg_terminate_backend). One non-blocking read; never waits.
    pub fn is_closed_while_idle(&mut self) -> bool {
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Ok(_) => true, // EOF or unsolicited bytes: either way unusable
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        }
    }
}
