//! Proxying through the real binary: header hygiene both ways, forwarding
//! headers and trust, request ids, problem responses, HTTPS redirects.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::Value;

const CONFIG: &str = r#"
version: 1
admin: { address: "127.0.0.1:0" }
listeners:
  - name: public
    address: "127.0.0.1:0"
  - name: behind-lb
    address: "127.0.0.1:0"
    trusted_proxies: ["127.0.0.0/8"]
  - name: plain-redirect
    address: "127.0.0.1:0"
    redirect_https: { port: 8443 }
upstreams:
  - name: api
    targets: ["@UP@"]
defaults:
  authenticate:
    anonymous: true
routes:
  - id: everything
    match: { path_prefix: / , methods: [GET, POST, HEAD] }
    upstream: api
"#;

fn start(up: &FakeUpstream) -> GatewayProcess {
    gateway(CONFIG, &[("UP", up.addr.to_string())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_and_hardens_both_directions() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let resp = client()
        .get(gw.url("public", "/echo?q=1"))
        .header("Connection", "keep-alive, X-Drop-Me")
        .header("X-Drop-Me", "hop")
        .header("TE", "trailers")
        .header("Proxy-Authorization", "Basic c2VjcmV0")
        .header("X-Kept", "end-to-end")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    // Banners and hop-by-hop headers from the upstream are gone.
    for gone in ["server", "x-powered-by", "keep-alive"] {
        assert!(h.get(gone).is_none(), "{gone} reached the client: {h:?}");
    }
    // Security headers are set; no HSTS on a plain listener.
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.get("strict-transport-security").is_none());
    let id = h["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);

    let echo: Value = resp.json().await.unwrap();
    let seen = &echo["headers"];
    assert_eq!(echo["uri"], "/echo?q=1");
    assert_eq!(seen["x-request-id"][0], id);
    assert_eq!(seen["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"][0], "http");
    assert_eq!(seen["x-kept"][0], "end-to-end");
    assert_eq!(seen["host"][0], gw.addr("public").to_string());
    for gone in ["x-drop-me", "te", "proxy-authorization", "connection"] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} reached the upstream: {seen}"
        );
    }

    let line = gw.access_entry(&id);
    assert_eq!(line["route"], "everything");
    assert_eq!(line["status"], 200);
    assert_eq!(line["upstream"], "api");
    assert_eq!(line["target"], up.addr.to_string());
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["query"], "q=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_trusted_only_from_configured_proxies() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let send = |listener: &str| {
        client()
            .get(gw.url(listener, "/echo"))
            .header("X-Forwarded-For", "203.0.113.7")
            .header("X-Forwarded-Proto", "https")
            .header("Forwarded", "for=203.0.113.7")
            .header("X-Request-Id", "lb-assigned-id-1")
            .send()
    };

    let untrusted: Value = send("public").await.unwrap().json().await.unwrap();
    let h = &untrusted["headers"];
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-real-ip"][0], "127.0.0.1");
    assert!(
        h["forwarded"][0]
            .as_str()
            .unwrap()
            .starts_with("for=127.0.0.1;proto=http")
    );
    assert_ne!(h["x-request-id"][0], "lb-assigned-id-1");

    let resp = send("behind-lb").await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "lb-assigned-id-1");
    let trusted: Value = resp.json().await.unwrap();
    let h = &trusted["headers"];
    assert_eq!(h["x-forwarded-for"][0], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_eq!(h["x-real-ip"][0], "203.0.113.7");
    assert_eq!(h["x-request-id"][0], "lb-assigned-id-1");
    let line = gw.access_entry("lb-assigned-id-1");
    assert_eq!(line["client"], "203.0.113.7");

    // A malformed id from a trusted proxy is replaced, not passed on.
    let resp = client()
        .get(gw.url("behind-lb", "/echo"))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.headers()["x-request-id"], "bad id with spaces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_are_json_with_the_request_id() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let resp = client()
        .delete(gw.url("public", "/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.headers()["allow"], "GET, POST, HEAD");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "urn:portcullis:problem:method-not-allowed");
    assert_eq!(body["status"], 405);
    assert_eq!(body["request_id"], id);
    assert_eq!(
        up.requests(),
        0,
        "a refused request never reaches the upstream"
    );
    let line = gw.access_entry(&id);
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["reason"], "method-not-allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_listener_redirects_to_https() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let resp = client()
        .get(gw.url("plain-redirect", "/a/b?c=1"))
        .header("Host", "api.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"],
        "https://api.example.com:8443/a/b?c=1"
    );
    assert_eq!(up.requests(), 0);
}
