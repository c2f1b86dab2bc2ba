#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Core Rule Set's own regression suite, replayed in process: every
//! test passes except those listed, with reasons, in
//! `conformance-exceptions.txt`.

use portcullis_waf::conformance::{self, Exceptions, Verdict};

#[test]
fn the_core_rule_set_regression_suite_passes() {
    let dir = portcullis_waf::crs::default_dir();
    let rules = conformance::rule_set(&dir).unwrap_or_else(|e| panic!("{e}"));
    let exceptions = Exceptions::parse(include_str!("../conformance-exceptions.txt")).unwrap();
    let report = conformance::run(
        &rules,
        &dir.join("tests/regression/tests"),
        &exceptions,
        None,
        &mut |_, _| {},
    )
    .unwrap();
    println!("{}", report.summary());
    let failed = report.failed();
    for o in &failed {
        let why = match &o.verdict {
            Verdict::Fail(e) => e.as_str(),
            _ => "listed as an exception but passes: remove it from the list",
        };
        println!("FAIL {} {}-{}: {}", o.file, o.rule_id, o.test_id, why);
    }
    assert!(failed.is_empty(), "{} tests failed", failed.len());
}
