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
        /// A rule set directory (rules/, crs-setup.conf.example, tests/)
        /// instead of the built-in Core Rule Set and its source tree.
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
    /// Show which rules a request matches, and why: the request is read as
    /// raw HTTP from a file (`-` for standard input).
    Eval {
        /// The raw request: request line, headers, blank line, body.
        request: PathBuf,
        /// A rule set directory instead of the built-in Core Rule Set.
        #[arg(long)]
        crs: Option<PathBuf>,
        /// Paranoia level (1-4).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
        paranoia: u8,
        /// More rule files, loaded after the rule set's setup and before its
        /// rules (exclusions, settings).
        #[arg(long)]
        rules: Vec<PathBuf>,
        /// List silent (nolog) rules too.
        #[arg(long)]
        all: bool,
    },
}

pub fn run(cmd: WafCommand) -> ExitCode {
    match cmd {
        WafCommand::Conformance {
            crs,
            exceptions,
            verbose,
        } => conformance_run(crs, exceptions, verbose),
        WafCommand::Eval {
            request,
            crs,
            paranoia,
            rules,
            all,
        } => match eval(&request, crs, paranoia, &rules, all) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn shorten(value: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(value);
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    // Control characters escaped, so one match stays on one line.
    out.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn eval(
    request: &std::path::Path,
    crs: Option<PathBuf>,
    paranoia: u8,
    extra: &[PathBuf],
    all: bool,
) -> Result<(), String> {
    use std::io::Read as _;
    let raw = if request == std::path::Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| e.to_string())?;
        buf
    } else {
        std::fs::read(request).map_err(|e| format!("{}: {e}", request.display()))?
    };
    let req = conformance::ftw::parse_raw(raw);
    if req.method.is_empty() || req.uri.is_empty() {
        return Err("the request line is missing (expected `METHOD /path HTTP/1.1`)".into());
    }
    let mut setup = vec![portcullis_waf::Source::text(
        "eval-setup.conf",
        &format!(
            "SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level={paranoia}\""
        ),
    )];
    for f in extra {
        setup.push(portcullis_waf::Source::file(f).map_err(|e| e.to_string())?);
    }
    let sources = match crs {
        Some(dir) => portcullis_waf::crs::sources(&dir, &setup).map_err(|e| e.to_string())?,
        None => portcullis_waf::crs::builtin(&setup),
    };
    let rules = portcullis_waf::RuleSet::load(&sources).map_err(|e| e.to_string())?;
    let mut tx = rules.transaction();
    tx.connection(
        std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
        std::net::SocketAddr::from(([127, 0, 0, 1], 80)),
    );
    tx.request_line(&req.method, &req.uri, &req.version);
    for (k, v) in &req.headers {
        tx.request_header(k, v);
    }
    let verdict = tx.process_request(&req.body);
    tx.process_logging();
    let mut shown = 0;
    for m in tx.matches().iter().filter(|m| all || m.logged) {
        shown += 1;
        println!(
            "rule {} (phase {}){}",
            m.id,
            m.phase,
            if m.logged { "" } else { " [nolog]" }
        );
        if !m.msg.is_empty() {
            println!("  message: {}", m.msg);
        }
        if !m.var_name.is_empty() {
            println!("  matched: {} = \"{}\"", m.var_name, shorten(&m.value, 120));
        }
        if !m.logdata.is_empty() {
            println!("  data:    {}", shorten(m.logdata.as_bytes(), 200));
        }
    }
    if shown == 0 {
        println!("no rule matched");
    }
    let score = tx
        .tx("blocking_inbound_anomaly_score")
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .unwrap_or_else(|| "0".into());
    let threshold = tx
        .tx("inbound_anomaly_score_threshold")
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .unwrap_or_default();
    println!("inbound anomaly score: {score} (threshold {threshold}, paranoia level {paranoia})");
    match verdict {
        Some(iv) => println!("verdict: blocked with {} by rule {}", iv.status, iv.rule_id),
        None => println!("verdict: passed"),
    }
    Ok(())
}

fn conformance_run(crs: Option<PathBuf>, exceptions: Option<PathBuf>, verbose: bool) -> ExitCode {
    // Rules from --crs or built in; the regression tests from --crs or the
    // source tree.
    let tests = crs
        .clone()
        .unwrap_or_else(portcullis_waf::crs::default_dir)
        .join("tests/regression/tests");
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
    let rules = match conformance::rule_set(crs.as_deref()) {
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
    let report = match conformance::run(&rules, &tests, &exceptions, Some(&front), &mut progress) {
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
