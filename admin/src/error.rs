//! Admin API errors: each becomes a status code and a JSON body `{"error": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Why an admin request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// `/api/*` without a valid bearer token.
    #[error("missing or invalid bearer token (send `Authorization: Bearer <admin_token>`)")]
    Unauthorized,
    /// `/api/*` while the config has no `admin_token`.
    #[error("admin_token is not configured")]
    TokenNotConfigured,
    /// The request itself is malformed (bad JSON, bad query, wrong field types).
    #[error("{0}")]
    BadRequest(String),
    /// The router refuses the statement; `code` is the SQLSTATE a client would get.
    #[error("{message}")]
    Refused {
        /// SQLSTATE, e.g. "0A000".
        code: &'static str,
        /// The router's explanation.
        message: String,
    },
    /// The new config was rejected; the text carries file:line:col.
    #[error("{0}")]
    ReloadRejected(String),
    /// No such route, map or other named thing.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the current state of the named thing.
    #[error("{0}")]
    Conflict(String),
    /// The proxy could not get an answer from a shard.
    #[error("{0}")]
    Backend(String),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TokenNotConfigured => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) | ApiError::Refused { .. } | ApiError::ReloadRejected(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Backend(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Refused { code, message } => json!({ "error": message, "sqlstate": code }),
            other => json!({ "error": other.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ApiError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ApiError::TokenNotConfigured.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ApiError::ReloadRejected("f.toml:1:1: x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::NotFound("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::Backend("x".into()).status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn unauthorized_names_the_scheme() {
        let response = ApiError::Unauthorized.into_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE),
            Some(&HeaderValue::from_static("Bearer"))
        );
    }

    #[test]
    fn token_not_configured_text() {
        assert_eq!(
            ApiError::TokenNotConfigured.to_string(),
            "admin_token is not configured"
        );
    }
}
