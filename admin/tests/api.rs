//! The admin HTTP API end to end over a real socket, against a fake proxy.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::{Server, CONFIG, FILE};
use serde_json::json;

#[tokio::test]
async fn health_and_metrics_need_no_token() {
    let server = Server::start(CONFIG).await;
    let health = server.request("GET", "/health", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert_eq!(health.header("content-type"), Some("application/json"));

    let metrics = server.request("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert!(metrics
        .body
        .contains("# TYPE shardproxy_statements_total counter"));
    server.stop().await;
}

#[tokio::test]
async fn metrics_show_recorded_values_and_pool_use() {
    let server = Server::start(CONFIG).await;
    server
        .metrics
        .statement(admin::RouteKind::Multi, admin::Outcome::Error);
    server.metrics.shard_latency(0, 0.003);
    server.metrics.client_connections(5);
    let body = server.request("GET", "/metrics", None, None).await.body;
    for line in [
        r#"shardproxy_statements_total{kind="multi",outcome="error"} 1"#,
        r#"shardproxy_shard_request_duration_seconds_count{shard="s0"} 1"#,
        "shardproxy_client_connections 5",
        // s0: primary (in use 1) + replica (in use 1); s2 is unhealthy in the fake.
        r#"shardproxy_pool_in_use{shard="s0"} 2"#,
        r#"shardproxy_pool_idle{shard="s0"} 4"#,
        r#"shardproxy_pool_waiting{shard="s2"} 2"#,
        r#"shardproxy_shard_healthy{shard="s2"} 0"#,
        r#"shardproxy_shard_healthy{shard="s1"} 1"#,
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn api_needs_the_bearer_token() {
    let server = Server::start(CONFIG).await;
    for (method, path) in [
        ("GET", "/api/v1/shards"),
        ("GET", "/api/v1/maps"),
        ("GET", "/api/v1/maps/users"),
        ("POST", "/api/v1/route"),
        ("POST", "/api/v1/reload"),
        ("GET", "/api/v1/nonexistent"),
    ] {
        let none = server.request(method, path, None, Some("{}")).await;
        assert_eq!(none.status, 401, "{method} {path}: {none:?}");
        assert!(none.error().contains("bearer token"), "{none:?}");
        assert_eq!(none.header("www-authenticate"), Some("Bearer"));
        let wrong = server
            .request(method, path, Some("secret-tokeN"), Some("{}"))
            .await;
        assert_eq!(wrong.status, 401, "{method} {path}: {wrong:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn api_is_forbidden_without_a_configured_token() {
    let text = CONFIG.replace("admin_token = \"secret-token\"", "");
    let server = Server::start(&text).await;
    for token in [None, Some("secret-token"), Some("")] {
        let r = server.request("GET", "/api/v1/shards", token, None).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json(), json!({"error": "admin_token is not configured"}));
    }
    // Health and metrics still answer.
    let health = server.request("GET", "/health", None, None).await;
    assert_eq!(health.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn shards_with_hosts_roles_and_pools() {
    let server = Server::start(CONFIG).await;
    let r = server.get("/api/v1/shards").await;
    assert_eq!(r.status, 200);
    let shards = r.json()["shards"].clone();
    assert_eq!(shards.as_array().unwrap().len(), 3);
    assert_eq!(shards[0]["name"], "s0");
    assert_eq!(shards[0]["hosts"][0]["role"], "primary");
    assert_eq!(shards[0]["hosts"][1]["role"], "replica");
    assert_eq!(shards[0]["hosts"][0]["circuit"], "closed");
    assert_eq!(shards[2]["hosts"][0]["healthy"], false);
    assert_eq!(shards[1]["hosts"][0]["pool_in_use"], 2);
    assert!(!r.body.contains("pw0"), "password leaked: {}", r.body);
    server.stop().await;
}

#[tokio::test]
async fn maps_listing_and_one_map() {
    let server = Server::start(CONFIG).await;
    let r = server.get("/api/v1/maps").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    let names: Vec<&str> = body["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["events", "region", "users"]);
    assert_eq!(body["reference_tables"], json!(["countries"]));
    assert!(body["maps"][0].get("row_counts").is_none());

    let users = server.get("/api/v1/maps/users").await.json();
    assert_eq!(
        users,
        json!({
            "name": "users", "strategy": "hash", "key_type": "bigint",
            "tables": [{"name": "orders", "key": "user_id"}, {"name": "users", "key": "id"}],
            "buckets": 12,
            "assign": [
                {"buckets": "0-3", "shard": "s0"},
                {"buckets": "4-7", "shard": "s1"},
                {"buckets": "8-11", "shard": "s2"},
            ],
        })
    );
    let events = server.get("/api/v1/maps/events").await.json();
    assert_eq!(
        events["ranges"],
        json!([
            {"from": 0, "to": 1000, "shard": "s0"},
            {"from": 1000, "to": 2000, "shard": "s1"},
            {"from": 2000, "to": null, "shard": "s2"},
        ])
    );
    let region = server.get("/api/v1/maps/region").await.json();
    assert_eq!(
        region["lists"],
        json!([
            {"values": ["JP", "KR"], "shard": "s0"},
            {"values": ["DE", "US"], "shard": "s1"},
        ])
    );
    assert_eq!(region["default"], "s2");

    let missing = server.get("/api/v1/maps/nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.error().contains("nope"));
    server.stop().await;
}

#[tokio::test]
async fn maps_with_row_counts() {
    let server = Server::start(CONFIG).await;
    let users = server.get("/api/v1/maps/users?counts=true").await;
    assert_eq!(users.status, 200, "{users:?}");
    let users = users.json();
    assert_eq!(
        users["rows_by_shard"],
        json!([
            {"shard": "s0", "rows": 20},
            {"shard": "s1", "rows": 40},
            {"shard": "s2", "rows": 60},
        ])
    );
    assert_eq!(users["row_counts"].as_array().unwrap().len(), 6);
    assert_eq!(
        users["row_counts"][0],
        json!({"shard": "s0", "table": "orders", "rows": 10})
    );

    let off = server.get("/api/v1/maps/users?counts=false").await.json();
    assert!(off.get("row_counts").is_none());

    // The fake cannot count `events`: the failure is a JSON 502 naming the cause.
    let failed = server.get("/api/v1/maps/events?counts=true").await;
    assert_eq!(failed.status, 502);
    assert!(failed.error().contains("connection refused"));
    let failed = server.get("/api/v1/maps?counts=true").await;
    assert_eq!(failed.status, 502);

    let bad = server.get("/api/v1/maps/users?counts=maybe").await;
    assert_eq!(bad.status, 400);
    assert!(bad.error().contains("query"), "{bad:?}");
    server.stop().await;
}

#[tokio::test]
async fn reload_swaps_config_and_token() {
    let server = Server::start(CONFIG).await;
    let edited = CONFIG
        .replace("buckets = 12", "buckets = 6")
        .replace("secret-token", "new-token");
    server.control.edit_file(&edited);
    let r = server.post("/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.json();
    assert_eq!(body["status"], "reloaded");
    assert!(
        body["summary"].as_str().unwrap().contains("shard"),
        "{body}"
    );

    // The old token is gone; the new one works and sees the new map.
    let old = server.get("/api/v1/maps/users").await;
    assert_eq!(old.status, 401);
    let users = server
        .request("GET", "/api/v1/maps/users", Some("new-token"), None)
        .await
        .json();
    assert_eq!(users["buckets"], 6);
    server.stop().await;
}

#[tokio::test]
async fn rejected_reload_is_400_and_keeps_the_running_config() {
    let server = Server::start(CONFIG).await;
    server
        .control
        .edit_file(&CONFIG.replace("shard = \"s2\" }", "shard = \"s9\" }"));
    let r = server.post("/api/v1/reload", "").await;
    assert_eq!(r.status, 400, "{r:?}");
    let error = r.error();
    assert!(error.starts_with(&format!("{FILE}:")), "{error}");
    assert!(error.contains("s9"), "{error}");
    let events = server.get("/api/v1/maps/events").await.json();
    assert_eq!(events["ranges"][2]["shard"], "s2");
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let server = Server::start(CONFIG).await;
    let r = server.request("GET", "/nope", None, None).await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("/nope"));
    let r = server.get("/api/v2/anything").await;
    assert_eq!(r.status, 404);
    assert!(r.json().get("error").is_some());
    let r = server.request("POST", "/health", None, Some("")).await;
    assert_eq!(r.status, 405);
    assert!(r.json().get("error").is_some());
    let r = server
        .request("DELETE", "/api/v1/shards", Some("secret-token"), None)
        .await;
    assert_eq!(r.status, 405);
    server.stop().await;
}
