//! Backend URLs: `postgres://user:password@host:port/dbname?sslmode=disable`.
//!
//! `Display` and `Debug` never show the password, so a `ShardUrl` is safe to log.

use std::fmt;
use std::str::FromStr;

/// Where a shard (or replica) lives and how the proxy logs in to it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ShardUrl {
    /// Host name, IP address (IPv6 without brackets) or Unix socket directory.
    pub host: String,
    /// TCP port (default 5432).
    pub port: u16,
    /// User the proxy logs in as (required).
    pub user: String,
    /// Password, if the URL has one.
    pub password: Option<String>,
    /// Database name (default: the user name).
    pub dbname: String,
}

/// What is shown instead of a password.
const HIDDEN: &str = "***";

impl ShardUrl {
    /// Parses `postgres://` or `postgresql://` URLs; the message says what is wrong.
    pub fn parse(s: &str) -> Result<ShardUrl, String> {
        let rest = strip_scheme(s.trim()).ok_or_else(|| {
            "a shard URL must start with postgres:// or postgresql:// \
             (like postgres://user:password@host:5432/dbname)"
                .to_owned()
        })?;
        if rest.contains('#') {
            return Err("a shard URL cannot contain '#'; percent-encode it as %23".to_owned());
        }
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        if let Some(q) = query {
            check_query(q)?;
        }
        let (authority, path) = match main.split_once('/') {
            Some((a, p)) => (a, p),
            None => (main, ""),
        };
        let (userinfo, hostport) = authority.rsplit_once('@').ok_or_else(|| {
            "a shard URL must name the user, like postgres://user@host/dbname".to_owned()
        })?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        let user = decode(user, "user")?;
        if user.is_empty() {
            return Err("the user name in a shard URL is empty".to_owned());
        }
        let password = password.map(|p| decode(p, "password")).transpose()?;
        let (host, port) = split_host_port(hostport)?;
        if path.contains('/') {
            return Err("the database name in a shard URL cannot contain '/'".to_owned());
        }
        let dbname = decode(path, "database name")?;
        let dbname = if dbname.is_empty() {
            user.clone()
        } else {
            dbname
        };
        Ok(ShardUrl {
            host,
            port,
            user,
            password,
            dbname,
        })
    }

    /// `host:port` (IPv6 hosts in brackets), for logs and metrics labels.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", encode(&self.host), self.port)
        }
    }
}

impl FromStr for ShardUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<ShardUrl, String> {
        ShardUrl::parse(s)
    }
}

impl fmt::Display for ShardUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://{}", encode(&self.user))?;
        if self.password.is_some() {
            write!(f, ":{HIDDEN}")?;
        }
        write!(f, "@{}/{}", self.address(), encode(&self.dbname))
    }
}

impl fmt::Debug for ShardUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| HIDDEN))
            .field("dbname", &self.dbname)
            .finish()
    }
}

/// The text after `postgres://` or `postgresql://` (scheme matched case-insensitively).
fn strip_scheme(s: &str) -> Option<&str> {
    ["postgresql://", "postgres://"].iter().find_map(|scheme| {
        let head = s.get(..scheme.len())?;
        if head.eq_ignore_ascii_case(scheme) {
            s.get(scheme.len()..)
        } else {
            None
        }
    })
}

/// Accepts any query parameters but refuses TLS modes the proxy cannot honour yet.
fn check_query(query: &str) -> Result<(), String> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key, "query parameter")? != "sslmode" {
            continue;
        }
        match decode(value, "sslmode")?.as_str() {
            "disable" | "allow" | "prefer" => {}
            mode @ ("require" | "verify-ca" | "verify-full") => {
                return Err(format!(
                    "sslmode={mode} is not supported: shardproxy does not use TLS to backends yet; \
                     use sslmode=disable (or leave sslmode out)"
                ))
            }
            other => {
                return Err(format!(
                    "unknown sslmode {other:?}: expected disable, allow, prefer, require, \
                     verify-ca or verify-full"
                ))
            }
        }
    }
    Ok(())
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 5432.
fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    if hostport.contains(',') {
        return Err(
            "a shard URL names one host; list read replicas under `replicas` instead".to_owned(),
        );
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "an IPv6 host in a shard URL is missing its ']'".to_owned())?;
        match after {
            "" => (host.to_owned(), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host.to_owned(), Some(port)),
                None => return Err(format!("unexpected {after:?} after the IPv6 host")),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (decode(h, "host")?, Some(p)),
            None => (decode(hostport, "host")?, None),
        }
    };
    if host.is_empty() {
        return Err("a shard URL must name the host, like postgres://user@host:5432/db".to_owned());
    }
    let port = match port {
        None | Some("") => 5432,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("invalid port {p:?} in shard URL")),
            Ok(n) => n,
        },
    };
    Ok((host, port))
}

/// Percent-decodes one URL component into UTF-8.
fn decode(s: &str, what: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in the {what} of a shard URL"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the {what} of a shard URL is not valid UTF-8"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ShardUrl {
        ShardUrl::parse(s).unwrap()
    }

    #[test]
    fn full_url() {
        let u = url("postgres://app:secret@10.0.0.5:5433/appdb");
        assert_eq!(u.host, "10.0.0.5");
        assert_eq!(u.port, 5433);
        assert_eq!(u.user, "app");
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.dbname, "appdb");
    }

    #[test]
    fn defaults_and_postgresql_scheme() {
        let u = url("postgresql://bob@db.example.com");
        assert_eq!((u.host.as_str(), u.port), ("db.example.com", 5432));
        assert_eq!(u.dbname, "bob");
        assert_eq!(u.password, None);
        assert_eq!(url("POSTGRES://bob@h:/").dbname, "bob");
        assert_eq!(url("postgres://bob@h:/").port, 5432);
    }

    #[test]
    fn percent_decoding() {
        let u = url("postgres://us%40er:p%3Aa%2Fss%25@h/my%20db");
        assert_eq!(u.user, "us@er");
        assert_eq!(u.password.as_deref(), Some("p:a/ss%"));
        assert_eq!(u.dbname, "my db");
        // An unencoded ':' or '@' in the password still works: the last '@' ends userinfo.
        let u = url("postgres://u:a:b@c@h/d");
        assert_eq!(u.password.as_deref(), Some("a:b@c"));
        assert_eq!(url("postgres://u@%2Ftmp%2Fpg/d").host, "/tmp/pg");
        assert_eq!(
            url("postgres://u:%C3%A9@h/d").password.as_deref(),
            Some("é")
        );
    }

    #[test]
    fn ipv6_hosts() {
        let u = url("postgres://u@[::1]:6000/d");
        assert_eq!((u.host.as_str(), u.port), ("::1", 6000));
        assert_eq!(url("postgres://u@[fe80::1]/d").port, 5432);
        assert_eq!(u.to_string(), "postgres://u@[::1]:6000/d");
    }

    #[test]
    fn query_string_is_accepted_but_tls_is_refused() {
        assert_eq!(url("postgres://u@h/d?sslmode=disable").dbname, "d");
        assert_eq!(
            url("postgres://u@h/d?application_name=x&sslmode=prefer").dbname,
            "d"
        );
        let err = ShardUrl::parse("postgres://u@h/d?sslmode=require").unwrap_err();
        assert!(err.contains("sslmode=require is not supported"), "{err}");
        let err = ShardUrl::parse("postgres://u@h/d?sslmode=verify-full").unwrap_err();
        assert!(err.contains("does not use TLS"), "{err}");
        assert!(ShardUrl::parse("postgres://u@h/d?sslmode=bogus").is_err());
    }

    #[test]
    fn errors() {
        for bad in [
            "mysql://u@h/d",
            "postgres://h:5432/d",
            "postgres://:pw@h/d",
            "postgres://u@/d",
            "postgres://u@h:0/d",
            "postgres://u@h:99999/d",
            "postgres://u@h:x/d",
            "postgres://u@h1,h2/d",
            "postgres://u@[::1/d",
            "postgres://u@h/d/e",
            "postgres://u:%zz@h/d",
            "postgres://u:%ff@h/d",
            "postgres://u@h/d#frag",
            "postgres://u:pw%",
            "",
        ] {
            assert!(ShardUrl::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let u = url("postgres://app:s3cr%2Ft@10.0.0.5:5432/appdb");
        let shown = u.to_string();
        assert_eq!(shown, "postgres://app:***@10.0.0.5:5432/appdb");
        let debug = format!("{u:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(debug.contains("\"***\""), "{debug}");
        let no_pw = url("postgres://app@h/db");
        assert_eq!(no_pw.to_string(), "postgres://app@h:5432/db");
        assert!(format!("{no_pw:?}").contains("password: None"));
    }

    #[test]
    fn display_round_trips_without_password() {
        let u = url("postgres://us%40er@h:7/my%20db");
        assert_eq!(u.to_string(), "postgres://us%40er@h:7/my%20db");
        assert_eq!(url(&u.to_string()), u);
        assert_eq!("postgres://a@b/c".parse::<ShardUrl>().unwrap().dbname, "c");
    }
}
