//! The conformance runner: replays the Core Rule Set's regression tests
//! (go-ftw format) in process and compares what the engine logs with what
//! each test expects.

pub mod ftw;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::ruleset::{RuleSet, Source};

/// The test configuration the suite's README asks for: detection only,
/// every paranoia level, and the limits its tests are written against.
pub const TEST_SETUP: &str = r#"SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,setvar:tx.blocking_paranoia_level=4,setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535""#;

/// The tests listed as behaving differently here, with reasons.
pub const EXCEPTIONS: &str = include_str!("../../conformance-exceptions.txt");

/// Loads the rule set in the test configuration: from `crs_dir`, or the
/// one built into the binary.
pub fn rule_set(crs_dir: Option<&Path>) -> Result<RuleSet, crate::LoadError> {
    let setup = [Source::text("test-setup.conf", TEST_SETUP)];
    let sources = match crs_dir {
        Some(dir) => crate::crs::sources(dir, &setup)?,
        None => crate::crs::builtin(&setup),
    };
    RuleSet::load(&sources)
}

/// Tests known to behave differently here, with the reason.
#[derive(Debug, Default)]
pub struct Exceptions {
    pub entries: BTreeMap<(u32, u32), String>,
}

impl Exceptions {
    /// `rule_id-test_id: reason` lines; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Exceptions, String> {
        let mut entries = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || format!("line {}: expected `rule-test: reason`", n + 1);
            let (id, reason) = line.split_once(':').ok_or_else(bad)?;
            let (rule, test) = id.trim().split_once('-').ok_or_else(bad)?;
            let rule = rule.parse().map_err(|_| bad())?;
            let test = test.parse().map_err(|_| bad())?;
            if reason.trim().is_empty() {
                return Err(format!("line {}: an exception needs a reason", n + 1));
            }
            entries.insert((rule, test), reason.trim().to_string());
        }
        Ok(Exceptions { entries })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    /// Listed as an exception, and it indeed differs.
    Excepted,
    /// Listed as an exception, but it passes now.
    ExceptedButPassed,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub file: String,
    pub rule_id: u32,
    pub test_id: u32,
    pub verdict: Verdict,
}

#[derive(Debug, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.outcomes.iter().filter(|o| f(&o.verdict)).count()
    }

    pub fn passed(&self) -> usize {
        self.count(|v| *v == Verdict::Pass)
    }

    pub fn failed(&self) -> Vec<&Outcome> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Fail(_) | Verdict::ExceptedButPassed))
            .collect()
    }

    /// Pass/fail per rule file, then the total.
    pub fn summary(&self) -> String {
        let mut per: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
        for o in &self.outcomes {
            let e = per.entry(&o.file).or_default();
            match o.verdict {
                Verdict::Pass => e.0 += 1,
                Verdict::Excepted => e.2 += 1,
                _ => e.1 += 1,
            }
        }
        let mut s = String::new();
        for (file, (p, f, x)) in &per {
            s.push_str(&format!(
                "{file:<45} {p:>5} passed {f:>4} failed {x:>3} excepted\n"
            ));
        }
        let total = self.outcomes.len();
        let passed = self.passed();
        s.push_str(&format!(
            "total: {passed}/{total} passed ({:.2}%), {} failed, {} listed exceptions\n",
            if total == 0 {
                0.0
            } else {
                passed as f64 * 100.0 / total as f64
            },
            self.failed().len(),
            self.count(|v| *v == Verdict::Excepted),
        ));
        s
    }
}

/// Decides, like the HTTP front end in front of the engine, whether a raw
/// request is refused before inspection (and with which status).
pub type FrontEnd<'a> = &'a dyn Fn(&[u8]) -> Option<u16>;

/// Every test file under `dir` (`*.yaml`, `*.yml`), sorted.
pub fn test_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What one stage produced.
#[derive(Debug, Default)]
pub struct StageResult {
    pub status: u16,
    pub ids: Vec<u32>,
    pub log: String,
    pub response: Vec<u8>,
}

/// Runs one request through the engine (and the reflecting backend the
/// tests are written against). Every request is inspected, since the
/// engine is what is measured; the status is the one a client would get,
/// so a head the front end refuses gets the front end's status.
pub fn run_request(rules: &RuleSet, req: &ftw::Request, front: Option<FrontEnd>) -> StageResult {
    let refused = front.and_then(|f| f(&req.raw));
    let mut tx = rules.transaction();
    tx.connection(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 80)),
    );
    tx.request_line(&req.method, &req.uri, &req.version);
    for (k, v) in &req.headers {
        tx.request_header(k, v);
    }
    let mut status = tx.process_request(&req.body).map(|i| i.status);
    let mut response = Vec::new();
    if status.is_none() {
        let (code, headers, body) = backend(req);
        tx.response_status(code, b"HTTP/1.1");
        for (k, v) in &headers {
            tx.response_header(k.as_bytes(), v.as_bytes());
        }
        status = tx.process_response_headers().map(|i| i.status);
        if status.is_none() {
            status = tx.response_body(&body).map(|i| i.status);
        }
        if status.is_none() {
            status = tx.process_response_body().map(|i| i.status);
        }
        if status.is_none() {
            status = Some(code);
            response = body;
        }
    }
    tx.process_logging();
    let mut log = String::new();
    let mut ids = Vec::new();
    for m in tx.matches().iter().filter(|m| m.logged) {
        ids.push(m.id);
        // Escaped as the reference engines write their logs: one line per
        // match, control characters as \xHH.
        log.push_str(&format!(
            "Matched at {}. [id \"{}\"] [msg \"{}\"] [data \"{}\"]\n",
            escape(&m.var_name),
            m.id,
            escape(&m.msg),
            escape(&m.logdata)
        ));
    }
    StageResult {
        status: refused.or(status).unwrap_or(200),
        ids,
        log,
        response,
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The test backend: `/reflect` answers with the status, headers and body
/// the JSON request body asks for; anything else gets an empty 200.
fn backend(req: &ftw::Request) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let path = req.uri.split(|&b| b == b'?').next().unwrap_or(&[]);
    if path == b"/reflect"
        && let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&req.body)
    {
        {
            let status = spec
                .get("status")
                .unwrap_or(&serde_json::Value::Null)
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(200);
            let mut headers: Vec<(String, String)> = spec
                .get("headers")
                .unwrap_or(&serde_json::Value::Null)
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let body = match (
                spec.get("body")
                    .unwrap_or(&serde_json::Value::Null)
                    .as_str(),
                spec.get("encodedBody")
                    .unwrap_or(&serde_json::Value::Null)
                    .as_str(),
            ) {
                (_, Some(enc)) => base64::engine::general_purpose::STANDARD
                    .decode(enc)
                    .unwrap_or_default(),
                (Some(b), None) => b.as_bytes().to_vec(),
                (None, None) => Vec::new(),
            };
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                let html = body.trim_ascii_start().starts_with(b"<");
                let ct = if html {
                    "text/html; charset=utf-8"
                } else {
                    "text/plain; charset=utf-8"
                };
                headers.push(("Content-Type".into(), ct.into()));
            }
            return (status, headers, body);
        }
    }
    (
        200,
        vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        Vec::new(),
    )
}

fn check(output: &ftw::Output, got: &StageResult) -> Result<(), String> {
    if let Some(want) = &output.status {
        let ok = match want {
            yaml_serde::Value::Number(n) => n.as_u64() == Some(u64::from(got.status)),
            yaml_serde::Value::Sequence(list) => list
                .iter()
                .any(|n| n.as_u64() == Some(u64::from(got.status))),
            _ => true,
        };
        if !ok {
            return Err(format!("status {} (wanted {want:?})", got.status));
        }
    }
    let log = &output.log;
    let missing: Vec<u32> = log
        .expect_ids
        .iter()
        .filter(|i| !got.ids.contains(i))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing {missing:?}, logged {:?}", got.ids));
    }
    let unwanted: Vec<u32> = log
        .no_expect_ids
        .iter()
        .filter(|i| got.ids.contains(i))
        .copied()
        .collect();
    if !unwanted.is_empty() {
        return Err(format!("unexpected {unwanted:?}, logged {:?}", got.ids));
    }
    if let Some(re) = &log.match_regex {
        let re = regex::Regex::new(re).map_err(|e| e.to_string())?;
        if !re.is_match(&got.log) {
            return Err(format!("log does not match /{re}/:\n{}", got.log));
        }
    }
    if let Some(re) = &log.no_match_regex {
        let re = regex::Regex::new(re).map_err(|e| e.to_string())?;
        if re.is_match(&got.log) {
            return Err(format!("log matches /{re}/:\n{}", got.log));
        }
    }
    if let Some(want) = &output.response_contains
        && !String::from_utf8_lossy(&got.response).contains(want.as_str())
    {
        return Err(format!("response does not contain {want:?}"));
    }
    Ok(())
}

/// Runs every test under `dir`; `progress` hears (done, total).
pub fn run(
    rules: &RuleSet,
    dir: &Path,
    exceptions: &Exceptions,
    front: Option<FrontEnd>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report, String> {
    let mut files = Vec::new();
    for path in test_files(dir)? {
        let file = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((file, ftw::load(&path)?));
    }
    let total: usize = files.iter().map(|(_, f)| f.tests.len()).sum();
    let mut report = Report::default();
    for (file, tf) in &files {
        let rule_id = tf.rule_id.unwrap_or(0);
        for t in &tf.tests {
            let mut result = Ok(());
            for stage in &t.stages {
                result = match stage.input.request() {
                    Ok(req) => {
                        let got = run_request(rules, &req, front);
                        check(&stage.output, &got)
                    }
                    Err(e) if stage.output.expect_error == Some(true) => {
                        let _ = e;
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                if result.is_err() {
                    break;
                }
            }
            let listed = exceptions.entries.contains_key(&(rule_id, t.test_id));
            let verdict = match (result, listed) {
                (Ok(()), false) => Verdict::Pass,
                (Ok(()), true) => Verdict::ExceptedButPassed,
                (Err(_), true) => Verdict::Excepted,
                (Err(e), false) => Verdict::Fail(e),
            };
            report.outcomes.push(Outcome {
                file: file.clone(),
                rule_id,
                test_id: t.test_id,
                verdict,
            });
            progress(report.outcomes.len(), total);
        }
    }
    Ok(report)
}
