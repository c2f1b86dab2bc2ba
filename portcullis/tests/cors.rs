//! CORS through the real binary: preflights answered by the gateway,
//! origins outside the allow-list refused, upstream CORS headers replaced.

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
admin: { enabled: false }
listeners:
  - { name: main, address: "127.0.0.1:0" }
upstreams:
  - { name: api, targets: ["@UP@"] }
defaults:
  authenticate:
    anonymous: true
routes:
  - id: orders
    match: { path_prefix: /orders, methods: [GET, PUT, DELETE] }
    upstream: api
    filters:
      - kind: cors
        allow_origins: ["https://app.example.com", "https://*.partner.example"]
        allow_methods: [GET, PUT]
        allow_headers: [x-trace-id, content-type]
        expose_headers: [x-total-count]
        allow_credentials: true
        max_age: 5m
  - id: public
    match: { path_prefix: /public }
    upstream: api
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_by_the_gateway() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(CONFIG, &[("UP", up.addr.to_string())]);
    let c = client();
    let resp = c
        .request(reqwest::Method::OPTIONS, gw.url("main", "/orders/7"))
        .header("Origin", "https://shop.partner.example")
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "X-Trace-Id, Content-Type")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(
        h["access-control-allow-origin"],
        "https://shop.partner.example"
    );
    assert_eq!(h["access-control-allow-methods"], "GET, PUT");
    assert_eq!(
        h["access-control-allow-headers"],
        "x-trace-id, content-type"
    );
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "300");
    assert_eq!(up.requests(), 0, "the upstream never sees a preflight");

    for (origin, method, headers, code) in [
        ("https://evil.example", "PUT", "", "cors-origin-not-allowed"),
        (
            "https://app.example.com",
            "DELETE",
            "",
            "cors-method-not-allowed",
        ),
        (
            "https://app.example.com",
            "PUT",
            "x-admin",
            "cors-header-not-allowed",
        ),
        // A method the route does not serve at all is refused by routing.
        ("https://app.example.com", "PATCH", "", "method-not-allowed"),
    ] {
        let resp = c
            .request(reqwest::Method::OPTIONS, gw.url("main", "/orders/7"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", method)
            .header("Access-Control-Request-Headers", headers)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        let body: serde_json::Value = resp.json().await.unwrap();
        let expected = if code == "method-not-allowed" {
            405
        } else {
            403
        };
        assert_eq!(
            (status.as_u16(), body["code"].as_str().unwrap()),
            (expected, code),
            "{origin} {method}"
        );
    }
    let ev = gw.wait_for_event(|e| e["code"] == "cors-origin-not-allowed");
    assert_eq!(ev["event"], "cors_rejected");
    assert_eq!(ev["route"], "orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_requests_get_the_policy_not_the_upstreams_headers() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(CONFIG, &[("UP", up.addr.to_string())]);
    let c = client();
    let resp = c
        .get(gw.url("main", "/orders"))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    // The upstream said "*"; the policy answers with the exact origin.
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-expose-headers"], "x-total-count");
    assert_eq!(h["vary"], "Origin");

    let resp = c
        .put(gw.url("main", "/orders/1"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        up.requests(),
        1,
        "the refused cross-origin write never reached the upstream"
    );

    // A route without a CORS policy leaves CORS to the upstream.
    let resp = c
        .get(gw.url("main", "/public"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}
