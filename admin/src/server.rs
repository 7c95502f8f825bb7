//! The admin HTTP server: routes, the bearer-token check on `/api/*`, and the small handlers.
//!
//! Every answer, errors included, is JSON except `/metrics` (Prometheus text). The token is read
//! from `control.config()` on each request, so a reload that changes it takes effect at once.

use std::future::Future;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::maps_json::{self, MapView};
use crate::{route_api, ApiError, ProxyControl, ProxyMetrics, ResolveAction, ResolveError};

/// The Prometheus text exposition content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often latency samples are folded into histogram buckets between scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Shared by every handler.
#[derive(Clone)]
struct AppState {
    control: Arc<dyn ProxyControl>,
    metrics: Arc<ProxyMetrics>,
}

/// Serves until `shutdown` resolves. Routes: GET /health (no token) -> 200 {"status":"ok"};
/// GET /metrics (no token) -> Prometheus text; /api/* requires `Authorization: Bearer <token>`
/// (401 {"error": "..."} otherwise; when the config has no admin_token, /api/* answers 403
/// {"error":"admin_token is not configured"}). GET /api/v1/shards, GET /api/v1/maps,
/// GET /api/v1/maps/{map} (?counts=true adds per-shard row counts), POST /api/v1/route
/// {"sql": "...", "params": [..]} -> {"shards": ["s0"], "kind": "single"|..., "reason": "..."}
/// (params: JSON strings/numbers/null bound as TEXT-format parameters with unknown type),
/// POST /api/v1/reload -> 200 {"status":"reloaded","summary":...} or 400 {"error": "..."},
/// GET /api/v1/transactions -> {"transactions": [InDoubt..]}, POST
/// /api/v1/transactions/{gid}/resolve {"action": "commit"|"rollback"} -> 200 {"gid", "action",
/// "status": "committed"|"rolled back"} (400 bad action, 404 unknown gid, 409 conflict, 502
/// a shard failed).
/// Unknown routes 404 {"error":...}; bad JSON 400 {"error":...}. The token is read from
/// control.config() on each request (so a reload can change it). While serving it also runs
/// `metrics.upkeep()` every few seconds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Arc<dyn ProxyControl>,
    metrics: Arc<ProxyMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = {
        let metrics = metrics.clone();
        async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                metrics.upkeep();
            }
        }
    };
    let server = axum::serve(listener, app(AppState { control, metrics }))
        .with_graceful_shutdown(shutdown)
        .into_future();
    tokio::select! {
        result = server => result,
        () = upkeep => Ok(()),
    }
}

/// The routes; the token layer is added last so it also covers unknown `/api/*` paths.
fn app(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/shards", get(shards))
        .route("/api/v1/maps", get(maps))
        .route("/api/v1/maps/{map}", get(one_map))
        .route("/api/v1/route", post(route))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/transactions", get(transactions))
        .route("/api/v1/transactions/{gid}/resolve", post(resolve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Lets `/api/*` through only with the configured bearer token.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        let config = state.control.config();
        let expected = config
            .proxy
            .admin_token
            .as_deref()
            .filter(|t| !t.is_empty());
        let Some(expected) = expected else {
            return ApiError::TokenNotConfigured.into_response();
        };
        if !bearer_matches(request.headers(), expected) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// True when the `Authorization` header is `Bearer <expected>` (scheme case-insensitive).
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(token.trim(), expected)
}

/// Compares without an early exit so response timing does not reveal how much of a guess matched.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /health`.
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /metrics`: pool gauges refreshed from the live shard status, then the whole registry.
async fn metrics_text(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(&state.control.shards());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(METRICS_CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

/// `GET /api/v1/shards`.
async fn shards(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "shards": state.control.shards() }))
}

/// Query of the maps endpoints.
#[derive(Debug, Deserialize)]
struct MapsQuery {
    /// Add per-shard row counts (runs count(*) on every shard).
    #[serde(default)]
    counts: bool,
}

/// The query string, or a JSON 400.
fn maps_query(query: Result<Query<MapsQuery>, QueryRejection>) -> Result<MapsQuery, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", e.body_text())))
}

/// `GET /api/v1/maps[?counts=true]`.
async fn maps(
    State(state): State<AppState>,
    query: Result<Query<MapsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let query = maps_query(query)?;
    let router = state.control.router();
    let mut views = maps_json::all_maps(&router);
    if query.counts {
        let counts =
            futures::future::join_all(views.iter().map(|v| state.control.row_counts(&v.name)))
                .await;
        for (view, counts) in views.iter_mut().zip(counts) {
            let counts = counts.map_err(|e| count_failed(&view.name, e))?;
            maps_json::attach_counts(view, &router, counts);
        }
    }
    Ok(Json(json!({
        "maps": views,
        "reference_tables": maps_json::reference_tables(&router),
    })))
}

/// A failed row count: logged here, where it is handled, and answered as a 502.
fn count_failed(map: &str, error: String) -> ApiError {
    tracing::warn!(map, %error, "admin API: row counts failed");
    ApiError::Backend(error)
}

/// `GET /api/v1/maps/{map}[?counts=true]`.
async fn one_map(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<MapsQuery>, QueryRejection>,
) -> Result<Json<MapView>, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let query = maps_query(query)?;
    let router = state.control.router();
    let mut view = maps_json::one_map(&router, &name)
        .ok_or_else(|| ApiError::NotFound(format!("no shard map named {name:?}")))?;
    if query.counts {
        let counts = state
            .control
            .row_counts(&name)
            .await
            .map_err(|e| count_failed(&name, e))?;
        maps_json::attach_counts(&mut view, &router, counts);
    }
    Ok(Json(view))
}

/// `POST /api/v1/route`.
async fn route(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let router = state.control.router();
    let answer = route_api::route(&router, &body)?;
    Ok(Json(json!(answer)))
}

/// `POST /api/v1/reload`.
async fn reload(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    // The proxy's reload logs the outcome; logging it here too would report it twice.
    let summary = state
        .control
        .reload()
        .await
        .map_err(ApiError::ReloadRejected)?;
    Ok(Json(json!({ "status": "reloaded", "summary": summary })))
}

/// `GET /api/v1/transactions`.
async fn transactions(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "transactions": state.control.transactions() }))
}

/// The body of a resolve request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    /// "commit" | "rollback".
    action: String,
}

/// The action of a resolve request body.
fn resolve_action(body: &[u8]) -> Result<ResolveAction, ApiError> {
    let request: ResolveRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
    match request.action.as_str() {
        "commit" => Ok(ResolveAction::Commit),
        "rollback" => Ok(ResolveAction::Rollback),
        other => Err(ApiError::BadRequest(format!(
            "action must be \"commit\" or \"rollback\", not {other:?}"
        ))),
    }
}

/// `POST /api/v1/transactions/{gid}/resolve`.
async fn resolve(
    State(state): State<AppState>,
    gid: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(gid) = gid.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let action = resolve_action(&body)?;
    // The proxy logs what it did on each shard; the outcome is logged here once.
    match state.control.resolve(&gid, action).await {
        Ok(()) => {
            tracing::info!(
                gid,
                action = action.as_str(),
                "operator resolved a transaction"
            );
            Ok(Json(json!({
                "gid": gid,
                "action": action.as_str(),
                "status": action.done_status(),
            })))
        }
        Err(e) => {
            tracing::warn!(gid, action = action.as_str(), error = %e, "resolve failed");
            Err(match e {
                ResolveError::NotFound(m) => ApiError::NotFound(m),
                ResolveError::Conflict(m) => ApiError::Conflict(m),
                ResolveError::Backend(m) => ApiError::Backend(m),
            })
        }
    }
}

/// Any path without a route.
async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", request.uri().path()))
}

/// A known path with the wrong method.
async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_header_forms() {
        assert!(bearer_matches(&headers("Bearer tok"), "tok"));
        assert!(bearer_matches(&headers("bearer tok"), "tok"));
        assert!(bearer_matches(&headers("BEARER  tok "), "tok"));
        assert!(!bearer_matches(&headers("Bearer tok2"), "tok"));
        assert!(!bearer_matches(&headers("Bearer to"), "tok"));
        assert!(!bearer_matches(&headers("Basic tok"), "tok"));
        assert!(!bearer_matches(&headers("tok"), "tok"));
        assert!(!bearer_matches(&HeaderMap::new(), "tok"));
    }

    #[test]
    fn resolve_bodies() {
        assert_eq!(
            resolve_action(br#"{"action": "commit"}"#),
            Ok(ResolveAction::Commit)
        );
        assert_eq!(
            resolve_action(br#"{"action": "rollback"}"#),
            Ok(ResolveAction::Rollback)
        );
        for bad in [
            &br#"{"action": "maybe"}"#[..],
            br#"{"action": "COMMIT"}"#,
            br#"{}"#,
            br#"{"action": "commit", "x": 1}"#,
            b"commit",
        ] {
            assert!(matches!(resolve_action(bad), Err(ApiError::BadRequest(_))));
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(constant_time_eq("", ""));
    }
}
