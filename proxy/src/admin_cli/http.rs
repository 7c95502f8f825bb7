//! A minimal HTTP/1.1 client for the admin API: one request per connection (`Connection: close`),
//! the whole response read to EOF with bounded size and time, then parsed (status line, headers,
//! `Content-Length` or chunked body).
//!
//! Written here rather than pulled in as a dependency: the admin API is JSON over plain HTTP on a
//! trusted address, and a few hundred lines cover it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long to wait for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request (send + read the response) may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest response accepted, headers and body together.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// The largest response head (status line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Why a request got no usable HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The `--url` (or config address) is not an `http://host:port[/path]` URL.
    #[error("invalid admin URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header value (the token) contains characters that cannot go into a header.
    #[error("the admin token contains control characters")]
    InvalidToken,
    /// Nothing accepted the connection.
    #[error(
        "could not connect to the admin API at {url}: {source} \
         (is the proxy running with admin_listen at that address? use --url or -c to point elsewhere)"
    )]
    Connect {
        /// The base URL tried.
        url: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Connecting or the response took too long.
    #[error("the admin API at {url} did not answer within {seconds} s")]
    Timeout {
        /// The base URL tried.
        url: String,
        /// The limit that was hit.
        seconds: u64,
    },
    /// The connection broke while sending or reading.
    #[error("talking to the admin API at {url}: {source}")]
    Io {
        /// The base URL.
        url: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The response is larger than [`MAX_RESPONSE_BYTES`].
    #[error("the admin API's response is larger than {0} bytes")]
    TooLarge(usize),
    /// The bytes are not an HTTP/1.x response.
    #[error("the admin API sent an invalid HTTP response: {0}")]
    Malformed(String),
}

/// Where the admin API is: host, port and an optional base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP literal, without IPv6 brackets (for connecting).
    host: String,
    /// TCP port.
    port: u16,
    /// `host:port` as written (for the `Host` header).
    authority: String,
    /// Path prefix without a trailing slash ("" for none).
    base_path: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/base]`; the scheme may be left out, the port defaults to 80.
    pub fn parse(url: &str) -> Result<Endpoint, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = url.trim();
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err(invalid("only http:// URLs are supported")),
            None => trimmed,
        };
        if rest.contains(['?', '#']) {
            return Err(invalid("a query or fragment is not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(invalid(
                "credentials in the URL are not supported (use --token)",
            ));
        }
        let parse_port = |p: &str| p.parse::<u16>().map_err(|_| invalid("invalid port"));
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, tail) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed '[' in the host"))?;
            let port = match tail {
                "" => 80,
                tail => parse_port(tail.strip_prefix(':').ok_or_else(|| invalid("bad host"))?)?,
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, parse_port(port)?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("the path contains spaces or control characters"));
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL, for messages.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.base_path)
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Reason phrase, e.g. "OK" (may be empty).
    pub reason: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// Sends one request and reads the whole response. `path` starts with '/'; `body` is sent as
/// `application/json`; `token` as `Authorization: Bearer`.
pub async fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    let head = request_head(endpoint, method, path, token, body.map(<[u8]>::len))?;
    let url = endpoint.url();
    let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(HttpError::Connect { url, source }),
        Err(_) => {
            return Err(HttpError::Timeout {
                url,
                seconds: CONNECT_TIMEOUT.as_secs(),
            })
        }
    };
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        if let Some(body) = body {
            stream.write_all(body).await?;
        }
        stream.flush().await?;
        let mut raw = Vec::new();
        // One byte over the limit tells "exactly at the limit" from "too large".
        let limit = u64::try_from(MAX_RESPONSE_BYTES).unwrap_or(u64::MAX);
        (&mut stream)
            .take(limit.saturating_add(1))
            .read_to_end(&mut raw)
            .await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(RESPONSE_TIMEOUT, exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(source)) => return Err(HttpError::Io { url, source }),
        Err(_) => {
            return Err(HttpError::Timeout {
                url,
                seconds: RESPONSE_TIMEOUT.as_secs(),
            })
        }
    };
    if raw.len() > MAX_RESPONSE_BYTES {
        return Err(HttpError::TooLarge(MAX_RESPONSE_BYTES));
    }
    parse_response(&raw)
}

/// The request line and headers, ending with the blank line.
fn request_head(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    body_len: Option<usize>,
) -> Result<String, HttpError> {
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shardproxy-admin/{}\r\n\
         Accept: application/json\r\nConnection: close\r\n",
        endpoint.base_path,
        endpoint.authority,
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(token) = token {
        // A CR or LF would end the header early and let the token inject others.
        if token.chars().any(char::is_control) {
            return Err(HttpError::InvalidToken);
        }
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    match body_len {
        Some(len) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {len}\r\n"
        )),
        // Servers may refuse a POST without a length (411).
        None if method != "GET" => head.push_str("Content-Length: 0\r\n"),
        None => {}
    }
    head.push_str("\r\n");
    Ok(head)
}

/// Parses a complete response (everything up to EOF).
pub fn parse_response(raw: &[u8]) -> Result<Response, HttpError> {
    let malformed = |m: &str| HttpError::Malformed(m.to_owned());
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| {
        if raw.is_empty() {
            malformed("the connection closed without a response")
        } else {
            malformed("the response ended inside its headers")
        }
    })?;
    if head_end > MAX_HEAD_BYTES {
        return Err(malformed("the response headers are too large"));
    }
    let head = raw
        .get(..head_end)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| malformed("the response headers are not UTF-8"))?;
    let rest = raw.get(head_end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!(
            "not an HTTP/1.x status line: {status_line:?}"
        )));
    }
    let status = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Malformed(format!("bad status line: {status_line:?}")))?;
    let reason = parts.next().unwrap_or_default().trim().to_owned();
    let mut chunked = false;
    let mut content_length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("bad header line: {line:?}")))?;
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            chunked |= value
                .split(',')
                .any(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        } else if name.trim().eq_ignore_ascii_case("content-length") {
            let len = value
                .parse::<usize>()
                .map_err(|_| HttpError::Malformed(format!("bad Content-Length: {value:?}")))?;
            content_length = Some(len);
        }
    }
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = content_length {
        rest.get(..len)
            .ok_or_else(|| malformed("the body is shorter than its Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        reason,
        body,
    })
}

/// Decodes a chunked body (chunk extensions and trailers are ignored).
fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, HttpError> {
    let malformed = |m: &str| HttpError::Malformed(m.to_owned());
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| malformed("truncated chunk size"))?;
        let line = data
            .get(..line_end)
            .and_then(|l| std::str::from_utf8(l).ok())
            .ok_or_else(|| malformed("chunk size is not text"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Malformed(format!("bad chunk size {size_text:?}")))?;
        data = data.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        if size > MAX_RESPONSE_BYTES.saturating_sub(out.len()) {
            return Err(HttpError::TooLarge(MAX_RESPONSE_BYTES));
        }
        let chunk = data
            .get(..size)
            .ok_or_else(|| malformed("truncated chunk"))?;
        out.extend_from_slice(chunk);
        data = data
            .get(size..)
            .and_then(|d| d.strip_prefix(b"\r\n"))
            .ok_or_else(|| malformed("chunk not followed by CRLF"))?;
    }
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://127.0.0.1:9187").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("127.0.0.1", 9187, "")
        );
        assert_eq!(e.url(), "http://127.0.0.1:9187");
        let e = Endpoint::parse("HTTP://admin.local/base/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.base_path.as_str()),
            ("admin.local", 80, "/base")
        );
        let e = Endpoint::parse("[::1]:9187").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9187));
        assert_eq!(e.url(), "http://[::1]:9187");
        for bad in [
            "https://x:1",
            "http://:80",
            "http://x:99999",
            "http://u:p@x:1",
            "http://[::1",
            "http://x:1/?a=b",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_heads() {
        let e = Endpoint::parse("http://h:1/p").unwrap();
        let head = request_head(&e, "POST", "/api/v1/x", Some("tok"), Some(12)).unwrap();
        assert!(head.starts_with("POST /p/api/v1/x HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(head.contains("Authorization: Bearer tok\r\n"));
        assert!(head.contains("Content-Type: application/json\r\nContent-Length: 12\r\n"));
        assert!(head.contains("Connection: close\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
        let head = request_head(&e, "POST", "/r", None, None).unwrap();
        assert!(head.contains("Content-Length: 0\r\n") && !head.contains("Authorization"));
        let head = request_head(&e, "GET", "/r", None, None).unwrap();
        assert!(!head.contains("Content-Length"));
        assert!(matches!(
            request_head(&e, "GET", "/r", Some("a\r\nX: y"), None),
            Err(HttpError::InvalidToken)
        ));
    }

    #[test]
    fn content_length_body() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_slice()),
            (200, "OK", &b"{}"[..])
        );
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\nabc").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abc"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").is_err());
    }

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nTrailer: x\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.body, b"{\"a\":1}");
        let truncated = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc";
        assert!(parse_response(truncated).is_err());
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n";
        assert!(matches!(parse_response(huge), Err(HttpError::TooLarge(_))));
    }

    #[test]
    fn malformed_responses() {
        for raw in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                parse_response(raw).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
