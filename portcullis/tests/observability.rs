//! Logs and metrics through the real binary: no secret reaches a log line,
//! and the admin listener reports health, readiness and metrics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;

const CONFIG: &str = r#"
version: 1
admin: { address: "127.0.0.1:0" }
logging:
  log_headers: [authorization, cookie, x-api-key, x-custom-secret, user-agent, proxy-authorization]
  mask_headers: [x-custom-secret]
  mask_query_params: [card]
listeners:
  - { name: main, address: "127.0.0.1:0" }
upstreams:
  - { name: api, targets: ["@UP@"] }
  - { name: gone, targets: ["@DEAD@"] }
defaults:
  authenticate:
    anonymous: true
routes:
  - { id: api, match: { path_prefix: /api }, upstream: api }
  - { id: gone, match: { path_prefix: /gone }, upstream: gone }
"#;

const SECRETS: &[&str] = &[
    "BearerSecret-1111",
    "CookieSecret-2222",
    "ApiKeySecret-3333",
    "QuerySecret-4444",
    "TokenSecret-5555",
    "CardSecret-6666",
    "CustomSecret-7777",
    "ProxySecret-8888",
    "PasswordSecret-9999",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let up = FakeUpstream::start("api").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = gateway(
        CONFIG,
        &[("UP", up.addr.to_string()), ("DEAD", dead.to_string())],
    );
    let c = client();
    let query = "/?api_key=QuerySecret-4444&TOKEN=TokenSecret-5555&card=CardSecret-6666&%70assword=PasswordSecret-9999&page=visible-2";
    let mut ids = Vec::new();
    // Allowed, denied (no route), upstream failure, and a refused path: every
    // kind of log line.
    for path in ["/api/x", "/nothing", "/gone", "/api/%2f"] {
        let resp = c
            .get(gw.url("main", &format!("{path}{}", query.trim_start_matches('/'))))
            .header("Authorization", "Bearer BearerSecret-1111")
            .header("Cookie", "session=CookieSecret-2222")
            .header("X-API-Key", "ApiKeySecret-3333")
            .header("X-Custom-Secret", "CustomSecret-7777")
            .header("Proxy-Authorization", "Basic ProxySecret-8888")
            .header("User-Agent", "visible-agent/1.0")
            .send()
            .await
            .unwrap();
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    for id in &ids {
        gw.access_entry(id);
    }
    gw.wait_for_event(|e| e["code"] == "path-encoded-separator");
    let everything = format!("{}\n{}", gw.stdout_lines().join("\n"), gw.stderr_text());
    for s in SECRETS {
        assert!(
            !everything.contains(s),
            "{s} reached the logs:\n{everything}"
        );
    }
    // What is not secret is still there, and masked values are marked.
    let line = gw.access_entry(&ids[0]);
    assert_eq!(line["headers"]["user-agent"], "visible-agent/1.0");
    assert_eq!(line["headers"]["authorization"], "***");
    assert_eq!(line["headers"]["x-custom-secret"], "***");
    let q = line["query"].as_str().unwrap();
    assert!(
        q.contains("page=visible-2") && q.contains("api_key=***") && q.contains("TOKEN=***"),
        "{q}"
    );
    // The upstream itself still received the credentials it needs.
    assert!(up.requests() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_reports_health_readiness_and_metrics() {
    let up = FakeUpstream::start("api").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = gateway(
        CONFIG,
        &[("UP", up.addr.to_string()), ("DEAD", dead.to_string())],
    );
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            c.get(gw.url("main", "/api/x"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        c.get(gw.url("main", "/nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let health = c.get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = c.get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let resp = c.get(gw.admin_url("/metrics")).send().await.unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = resp.text().await.unwrap();
    for expected in [
        "portcullis_requests_total{route=\"api\",status=\"200\"} 3",
        "portcullis_requests_total{route=\"-\",status=\"404\"} 1",
        "portcullis_request_duration_seconds_count{route=\"api\"} 3",
        "# TYPE portcullis_request_duration_seconds histogram",
        "portcullis_upstream_requests_total{upstream=\"api\",target=",
        "portcullis_upstream_target_healthy{upstream=\"api\",target=",
        "portcullis_active_connections{listener=\"main\"}",
        "portcullis_connections_total{listener=\"main\"}",
        "portcullis_upstream_header_seconds_bucket{upstream=\"api\",le=\"0.005\"}",
    ] {
        assert!(m.contains(expected), "missing {expected} in\n{m}");
    }
    let missing = c.get(gw.admin_url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let post = c.post(gw.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}
