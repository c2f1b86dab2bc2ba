//! `portcullis waf ...`: the WAF engine's conformance run and request
//! evaluation, outside the gateway.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use portcullis_waf::conformance::{self, Exceptions, Verdict};

#[derive(Debug, Subcommand)]
pub enum WafCommand {
    /// Replay the Core Rule Set's regression tests through the engine and
    /// the gateway's HTTP front end; report pass/fail per rule file.
    Conformance {
        /// The rule set directory (rules/, crs-setup.conf.example, tests/).
        #[arg(long)]
        crs: Option<PathBuf>,
        /// A file of `rule-test: reason` lines replacing the built-in list
        /// of expected differences.
        #[arg(long)]
        exceptions: Option<PathBuf>,
        /// Print every failing test with what differed.
        #[arg(long, short)]
        verbose: bool,
    },
}

pub fn run(cmd: WafCommand) -> ExitCode {
    match cmd {
        WafCommand::Conformance {
            crs,
            exceptions,
            verbose,
        } => conformance_run(crs, exceptions, verbose),
    }
}

fn conformance_run(crs: Option<PathBuf>, exceptions: Option<PathBuf>, verbose: bool) -> ExitCode {
    let dir = crs.unwrap_or_else(portcullis_waf::crs::default_dir);
    let text = match exceptions {
        Some(p) => match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
        None => conformance::EXCEPTIONS.to_string(),
    };
    let exceptions = match Exceptions::parse(&text) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: exceptions: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rules = match conformance::rule_set(&dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut shown = usize::MAX;
    let mut progress = |done: usize, total: usize| {
        let width = 40;
        let filled = done * width / total.max(1);
        if filled != shown || done == total {
            shown = filled;
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\r[{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            if done == total {
                let _ = writeln!(err);
            }
            let _ = err.flush();
        }
    };
    let front = |raw: &[u8]| portcullis_proxy::refused_head_status(raw);
    let report = match conformance::run(
        &rules,
        &dir.join("tests/regression/tests"),
        &exceptions,
        Some(&front),
        &mut progress,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.summary());
    let failed = report.failed();
    for o in &failed {
        let why = match &o.verdict {
            Verdict::Fail(e) if verbose => e.clone(),
            Verdict::Fail(e) => e.lines().next().unwrap_or("").to_string(),
            _ => "listed as an exception but passes".to_string(),
        };
        println!("FAIL {} {}-{}: {why}", o.file, o.rule_id, o.test_id);
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
