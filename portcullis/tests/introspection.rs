//! Opaque bearer tokens checked by OAuth 2.0 introspection (RFC 7662)
//! through the real binary: client credentials, caching within the token's
//! life, brief negative caching, coalesced lookups, and a server that is
//! down refusing requests rather than letting them through.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::*;
use jsonwebtoken::Algorithm;
use portcullis_testkit::idp::{CLIENT_ID, CLIENT_SECRET};
use serde_json::Value;

const CONFIG: &str = r#"
version: 1
admin: { enabled: false }
authentication:
  lockout: { enabled: false }
  jwt:
    - name: corp
      issuer: "@ISS@"
      audiences: [orders-api]
      keys: { jwks_url: "@JWKS@" }
  introspection:
    - name: as
      endpoint: "@INTROSPECT@"
      client_id: "@CLIENT@"
      client_secret: { file: client.secret }
      audiences: [orders-api]
      cache_ttl: 2s
      negative_cache_ttl: 10s
listeners:
  - { name: main, address: "127.0.0.1:0" }
upstreams:
  - { name: api, targets: ["@UP@"] }
defaults:
  authenticate:
    methods: ["introspection:as", "jwt:corp"]
routes:
  - id: api
    match: { path_prefix: /api }
    upstream: api
  - id: write
    match: { path_prefix: /write }
    upstream: api
    filters:
      - { kind: authenticate, methods: ["introspection:as"], scopes: ["orders:write"] }
"#;

fn start(idp: &Idp, up: &FakeUpstream) -> GatewayProcess {
    let config = fill(
        CONFIG,
        &[
            ("ISS", idp.issuer.clone()),
            ("JWKS", idp.jwks_url()),
            ("INTROSPECT", idp.introspection_url()),
            ("CLIENT", CLIENT_ID.to_owned()),
            ("UP", up.addr.to_string()),
        ],
    );
    GatewayProcess::start(
        bin(),
        &config,
        &[("client.secret", CLIENT_SECRET.as_bytes())],
    )
}

async fn call(url: &str, token: &str) -> reqwest::Response {
    client().get(url).bearer_auth(token).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_tokens_pass_and_answers_are_cached_within_their_life() {
    let idp = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let gw = start(&idp, &up);
    let url = gw.url("main", "/api/x");

    let token = idp.issue_opaque("svc-7", "orders:read orders:write", 300);
    let r = call(&url, &token).await;
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(
        echo["headers"]["x-consumer-id"],
        serde_json::json!(["svc-7"])
    );
    assert_eq!(
        echo["headers"]["x-consumer-scopes"],
        serde_json::json!(["orders:read orders:write"])
    );
    assert_eq!(
        echo["headers"]["x-consumer-auth-method"],
        serde_json::json!(["introspection"])
    );
    // Repeated: answered from the cache.
    let calls = idp.introspections();
    for _ in 0..10 {
        assert_eq!(call(&url, &token).await.status(), 200);
    }
    assert_eq!(idp.introspections(), calls, "the active answer is cached");
    assert_eq!(call(&gw.url("main", "/write"), &token).await.status(), 200);

    // Revoked at the server: served from the cache no longer than cache_ttl.
    idp.revoke_opaque(&token);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = call(&url, &token).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\", error=\"invalid_token\""
    );

    // Unknown tokens: refused, and the negative answer is reused briefly.
    let before = idp.introspections();
    for _ in 0..3 {
        assert_eq!(call(&url, "never-issued").await.status(), 401);
    }
    assert_eq!(idp.introspections(), before + 1);
    let ev = gw.wait_for_event(|e| e["code"] == "token-inactive");
    assert!(!ev.to_string().contains("never-issued"), "{ev}");

    // A token past its exp is refused whatever the cache TTL says.
    // Lives 2 s on a whole-second clock: at least 1 s left when it is first used.
    let short = idp.issue_opaque("svc-8", "orders:read", 2);
    assert_eq!(call(&url, &short).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(call(&url, &short).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_for_one_token_are_coalesced() {
    let idp = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let gw = start(&idp, &up);
    let url = gw.url("main", "/api/x");
    idp.set_introspect_delay(300);
    let token = idp.issue_opaque("svc-9", "orders:read", 300);
    let before = idp.introspections();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move { call(&url, &token).await.status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        idp.introspections(),
        before + 1,
        "one lookup for 20 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_and_opaque_tokens_share_a_route_and_a_down_server_fails_closed() {
    let idp = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let kid = idp.add_key(Algorithm::ES256, true);
    let gw = start(&idp, &up);
    let url = gw.url("main", "/api/x");
    // A JWT is verified locally: no introspection call.
    let before = idp.introspections();
    let jwt = idp.sign(&kid, &idp.claims("orders-api", "jwt-user"));
    assert_eq!(call(&url, &jwt).await.status(), 200);
    assert_eq!(idp.introspections(), before);
    // Missing scope on an introspected token: 403.
    let reader = idp.issue_opaque("svc-1", "orders:read", 300);
    assert_eq!(call(&gw.url("main", "/write"), &reader).await.status(), 403);

    // The authorization server is down: a token it was never asked about
    // is refused with 503, not let through.
    idp.set_down(true);
    let fresh = idp.issue_opaque("svc-2", "orders:read", 300);
    let r = call(&url, &fresh).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "auth-unavailable");
    idp.set_down(false);
    assert_eq!(call(&url, &fresh).await.status(), 200);
}
