//! What each admin subcommand sends: method, path (segments percent-encoded) and JSON body, as
//! INTERFACE.md section 5 lists the endpoints.

use serde_json::{json, Map, Value};

use super::{AdminCommand, MoveArgs, ResolveAction};

/// An invalid argument the server would reject anyway, caught before sending.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgError {
    /// `--range` is not `FROM..TO`.
    #[error("--range {0:?}: expected FROM..TO, FROM.. or ..TO")]
    Range(String),
    /// `--values` is empty or has an empty item.
    #[error("--values {0:?}: expected a comma-separated list of values")]
    Values(String),
    /// `--buckets` is empty.
    #[error("--buckets: expected bucket numbers such as 0-63")]
    Buckets,
}

/// One HTTP call to the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// "GET" or "POST".
    pub method: &'static str,
    /// Path from the API root, e.g. "/api/v1/shards".
    pub path: String,
    /// JSON body of a POST.
    pub body: Option<Value>,
}

impl ApiCall {
    /// A GET of `path`.
    fn get(path: impl Into<String>) -> ApiCall {
        ApiCall {
            method: "GET",
            path: path.into(),
            body: None,
        }
    }

    /// A POST of `body` (or none) to `path`.
    fn post(path: impl Into<String>, body: Option<Value>) -> ApiCall {
        ApiCall {
            method: "POST",
            path: path.into(),
            body,
        }
    }
}

/// The call a subcommand makes (for `job --wait`, each poll).
pub fn call_for(command: &AdminCommand) -> Result<ApiCall, ArgError> {
    Ok(match command {
        AdminCommand::Status => ApiCall::get("/api/v1/shards"),
        AdminCommand::Maps => ApiCall::get("/api/v1/maps"),
        AdminCommand::Move(args) => ApiCall::post(
            format!("/api/v1/maps/{}/moves", segment(&args.map)),
            Some(move_body(args)?),
        ),
        AdminCommand::Rebalance { map } => {
            ApiCall::post(format!("/api/v1/maps/{}/rebalance", segment(map)), None)
        }
        AdminCommand::Jobs => ApiCall::get("/api/v1/jobs"),
        AdminCommand::Job { id, .. } => ApiCall::get(format!("/api/v1/jobs/{}", segment(id))),
        AdminCommand::Transactions => ApiCall::get("/api/v1/transactions"),
        AdminCommand::Resolve { gid, action } => ApiCall::post(
            format!("/api/v1/transactions/{}/resolve", segment(gid)),
            Some(json!({ "action": action.as_str() })),
        ),
    })
}

impl ResolveAction {
    /// The `action` the API expects.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveAction::Commit => "commit",
            ResolveAction::Rollback => "rollback",
        }
    }
}

/// `{"buckets": ..}` / `{"range": {..}}` / `{"values": [..]}` plus `"to"`.
pub fn move_body(args: &MoveArgs) -> Result<Value, ArgError> {
    let mut body = Map::new();
    if let Some(buckets) = &args.buckets {
        let buckets = buckets.trim();
        if buckets.is_empty() {
            return Err(ArgError::Buckets);
        }
        body.insert("buckets".into(), Value::from(buckets));
    } else if let Some(range) = &args.range {
        body.insert("range".into(), range_json(range)?);
    } else if let Some(values) = &args.values {
        body.insert("values".into(), values_json(values)?);
    }
    body.insert("to".into(), Value::from(args.to.as_str()));
    Ok(Value::Object(body))
}

/// `FROM..TO` with either bound left out for an open end; an open bound is left out of the JSON,
/// as a missing bound is in the config's `ranges`.
fn range_json(text: &str) -> Result<Value, ArgError> {
    let bad = || ArgError::Range(text.to_owned());
    let (from, to) = text.split_once("..").ok_or_else(bad)?;
    let (from, to) = (from.trim(), to.trim());
    if to.contains("..") || (from.is_empty() && to.is_empty()) {
        return Err(bad());
    }
    let mut range = Map::new();
    if !from.is_empty() {
        range.insert("from".into(), key_json(from));
    }
    if !to.is_empty() {
        range.insert("to".into(), key_json(to));
    }
    Ok(Value::Object(range))
}

/// `A,B,C` as a JSON array.
fn values_json(text: &str) -> Result<Value, ArgError> {
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.iter().any(|v| v.is_empty()) {
        return Err(ArgError::Values(text.to_owned()));
    }
    Ok(Value::Array(items.into_iter().map(key_json).collect()))
}

/// A key as JSON: a number when it is an integer written canonically (so "007", a text key,
/// stays a string), else a string.
fn key_json(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) if n.to_string() == text => Value::from(n),
        _ => Value::from(text),
    }
}

/// Percent-encodes one path segment (everything but RFC 3986's unreserved characters).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mv(buckets: Option<&str>, range: Option<&str>, values: Option<&str>) -> MoveArgs {
        MoveArgs {
            map: "users".into(),
            buckets: buckets.map(Into::into),
            range: range.map(Into::into),
            values: values.map(Into::into),
            to: "s2".into(),
        }
    }

    #[test]
    fn move_bodies() {
        let body = |a| move_body(&a).unwrap();
        assert_eq!(
            body(mv(Some("0-63"), None, None)),
            json!({"buckets": "0-63", "to": "s2"})
        );
        assert_eq!(
            body(mv(None, Some("0..500"), None)),
            json!({"range": {"from": 0, "to": 500}, "to": "s2"})
        );
        assert_eq!(
            body(mv(None, Some("-10..500"), None)),
            json!({"range": {"from": -10, "to": 500}, "to": "s2"})
        );
        assert_eq!(
            body(mv(None, Some("..500"), None)),
            json!({"range": {"to": 500}, "to": "s2"})
        );
        assert_eq!(
            body(mv(None, Some("100.."), None)),
            json!({"range": {"from": 100}, "to": "s2"})
        );
        assert_eq!(
            body(mv(None, Some("a..m"), None)),
            json!({"range": {"from": "a", "to": "m"}, "to": "s2"})
        );
        assert_eq!(
            body(mv(None, None, Some("KR, JP,007,5"))),
            json!({"values": ["KR", "JP", "007", 5], "to": "s2"})
        );
    }

    #[test]
    fn bad_move_arguments() {
        for (b, r, v) in [
            (Some(" "), None, None),
            (None, Some(".."), None),
            (None, Some("5"), None),
            (None, Some("1..2..3"), None),
            (None, None, Some("KR,,JP")),
            (None, None, Some("")),
        ] {
            assert!(move_body(&mv(b, r, v)).is_err(), "{b:?} {r:?} {v:?}");
        }
    }

    #[test]
    fn endpoints() {
        let call = |c| call_for(&c).unwrap();
        assert_eq!(call(AdminCommand::Status), ApiCall::get("/api/v1/shards"));
        assert_eq!(call(AdminCommand::Maps), ApiCall::get("/api/v1/maps"));
        assert_eq!(call(AdminCommand::Jobs), ApiCall::get("/api/v1/jobs"));
        assert_eq!(
            call(AdminCommand::Transactions),
            ApiCall::get("/api/v1/transactions")
        );
        assert_eq!(
            call(AdminCommand::Job {
                id: "7".into(),
                wait: true
            }),
            ApiCall::get("/api/v1/jobs/7")
        );
        assert_eq!(
            call(AdminCommand::Rebalance { map: "a b".into() }),
            ApiCall::post("/api/v1/maps/a%20b/rebalance", None)
        );
        assert_eq!(
            call(AdminCommand::Move(mv(Some("0-63"), None, None))),
            ApiCall::post(
                "/api/v1/maps/users/moves",
                Some(json!({"buckets": "0-63", "to": "s2"}))
            )
        );
        assert_eq!(
            call(AdminCommand::Resolve {
                gid: "sp_1/2".into(),
                action: ResolveAction::Rollback
            }),
            ApiCall::post(
                "/api/v1/transactions/sp_1%2F2/resolve",
                Some(json!({"action": "rollback"}))
            )
        );
    }
}
