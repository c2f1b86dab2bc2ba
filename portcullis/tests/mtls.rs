//! Client certificates (mutual TLS) through the real binary: verified
//! against the listener's CA and CRL, mapped to a consumer by SAN or CN,
//! optional or required per listener.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

const CONFIG: &str = r#"
version: 1
admin: { enabled: false }
authentication:
  store: { sqlite: creds.db }
  lockout: { enabled: false }
listeners:
  - name: optional
    address: "127.0.0.1:0"
    tls:
      certificates: [{ cert: server.pem, key: server.key }]
      client_auth: { ca_file: ca.pem, crl_files: [crl.pem], required: false }
  - name: required
    address: "127.0.0.1:0"
    tls:
      certificates: [{ cert: server.pem, key: server.key }]
      client_auth: { ca_file: ca.pem, crl_files: [crl.pem] }
upstreams:
  - { name: api, targets: ["@UP@"] }
routes:
  - id: api
    match: { path_prefix: /api }
    upstream: api
    filters: [{ kind: authenticate, methods: [mtls] }]
  - id: open
    match: { path_prefix: /open }
    upstream: api
    filters: [{ kind: authenticate, anonymous: true }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_map_to_consumers_and_revoked_ones_are_refused() {
    let up = FakeUpstream::start("api").await;
    let ca = TestCa::new();
    let (server_cert, server_key) = ca.issue(&["api.test"]);
    let alice = ca.issue_client("alice", "alice@example.com", 1001);
    let mallory = ca.issue_client("mallory", "mallory@example.com", 666);
    let stranger = ca.issue_client("stranger", "stranger@example.com", 1002);
    let crl = ca.crl(&[666]);
    let gw = GatewayProcess::start(
        bin(),
        &fill(CONFIG, &[("UP", up.addr.to_string())]),
        &[
            ("server.pem", server_cert.as_bytes()),
            ("server.key", server_key.as_bytes()),
            ("ca.pem", ca.pem().as_bytes()),
            ("crl.pem", crl.as_bytes()),
        ],
    );
    // Consumers named by the certificates' e-mail SAN and CN.
    for name in ["mallory", "alice@example.com"] {
        let out = Command::new(bin())
            .args(["consumers", "create", "--config"])
            .arg(gw.config_path())
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let addr = gw.addr("optional");
    let url = |p: &str| format!("https://api.test:{}{p}", addr.port());
    let with = |id: Option<&(String, String, u64)>| {
        ca.reqwest_with_identity(
            &["api.test"],
            addr,
            id.map(|(c, k, _)| (c.as_str(), k.as_str())),
        )
    };

    // The gateway polls the store: wait until it knows the last consumer
    // created (so both).
    let client = with(Some(&alice));
    let mut r = client.get(url("/api/x")).send().await.unwrap();
    for _ in 0..50 {
        if r.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        r = client.get(url("/api/x")).send().await.unwrap();
    }
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(
        echo["headers"]["x-consumer-name"],
        serde_json::json!(["alice@example.com"])
    );
    assert_eq!(
        echo["headers"]["x-consumer-auth-method"],
        serde_json::json!(["mtls"])
    );

    // No certificate: the optional listener lets the client in, and the
    // route that needs one refuses it.
    let anon = with(None);
    assert_eq!(anon.get(url("/open")).send().await.unwrap().status(), 200);
    assert_eq!(anon.get(url("/api/x")).send().await.unwrap().status(), 401);

    // A valid certificate that names no consumer: 401, logged.
    let r = with(Some(&stranger))
        .get(url("/api/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let ev = gw.wait_for_event(|e| e["request_id"] == rid.as_str());
    assert_eq!(ev["code"], "unknown-certificate");
    assert!(
        ev["detail"].as_str().unwrap().contains("cn stranger"),
        "{ev}"
    );

    // A revoked certificate does not get through the handshake, even
    // though its CN names a consumer.
    assert!(with(Some(&mallory)).get(url("/open")).send().await.is_err());

    // The required listener refuses clients without a certificate.
    let req_addr = gw.addr("required");
    let required = ca.reqwest_with_identity(&["api.test"], req_addr, None);
    let r = required
        .get(format!("https://api.test:{}/open", req_addr.port()))
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    let required = ca.reqwest_with_identity(
        &["api.test"],
        req_addr,
        Some((alice.0.as_str(), alice.1.as_str())),
    );
    let r = required
        .get(format!("https://api.test:{}/api/x", req_addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_client_certificates_authorize_the_management_api() {
    let up = FakeUpstream::start("api").await;
    let ca = TestCa::new();
    let (server_cert, server_key) = ca.issue(&["admin.test"]);
    let operator = ca.issue_client("operator", "ops@example.com", 7);
    let config = format!(
        r#"
version: 1
admin:
  address: "127.0.0.1:0"
  tls:
    certificates: [{{ cert: server.pem, key: server.key }}]
    client_auth: {{ ca_file: ca.pem }}
authentication:
  store: {{ sqlite: creds.db }}
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams: [{{ name: api, targets: ["{}"] }}]
routes:
  - id: api
    match: {{ path_prefix: / }}
    upstream: api
    filters: [{{ kind: authenticate, methods: [api_key] }}]
"#,
        up.addr
    );
    let gw = GatewayProcess::start(
        bin(),
        &config,
        &[
            ("server.pem", server_cert.as_bytes()),
            ("server.key", server_key.as_bytes()),
            ("ca.pem", ca.pem().as_bytes()),
        ],
    );
    let admin = gw.admin_addr();
    let url = format!("https://admin.test:{}/v1/consumers", admin.port());
    let with_cert = ca.reqwest_with_identity(
        &["admin.test"],
        admin,
        Some((operator.0.as_str(), operator.1.as_str())),
    );
    let r = with_cert
        .post(&url)
        .json(&serde_json::json!({"name": "created-by-cert"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let listed = with_cert
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("created-by-cert"), "{listed}");
    // Without a certificate the handshake itself fails.
    let without = ca.reqwest_with_identity(&["admin.test"], admin, None);
    assert!(without.get(&url).send().await.is_err());
}
