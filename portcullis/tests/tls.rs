//! TLS through the real binary: versions, SNI certificate choice, HTTP/2 by
//! ALPN, HSTS, certificate reload, h2c, and verified TLS to upstreams.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
version: 1
admin: { enabled: false }
listeners:
  - name: tls
    address: "127.0.0.1:0"
    tls:
      certificates:
        - { cert: a.pem, key: a.key }
        - { cert: b.pem, key: b.key }
  - name: tls13
    address: "127.0.0.1:0"
    tls:
      min_version: "1.3"
      certificates:
        - { cert: a.pem, key: a.key }
  - name: h2c
    address: "127.0.0.1:0"
    h2c: true
upstreams:
  - name: api
    targets: ["@UP@"]
defaults:
  authenticate:
    anonymous: true
routes:
  - id: all
    match: { path_prefix: / }
    upstream: api
"#;

struct Setup {
    ca: TestCa,
    gw: GatewayProcess,
    _up: FakeUpstream,
}

async fn setup() -> Setup {
    let up = FakeUpstream::start("api").await;
    let ca = TestCa::new();
    let (a_cert, a_key) = ca.issue(&["a.test", "*.a.test"]);
    let (b_cert, b_key) = ca.issue(&["b.test"]);
    let gw = GatewayProcess::start(
        bin(),
        &fill(CONFIG, &[("UP", up.addr.to_string())]),
        &[
            ("a.pem", a_cert.as_bytes()),
            ("a.key", a_key.as_bytes()),
            ("b.pem", b_cert.as_bytes()),
            ("b.key", b_key.as_bytes()),
        ],
    );
    Setup { ca, gw, _up: up }
}

/// Handshakes with `sni` and returns the leaf certificate and protocol.
async fn handshake(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    sni: &str,
) -> std::io::Result<(
    CertificateDer<'static>,
    rustls::ProtocolVersion,
    tokio_rustls::client::TlsStream<TcpStream>,
)> {
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await?;
    let (_, session) = stream.get_ref();
    let leaf = session.peer_certificates().unwrap()[0].clone().into_owned();
    let version = session.protocol_version().unwrap();
    Ok((leaf, version, stream))
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_certificates_by_sni() {
    let s = setup().await;
    let both = s.ca.client_config(
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[b"http/1.1"],
    );
    let tls12 =
        s.ca.client_config(&[&rustls::version::TLS12], &[b"http/1.1"]);
    let a_leaf = der(&std::fs::read_to_string(s.gw.dir().join("a.pem")).unwrap());
    let b_leaf = der(&std::fs::read_to_string(s.gw.dir().join("b.pem")).unwrap());
    let addr = s.gw.addr("tls");

    let (leaf, v, mut stream) = handshake(both.clone(), addr, "a.test").await.unwrap();
    assert_eq!(leaf, a_leaf);
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    let resp = raw::parse(&out).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(resp.json()["headers"]["x-forwarded-proto"][0], "https");

    assert_eq!(
        handshake(both.clone(), addr, "b.test").await.unwrap().0,
        b_leaf
    );
    assert_eq!(
        handshake(both.clone(), addr, "x.a.test").await.unwrap().0,
        a_leaf,
        "wildcard name"
    );
    // TLS 1.2 is accepted where allowed, refused where 1.3 is the minimum.
    let (_, v, _) = handshake(tls12.clone(), addr, "a.test").await.unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_2);
    assert!(
        handshake(tls12, s.gw.addr("tls13"), "a.test")
            .await
            .is_err()
    );
    // A name no certificate covers gets the default one, which the client rejects.
    assert!(handshake(both, addr, "c.test").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_by_alpn_and_h2c_by_prior_knowledge() {
    let s = setup().await;
    let c = s.ca.reqwest(&["a.test"], s.gw.addr("tls"), true);
    let resp = c
        .get(format!("https://a.test:{}/echo", s.gw.addr("tls").port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("strict-transport-security"));
    let echo: serde_json::Value = resp.json().await.unwrap();
    // The upstream is spoken to in HTTP/1.1, with the client's authority as Host.
    assert_eq!(
        echo["headers"]["host"][0],
        format!("a.test:{}", s.gw.addr("tls").port())
    );

    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2c.get(s.gw.url("h2c", "/echo")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("strict-transport-security"));
    // And HTTP/1.1 still works on the h2c listener.
    let resp = client().get(s.gw.url("h2c", "/echo")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_when_their_files_change() {
    let s = setup().await;
    let config =
        s.ca.client_config(&[&rustls::version::TLS13], &[b"http/1.1"]);
    let addr = s.gw.addr("tls");
    let old = der(&std::fs::read_to_string(s.gw.dir().join("b.pem")).unwrap());
    assert_eq!(
        handshake(config.clone(), addr, "b.test").await.unwrap().0,
        old
    );

    let (cert, key) = s.ca.issue(&["b.test"]);
    replace_certificate(s.gw.dir(), "b", &cert, &key);
    let new = der(&cert);
    assert!(
        served_eventually(config, addr, "b.test", &new).await,
        "the new certificate was not served"
    );
    assert!(s.gw.stderr_contains("certificates reloaded"));
}

/// Swaps a certificate and its key the way deployment tools do: new files
/// renamed into place.
fn replace_certificate(dir: &std::path::Path, name: &str, cert: &str, key: &str) {
    std::fs::write(dir.join(format!("{name}.key.new")), key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem.new")), cert).unwrap();
    std::fs::rename(
        dir.join(format!("{name}.key.new")),
        dir.join(format!("{name}.key")),
    )
    .unwrap();
    std::fs::rename(
        dir.join(format!("{name}.pem.new")),
        dir.join(format!("{name}.pem")),
    )
    .unwrap();
}

/// Handshakes until `addr` serves `want` for `sni`, for up to ten seconds.
async fn served_eventually(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    sni: &str,
    want: &CertificateDer<'static>,
) -> bool {
    for _ in 0..100 {
        if handshake(config.clone(), addr, sni).await.unwrap().0 == *want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listeners_certificate_is_reloaded_too() {
    let up = FakeUpstream::start("api").await;
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["admin.test"]);
    let config = format!(
        r#"
version: 1
admin:
  address: "127.0.0.1:0"
  tls:
    certificates: [{{ cert: admin.pem, key: admin.key }}]
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams: [{{ name: api, targets: ["{}"] }}]
defaults:
  authenticate:
    anonymous: true
routes:
  - id: all
    match: {{ path_prefix: / }}
    upstream: api
"#,
        up.addr
    );
    let gw = GatewayProcess::start(
        bin(),
        &config,
        &[
            ("admin.pem", cert.as_bytes()),
            ("admin.key", key.as_bytes()),
        ],
    );
    let admin = gw.admin_addr();
    let client = ca.client_config(&[&rustls::version::TLS13], &[b"http/1.1"]);
    let old = der(&cert);
    assert_eq!(
        handshake(client.clone(), admin, "admin.test")
            .await
            .unwrap()
            .0,
        old
    );

    let (cert, key) = ca.issue(&["admin.test"]);
    replace_certificate(gw.dir(), "admin", &cert, &key);
    let new = der(&cert);
    assert!(
        served_eventually(client, admin, "admin.test", &new).await,
        "the admin listener still serves its old certificate"
    );
    assert!(gw.stderr_contains("certificates reloaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_is_verified() {
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["api.internal"]);
    let up = FakeUpstream::start_tls("secure", &cert, &key).await;
    let other_ca = TestCa::new();
    let config = r#"
version: 1
admin: { enabled: false }
listeners:
  - { name: main, address: "127.0.0.1:0" }
upstreams:
  - name: good
    targets: ["@UP@"]
    tls: { ca_file: ca.pem, server_name: api.internal }
  - name: wrong-ca
    targets: ["@UP@"]
    tls: { ca_file: other.pem, server_name: api.internal }
  - name: wrong-name
    targets: ["@UP@"]
    tls: { ca_file: ca.pem, server_name: other.internal }
defaults:
  authenticate:
    anonymous: true
routes:
  - { id: good, match: { path_prefix: /good }, upstream: good }
  - { id: wrong-ca, match: { path_prefix: /wrong-ca }, upstream: wrong-ca }
  - { id: wrong-name, match: { path_prefix: /wrong-name }, upstream: wrong-name }
"#;
    let gw = GatewayProcess::start(
        bin(),
        &fill(config, &[("UP", up.addr.to_string())]),
        &[
            ("ca.pem", ca.pem().as_bytes()),
            ("other.pem", other_ca.pem().as_bytes()),
        ],
    );
    let c = client();
    let good = c.get(gw.url("main", "/good")).send().await.unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(good.headers()["x-upstream"], "secure");
    for bad in ["/wrong-ca", "/wrong-name"] {
        let resp = c.get(gw.url("main", bad)).send().await.unwrap();
        assert_eq!(resp.status(), 502, "{bad}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "upstream-failed");
    }
}
