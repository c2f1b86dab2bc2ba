//! `portcullis waf ...` through the binary.
//!
//! `waf conformance`: the Core Rule Set's own regression suite, replayed
//! through the WAF engine and the gateway's HTTP front end. Every test
//! passes except those listed, with reasons, in
//! `crates/waf/conformance-exceptions.txt`; a listed test that passes is a
//! failure too (the list must stay true).
//!
//! `waf eval`: which rules a request matches and why.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_core_rule_set_regression_suite_passes() {
    let out = Command::new(bin())
        .args(["waf", "conformance"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let total = stdout
        .lines()
        .find(|l| l.starts_with("total: "))
        .expect("a total line");
    // At least 99.5% of the suite passes as written.
    let counts = total
        .trim_start_matches("total: ")
        .split(' ')
        .next()
        .unwrap();
    let (passed, all) = counts.split_once('/').unwrap();
    let (passed, all): (f64, f64) = (passed.parse().unwrap(), all.parse().unwrap());
    assert!(all > 4900.0, "{total}");
    assert!(passed / all >= 0.995, "{total}");
    // The progress bar reaches the end.
    assert!(stderr.contains(&format!("{all}/{all}")), "{stderr}");
}

#[test]
fn a_broken_exceptions_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exceptions.txt");
    std::fs::write(&path, "920100-x: nope\n").unwrap();
    let out = Command::new(bin())
        .args(["waf", "conformance", "--exceptions"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

fn eval(request: &str, extra: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.http");
    std::fs::write(&path, request).unwrap();
    let out = Command::new(bin())
        .args(["waf", "eval"])
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SQLI: &str = "GET /search?q=1%27%20OR%20%271%27=%271 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\n\r\n";

#[test]
fn eval_shows_the_rules_an_attack_matches_and_the_verdict() {
    let (ok, out, err) = eval(SQLI, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("rule 942100 (phase 2)"), "{out}");
    assert!(
        out.contains("SQL Injection Attack Detected via libinjection"),
        "{out}"
    );
    assert!(out.contains("matched: ARGS:q = \"1' OR '1'='1\""), "{out}");
    assert!(
        out.contains("verdict: blocked with 403 by rule 949110"),
        "{out}"
    );

    let benign = "POST /orders HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"item\":\"shoes\",\"qty\":2}";
    let (ok, out, _) = eval(benign, &[]);
    assert!(ok);
    assert!(out.contains("no rule matched"), "{out}");
    assert!(out.contains("verdict: passed"), "{out}");
}

#[test]
fn json_bodies_are_read_whole_duplicates_included_and_bounded() {
    let post = |body: &str| {
        format!(
            "POST /orders HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // A name given twice: the value given first is inspected too, so an
    // attack cannot hide behind a harmless value under the same name.
    let (ok, out, err) = eval(&post(r#"{"q":"1' OR '1'='1","q":"shoes"}"#), &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("matched: ARGS:json.q = \"1' OR '1'='1\""),
        "{out}"
    );
    assert!(out.contains("verdict: blocked with 403"), "{out}");

    // A long name over many small values would multiply the body into
    // its arguments: refused as a body that does not parse.
    let name = "n".repeat(20_000);
    let body = format!(r#"{{"{name}":[{}1]}}"#, "1,".repeat(60));
    let (ok, out, err) = eval(&post(&body), &[]);
    assert!(ok, "{err}");
    assert!(out.contains("rule 200002"), "{out}");
    assert!(out.contains("larger than"), "{out}");
    assert!(
        out.contains("verdict: blocked with 400 by rule 200002"),
        "{out}"
    );
    // The same values under a short name pass.
    let body = format!(r#"{{"n":[{}1]}}"#, "1,".repeat(60));
    let (ok, out, _) = eval(&post(&body), &[]);
    assert!(ok);
    assert!(out.contains("verdict: passed"), "{out}");
}

#[test]
fn eval_takes_exclusions_and_the_paranoia_level() {
    let dir = tempfile::tempdir().unwrap();
    let excl = dir.path().join("exclusions.conf");
    std::fs::write(
        &excl,
        "SecRule REQUEST_FILENAME \"@streq /search\" \"id:1000,phase:1,pass,nolog,ctl:ruleRemoveTargetById=942100;ARGS:q\"\n",
    )
    .unwrap();
    let (ok, out, err) = eval(SQLI, &["--rules", excl.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(!out.contains("rule 942100"), "{out}");

    // Paranoia level 2 runs more rules on the same request.
    let (_, pl1, _) = eval(SQLI, &[]);
    let (_, pl2, _) = eval(SQLI, &["--paranoia", "2"]);
    assert!(
        pl2.matches("rule ").count() > pl1.matches("rule ").count(),
        "{pl1}\n{pl2}"
    );

    let (ok, _, err) = eval(SQLI, &["--paranoia", "5"]);
    assert!(!ok && err.contains("5"), "{err}");
    let (ok, _, err) = eval("\r\n\r\n", &[]);
    assert!(!ok && err.contains("request line"), "{err}");
    std::fs::write(&excl, "SecRule ARGS \"@rx (\" \"id:1001,phase:2,pass\"\n").unwrap();
    let (ok, _, err) = eval(SQLI, &["--rules", excl.to_str().unwrap()]);
    assert!(!ok && err.contains("exclusions.conf:1"), "{err}");
}

const GATEWAY: &str = r#"
version: 1
admin: { enabled: false }
listeners:
  - { name: main, address: "127.0.0.1:0" }
upstreams:
  - { name: api, targets: ["@UP@"] }
defaults:
  authenticate:
    anonymous: true
routes:
  - id: search
    match: { path_prefix: /search }
    upstream: api
    filters:
      - kind: waf
  - id: login
    match: { path: /login, methods: [POST] }
    upstream: api
    filters:
      - kind: waf
        exclusions:
          - { tag: attack-sqli, target: "ARGS:password" }
  - id: reports
    match: { path_prefix: /reports }
    upstream: api
    filters:
      - kind: waf
        mode: detect
  - id: upload
    match: { path: /upload, methods: [POST] }
    upstream: api
    filters:
      - kind: waf
        body_limit: 1KiB
  - id: guarded
    match: { path_prefix: /guarded }
    upstream: api
    filters:
      - kind: waf
        responses: true
  - id: watched
    match: { path_prefix: /watched }
    upstream: api
    filters:
      - kind: waf
        mode: detect
        responses: true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_blocks_attacks_and_passes_legitimate_requests() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(GATEWAY, &[("UP", up.addr.to_string())]);
    let c = client();

    let r = c
        .get(gw.url("main", "/search?q=shoes&page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests(), 1);

    let r = c
        .get(gw.url("main", "/search?q=1%27%20OR%20%271%27=%271"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("waf-blocked") && body.contains(&rid),
        "{body}"
    );
    assert!(
        !body.contains("942100") && !body.contains("SQL"),
        "no rule text: {body}"
    );
    assert_eq!(up.requests(), 1, "the attack never reached the upstream");

    // Every match is a security event with the rule, its message and the
    // matched value.
    let ev = gw.wait_for_event(|e| {
        e["event"] == "waf_match"
            && e["request_id"] == rid.as_str()
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("rule 942100"))
    });
    let detail = ev["detail"].as_str().unwrap();
    assert!(
        detail.contains("SQL Injection") && detail.contains("ARGS:q=\"1' OR '1'='1\""),
        "{detail}"
    );
    gw.wait_for_event(|e| e["code"] == "waf-blocked" && e["request_id"] == rid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusions_detection_mode_and_the_body_limit() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(GATEWAY, &[("UP", up.addr.to_string())]);
    let c = client();
    let form = |user: &str, password: &str| {
        format!(
            "user={user}&password={}",
            password
                .replace('\'', "%27")
                .replace(' ', "+")
                .replace('=', "%3D")
        )
    };

    // The password field is left out of the SQL injection rules on /login;
    // the user field is not.
    let r = c
        .post(gw.url("main", "/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form("ada", "x' OR '1'='1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(gw.url("main", "/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form("x' OR '1'='1", "secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Detection only: the attack is reported and passed on.
    let before = up.requests();
    let r = c
        .get(gw.url("main", "/reports?id=1%27%20OR%20%271%27=%271"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(up.requests(), before + 1);
    let ev = gw.wait_for_event(|e| e["event"] == "waf_match" && e["request_id"] == rid.as_str());
    assert_eq!(ev["code"], "waf-match");

    // A JSON body is inspected too; beyond the body limit it is refused.
    let r = c
        .post(gw.url("main", "/upload"))
        .header("content-type", "application/json")
        .body(r#"{"name":"<script>alert(1)</script>"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(gw.url("main", "/upload"))
        .header("content-type", "application/json")
        .body(format!("{{\"note\":\"{}\"}}", "a".repeat(2000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = c
        .post(gw.url("main", "/upload"))
        .header("content-type", "application/json")
        .body(r#"{"name":"ada","tags":["a","b"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_leak_are_withheld_where_responses_are_inspected() {
    let up = FakeUpstream::start("api").await;
    let gw = gateway(GATEWAY, &[("UP", up.addr.to_string())]);
    let c = client();

    // Without response inspection the leak goes through.
    let r = c.get(gw.url("main", "/search/leak")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("ODBC"));

    // With it, the page is withheld and the match reported.
    let r = c.get(gw.url("main", "/guarded/leak")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("waf-blocked") && body.contains("response") && !body.contains("ODBC"),
        "{body}"
    );
    let ev = gw.wait_for_event(|e| {
        e["event"] == "waf_match"
            && e["request_id"] == rid.as_str()
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("rule 951110"))
    });
    assert!(ev["detail"].as_str().unwrap().contains("SQL"), "{ev}");
    // The rule that weighs the outbound score is the one that blocks.
    gw.wait_for_event(|e| e["code"] == "waf-blocked" && e["request_id"] == rid.as_str());

    // Clean responses pass whole.
    let r = c
        .get(gw.url("main", "/guarded/orders?page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["uri"], "/guarded/orders?page=2");
    // Request attacks are still refused before the upstream sees them.
    let before = up.requests();
    let r = c
        .get(gw.url("main", "/guarded/x?id=1%27%20OR%20%271%27=%271"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(up.requests(), before);

    // Detection only: the leak is reported and delivered.
    let r = c.get(gw.url("main", "/watched/leak")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(r.text().await.unwrap().contains("ODBC"));
    let ev = gw.wait_for_event(|e| {
        e["event"] == "waf_match"
            && e["request_id"] == rid.as_str()
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("rule 951110"))
    });
    assert_eq!(ev["code"], "waf-match");
}

#[test]
fn bad_waf_policies_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let config = GATEWAY
        .replace("@UP@", "127.0.0.1:9")
        .replace(
            "      - kind: waf\n        mode: detect",
            "      - kind: waf\n        paranoia: 7",
        )
        .replace(
            "{ tag: attack-sqli, target: \"ARGS:password\" }",
            "{ rule: 942100, target: \"NOPE:x\" }",
        );
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("paranoia level is 1, 2, 3 or 4"), "{err}");
    assert!(err.contains("not one variable the WAF knows"), "{err}");
}
