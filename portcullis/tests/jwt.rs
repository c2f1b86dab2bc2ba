//! JWT bearer tokens through the real binary, against an in-process
//! identity provider: algorithms, claims, key rotation at the provider,
//! unknown-kid storms, a key server that goes down, OIDC discovery, and
//! every kind of bad token refused.

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
use serde_json::{Value, json};

const CONFIG: &str = r#"
version: 1
admin: { enabled: false }
authentication:
  lockout: { enabled: false }
  jwt:
    - name: corp
      issuer: "@ISS@"
      audiences: [orders-api]
      keys: { @KEYS@ }
      refresh_interval: 1s
      min_refetch_interval: 30s
listeners:
  - { name: main, address: "127.0.0.1:0" }
upstreams:
  - { name: api, targets: ["@UP@"] }
defaults:
  authenticate:
    methods: ["jwt:corp"]
routes:
  - id: orders
    match: { path_prefix: /orders }
    upstream: api
    filters:
      - { kind: authenticate, methods: ["jwt:corp"], scopes: ["orders:write"] }
  - id: api
    match: { path_prefix: /api }
    upstream: api
"#;

async fn start(idp: &Idp, up: &FakeUpstream, keys: &str) -> GatewayProcess {
    gateway(
        CONFIG,
        &[
            ("ISS", idp.issuer.clone()),
            ("KEYS", keys.to_owned()),
            ("UP", up.addr.to_string()),
        ],
    )
}

async fn call(url: &str, token: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

/// Asserts a 401 invalid_token and the logged reason.
async fn refused(gw: &GatewayProcess, token: &str, reason: &str) {
    let r = call(&gw.url("main", "/api/x"), token).await;
    assert_eq!(r.status(), 401, "{reason}");
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\", error=\"invalid_token\"",
        "{reason}"
    );
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let ev = gw.wait_for_event(|e| e["request_id"] == rid.as_str());
    assert_eq!(ev["code"], reason, "{ev}");
    assert!(!ev.to_string().contains(token), "the token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_every_algorithm_verify_and_map_to_the_caller() {
    let idp = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let kids: Vec<String> = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        .into_iter()
        .map(|a| idp.add_key(a, true))
        .collect();
    let gw = start(&idp, &up, &format!("jwks_url: \"{}\"", idp.jwks_url())).await;
    let url = gw.url("main", "/api/x");
    for kid in &kids {
        let mut claims = idp.claims("orders-api", "user-42");
        claims["scope"] = json!("orders:read profile");
        claims["groups"] = json!(["staff", "bad\u{1}group"]);
        let token = idp.sign(kid, &claims);
        let r = call(&url, &token).await;
        assert_eq!(r.status(), 200, "{kid}");
        let echo: Value = r.json().await.unwrap();
        let h = &echo["headers"];
        assert_eq!(h["x-consumer-id"], json!(["user-42"]));
        assert_eq!(h["x-consumer-scopes"], json!(["orders:read profile"]));
        assert_eq!(
            h["x-consumer-groups"],
            json!(["staff"]),
            "unsafe values dropped"
        );
        assert_eq!(h["x-consumer-auth-method"], json!(["jwt"]));
        assert!(
            h.get("authorization").is_none(),
            "the token is not forwarded"
        );
    }
    // The route's scope: 403 insufficient_scope, then 200 with it.
    let token = idp.sign(&kids[0], &idp.claims("orders-api", "user-42"));
    let r = call(&gw.url("main", "/orders"), &token).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"orders:write\""
    );
    let mut claims = idp.claims("orders-api", "user-42");
    claims["scp"] = json!(["orders:write"]);
    let r = call(&gw.url("main", "/orders"), &idp.sign(&kids[1], &claims)).await;
    assert_eq!(r.status(), 200);
    // No token: a challenge without an error code.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\""
    );
}

fn b64(v: &Value) -> String {
    portcullis_testkit::idp::b64url(v.to_string().as_bytes())
}

/// HS256 over `header.payload` with `key` (for the confusion attack).
fn hs256(key: &[u8], header: &Value, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header {
            alg: Algorithm::HS256,
            kid: header["kid"].as_str().map(str::to_owned),
            ..Default::default()
        },
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_the_reason_logged() {
    let idp = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let kid = idp.add_key(Algorithm::RS256, true);
    let gw = start(&idp, &up, &format!("jwks_url: \"{}\"", idp.jwks_url())).await;
    let good = idp.claims("orders-api", "u1");
    assert_eq!(
        call(&gw.url("main", "/api/x"), &idp.sign(&kid, &good))
            .await
            .status(),
        200
    );

    let now = portcullis_testkit::idp::now();
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    refused(
        &gw,
        &idp.sign(&kid, &with("exp", json!(now - 120))),
        "token-expired",
    )
    .await;
    refused(
        &gw,
        &idp.sign(&kid, &with("nbf", json!(now + 600))),
        "token-not-yet-valid",
    )
    .await;
    refused(
        &gw,
        &idp.sign(&kid, &with("iat", json!(now + 600))),
        "issued-in-the-future",
    )
    .await;
    refused(
        &gw,
        &idp.sign(&kid, &with("aud", json!("billing-api"))),
        "wrong-audience",
    )
    .await;
    refused(
        &gw,
        &idp.sign(&kid, &with("iss", json!("https://evil.example"))),
        "issuer-not-accepted",
    )
    .await;
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(&gw, &idp.sign(&kid, &no_exp), "missing-claim").await;

    // alg "none": no signature at all.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&good)
    );
    refused(&gw, &none, "token-malformed").await;
    // Algorithm confusion: HS256 keyed with the issuer's public key.
    let confused = hs256(idp.public_pem(&kid).as_bytes(), &json!({"kid": kid}), &good);
    refused(&gw, &confused, "algorithm-not-allowed").await;
    // Tampered: a valid token's payload swapped for another subject.
    let token = idp.sign(&kid, &good);
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&with("sub", json!("admin"))),
        parts[2]
    );
    refused(&gw, &tampered, "bad-signature").await;
    // Signed by a key the provider never published.
    let rogue = idp.add_key(Algorithm::RS256, false);
    refused(&gw, &idp.sign(&rogue, &good), "unknown-kid").await;
    refused(&gw, "not.a.token", "token-malformed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_at_the_provider_fails_no_request() {
    let idp = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let old = idp.add_key(Algorithm::ES256, true);
    let gw = start(&idp, &up, &format!("jwks_url: \"{}\"", idp.jwks_url())).await;
    let url = gw.url("main", "/api/x");
    assert_eq!(
        call(&url, &idp.sign(&old, &idp.claims("orders-api", "u")))
            .await
            .status(),
        200
    );

    // Clients keep calling with tokens from the old key while the provider
    // publishes a new key and starts signing with it.
    let load = {
        let url = url.clone();
        let tokens: Vec<String> = (0..50)
            .map(|i| idp.sign(&old, &idp.claims("orders-api", &format!("u{i}"))))
            .collect();
        tokio::spawn(async move {
            let mut failed = 0;
            for t in tokens.iter().cycle().take(400) {
                if call(&url, t).await.status() != 200 {
                    failed += 1;
                }
            }
            failed
        })
    };
    let new = idp.add_key(Algorithm::ES256, true);
    let mut failed = 0;
    for i in 0..200 {
        let t = idp.sign(&new, &idp.claims("orders-api", &format!("n{i}")));
        if call(&url, &t).await.status() != 200 {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "tokens from the new key failed");
    assert_eq!(load.await.unwrap(), 0, "tokens from the old key failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_storm_fetches_at_the_bounded_rate() {
    let idp = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let kid = idp.add_key(Algorithm::EdDSA, true);
    let gw = start(&idp, &up, &format!("jwks_url: \"{}\"", idp.jwks_url())).await;
    let url = gw.url("main", "/api/x");
    assert_eq!(
        call(&url, &idp.sign(&kid, &idp.claims("orders-api", "u")))
            .await
            .status(),
        200
    );
    let rogue = idp.add_key(Algorithm::EdDSA, false);
    let before = idp.jwks_fetches();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        // Every token names a different unknown kid.
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some(format!("storm-{i}"));
        let t = idp.sign(&rogue, &idp.claims("orders-api", "u"));
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            b64(&serde_json::to_value(&header).unwrap()),
            parts[1],
            parts[2]
        );
        tasks.push(tokio::spawn(
            async move { call(&url, &forged).await.status() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    // One refetch for the whole storm, plus at most the background
    // refresh (every second) over the time it took.
    let background = started.elapsed().as_secs() as usize + 1;
    let fetched = idp.jwks_fetches() - before;
    assert!(
        fetched <= 1 + background,
        "{fetched} fetches for 200 unknown kids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_serve_while_the_key_server_is_down() {
    let idp = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let kid = idp.add_key(Algorithm::RS256, true);
    // Found through OIDC discovery.
    let gw = start(&idp, &up, &format!("oidc_discovery: \"{}\"", idp.issuer)).await;
    let url = gw.url("main", "/api/x");
    assert_eq!(
        call(&url, &idp.sign(&kid, &idp.claims("orders-api", "u")))
            .await
            .status(),
        200
    );
    idp.set_down(true);
    // Let background refreshes fail a few times.
    let fetches = idp.jwks_fetches();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        gw.stderr_contains("cannot fetch the issuer's keys"),
        "the refresh failure is reported"
    );
    // New tokens (not in the verified-token cache) still verify.
    for i in 0..5 {
        let t = idp.sign(&kid, &idp.claims("orders-api", &format!("d{i}")));
        assert_eq!(call(&url, &t).await.status(), 200);
    }
    assert_eq!(
        idp.jwks_fetches(),
        fetches,
        "the server was down: nothing fetched"
    );
    idp.set_down(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_accepts_several_issuers_each_with_its_own_keys() {
    let a = Idp::start().await;
    let b = Idp::start().await;
    let up = FakeUpstream::start("api").await;
    let ka = a.add_key(Algorithm::ES256, true);
    let kb = b.add_key(Algorithm::RS256, true);
    let config = format!(
        r#"
version: 1
admin: {{ enabled: false }}
authentication:
  lockout: {{ enabled: false }}
  jwt:
    - {{ name: a, issuer: "{}", audiences: [orders-api], keys: {{ jwks_url: "{}" }} }}
    - {{ name: b, issuer: "{}", audiences: [orders-api], keys: {{ jwks_url: "{}" }} }}
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams: [{{ name: api, targets: ["{}"] }}]
routes:
  - id: both
    match: {{ path_prefix: /both }}
    upstream: api
    filters: [{{ kind: authenticate, methods: ["jwt:a", "jwt:b"] }}]
  - id: only-a
    match: {{ path_prefix: /only-a }}
    upstream: api
    filters: [{{ kind: authenticate, methods: ["jwt:a"] }}]
"#,
        a.issuer,
        a.jwks_url(),
        b.issuer,
        b.jwks_url(),
        up.addr
    );
    let gw = GatewayProcess::start(bin(), &config, &[]);
    let ta = a.sign(&ka, &a.claims("orders-api", "from-a"));
    let tb = b.sign(&kb, &b.claims("orders-api", "from-b"));
    assert_eq!(call(&gw.url("main", "/both"), &ta).await.status(), 200);
    assert_eq!(call(&gw.url("main", "/both"), &tb).await.status(), 200);
    assert_eq!(call(&gw.url("main", "/only-a"), &ta).await.status(), 200);
    // B's token is not accepted where only A is, even cached as valid.
    refused_at(&gw, "/only-a", &tb, "issuer-not-accepted").await;
    // A token signed by B's key but claiming A's issuer: A's keys decide.
    let forged = b.sign(&kb, &a.claims("orders-api", "mallory"));
    refused_at(&gw, "/both", &forged, "unknown-kid").await;
}

async fn refused_at(gw: &GatewayProcess, path: &str, token: &str, reason: &str) {
    let r = call(&gw.url("main", path), token).await;
    assert_eq!(r.status(), 401, "{reason}");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let ev = gw.wait_for_event(|e| e["request_id"] == rid.as_str());
    assert_eq!(ev["code"], reason, "{ev}");
}
