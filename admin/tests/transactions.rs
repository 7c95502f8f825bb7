//! `GET /api/v1/transactions` and `POST /api/v1/transactions/{gid}/resolve` over a real socket,
//! against a fake proxy.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use admin::{InDoubt, ResolveAction};
use common::{Server, CONFIG};
use serde_json::json;

fn in_doubt(gid: &str) -> InDoubt {
    InDoubt {
        gid: gid.to_owned(),
        decision: "commit".to_owned(),
        shards: vec!["s0".to_owned(), "s1".to_owned()],
        pending_shards: vec!["s1".to_owned()],
        first_seen: "2024-01-02T03:04:05Z".to_owned(),
        last_error: Some("s1: connection refused".to_owned()),
    }
}

#[tokio::test]
async fn list_in_doubt_transactions() {
    let server = Server::start(CONFIG).await;
    let empty = server.get("/api/v1/transactions").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json(), json!({"transactions": []}));

    server
        .control
        .in_doubt
        .lock()
        .unwrap()
        .push(in_doubt("sp_p1_a_1"));
    let list = server.get("/api/v1/transactions").await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.json(),
        json!({"transactions": [{
            "gid": "sp_p1_a_1",
            "decision": "commit",
            "shards": ["s0", "s1"],
            "pending_shards": ["s1"],
            "first_seen": "2024-01-02T03:04:05Z",
            "last_error": "s1: connection refused",
        }]})
    );
    let unauthorized = server
        .request("GET", "/api/v1/transactions", None, None)
        .await;
    assert_eq!(unauthorized.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn resolve_commits_or_rolls_back() {
    let server = Server::start(CONFIG).await;
    server
        .control
        .in_doubt
        .lock()
        .unwrap()
        .extend([in_doubt("sp_p1_a_1"), in_doubt("sp_p1_a_2")]);
    let done = server
        .post(
            "/api/v1/transactions/sp_p1_a_1/resolve",
            r#"{"action": "commit"}"#,
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        done.json(),
        json!({"gid": "sp_p1_a_1", "action": "commit", "status": "committed"})
    );
    let done = server
        .post(
            "/api/v1/transactions/sp_p1_a_2/resolve",
            r#"{"action": "rollback"}"#,
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["status"], "rolled back");
    assert_eq!(
        *server.control.resolved.lock().unwrap(),
        vec![
            ("sp_p1_a_1".to_owned(), ResolveAction::Commit),
            ("sp_p1_a_2".to_owned(), ResolveAction::Rollback),
        ]
    );
    let list = server.get("/api/v1/transactions").await;
    assert_eq!(list.json(), json!({"transactions": []}));
    server.stop().await;
}

#[tokio::test]
async fn resolve_errors() {
    let server = Server::start(CONFIG).await;
    let cases = [
        ("sp_p1_a_9", r#"{"action": "commit"}"#, 404),
        ("sp_busy", r#"{"action": "rollback"}"#, 409),
        ("sp_down", r#"{"action": "commit"}"#, 502),
        ("sp_p1_a_1", r#"{"action": "maybe"}"#, 400),
        ("sp_p1_a_1", r#"{"act": "commit"}"#, 400),
        ("sp_p1_a_1", "not json", 400),
    ];
    for (gid, body, status) in cases {
        let answer = server
            .post(&format!("/api/v1/transactions/{gid}/resolve"), body)
            .await;
        assert_eq!(answer.status, status, "{gid} {body}: {}", answer.body);
        assert!(!answer.error().is_empty());
    }
    // Bad bodies never reach the proxy.
    assert_eq!(server.control.resolved.lock().unwrap().len(), 3);
    let wrong_method = server.get("/api/v1/transactions/sp_p1_a_1/resolve").await;
    assert_eq!(wrong_method.status, 405);
    server.stop().await;
}
