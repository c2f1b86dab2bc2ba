//! Shared helpers for the integration tests: every test runs the real
//! `portcullis` binary against in-process fake upstreams.

// Each test file uses its own subset of these helpers.
#![allow(dead_code, unused_imports)]

use std::path::Path;

pub use portcullis_testkit::{FakeUpstream, GatewayProcess, Idp, TestCa, client, raw, wait_until};

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_portcullis"))
}

/// Fills `@NAME@` placeholders in a config template.
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("@{k}@"), v);
    }
    out
}

/// Starts the gateway with a config template.
pub fn gateway(template: &str, values: &[(&str, String)]) -> GatewayProcess {
    GatewayProcess::start(bin(), &fill(template, values), &[])
}
