//! The training run of `bench/crs-pgo.sh`: the Core Rule Set's own
//! regression corpus (some 5,000 requests, nearly all of them attacks,
//! none of them the benchmark's) through the engine, at every paranoia
//! level, for a profile-guided build of the engine. It is built the way
//! the benchmark is (`--profile bench`, with the dev-dependencies), so the
//! profile it writes applies to the benchmark's build.
//!
//!   cargo run --profile bench -p portcullis-waf --example pgo_train [CRS_DIR]

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis_waf::conformance::{self, Exceptions};

// The benchmark's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let crs = std::env::args().nth(1).map(PathBuf::from);
    let tests = crs
        .clone()
        .unwrap_or_else(portcullis_waf::crs::default_dir)
        .join("tests/regression/tests");
    let run = || -> Result<String, String> {
        let rules = conformance::rule_set(crs.as_deref()).map_err(|e| e.to_string())?;
        let exceptions = Exceptions::parse(conformance::EXCEPTIONS)?;
        let report = conformance::run(&rules, &tests, &exceptions, None, &mut |_, _| {})?;
        Ok(report.summary())
    };
    match run() {
        Ok(summary) => {
            // Without the gateway's front end, the few tests of requests it
            // refuses before the engine sees them do not pass here; the
            // run is for the profile, not the verdicts.
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
