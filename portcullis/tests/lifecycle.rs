//! Lifecycle through the real binary: hot reload under load with no failed
//! request, refused bad reloads, SIGHUP, graceful shutdown and its deadline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
version: 1
admin: { address: "127.0.0.1:0" }
runtime: { shutdown_timeout: @GRACE@ }
listeners:
  - { name: main, address: "127.0.0.1:0" }
upstreams:
  - { name: a, targets: ["@A@"] }
  - { name: b, targets: ["@B@"] }
defaults:
  authenticate:
    anonymous: true
routes:
  - id: all
    match: { path_prefix: / }
    upstream: @TO@
"#;

struct Two {
    a: FakeUpstream,
    b: FakeUpstream,
}

impl Two {
    async fn start() -> Two {
        Two {
            a: FakeUpstream::start("a").await,
            b: FakeUpstream::start("b").await,
        }
    }

    fn config(&self, to: &str, grace: &str) -> String {
        fill(
            CONFIG,
            &[
                ("A", self.a.addr.to_string()),
                ("B", self.b.addr.to_string()),
                ("TO", to.to_owned()),
                ("GRACE", grace.to_owned()),
            ],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_continuous_load_fails_no_request() {
    let ups = Two::start().await;
    let gw = GatewayProcess::start(bin(), &ups.config("a", "5s"), &[]);
    let url = gw.url("main", "/x");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (url, stop, ok, failed) = (url.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failed.lock().await.push(format!("status {}", r.status())),
                    Err(e) => failed.lock().await.push(e.to_string()),
                }
            }
        }));
    }
    // Flip the route between the two upstreams several times, through
    // file changes and SIGHUP.
    for (i, to) in ["b", "a", "b", "a", "b"].iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(400)).await;
        gw.replace_config(&ups.config(to, "5s"));
        if i % 2 == 1 {
            gw.signal("HUP");
        }
        let served_before = if *to == "a" {
            ups.a.requests()
        } else {
            ups.b.requests()
        };
        assert!(
            wait_until(Duration::from_secs(10), || {
                let now = if *to == "a" {
                    ups.a.requests()
                } else {
                    ups.b.requests()
                };
                now > served_before + 5
            }),
            "traffic did not move to {to}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let failed = failed.lock().await;
    assert!(
        failed.is_empty(),
        "{} requests failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    assert!(ok.load(Ordering::Relaxed) > 100);
    let metrics = gw.metrics().await;
    assert!(!metrics.contains("portcullis_config_reloads_total{result=\"success\"} 0"));
    assert!(
        metrics.contains("portcullis_config_reloads_total{result=\"failure\"} 0"),
        "{metrics}"
    );
    assert!(gw.stderr_contains("SIGHUP"));
}

use tokio::sync::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_and_the_old_one_keeps_serving() {
    let ups = Two::start().await;
    let gw = GatewayProcess::start(bin(), &ups.config("a", "5s"), &[]);
    let c = client();
    assert_eq!(
        c.get(gw.url("main", "/x")).send().await.unwrap().headers()["x-upstream"],
        "a"
    );
    // Unknown upstream and an unknown key: refused with both errors located.
    let broken = ups.config("nowhere", "5s").replace("runtime:", "runtim:");
    gw.replace_config(&broken);
    assert!(wait_until(Duration::from_secs(10), || gw
        .stderr_contains("configuration reload refused")));
    let errors: Vec<serde_json::Value> = gw
        .stderr_json()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("configuration error"))
        })
        .collect();
    assert!(
        errors.iter().any(|e| e["line"] == 4
            && e["message"]
                .as_str()
                .unwrap()
                .contains("unknown key \"runtim\"")),
        "{errors:?}"
    );
    for _ in 0..10 {
        let r = c.get(gw.url("main", "/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-upstream"], "a");
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portcullis_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
    // A semantic error (only found by compiling) is refused the same way.
    gw.replace_config(&ups.config("nowhere", "5s"));
    assert!(wait_until(Duration::from_secs(10), || {
        gw.stderr_json().iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown upstream \"nowhere\""))
        })
    }));
    assert_eq!(
        c.get(gw.url("main", "/x")).send().await.unwrap().headers()["x-upstream"],
        "a"
    );
    // And a good config afterwards is taken.
    gw.replace_config(&ups.config("b", "5s"));
    assert!(wait_until(Duration::from_secs(10), || gw
        .stderr_contains("configuration reloaded")));
    assert_eq!(
        c.get(gw.url("main", "/x")).send().await.unwrap().headers()["x-upstream"],
        "b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_requests_in_flight_finish() {
    let ups = Two::start().await;
    let mut gw = GatewayProcess::start(bin(), &ups.config("a", "10s"), &[]);
    let url = gw.url("main", "/delay/1500");
    let in_flight =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    assert!(wait_until(Duration::from_secs(5), || ups.a.in_flight() == 1));
    gw.signal("TERM");
    assert!(wait_until(Duration::from_secs(5), || gw
        .stderr_contains("shutting down")));
    // New connections are no longer accepted while draining.
    let refused = client().get(gw.url("main", "/x")).send().await;
    assert!(
        refused.is_err(),
        "a new request was accepted during shutdown"
    );
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the request in flight completed"
    );
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .expect("the gateway exited");
    assert!(status.success());
    assert!(gw.stderr_contains("all connections drained"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_waiting_at_its_deadline() {
    let ups = Two::start().await;
    let mut gw = GatewayProcess::start(bin(), &ups.config("a", "300ms"), &[]);
    let url = gw.url("main", "/delay/20000");
    let _stuck = tokio::spawn(async move { client().get(url).send().await.map(|r| r.status()) });
    assert!(wait_until(Duration::from_secs(5), || ups.a.in_flight() == 1));
    gw.signal("INT");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .expect("the gateway exited at its deadline");
    assert!(status.success());
    assert!(gw.stderr_contains("shutdown deadline reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_keepalive_connections_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ups = Two::start().await;
    // The drain deadline and the connection's timers (which wake it too)
    // far past the waits below: the connection can only close in time if
    // the stop itself wakes it.
    let config = ups.config("a", "60s").replace(
        r#"address: "127.0.0.1:0" }
upstreams"#,
        r#"address: "127.0.0.1:0", limits: { idle_timeout: 120s, header_timeout: 100s } }
upstreams"#,
    );
    assert!(config.contains("idle_timeout: 120s"));
    let mut gw = GatewayProcess::start(bin(), &config, &[]);
    let mut s = tokio::net::TcpStream::connect(gw.addr("main"))
        .await
        .unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = raw::next_response(&mut s, &mut buf, false, Duration::from_secs(5))
        .await
        .expect("a whole response");
    assert_eq!(r.status, 200);
    // The connection now waits, idle, for its next request.
    gw.signal("TERM");
    let mut b = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the idle connection was closed by the shutdown: {read:?}"
    );
    let status = gw
        .wait_exit(Duration::from_secs(20))
        .expect("the gateway exited before its drain deadline");
    assert!(status.success());
    assert!(gw.stderr_contains("all connections drained"));
}
