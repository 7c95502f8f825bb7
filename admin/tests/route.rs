//! `POST /api/v1/route` against the live router, end to end over a real socket.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::{Server, CONFIG};
use config::KeyValue;
use serde_json::{json, Value};

/// The shard name the router's placement gives `key` on `map` (the independent expectation).
fn shard_of(server: &Server, map: &str, key: KeyValue) -> String {
    let router = admin::ProxyControl::router(server.control.as_ref());
    let index = router.map(map).unwrap().place(&key).unwrap();
    router.shard_names()[index].clone()
}

async fn route(server: &Server, body: Value) -> common::Response {
    server.post("/api/v1/route", &body.to_string()).await
}

async fn route_ok(server: &Server, body: Value) -> Value {
    let r = route(server, body.clone()).await;
    assert_eq!(r.status, 200, "{body}: {r:?}");
    let answer = r.json();
    assert!(
        !answer["reason"].as_str().unwrap_or("").is_empty(),
        "{body}: no reason in {answer}"
    );
    answer
}

#[tokio::test]
async fn key_lookups_go_to_their_shard() {
    let server = Server::start(CONFIG).await;
    let expected = shard_of(&server, "users", KeyValue::Int(5));
    for body in [
        json!({"sql": "SELECT * FROM users WHERE id = 5"}),
        json!({"sql": "SELECT * FROM public.users WHERE id = '5'"}),
        json!({"sql": "SELECT * FROM users WHERE id = $1", "params": ["5"]}),
        json!({"sql": "SELECT * FROM users WHERE id = $1", "params": [5]}),
        json!({"sql": "SELECT * FROM orders WHERE user_id = $1", "params": [5]}),
    ] {
        let answer = route_ok(&server, body.clone()).await;
        assert_eq!(answer["kind"], "single", "{body}: {answer}");
        assert_eq!(answer["shards"], json!([expected]), "{body}: {answer}");
    }
    let answer = route_ok(
        &server,
        json!({"sql": "SELECT * FROM events WHERE event_id = 1500"}),
    )
    .await;
    assert_eq!(answer["shards"], json!(["s1"]));
    let answer = route_ok(
        &server,
        json!({"sql": "SELECT * FROM customers WHERE country = $1", "params": ["ZZ"]}),
    )
    .await;
    assert_eq!(answer["shards"], json!(["s2"]), "list default: {answer}");
    server.stop().await;
}

#[tokio::test]
async fn several_all_reference_and_default() {
    let server = Server::start(CONFIG).await;
    let answer = route_ok(
        &server,
        json!({"sql": "SELECT * FROM events WHERE event_id IN (5, 1500)"}),
    )
    .await;
    assert_eq!(answer["kind"], "multi", "{answer}");
    assert_eq!(answer["shards"], json!(["s0", "s1"]));

    let answer = route_ok(
        &server,
        json!({"sql": "SELECT * FROM events WHERE event_id = ANY($1)", "params": [[5, 2500]]}),
    )
    .await;
    assert_eq!(answer["shards"], json!(["s0", "s2"]), "{answer}");

    let answer = route_ok(&server, json!({"sql": "SELECT count(*) FROM users"})).await;
    assert_eq!(answer["kind"], "all");
    assert_eq!(answer["shards"], json!(["s0", "s1", "s2"]));

    let answer = route_ok(&server, json!({"sql": "SELECT * FROM countries"})).await;
    assert_eq!(answer["kind"], "reference");
    assert_eq!(answer["shards"].as_array().unwrap().len(), 1);

    let answer = route_ok(&server, json!({"sql": "SELECT 1", "params": []})).await;
    assert_eq!(answer["kind"], "default");
    assert_eq!(answer["shards"], json!(["s0"]));
    server.stop().await;
}

#[tokio::test]
async fn refusals_carry_the_sqlstate() {
    let server = Server::start(CONFIG).await;
    let r = route(
        &server,
        json!({"sql": "SELECT * FROM users u JOIN events e ON u.id = e.event_id"}),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["sqlstate"], "0A000", "{r:?}");
    assert!(!r.error().is_empty());

    let r = route(
        &server,
        json!({"sql": "INSERT INTO users (id) VALUES ($1)", "params": [null]}),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["sqlstate"], "23502", "{r:?}");
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let server = Server::start(CONFIG).await;
    for body in [
        "not json",
        "{}",
        r#"{"sql": 1}"#,
        r#"{"sql": "SELECT 1", "params": [{"a": 1}]}"#,
        r#"{"sql": "SELECT 1", "params": "x"}"#,
    ] {
        let r = server.post("/api/v1/route", body).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert!(r.json().get("error").is_some(), "{body}: {r:?}");
        assert!(r.json().get("sqlstate").is_none(), "{body}: {r:?}");
    }
    server.stop().await;
}
