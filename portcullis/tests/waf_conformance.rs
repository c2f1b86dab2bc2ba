//! `portcullis waf conformance`: the Core Rule Set's own regression suite,
//! replayed through the WAF engine and the gateway's HTTP front end. Every
//! test passes except those listed, with reasons, in
//! `crates/waf/conformance-exceptions.txt`; a listed test that passes is a
//! failure too (the list must stay true).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;

use common::bin;

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
