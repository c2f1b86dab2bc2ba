//! Runs the routing and normalisation table in `cases/routing.yaml`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    config: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    request: String,
    #[serde(default)]
    host: Option<String>,
    expect: Expect,
}

#[derive(Deserialize)]
struct Expect {
    status: u16,
    #[serde(default)]
    route: Option<serde_json::Value>,
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    allow: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_normalisation_table() {
    let table: Table = yaml_serde::from_str(include_str!("cases/routing.yaml")).unwrap();
    let users = FakeUpstream::start("users").await;
    let admin = FakeUpstream::start("admin").await;
    let other = FakeUpstream::start("other").await;
    let gw = gateway(
        &table.config,
        &[
            ("USERS", users.addr.to_string()),
            ("ADMIN", admin.addr.to_string()),
            ("OTHER", other.addr.to_string()),
        ],
    );
    let addr = gw.addr("main");
    let mut failures = Vec::new();
    for case in &table.cases {
        let host = case.host.clone().unwrap_or_else(|| "gateway.test".into());
        let (method, target) = case.request.split_once(' ').unwrap();
        let req =
            format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let raw = raw::exchange(addr, req.as_bytes(), Duration::from_secs(5)).await;
        let Some(resp) = raw::parse(&raw) else {
            failures.push(format!("{}: no response", case.name));
            continue;
        };
        let mut check = |what: &str, ok: bool, detail: String| {
            if !ok {
                failures.push(format!("{}: {what}: {detail}", case.name));
            }
        };
        let e = &case.expect;
        check(
            "status",
            resp.status == e.status,
            format!("got {} body {}", resp.status, resp.body),
        );
        if let Some(u) = &e.upstream {
            check(
                "upstream",
                resp.header("x-upstream") == Some(u),
                format!("{:?}", resp.header("x-upstream")),
            );
        }
        if let Some(uri) = &e.uri {
            let got = if method == "HEAD" {
                None
            } else {
                Some(resp.json()["uri"].clone())
            };
            check(
                "uri",
                got.as_ref().is_none_or(|g| g == uri),
                format!("{got:?}"),
            );
        }
        if let Some(code) = &e.code {
            let body = resp.json();
            check("code", body["code"] == *code.as_str(), format!("{body}"));
            check(
                "problem",
                resp.header("content-type") == Some("application/problem+json"),
                String::new(),
            );
        }
        if let Some(allow) = &e.allow {
            check(
                "allow",
                resp.header("allow") == Some(allow),
                format!("{:?}", resp.header("allow")),
            );
        }
        if let Some(route) = &e.route {
            let id = resp.header("x-request-id").unwrap_or_default().to_owned();
            let line = gw.access_entry(&id);
            check(
                "route",
                line["route"] == *route,
                format!("{}", line["route"]),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.cases.len(),
        failures.join("\n")
    );
}
