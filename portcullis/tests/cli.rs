//! The command line: `check` on every example and on broken files, the
//! committed JSON Schema, and the demo with its tour.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Copies an example next to freshly made certificate files for every
/// `certs/*.pem` it names (a `.key` beside a `.pem` makes a leaf pair; a
/// lone `.pem` is a CA bundle).
fn stage_example(example: &Path, into: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example).unwrap();
    let ca = TestCa::new();
    std::fs::create_dir_all(into.join("certs")).unwrap();
    let names: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("certs/") && w.ends_with(".pem"))
        .collect();
    for pem in names {
        let stem = pem.trim_end_matches(".pem");
        if text.contains(&format!("{stem}.key")) {
            let host = stem.trim_start_matches("certs/");
            let (cert, key) = ca.issue(&[host]);
            std::fs::write(into.join(pem), cert).unwrap();
            std::fs::write(into.join(format!("{stem}.key")), key).unwrap();
        } else {
            std::fs::write(into.join(pem), ca.pem()).unwrap();
        }
    }
    let target = into.join(example.file_name().unwrap());
    std::fs::write(&target, text).unwrap();
    target
}

#[test]
fn check_accepts_every_example() {
    let dir = workspace().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let staging = tempfile::tempdir().unwrap();
        let staged = stage_example(&path, staging.path());
        let out = Command::new(bin())
            .arg("check")
            .arg("--config")
            .arg(&staged)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not check:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
        checked += 1;
    }
    assert!(checked >= 1, "no examples found in {}", dir.display());
}

#[test]
fn check_reports_every_error_with_file_line_column_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"version: 1
listeners:
  - name: main
    address: "0.0.0.0:80"
    limits: { header_timout: 5s }
upstreams:
  - { name: api, targets: ["10.0.0.1:80"] }
routes:
  - id: r
    match: { path: /x }
    upstream: apy
  - id: s
    match: { path: /y }
    upstream: api
    filters:
      - kind: cors
        allow_origins: ["*"]
        allow_credentials: true
defaults:
  authenticate:
    anonymous: true
"#,
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    // Structural errors are reported first (all of them); here there is one.
    assert!(err.contains(&format!("--> {file}:5:15")), "{err}");
    assert!(err.contains("unknown key \"header_timout\""), "{err}");
    assert!(
        err.contains("hint: did you mean \"header_timeout\"?"),
        "{err}"
    );

    // Fix the structure: the semantic errors all come out together.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("header_timout", "header_timeout"),
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("--> {file}:11:15")), "{err}");
    assert!(err.contains("unknown upstream \"apy\""), "{err}");
    assert!(err.contains("hint: did you mean \"api\"?"), "{err}");
    assert!(err.contains(&format!("--> {file}:17:25")), "{err}");
    assert!(
        err.contains("\"*\" cannot be combined with allow_credentials: true"),
        "{err}"
    );
    assert!(err.contains("2 errors in the configuration"), "{err}");
}

#[test]
fn committed_schema_matches_the_file_types() {
    let out = Command::new(bin()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("schema/portcullis.schema.json")).unwrap(),
    )
    .unwrap();
    assert!(
        generated == committed,
        "schema/portcullis.schema.json is stale: run `cargo run -p portcullis -- schema > schema/portcullis.schema.json`"
    );
    assert_eq!(generated["title"], "Portcullis configuration");
    assert_eq!(generated["additionalProperties"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_its_tour() {
    let mut child = Command::new(bin())
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut gateway = None;
    let mut admin = None;
    let mut tour = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline && !tour.contains("Stop with Ctrl-C") {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            match (v["listener"].as_str(), v["address"].as_str()) {
                (Some("main"), Some(a)) => gateway = Some(a.to_owned()),
                (Some("admin"), Some(a)) => admin = Some(a.to_owned()),
                _ => {}
            }
        } else {
            tour.push_str(&line);
            tour.push('\n');
        }
    }
    let (gateway, admin) = (
        gateway.expect("gateway address"),
        admin.expect("admin address"),
    );
    assert!(
        tour.contains(&format!("curl -i http://{gateway}/users/1")),
        "{tour}"
    );
    let key = tour
        .lines()
        .find_map(|l| l.trim().strip_prefix("KEY="))
        .expect("the tour shows the demo key")
        .to_owned();
    assert!(key.starts_with("pcl_"), "{key}");
    let c = client();
    let user: serde_json::Value = c
        .get(format!("http://{gateway}/users/1"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["username"], "alice");
    // The tour's 401, 403 and 400.
    let no_key = c
        .get(format!("http://{gateway}/users/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    assert_eq!(
        no_key.headers()["www-authenticate"],
        "ApiKey realm=\"portcullis\""
    );
    let orders = c
        .get(format!("http://{gateway}/orders"))
        .header("authorization", format!("ApiKey {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 403);
    // The demo issuer's token carries the scope: 200 (the gateway fetches
    // the issuer's keys from the sample API).
    let token = tour
        .lines()
        .find_map(|l| l.trim().strip_prefix("TOKEN="))
        .expect("the tour shows a demo token")
        .to_owned();
    let orders = c
        .get(format!("http://{gateway}/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 200);
    let in_query = c
        .get(format!("http://{gateway}/users/1?api_key={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 400);
    // The public echo: a spoofed identity header does not reach the API.
    let echo: serde_json::Value = c
        .get(format!("http://{gateway}/echo"))
        .header("x-consumer-id", "admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!echo.to_string().contains("admin"), "{echo}");
    let status = |p: &'static str| {
        let c = c.clone();
        let g = gateway.clone();
        async move {
            c.get(format!("http://{g}{p}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/users%2f1").await, 400);
    // The tour's WAF line: SQL injection in the query is refused.
    assert!(
        tour.contains("/users?name=1%27%20OR%20%271%27=%271"),
        "{tour}"
    );
    let waf = c
        .get(format!(
            "http://{gateway}/users?name=1%27%20OR%20%271%27=%271"
        ))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(waf.status(), 403);
    assert!(waf.text().await.unwrap().contains("waf-blocked"));
    assert_eq!(status("/nothing-here").await, 404);
    let big = c
        .post(format!("http://{gateway}/users"))
        .body(vec![0u8; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let metrics = portcullis_testkit::fetch_text(&format!("http://{admin}/metrics")).await;
    assert!(
        metrics.contains("portcullis_requests_total{route=\"user\",status=\"200\"} 1"),
        "{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
