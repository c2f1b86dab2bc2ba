//! Limits through the real binary: body size (declared and streamed),
//! slow clients (head and body), request smuggling, header size and count,
//! the connection cap and idle keep-alive connections.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
version: 1
admin: { address: "127.0.0.1:0" }
listeners:
  - name: main
    address: "127.0.0.1:0"
    limits:
      max_connections: @MAXCONN@
      max_header_bytes: 2KiB
      max_headers: 20
      header_timeout: @HEADER_TIMEOUT@
      body_timeout: 500ms
      idle_timeout: 700ms
upstreams:
  - name: api
    targets: ["@UP@"]
defaults:
  authenticate:
    anonymous: true
  limits: { max_body: 1KiB }
routes:
  - id: all
    match: { path_prefix: / }
    upstream: api
"#;

fn start(up: &FakeUpstream, max_conn: usize, header_timeout: &str) -> GatewayProcess {
    gateway(
        CONFIG,
        &[
            ("UP", up.addr.to_string()),
            ("MAXCONN", max_conn.to_string()),
            ("HEADER_TIMEOUT", header_timeout.to_owned()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_oversized_body_is_refused_before_it_is_read() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up, 100, "5s");
    // The body is never sent: the answer must come from the headers alone.
    let resp = raw::request(
        gw.addr("main"),
        "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 413);
    let body = resp.json();
    assert_eq!(body["code"], "body-too-large");
    assert_eq!(body["detail"], "the limit is 1024 bytes");
    assert_eq!(up.requests(), 0);
    let ev = gw.wait_for_event(|e| e["code"] == "body-too-large");
    assert_eq!(ev["event"], "limit_exceeded");

    // At the limit is fine.
    let ok = client()
        .post(gw.url("main", "/upload"))
        .body(vec![b'a'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_oversized_body_is_refused_when_it_crosses_the_limit() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up, 100, "5s");
    let chunk = "a".repeat(600);
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let resp = raw::request(gw.addr("main"), &req).await;
    assert_eq!(resp.status, 413, "{}", resp.body);
    assert_eq!(resp.json()["code"], "body-too-large");
    let id = resp.header("x-request-id").unwrap().to_owned();
    let line = gw.access_entry(&id);
    assert_eq!(line["status"], 413);
    assert_eq!(line["reason"], "body-too-large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_body_gets_408() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up, 100, "5s");
    let mut s = TcpStream::connect(gw.addr("main")).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
        .await
        .unwrap();
    let raw = raw::read_until_close(&mut s, Duration::from_secs(5)).await;
    let resp = raw::parse(&raw).expect("a response");
    assert_eq!(resp.status, 408, "{}", resp.body);
    assert_eq!(resp.json()["code"], "request-timeout");
    gw.wait_for_event(|e| e["code"] == "body-timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_gets_408_while_other_clients_are_served() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up, 100, "2s");
    let addr = gw.addr("main");
    // The slow client: one byte a second, never finishing its head.
    let slow = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = b"GET /echo HTTP/1.1\r\nHost: slow\r\nX-Slow: 1\r\n";
        let mut got = Vec::new();
        for b in head {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        got
    });
    // Meanwhile, normal requests are served.
    let c = client();
    let mut served = 0;
    while !slow.is_finished() && served < 200 {
        let r = c.get(gw.url("main", "/echo")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served >= 10, "only {served} requests were served meanwhile");
    let got = slow.await.unwrap();
    let resp = raw::parse(&got).expect("the slow client gets an answer");
    assert_eq!(resp.status, 408);
    assert_eq!(resp.json()["code"], "request-timeout");
    assert!(resp.json()["request_id"].is_string());
    gw.wait_for_event(|e| e["code"] == "header-timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_content_length_and_transfer_encoding_are_refused() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up, 100, "5s");
    for req in [
        "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    ] {
        let raw = raw::exchange(gw.addr("main"), req.as_bytes(), Duration::from_secs(5)).await;
        let resp = raw::parse(&raw).expect("a response");
        assert_eq!(resp.status, 400);
        assert_eq!(resp.json()["code"], "conflicting-framing");
        assert_eq!(resp.header("connection"), Some("close"));
    }
    // Malformed framing hyper itself refuses never reaches the upstream either.
    for req in [
        "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
        "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        let raw = raw::exchange(gw.addr("main"), req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw::parse(&raw).map(|r| r.status), Some(400), "{req:?}");
    }
    assert_eq!(up.requests(), 0);
    gw.wait_for_event(|e| e["code"] == "conflicting-framing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_headers_get_431() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up, 100, "5s");
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let resp = raw::request(
        gw.addr("main"),
        &format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n"),
    )
    .await;
    assert_eq!(resp.status, 431);
    assert_eq!(resp.json()["code"], "headers-too-large");

    let big = "b".repeat(3000);
    let resp = raw::request(
        gw.addr("main"),
        &format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n"),
    )
    .await;
    assert_eq!(resp.status, 431);
    assert_eq!(resp.json()["code"], "headers-too-large");

    // Far past the limit the HTTP layer refuses it before it is parsed.
    let huge = "h".repeat(100_000);
    let raw = raw::exchange(
        gw.addr("main"),
        format!("GET / HTTP/1.1\r\nHost: t\r\nX-Huge: {huge}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw::parse(&raw).map(|r| r.status), Some(431));
    assert_eq!(up.requests(), 0);
}

async fn keepalive_request(s: &mut TcpStream) -> u16 {
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 16384];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed early");
        got.extend_from_slice(&buf[..n]);
        if let Some(r) = raw::parse(&got) {
            let len: usize = r.header("content-length").unwrap().parse().unwrap();
            if r.body.len() >= len {
                return r.status;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_turned_away() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up, 2, "5s");
    let addr = gw.addr("main");
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    assert_eq!(keepalive_request(&mut a).await, 200);
    assert_eq!(keepalive_request(&mut b).await, 200);
    let raw = raw::exchange(
        addr,
        b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let resp = raw::parse(&raw).expect("a 503 for the third connection");
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["code"], "too-many-connections");
    drop(a);
    // Once one closes, a new connection is served again.
    let mut served = false;
    for _ in 0..50 {
        let raw = raw::exchange(
            addr,
            b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        if raw::parse(&raw).map(|r| r.status) == Some(200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portcullis_connections_rejected_total{listener=\"main\"} "),
        "{metrics}"
    );
    assert!(!metrics.contains("portcullis_connections_rejected_total{listener=\"main\"} 0"));
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_connections_are_closed() {
    let up = FakeUpstream::start("api").await;
    let gw = start(&up, 100, "5s");
    let mut s = TcpStream::connect(gw.addr("main")).await.unwrap();
    assert_eq!(keepalive_request(&mut s).await, 200);
    // idle_timeout is 700ms: the server closes the connection on its own.
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection was not closed: {n:?}"
    );
}
