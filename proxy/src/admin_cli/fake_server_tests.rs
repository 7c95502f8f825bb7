//! The admin CLI against a scripted HTTP server: the requests it sends (method, path, token,
//! JSON body) and how it handles answers the real proxy does not give yet (jobs, moves).
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{parse_args, run};

/// A request as the fake server saw it.
#[derive(Debug)]
struct Seen {
    head: String,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Serves `responses` (whole raw HTTP responses) to successive connections; the handle gives the
/// requests.
async fn fake_server(responses: Vec<String>) -> (String, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let mut seen = Vec::new();
        for response in responses {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = socket.read(&mut buf).await.unwrap();
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |v| v.parse::<usize>().unwrap());
                    if body.len() >= len || n == 0 {
                        break (head.to_owned(), body.to_owned());
                    }
                }
                assert!(n > 0, "client closed early");
            };
            seen.push(Seen { head, body });
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
        }
        seen
    });
    (url, handle)
}

/// A JSON response in one chunked piece split in two, as axum may send it.
fn chunked(status: &str, json: &Value) -> String {
    let body = json.to_string();
    let (a, b) = body.split_at(body.len() / 2);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
}

/// A JSON response with Content-Length.
fn plain(status: &str, json: &Value) -> String {
    let body = json.to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Runs the CLI; (exit code, stdout, stderr).
async fn cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["--url", url, "--token", "tok"];
    full.extend_from_slice(args);
    let args = parse_args(full).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(args, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test]
async fn job_wait_draws_progress_until_done() {
    let job = |state: &str, copied: u64| {
        json!({"id": 7, "state": state, "rows_copied": copied, "rows_total": 100,
               "started_at": "t0", "finished_at": null, "error": null})
    };
    let (url, server) = fake_server(vec![
        chunked("200 OK", &job("copying", 0)),
        chunked("200 OK", &job("catching_up", 50)),
        chunked("200 OK", &job("done", 100)),
    ])
    .await;
    let (code, out, err) = cli(&url, &["job", "7", "--wait"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("  0%  0/100 rows  copying"), "{out}");
    assert!(out.contains(" 50%  50/100 rows  catching_up"), "{out}");
    assert!(out.contains("100%  100/100 rows  done"), "{out}");
    assert!(out.ends_with("\njob 7 done\n"), "{out}");
    let seen = server.await.unwrap();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert!(
            s.head.starts_with("GET /api/v1/jobs/7 HTTP/1.1\r\n"),
            "{}",
            s.head
        );
        assert!(s.head.contains("Authorization: Bearer tok"), "{}", s.head);
    }
}

#[tokio::test]
async fn job_wait_exits_1_when_the_job_fails() {
    let failed = json!({"id": 8, "state": "failed", "rows_copied": 3, "rows_total": 10,
                        "error": "shard s2 is down"});
    let (url, _server) = fake_server(vec![plain("200 OK", &failed)]).await;
    let (code, out, _) = cli(&url, &["job", "8", "--wait"]).await;
    assert_eq!(code, 1);
    assert!(out.contains("job 8 failed: shard s2 is down"), "{out}");
}

#[tokio::test]
async fn move_and_rebalance_send_the_documented_bodies() {
    let accepted = plain("202 Accepted", &json!({"job": 3}));
    let (url, server) = fake_server(vec![accepted.clone(); 4]).await;
    let (code, out, err) = cli(&url, &["move", "users", "--buckets", "0-63", "--to", "s2"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("started job 3 (move on map users)\n"),
        "{out}"
    );
    assert!(out.contains("shardproxy admin job 3 --wait"), "{out}");
    cli(&url, &["move", "events", "--range", "..500", "--to", "s1"]).await;
    cli(&url, &["move", "region", "--values", "KR,JP", "--to", "s0"]).await;
    let (code, out, _) = cli(&url, &["rebalance", "users"]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("started job 3 (rebalance of users)"),
        "{out}"
    );
    let seen = server.await.unwrap();
    assert!(seen[0]
        .head
        .starts_with("POST /api/v1/maps/users/moves HTTP/1.1"));
    assert!(seen[0].head.contains("Content-Type: application/json"));
    assert_eq!(seen[0].json(), json!({"buckets": "0-63", "to": "s2"}));
    assert!(seen[1].head.starts_with("POST /api/v1/maps/events/moves "));
    assert_eq!(seen[1].json(), json!({"range": {"to": 500}, "to": "s1"}));
    assert_eq!(seen[2].json(), json!({"values": ["KR", "JP"], "to": "s0"}));
    assert!(seen[3]
        .head
        .starts_with("POST /api/v1/maps/users/rebalance "));
    assert!(seen[3].head.contains("Content-Length: 0"));
}

#[tokio::test]
async fn transactions_and_resolve() {
    let list = json!({"transactions": [{"gid": "sp_a_1", "shards": ["s0", "s1"],
                                        "decision": "commit"}]});
    let (url, server) = fake_server(vec![
        chunked("200 OK", &list),
        plain("200 OK", &json!({"gid": "sp_a_1", "action": "commit"})),
        plain("200 OK", &list),
        plain(
            "200 OK",
            &json!({"gid": "sp_a_1", "action": "rollback", "status": "rolled back"}),
        ),
    ])
    .await;
    let (code, out, _) = cli(&url, &["transactions"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("sp_a_1") && out.contains("s0,s1"), "{out}");
    let (code, out, _) = cli(&url, &["resolve", "sp_a_1", "commit"]).await;
    assert_eq!(code, 0);
    assert_eq!(out, "transaction sp_a_1: commit requested\n");
    let (_, out, _) = cli(&url, &["--json", "transactions"]).await;
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), list);
    // A proxy that reports what it did: the CLI shows it.
    let (code, out, _) = cli(&url, &["resolve", "sp_a_1", "rollback"]).await;
    assert_eq!(code, 0);
    assert_eq!(out, "transaction sp_a_1: rolled back\n");
    let seen = server.await.unwrap();
    assert!(seen[1]
        .head
        .starts_with("POST /api/v1/transactions/sp_a_1/resolve "));
    assert_eq!(seen[1].json(), json!({"action": "commit"}));
}

#[tokio::test]
async fn server_errors_are_reported() {
    let (url, _server) = fake_server(vec![
        plain(
            "400 Bad Request",
            &json!({"error": "shard s9 does not exist"}),
        ),
        "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nNot Found".to_owned(),
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_owned(),
    ])
    .await;
    let (code, _, err) = cli(&url, &["move", "users", "--buckets", "1", "--to", "s9"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "error: shard s9 does not exist\n")
    );
    let (code, _, err) = cli(&url, &["jobs"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("404 Not Found: Not Found (this proxy does not support this command yet)"),
        "{err}"
    );
    let (code, _, err) = cli(&url, &["status"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not JSON: hello"), "{err}");
}

#[tokio::test]
async fn bad_arguments_fail_before_sending() {
    // Nothing listens: an argument error must come first.
    let (code, _, err) = cli(
        "http://127.0.0.1:1",
        &["move", "e", "--range", "5", "--to", "s1"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("--range \"5\""), "{err}");
}
