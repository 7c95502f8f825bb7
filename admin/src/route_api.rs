//! `POST /api/v1/route`: how the live router would route a statement, without running it.
//!
//! Parameters are bound the way a driver that sends text-format values with unspecified types
//! would bind them, so the answer matches what such a client gets through the proxy.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shard_router::{Params, RouteError, Router};

use crate::ApiError;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteRequest {
    /// One SQL statement.
    sql: String,
    /// `$1`, `$2`... as JSON strings, numbers, booleans, null, or arrays of those.
    #[serde(default)]
    params: Vec<Value>,
}

/// The answer: where the statement runs and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct RouteResponse {
    /// Shard names it touches (a reference read reports the shard the proxy would pick first).
    pub shards: Vec<String>,
    /// "single" | "multi" | "all" | "reference" | "default".
    pub kind: &'static str,
    /// The router's explanation, e.g. "users.id = 5 -> bucket 17 -> s1".
    pub reason: String,
}

/// Routes the statement in a JSON request body.
pub(crate) fn route(router: &Router, body: &[u8]) -> Result<RouteResponse, ApiError> {
    let request: RouteRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
    let texts = request
        .params
        .iter()
        .enumerate()
        .map(|(i, v)| param_text(v).map_err(|e| ApiError::BadRequest(format!("params[{i}]: {e}"))))
        .collect::<Result<Vec<Option<String>>, ApiError>>()?;
    let values: Vec<Option<&[u8]>> = texts
        .iter()
        .map(|t| t.as_deref().map(str::as_bytes))
        .collect();
    let formats = vec![0i16; values.len()];
    let params = Params {
        values: &values,
        formats: &formats,
        types: &[],
    };
    let stmt = router.prepare(&request.sql).map_err(refused)?;
    let plan = router.plan(&stmt, &params).map_err(refused)?;
    let names = router.shard_names();
    let shards = plan
        .shards(names.len())
        .into_iter()
        .map(|i| names.get(i).cloned().unwrap_or_else(|| format!("#{i}")))
        .collect();
    Ok(RouteResponse {
        shards,
        kind: plan.route_kind(),
        reason: plan.reason,
    })
}

/// A router refusal as the API reports it (with the client's SQLSTATE).
fn refused(e: RouteError) -> ApiError {
    ApiError::Refused {
        code: e.code,
        message: e.message,
    }
}

/// The text-format value of one JSON parameter; None is SQL NULL.
fn param_text(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Array(items) => array_literal(items).map(Some),
        other => scalar_text(other).map(Some),
    }
}

/// Strings as-is, numbers as JSON writes them, booleans as PostgreSQL spells them.
fn scalar_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("NULL".to_owned()),
        Value::Array(_) | Value::Object(_) => Err(
            "only strings, numbers, booleans, null or a flat array of them can be bound".to_owned(),
        ),
    }
}

/// A one-dimensional PostgreSQL array literal (`{"a","b",NULL}`), for `key = ANY($1)`.
fn array_literal(items: &[Value]) -> Result<String, String> {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if item.is_null() {
            out.push_str("NULL");
            continue;
        }
        let text = scalar_text(item)?;
        out.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars() {
        assert_eq!(param_text(&json!("KR")).unwrap().as_deref(), Some("KR"));
        assert_eq!(param_text(&json!(42)).unwrap().as_deref(), Some("42"));
        assert_eq!(param_text(&json!(-7)).unwrap().as_deref(), Some("-7"));
        assert_eq!(param_text(&json!(true)).unwrap().as_deref(), Some("true"));
        assert_eq!(param_text(&json!(null)).unwrap(), None);
        assert!(param_text(&json!({"a": 1})).is_err());
    }

    #[test]
    fn arrays_become_literals() {
        assert_eq!(
            param_text(&json!([1, 2, null])).unwrap().as_deref(),
            Some(r#"{"1","2",NULL}"#)
        );
        assert_eq!(
            param_text(&json!(["a\"b", "c\\d"])).unwrap().as_deref(),
            Some(r#"{"a\"b","c\\d"}"#)
        );
        assert_eq!(param_text(&json!([])).unwrap().as_deref(), Some("{}"));
        assert!(param_text(&json!([[1]])).is_err());
    }

    fn router() -> Router {
        let text = "[[shards]]\nname = \"s0\"\nurl = \"postgres://u@h0/db\"\n\
                    [[shards]]\nname = \"s1\"\nurl = \"postgres://u@h1/db\"\n";
        Router::new(&config::Config::parse(text, "t.toml").unwrap())
    }

    #[test]
    fn bad_bodies_are_bad_requests() {
        let router = router();
        for body in [
            &b"not json"[..],
            br#"{"params": []}"#,
            br#"{"sql": 5}"#,
            br#"{"sql": "select 1", "extra": 1}"#,
            br#"{"sql": "select 1", "params": [{"x": 1}]}"#,
        ] {
            let err = route(&router, body).unwrap_err();
            assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
        }
    }
}
