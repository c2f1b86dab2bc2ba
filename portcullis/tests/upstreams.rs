//! Upstreams through the real binary: failures become quick problem
//! responses, balancing, active and passive health, retries, flapping.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn config(targets: &[String], extra: &str) -> String {
    let list = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
version: 1
admin: {{ address: "127.0.0.1:0" }}
listeners:
  - {{ name: main, address: "127.0.0.1:0" }}
upstreams:
  - name: api
    targets: [{list}]
{extra}
defaults:
  authenticate:
    anonymous: true
routes:
  - id: all
    match: {{ path_prefix: / }}
    upstream: api
"#
    )
}

/// A loopback address nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

async fn problem_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_slow_upstreams_give_problems_not_hangs() {
    let up = FakeUpstream::start("api").await;
    let dead = closed_port();
    let gw = GatewayProcess::start(
        bin(),
        &format!(
            r#"
version: 1
admin: {{ enabled: false }}
listeners:
  - {{ name: main, address: "127.0.0.1:0" }}
upstreams:
  - name: dead
    targets: ["{dead}"]
  - name: slow
    targets: ["{}"]
    timeouts: {{ response_header: 300ms }}
defaults:
  authenticate:
    anonymous: true
routes:
  - {{ id: dead, match: {{ path_prefix: /dead }}, upstream: dead }}
  - {{ id: slow, match: {{ path_prefix: /delay }}, upstream: slow }}
"#,
            up.addr
        ),
        &[],
    );
    let c = client();
    let (status, code) = problem_code(c.get(gw.url("main", "/dead")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (502, "upstream-failed"));
    let (status, code) =
        problem_code(c.get(gw.url("main", "/delay/3000")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (504, "upstream-timeout"));
    let line = gw
        .access_log_when(|l| l.iter().any(|l| l["status"] == 504))
        .into_iter()
        .find(|l| l["status"] == 504)
        .expect("the 504 is logged");
    assert_eq!(line["decision"], "error");
    assert_eq!(line["reason"], "upstream-timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_requests_evenly() {
    let ups = [
        FakeUpstream::start("a").await,
        FakeUpstream::start("b").await,
        FakeUpstream::start("c").await,
    ];
    let targets: Vec<String> = ups.iter().map(|u| u.addr.to_string()).collect();
    let gw = GatewayProcess::start(bin(), &config(&targets, ""), &[]);
    let c = client();
    for _ in 0..30 {
        assert_eq!(
            c.get(gw.url("main", "/x")).send().await.unwrap().status(),
            200
        );
    }
    for u in &ups {
        assert_eq!(u.requests(), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled_and_reused() {
    let up = FakeUpstream::start("a").await;
    let gw = GatewayProcess::start(bin(), &config(&[up.addr.to_string()], ""), &[]);
    for i in 0..20 {
        // A new client connection each time: only the gateway's pool can
        // explain a reused upstream connection.
        let resp = client()
            .get(gw.url("main", &format!("/x/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.unwrap();
    }
    assert_eq!(up.requests(), 20);
    assert_eq!(
        up.connections(),
        1,
        "sequential requests should share one pooled upstream connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_busy_target() {
    let a = FakeUpstream::start("a").await;
    let b = FakeUpstream::start("b").await;
    let gw = GatewayProcess::start(
        bin(),
        &config(
            &[a.addr.to_string(), b.addr.to_string()],
            "    balance: least_connections",
        ),
        &[],
    );
    let url = gw.url("main", "/delay/2000");
    let slow = tokio::spawn(async move { client().get(url).send().await.unwrap().status() });
    assert!(wait_until(Duration::from_secs(5), || a.in_flight()
        + b.in_flight()
        == 1));
    let idle = if a.in_flight() == 1 { "b" } else { "a" };
    let c = client();
    for _ in 0..6 {
        let resp = c.get(gw.url("main", "/x")).send().await.unwrap();
        assert_eq!(resp.headers()["x-upstream"], idle);
    }
    assert_eq!(slow.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_take_targets_out_and_bring_them_back() {
    let a = FakeUpstream::start("a").await;
    let b = FakeUpstream::start("b").await;
    let extra = "    health_check: { path: /health, interval: 100ms, timeout: 100ms, healthy_threshold: 2, unhealthy_threshold: 2 }";
    let gw = GatewayProcess::start(
        bin(),
        &config(&[a.addr.to_string(), b.addr.to_string()], extra),
        &[],
    );
    let c = client();
    a.set_healthy(false);
    // Once a is out, every request goes to b.
    let mut only_b = false;
    for _ in 0..100 {
        let mut seen = HashMap::new();
        for _ in 0..4 {
            let r = c.get(gw.url("main", "/x")).send().await.unwrap();
            *seen
                .entry(r.headers()["x-upstream"].to_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        if !seen.contains_key("a") {
            only_b = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(only_b, "the unhealthy target kept getting traffic");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(&format!(
            "portcullis_upstream_target_healthy{{upstream=\"api\",target=\"{}\"}} 0",
            a.addr
        )),
        "{metrics}"
    );

    // Both out: 503, quickly.
    b.set_healthy(false);
    assert!(wait_until(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(100));
        let r = reqwest::blocking_get_status(&gw.url("main", "/x"));
        r == 503
    }));
    let (status, code) = problem_code(c.get(gw.url("main", "/x")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (503, "upstream-unavailable"));

    // Back again.
    a.set_healthy(true);
    b.set_healthy(true);
    assert!(wait_until(
        Duration::from_secs(10),
        || reqwest::blocking_get_status(&gw.url("main", "/x")) == 200
    ));
    assert!(gw.stderr_contains("target healthy again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_targets_are_ejected_passively() {
    let live = FakeUpstream::start("live").await;
    let dead = closed_port();
    let extra =
        "    retries: 0\n    passive_health: { consecutive_failures: 2, ejection_time: 60s }";
    let gw = GatewayProcess::start(bin(), &config(&[live.addr.to_string(), dead], extra), &[]);
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            c.get(gw.url("main", "/x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    let failures = statuses.iter().filter(|s| **s == 502).count();
    assert_eq!(
        failures, 2,
        "exactly the failures before ejection: {statuses:?}"
    );
    assert!(statuses[10..].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(gw.stderr_contains("target ejected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_on_another_target() {
    let live = FakeUpstream::start("live").await;
    let dead = closed_port();
    let extra = "    retries: 1\n    passive_health: { enabled: false }";
    let gw = GatewayProcess::start(bin(), &config(&[live.addr.to_string(), dead], extra), &[]);
    let c = client();
    for _ in 0..10 {
        assert_eq!(
            c.get(gw.url("main", "/x")).send().await.unwrap().status(),
            200
        );
    }
    // A POST is never retried: the ones that hit the dead target fail.
    let mut post_failures = 0;
    for _ in 0..10 {
        let r = c
            .post(gw.url("main", "/x"))
            .body("payload")
            .send()
            .await
            .unwrap();
        if r.status() == 502 {
            post_failures += 1;
        }
    }
    assert_eq!(post_failures, 5);
    // Every GET was served, several after a retry.
    let gets = |l: &[Value]| l.iter().filter(|l| l["method"] == "GET").count();
    let log = gw.access_log_when(|l| gets(l) >= 10);
    let get_lines: Vec<&Value> = log.iter().filter(|l| l["method"] == "GET").collect();
    assert_eq!(get_lines.len(), 10);
    assert!(get_lines.iter().all(|l| l["status"] == 200));
    assert!(
        get_lines
            .iter()
            .all(|l| l["target"] == live.addr.to_string())
    );
    assert_eq!(
        get_lines.iter().filter(|l| l["attempts"] == 2).count(),
        5,
        "half went to the dead target first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_upstream_never_hangs_the_gateway() {
    let up = FakeUpstream::start("flappy").await;
    let addr = up.addr;
    let extra = "    health_check: { path: /health, interval: 100ms, timeout: 100ms, healthy_threshold: 1, unhealthy_threshold: 1 }\n    passive_health: { consecutive_failures: 1, ejection_time: 200ms }";
    let gw = GatewayProcess::start(bin(), &config(&[addr.to_string()], extra), &[]);
    let c = client();
    let mut current = Some(up);
    let mut codes: HashMap<u16, usize> = HashMap::new();
    for round in 0..7 {
        if round % 2 == 1 {
            current.take().unwrap().stop().await;
        } else if current.is_none() {
            current = Some(FakeUpstream::start_on("flappy", addr).await.unwrap());
        }
        for _ in 0..15 {
            let status = c
                .get(gw.url("main", "/x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            *codes.entry(status).or_insert(0) += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        codes.keys().all(|s| [200, 502, 503].contains(s)),
        "{codes:?}"
    );
    assert!(codes.get(&200).copied().unwrap_or(0) > 0);
    assert!(codes.get(&502).copied().unwrap_or(0) + codes.get(&503).copied().unwrap_or(0) > 0);
    // Up again at the end: served again once health checks see it.
    assert!(current.is_some());
    assert!(wait_until(
        Duration::from_secs(10),
        || reqwest::blocking_get_status(&gw.url("main", "/x")) == 200
    ));
}

/// A tiny blocking GET for use inside `wait_until` closures.
mod reqwest {
    pub use ::reqwest::*;

    pub fn blocking_get_status(url: &str) -> u16 {
        let url = url.to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                ::reqwest::get(url)
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .join()
        .unwrap()
    }
}
