//! Runs one regression test and prints every match: `ftw_one FILE TEST_ID`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use portcullis_waf::conformance::{self, ftw};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = portcullis_waf::crs::default_dir();
    let rules = conformance::rule_set(&dir).unwrap();
    let tf = ftw::load(std::path::Path::new(&args[1])).unwrap();
    let id: u32 = args[2].parse().unwrap();
    for t in tf.tests.iter().filter(|t| t.test_id == id) {
        for s in &t.stages {
            let req = s.input.request().unwrap();
            println!("{}", String::from_utf8_lossy(&req.raw));
            let mut tx = rules.transaction();
            tx.connection(([127, 0, 0, 1], 40000).into(), ([127, 0, 0, 1], 80).into());
            tx.request_line(&req.method, &req.uri, &req.version);
            for (k, v) in &req.headers {
                tx.request_header(k, v);
            }
            tx.process_request_headers();
            tx.request_body(&req.body);
            tx.process_request_body();
            for m in tx.matches() {
                println!(
                    "{} logged={} {} | {} | {}",
                    m.id,
                    m.logged,
                    m.var_name,
                    m.msg,
                    String::from_utf8_lossy(&m.value)
                );
            }
            let got = conformance::run_request(&rules, &req, None);
            println!("run_request: status {} ids {:?}", got.status, got.ids);
            println!(
                "expected: {:?} not: {:?}",
                s.output.log.expect_ids, s.output.log.no_expect_ids
            );
        }
    }
}
