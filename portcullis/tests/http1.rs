//! The HTTP/1.1 codec through the real binary: pipelining, chunked bodies
//! both ways, `100 Continue`, HTTP/1.0 clients, `HEAD`, connection reuse
//! after a refused request, and heads refused before routing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::*;
use raw::RawResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
version: 1
admin: { address: "127.0.0.1:0" }
listeners:
  - name: main
    address: "127.0.0.1:0"
upstreams:
  - name: api
    targets: ["@UP@"]
defaults:
  authenticate:
    anonymous: true
  limits: { max_body: 4KiB }
routes:
  - id: everything
    match: { path_prefix: / , methods: [GET, HEAD, POST, PUT] }
    upstream: api
"#;

const WAIT: Duration = Duration::from_secs(5);

fn start(up: &FakeUpstream) -> GatewayProcess {
    gateway(CONFIG, &[("UP", up.addr.to_string())])
}

async fn connect(gw: &GatewayProcess) -> TcpStream {
    TcpStream::connect(gw.addr("main")).await.unwrap()
}

async fn next(s: &mut TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    raw::next_response(s, buf, false, WAIT)
        .await
        .expect("a whole response")
}

/// Whether the server closed the connection (within the wait).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(WAIT, s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let mut s = connect(&gw).await;
    let mut all = String::new();
    for path in ["/a", "/b", "/c"] {
        all.push_str(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    s.write_all(all.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for path in ["/a", "/b", "/c"] {
        let r = next(&mut s, &mut buf).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["uri"], path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_are_decoded_and_reframed_both_ways() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let mut s = connect(&gw).await;
    // Chunk extensions and a trailer are accepted and not forwarded.
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["body"], "hello world");
    assert_eq!(echo["headers"]["transfer-encoding"][0], "chunked");
    assert!(echo["headers"].get("x-trailer").is_none());

    // An upstream body of unknown length reaches the client chunked.
    s.write_all(b"GET /stream/3 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, "chunk-0;chunk-1;chunk-2;");
    assert!(r.header("content-length").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_bodies_get_400_and_the_connection_closes() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let mut s = connect(&gw).await;
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          zz\r\nhello\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "bad-body");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed(&mut s).await);
    gw.wait_for_event(|e| e["code"] == "bad-body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_when_the_body_is_wanted() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let mut s = connect(&gw).await;
    s.write_all(
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    // The client waits for the interim answer before sending the body.
    let mut interim = vec![0u8; 25];
    tokio::time::timeout(WAIT, s.read_exact(&mut interim))
        .await
        .expect("100 Continue in time")
        .unwrap();
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut buf = Vec::new();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "hello");

    // Refused from the head alone: the final answer comes without a 100.
    let mut s = connect(&gw).await;
    s.write_all(
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.status, 413);
    assert!(closed(&mut s).await, "the unsent body cannot be skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_clients_get_lengths_and_their_connection_semantics() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let mut s = connect(&gw).await;
    s.write_all(b"GET /echo HTTP/1.0\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed(&mut s).await);

    // Keep-alive asked for: granted and honoured.
    let mut s = connect(&gw).await;
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let r = next(&mut s, &mut buf).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }

    // A body of unknown length cannot be chunked for HTTP/1.0: it ends with
    // the connection.
    let mut s = connect(&gw).await;
    s.write_all(b"GET /stream/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let raw = raw::read_until_close(&mut s, WAIT).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(!text.contains("transfer-encoding"), "{text}");
    assert!(text.ends_with("\r\n\r\nchunk-0;chunk-1;"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_responses_carry_the_length_but_no_body() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let mut s = connect(&gw).await;
    s.write_all(b"HEAD /bytes/100 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = raw::next_response(&mut s, &mut buf, true, WAIT)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100"));
    // Nothing follows the head: the next response starts right after it.
    s.write_all(b"GET /bytes/3 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.body, "xxx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_with_a_small_body_keeps_the_connection() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let mut s = connect(&gw).await;
    // 405 before the body is read; the body is already here and is skipped.
    s.write_all(b"DELETE /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, PUT"));
    assert!(r.header("connection").is_none());
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = next(&mut s, &mut buf).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_that_break_http1_rules_are_refused_before_routing() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up);
    let cases: [(&str, u16, &str); 6] = [
        ("GET /echo HTTP/1.1\r\n\r\n", 400, "bad-request"),
        (
            "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            "bad-request",
        ),
        (
            "GET /echo HTTP/1.1\r\nHost: t\r\n Folded: x\r\n\r\n",
            400,
            "bad-request",
        ),
        (
            "GET /echo HTTP/1.1\r\nHost: t\r\nExpect: magic\r\n\r\n",
            417,
            "expectation-failed",
        ),
        (
            "GET /echo HTTP/2.0\r\nHost: t\r\n\r\n",
            505,
            "http-version-not-supported",
        ),
        (
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            400,
            "bad-request",
        ),
    ];
    for (req, status, code) in cases {
        let raw = raw::exchange(gw.addr("main"), req.as_bytes(), WAIT).await;
        let r = raw::parse(&raw).unwrap_or_else(|| panic!("no answer to {req:?}"));
        assert_eq!(r.status, status, "{req:?}");
        let problem = r.json();
        assert_eq!(problem["code"], code, "{req:?}");
        assert!(problem["request_id"].is_string());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.header("connection"), Some("close"));
        // The same hardening as every other response.
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(up.requests(), 0);
    // Each refusal is logged and counted like any other request.
    let lines = gw.access_log_when(|ls| ls.iter().any(|l| l["status"] == 417));
    let line = lines.iter().find(|l| l["status"] == 417).unwrap();
    assert_eq!(line["decided_by"], "http");
    assert_eq!(line["reason"], "expectation-failed");
    gw.wait_for_event(|e| e["code"] == "expectation-failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_the_response_is_disconnected() {
    let up = FakeUpstream::start("api").await;
    let config = CONFIG.replace(
        "    address: \"127.0.0.1:0\"\nupstreams:",
        "    address: \"127.0.0.1:0\"\n    limits: { body_timeout: 1s }\nupstreams:",
    );
    assert_ne!(config, CONFIG);
    let gw = gateway(&config, &[("UP", up.addr.to_string())]);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(gw.addr("main")).await.unwrap();
    // 64 MiB: far more than the socket buffers between the two hold.
    s.write_all(b"GET /bytes/67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let active = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("portcullis_active_connections{listener=\"main\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    // The connection is open while the response is being written...
    let mut seen_open = false;
    for _ in 0..50 {
        if active(&gw.metrics().await).as_deref() == Some("1") {
            seen_open = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_open);
    // ...and closed by the gateway once the client has taken nothing for
    // the send timeout, though the client never closes it.
    let mut closed_by_gateway = false;
    for _ in 0..100 {
        if active(&gw.metrics().await).as_deref() == Some("0") {
            closed_by_gateway = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed_by_gateway, "the stalled connection is still open");
    drop(s);
}
