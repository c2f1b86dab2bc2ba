//! API key authentication through the real binary: keys managed with the
//! CLI on the gateway's SQLite store, verified on every request, rotated
//! and revoked while the gateway runs; identity headers, challenges,
//! lock-out, and no secret in the logs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const CONFIG: &str = r#"
version: 1
admin: { enabled: false }
authentication:
  store: { sqlite: creds.db }
  lockout: { max_failures: 4, window: 1m, duration: 2s }
listeners:
  - { name: main, address: "127.0.0.1:0" }
upstreams:
  - { name: api, targets: ["@UP@"] }
defaults:
  authenticate:
    methods: [api_key]
routes:
  - id: orders
    match: { path_prefix: /orders }
    upstream: api
    filters:
      - { kind: authenticate, methods: [api_key], scopes: ["orders:read"] }
  - id: legacy
    match: { path_prefix: /legacy }
    upstream: api
    filters:
      - { kind: authenticate, methods: [basic, api_key] }
  - id: public
    match: { path_prefix: /public }
    upstream: api
    filters:
      - { kind: authenticate, anonymous: true }
  - id: api
    match: { path_prefix: /api }
    upstream: api
"#;

fn store_reloads(gw: &GatewayProcess) -> usize {
    gw.stderr_text().matches("credential store changed").count()
}

/// Runs a CLI command that changes the store, and waits until the running
/// gateway has picked the change up (it polls the store).
fn cli(gw: &GatewayProcess, args: &[&str]) -> String {
    let before = store_reloads(gw);
    let out = cli_read(gw, args);
    assert!(
        wait_until(Duration::from_secs(10), || store_reloads(gw) > before),
        "the gateway did not pick up {args:?}"
    );
    out
}

/// Runs the CLI against the gateway's config; returns stdout, panicking
/// with stderr on failure.
fn cli_read(gw: &GatewayProcess, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args.iter().take(2))
        .arg("--config")
        .arg(gw.config_path())
        .args(args.iter().skip(2))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = client().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

async fn status(url: &str, key: &str) -> u16 {
    get(url, &[("x-api-key", key)]).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_created_rotated_and_revoked_with_the_cli() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(CONFIG, &[("UP", up.addr.to_string())]);
    let url = gw.url("main", "/api/x");

    let consumer = cli(&gw, &["consumers", "create", "billing", "--group", "ops"]);
    assert!(consumer.trim().starts_with("c_"), "{consumer}");
    let key = cli(
        &gw,
        &[
            "keys",
            "create",
            "--consumer",
            "billing",
            "--scope",
            "orders:read",
        ],
    )
    .trim()
    .to_owned();
    assert!(key.starts_with("pcl_"), "{key}");
    let key_id = key.split('_').nth(1).unwrap().to_owned();
    // The key file is private and the store holds no key text.
    let db = std::fs::read(gw.dir().join("creds.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&key));
    assert!(gw.dir().join("creds.db.key").exists());

    assert_eq!(status(&url, &key).await, 200);
    // The upstream sees the verified identity, not the key, and not the
    // identity the client claimed.
    let r = get(
        &url,
        &[
            ("x-api-key", &key),
            ("x-consumer-id", "c_admin"),
            ("x-consumer-groups", "admins"),
        ],
    )
    .await;
    let echo: Value = r.json().await.unwrap();
    let h = &echo["headers"];
    assert_eq!(h["x-consumer-id"], serde_json::json!([consumer.trim()]));
    assert_eq!(h["x-consumer-name"], serde_json::json!(["billing"]));
    assert_eq!(h["x-consumer-groups"], serde_json::json!(["ops"]));
    assert_eq!(h["x-consumer-scopes"], serde_json::json!(["orders:read"]));
    assert!(h.get("x-api-key").is_none(), "{h}");
    // Authorization: ApiKey works too, and is not forwarded either.
    let r = get(&url, &[("authorization", &format!("ApiKey {key}"))]).await;
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert!(echo["headers"].get("authorization").is_none());
    // A public route strips spoofed identity headers too.
    let echo: Value = get(&gw.url("main", "/public"), &[("x-consumer-id", "c_admin")])
        .await
        .json()
        .await
        .unwrap();
    assert!(echo["headers"].get("x-consumer-id").is_none(), "{echo}");

    // Listing shows the key's id, never its secret.
    let listed = cli_read(&gw, &["keys", "list", "--consumer", "billing"]);
    assert!(
        listed.contains(&key_id) && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key[15..]), "{listed}");

    // Rotation with an overlap: old and new keys both work.
    let new_key = cli(&gw, &["keys", "rotate", &key_id, "--overlap", "1h"])
        .trim()
        .to_owned();
    assert_eq!(status(&url, &new_key).await, 200);
    assert_eq!(status(&url, &key).await, 200);
    // The new key kept the scope.
    let orders = gw.url("main", "/orders");
    assert_eq!(get(&orders, &[("x-api-key", &new_key)]).await.status(), 200);

    // Revocation: the old key stops, the new one goes on.
    cli(&gw, &["keys", "revoke", &key_id]);
    assert_eq!(status(&url, &key).await, 401, "revoked: refused at once");
    assert_eq!(get(&url, &[("x-api-key", &new_key)]).await.status(), 200);

    // Secrets never reach the logs: only the masked key id.
    let out = gw.stdout_lines().join("\n");
    for k in [&key, &new_key] {
        assert!(!out.contains(&k[15..]), "a key secret was logged");
    }
    let ev = gw.wait_for_event(|e| e["code"] == "key-revoked");
    assert_eq!(ev["detail"], format!("api_key pcl_{key_id}_***"), "{ev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_use_the_standard_challenges() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(CONFIG, &[("UP", up.addr.to_string())]);
    cli(&gw, &["consumers", "create", "reader"]);
    let key = cli(&gw, &["keys", "create", "--consumer", "reader"])
        .trim()
        .to_owned();
    let url = gw.url("main", "/api/x");
    assert_eq!(status(&url, &key).await, 200);

    // No credential: 401, a challenge without an error code.
    let r = get(&url, &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "ApiKey realm=\"portcullis\""
    );
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "unauthenticated");
    assert_eq!(body["request_id"], rid.as_str());

    // A tampered key (checksum fails), and one with a valid checksum but a
    // secret that is not the stored one: the same answer for both.
    let mut tampered = key.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other = {
        let k = cli(&gw, &["keys", "create", "--consumer", "reader"]);
        // Same id as `key`, other secret: shaped right, checksum right
        // for its own text, unknown hash.
        let id = key.split('_').nth(1).unwrap();
        let rest = k.trim().split('_').nth(2).unwrap().to_owned();
        let body = format!("pcl_{id}_{}", &rest[..32]);
        format!("{body}{}", checksum(&body))
    };
    for bad in [&tampered, &other] {
        let r = get(&url, &[("x-api-key", bad)]).await;
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            "ApiKey realm=\"portcullis\", error=\"invalid_token\""
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid-credential");
    }
    // The log says which part was wrong; the response did not.
    gw.wait_for_event(|e| e["code"] == "key-checksum");
    gw.wait_for_event(|e| e["code"] == "key-mismatch");

    // Two keys at once are ambiguous.
    let r = get(
        &url,
        &[
            ("x-api-key", &key),
            ("authorization", &format!("ApiKey {key}")),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);

    // Missing scope: 403 insufficient_scope.
    let r = get(&gw.url("main", "/orders"), &[("x-api-key", &key)]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        "ApiKey realm=\"portcullis\", error=\"insufficient_scope\", scope=\"orders:read\""
    );

    // A key in the query string: refused, whatever the key.
    let r = get(&gw.url("main", &format!("/api/x?api_key={key}")), &[]).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "credential-in-query");
}

/// The key format's check characters (CRC-32, six base62 digits).
fn checksum(body: &str) -> String {
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u64::from(crc32(body.as_bytes()));
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = B62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_client_out_for_a_while() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(CONFIG, &[("UP", up.addr.to_string())]);
    cli(&gw, &["consumers", "create", "app"]);
    let key = cli(&gw, &["keys", "create", "--consumer", "app"])
        .trim()
        .to_owned();
    let url = gw.url("main", "/api/x");
    assert_eq!(status(&url, &key).await, 200);

    for i in 0..4 {
        let r = get(&url, &[("x-api-key", &format!("pcl_guess{i:05}_x"))]).await;
        assert_eq!(r.status(), 401);
    }
    // Locked out: even the right key gets 429 with Retry-After.
    let r = get(&url, &[("x-api-key", &key)]).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "locked-out");
    let ev = gw.wait_for_event(|e| e["event"] == "auth_locked_out" && e["code"] == "locked-out");
    assert!(
        ev["detail"]
            .as_str()
            .unwrap()
            .starts_with("client 127.0.0.1"),
        "{ev}"
    );
    assert_eq!(
        up.requests(),
        1,
        "nothing reached the upstream while locked out"
    );

    // The lock-out expires.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get(&url, &[("x-api-key", &key)]).await.status(), 200);
}

/// A management token from `portcullis admin-token`: (token, hash line).
fn admin_token() -> (String, String) {
    let out = Command::new(bin()).arg("admin-token").output().unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let err = String::from_utf8(out.stderr).unwrap();
    let hash = err
        .split('"')
        .find(|s| s.starts_with("sha256:"))
        .expect("the hash line")
        .to_owned();
    (token, hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_manages_keys_with_immediate_effect() {
    let (token, hash) = admin_token();
    let up = FakeUpstream::start("api").await;
    let config = CONFIG.replace(
        "admin: { enabled: false }",
        &format!("admin: {{ address: \"127.0.0.1:0\", token_hash: \"{hash}\" }}"),
    );
    let gw = gateway(&config, &[("UP", up.addr.to_string())]);
    let c = client();
    let admin = |path: &str| gw.admin_url(path);
    let bearer = format!("Bearer {token}");

    // Without the token, or with another one: 401.
    let r = c.get(admin("/v1/consumers")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"portcullis-admin\""
    );
    let r = c
        .get(admin("/v1/consumers"))
        .header("authorization", "Bearer pca_guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let post = |path: &str, body: Value| {
        c.post(admin(path))
            .header("authorization", &bearer)
            .json(&body)
            .send()
    };
    let r = post(
        "/v1/consumers",
        serde_json::json!({"name": "mobile", "groups": ["apps"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let consumer: Value = r.json().await.unwrap();
    let r = post("/v1/consumers", serde_json::json!({"name": "mobile"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = post("/v1/consumers", serde_json::json!({"name": "bad name"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = post(
        "/v1/keys",
        serde_json::json!({"consumer": "mobile", "scopes": ["orders:read"], "expires_in": "30d"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["consumer_id"], consumer["id"]);
    assert!(created["expires_at"].as_i64().is_some());

    // Usable at once, with no wait for a poll.
    let url = gw.url("main", "/orders/1");
    assert_eq!(status(&url, &key).await, 200);

    // Listing never shows the secret.
    let listed = c
        .get(admin("/v1/keys?consumer=mobile"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains(&id) && !listed.contains(&key[15..]),
        "{listed}"
    );

    // Rotate without overlap, then revoke: each effective on the next request.
    let r = post(&format!("/v1/keys/{id}/rotate"), serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rotated: Value = r.json().await.unwrap();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(status(&url, &key).await, 401);
    assert_eq!(status(&url, &new_key).await, 200);
    let new_id = rotated["id"].as_str().unwrap();
    let r = post(&format!("/v1/keys/{new_id}/revoke"), Value::Null)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(status(&url, &new_key).await, 401);
    let r = post("/v1/keys/nokey/revoke", Value::Null).await.unwrap();
    assert_eq!(r.status(), 404);

    // Deleting the consumer removes its keys from the store.
    let r = c
        .delete(admin("/v1/consumers/mobile"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let keys: Value = c
        .get(admin("/v1/keys"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_off_without_a_token_hash() {
    let up = FakeUpstream::start("api").await;
    let config = CONFIG.replace(
        "admin: { enabled: false }",
        "admin: { address: \"127.0.0.1:0\" }",
    );
    let gw = gateway(&config, &[("UP", up.addr.to_string())]);
    let r = client()
        .get(gw.admin_url("/v1/consumers"))
        .header("authorization", "Bearer anything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "management-off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_from_the_cli_verify_against_argon2id_hashes() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(CONFIG, &[("UP", up.addr.to_string())]);
    cli(&gw, &["consumers", "create", "printer"]);
    // The password comes from standard input, never the command line.
    let before = store_reloads(&gw);
    let mut child = Command::new(bin())
        .args(["basic", "set", "--config"])
        .arg(gw.config_path())
        .args(["--consumer", "printer", "--username", "printer-1"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "correct horse battery staple").unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert!(wait_until(Duration::from_secs(10), || store_reloads(&gw) > before));
    let db = std::fs::read(gw.dir().join("creds.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("horse battery"));

    let url = gw.url("main", "/legacy/print");
    let basic = |u: &str, p: &str| {
        let c = client();
        let url = url.clone();
        let (u, p) = (u.to_owned(), p.to_owned());
        async move { c.get(url).basic_auth(u, Some(p)).send().await.unwrap() }
    };
    for _ in 0..3 {
        let r = basic("printer-1", "correct horse battery staple").await;
        assert_eq!(r.status(), 200);
        let echo: Value = r.json().await.unwrap();
        assert_eq!(
            echo["headers"]["x-consumer-name"],
            serde_json::json!(["printer"])
        );
        assert_eq!(
            echo["headers"]["x-consumer-auth-method"],
            serde_json::json!(["basic"])
        );
        assert!(echo["headers"].get("authorization").is_none());
    }
    for (user, pass, reason) in [
        ("printer-1", "wrong password!", "wrong-password"),
        ("nobody", "correct horse battery staple", "unknown-user"),
    ] {
        let r = basic(user, pass).await;
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"portcullis\", charset=\"UTF-8\", error=\"invalid_token\""
        );
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let ev = gw.wait_for_event(|e| e["request_id"] == rid.as_str());
        assert_eq!(ev["code"], reason);
        assert!(!ev.to_string().contains(pass));
    }
    // The route takes either method and challenges with both.
    let r = client().get(&url).send().await.unwrap();
    let challenges: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");

    // Removing the username stops it at once for the gateway (after its poll).
    cli(&gw, &["basic", "delete", "printer-1"]);
    assert_eq!(
        basic("printer-1", "correct horse battery staple")
            .await
            .status(),
        401
    );
}
