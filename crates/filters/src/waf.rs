//! The WAF filter: runs the route's rule set (the OWASP Core Rule Set) on
//! the request head and body before it goes upstream. Every rule that
//! matches is a security event; in blocking mode a request past the
//! anomaly threshold is refused with 403 problem+json, which names the
//! request id and never the rule.

use std::net::SocketAddr;

use bytes::Bytes;
use http::StatusCode;
use portcullis_config::runtime::WafPolicy;
use portcullis_core::{Context, Filter, Outcome, Problem, Verdict};
use portcullis_telemetry::events::{EventKind, EventLog, SecurityEvent};
use portcullis_waf::{Intervention, Match};

pub struct Waf {
    policy: WafPolicy,
    events: EventLog,
}

/// Variable names whose values are never shown in events.
const SECRET_NAMES: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "cookie",
    "session",
    "key",
    "credential",
];

/// The matched value for an event: masked when the variable looks like it
/// holds a secret, otherwise cut to 40 characters with control characters
/// escaped.
fn shown_value(var_name: &str, value: &[u8]) -> String {
    let lower = var_name.to_ascii_lowercase();
    if SECRET_NAMES.iter().any(|s| lower.contains(s)) {
        return "***".to_string();
    }
    let text = String::from_utf8_lossy(value);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 40 {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn version(v: http::Version) -> &'static [u8] {
    match v {
        http::Version::HTTP_09 => b"HTTP/0.9",
        http::Version::HTTP_10 => b"HTTP/1.0",
        http::Version::HTTP_2 => b"HTTP/2.0",
        http::Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

impl Waf {
    pub fn new(policy: WafPolicy, events: EventLog) -> Self {
        Waf { policy, events }
    }

    fn report(&self, ctx: &Context, m: &Match, blocked: bool) {
        let code = if blocked && m.disruptive {
            "waf-blocked"
        } else {
            "waf-match"
        };
        let mut detail = format!("rule {}: {}", m.id, m.msg);
        if !m.var_name.is_empty() {
            detail.push_str(&format!(
                "; {}=\"{}\"",
                m.var_name,
                shown_value(&m.var_name, &m.value)
            ));
        }
        self.events
            .emit(&SecurityEvent::for_request(ctx, EventKind::WafMatch, code).with_detail(detail));
    }

    fn refusal(&self, iv: &Intervention) -> Problem {
        match iv.status {
            413 => Problem::payload_too_large(self.policy.body_limit),
            400 => Problem::bad_request(
                "waf-bad-request",
                "the request body could not be parsed for inspection",
            ),
            _ => Problem::new(StatusCode::FORBIDDEN, "waf-blocked", "Forbidden")
                .with_detail("the request was refused by the web application firewall"),
        }
    }

    fn inspect(&self, ctx: &mut Context, req: &http::request::Parts, body: &Bytes) -> Verdict {
        let rules = &self.policy.rules;
        let mut tx = rules.transaction();
        tx.connection(
            SocketAddr::new(ctx.client_addr, ctx.peer_addr.port()),
            SocketAddr::from(([0, 0, 0, 0], 0)),
        );
        tx.unique_id(ctx.request_id.as_str());
        let target = req
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .as_bytes();
        tx.request_line(req.method.as_str().as_bytes(), target, version(req.version));
        // HTTP/2 carries the host as the authority, not a header.
        if !req.headers.contains_key(http::header::HOST)
            && let Some(authority) = req.uri.authority()
        {
            tx.request_header(b"Host", authority.as_str().as_bytes());
        }
        for (name, value) in &req.headers {
            tx.request_header(name.as_str().as_bytes(), value.as_bytes());
        }
        let verdict = tx.process_request(body);
        let blocked = verdict.is_some();
        for m in tx.matches().iter().filter(|m| m.logged) {
            self.report(ctx, m, blocked);
        }
        match verdict {
            None => {
                let outcome = if tx.matches().iter().any(|m| m.logged) {
                    "rules-matched"
                } else {
                    "clean"
                };
                ctx.decide("waf", Outcome::Allow, outcome);
                Verdict::Continue
            }
            Some(iv) => {
                ctx.decide("waf", Outcome::Deny, format!("rule-{}", iv.rule_id));
                Verdict::Deny(self.refusal(&iv))
            }
        }
    }
}

impl Filter for Waf {
    fn name(&self) -> &'static str {
        "waf"
    }

    /// The rule set inspects the body, so the whole body is asked for
    /// (the route's body limit still bounds it).
    fn wants_request_body(&self) -> bool {
        true
    }

    fn request_body(
        &self,
        ctx: &mut Context,
        req: &http::request::Parts,
        body: &Bytes,
    ) -> impl std::future::Future<Output = Verdict> + Send {
        std::future::ready(self.inspect(ctx, req, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_long_values_cut() {
        assert_eq!(shown_value("ARGS:password", b"hunter2' or 1=1"), "***");
        assert_eq!(shown_value("REQUEST_COOKIES:sessionid", b"x"), "***");
        assert_eq!(shown_value("ARGS:q", b"1' or\n1=1"), "1' or\\n1=1");
        let long = "a".repeat(100);
        assert_eq!(shown_value("ARGS:q", long.as_bytes()).len(), 43);
    }
}
