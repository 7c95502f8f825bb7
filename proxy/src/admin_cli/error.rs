//! What can go wrong in `shardproxy admin`, worded for the operator who typed the command.

use std::path::PathBuf;

use super::http::HttpError;
use super::request::ArgError;

/// An admin command that did not succeed; printed as `error: <this>` with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum AdminCliError {
    /// The config file named by `-c` / SHARDPROXY_CONFIG (or the default one) is unusable.
    #[error("could not read the config {path} (for the admin URL and token): {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Every config error, with file:line:col.
        message: String,
    },
    /// A subcommand argument is invalid.
    #[error(transparent)]
    Arg(#[from] ArgError),
    /// No usable HTTP exchange (connect, timeout, malformed answer).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server answered with an error status.
    #[error("{0}")]
    Api(#[from] ApiFailure),
    /// A 2xx answer that is not JSON.
    #[error("the admin API at {url} answered {path} with something that is not JSON: {snippet}")]
    NotJson {
        /// The base URL.
        url: String,
        /// The request path.
        path: String,
        /// The start of the body.
        snippet: String,
    },
    /// Writing to stdout failed (e.g. a closed pipe).
    #[error("could not write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// A non-2xx answer of the admin API.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.sentence())]
pub struct ApiFailure {
    /// The base URL asked.
    pub url: String,
    /// HTTP status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// The server's `{"error": "..."}` text, or the start of a non-JSON body.
    pub message: String,
    /// Whether the server's message came as `{"error": ..}`.
    pub json_error: bool,
    /// Whether a token was sent.
    pub token_sent: bool,
}

/// Start of the admin server's answer for a path it has no route for.
const NO_ROUTE_PREFIX: &str = "no such endpoint";

impl ApiFailure {
    /// The operator-facing sentence.
    fn sentence(&self) -> String {
        let status = if self.reason.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {}", self.status, self.reason)
        };
        match self.status {
            401 if self.token_sent => format!(
                "the admin API at {} rejected the admin token ({status}): pass the proxy's \
                 admin_token with --token or SHARDPROXY_ADMIN_TOKEN",
                self.url
            ),
            401 => format!(
                "the admin API at {} needs a token ({status}) and none was given: pass the \
                 proxy's admin_token with --token, SHARDPROXY_ADMIN_TOKEN or -c CONFIG",
                self.url
            ),
            // No route (or no JSON at all): the running proxy predates this endpoint.
            404 if !self.json_error || self.message.starts_with(NO_ROUTE_PREFIX) => format!(
                "{status}: {} (this proxy does not support this command yet)",
                self.message
            ),
            400..=499 if self.json_error => self.message.clone(),
            _ => format!("{status}: {}", self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, message: &str, json_error: bool) -> ApiFailure {
        ApiFailure {
            url: "http://127.0.0.1:9187".into(),
            status,
            reason: "Reason".into(),
            message: message.into(),
            json_error,
            token_sent: true,
        }
    }

    #[test]
    fn sentences() {
        let s = failure(401, "unauthorized", true).to_string();
        assert!(
            s.contains("rejected the admin token") && s.contains("--token"),
            "{s}"
        );
        let s = failure(404, "no such endpoint: /api/v1/jobs", true).to_string();
        assert_eq!(
            s,
            "404 Reason: no such endpoint: /api/v1/jobs (this proxy does not support this command yet)"
        );
        let s = failure(404, "no shard map named \"x\"", true).to_string();
        assert_eq!(s, "no shard map named \"x\"");
        let s = failure(502, "shard s0 down", true).to_string();
        assert_eq!(s, "502 Reason: shard s0 down");
    }
}
