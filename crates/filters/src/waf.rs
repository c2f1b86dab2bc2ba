//! The WAF filter: runs the route's rule set (the OWASP Core Rule Set) on
//! the request head and body before it goes upstream and, when the route
//! says so, on the response before it goes back. Every rule that matches
//! is a security event; in blocking mode a request past the anomaly
//! threshold is refused with 403 problem+json, which names the request id
//! and never the rule, and a response that leaks is withheld the same way.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::StatusCode;
use portcullis_config::runtime::WafPolicy;
use portcullis_core::{Context, Filter, Outcome, Problem, Verdict};
use portcullis_telemetry::events::{EventKind, EventLog, SecurityEvent};
use portcullis_waf::{Intervention, Match, Suspended, Transaction};

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
                if self.policy.responses {
                    let reported = tx.matches().len();
                    ctx.ext.insert(Waiting::new(tx.suspend(), reported));
                }
                Verdict::Continue
            }
            Some(iv) => {
                ctx.decide("waf", Outcome::Deny, format!("rule-{}", iv.rule_id));
                Verdict::Deny(self.refusal(&iv))
            }
        }
    }

    /// Takes the request's transaction up again for a response phase, with
    /// how many of its matches were reported already. None when the
    /// request did not reach the WAF (denied earlier) or responses are not
    /// inspected.
    fn resume(&self, ctx: &mut Context) -> Option<(Transaction<'_>, usize)> {
        let waiting = ctx.ext.remove::<Waiting>()?;
        // A poisoned lock still holds the transaction: take it (passing
        // the response uninspected would fail open).
        let (suspended, reported) = waiting
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        Some((self.policy.rules.resume(suspended), reported))
    }

    /// Reports the matches of a response phase and turns an interruption
    /// into a refusal: the response is withheld.
    fn conclude(
        &self,
        ctx: &mut Context,
        tx: &Transaction<'_>,
        reported: usize,
        iv: Option<Intervention>,
    ) -> Verdict {
        let blocked = iv.is_some();
        for m in tx.matches().iter().skip(reported).filter(|m| m.logged) {
            self.report(ctx, m, blocked);
        }
        match iv {
            None => Verdict::Continue,
            Some(iv) => {
                ctx.decide(
                    "waf",
                    Outcome::Deny,
                    format!("response-rule-{}", iv.rule_id),
                );
                Verdict::Deny(
                    Problem::new(StatusCode::FORBIDDEN, "waf-blocked", "Forbidden")
                        .with_detail("the response was withheld by the web application firewall"),
                )
            }
        }
    }
}

/// The request's transaction, set aside in the context while the upstream
/// answers. (The context's extensions want a clonable value: the clones
/// share one slot, and whoever takes it first has it.)
#[derive(Clone)]
struct Waiting(Arc<Mutex<Option<(Suspended, usize)>>>);

impl Waiting {
    fn new(s: Suspended, reported: usize) -> Self {
        Waiting(Arc::new(Mutex::new(Some((s, reported)))))
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

    /// Phase 3 of the rule set: the response status and headers.
    fn response_headers(&self, ctx: &mut Context, resp: &mut http::response::Parts) -> Verdict {
        let Some((mut tx, reported)) = self.resume(ctx) else {
            return Verdict::Continue;
        };
        tx.response_status(resp.status.as_u16(), version(resp.version));
        for (name, value) in &resp.headers {
            tx.response_header(name.as_str().as_bytes(), value.as_bytes());
        }
        let iv = tx.process_response_headers();
        if iv.is_none() && tx.wants_response_body() {
            // The body's phase reports this phase's matches with its own.
            ctx.ext.insert(Waiting::new(tx.suspend(), reported));
            return Verdict::Continue;
        }
        self.conclude(ctx, &tx, reported, iv)
    }

    /// Responses are buffered whole when they are inspected.
    fn wants_response_body(&self) -> bool {
        self.policy.responses
    }

    /// Phase 4 of the rule set: the response body (its first 512KiB).
    fn response_body(
        &self,
        ctx: &mut Context,
        _resp: &http::response::Parts,
        body: &mut Bytes,
    ) -> Verdict {
        let Some((mut tx, reported)) = self.resume(ctx) else {
            return Verdict::Continue;
        };
        let iv = tx
            .response_body(body)
            .or_else(|| tx.process_response_body());
        self.conclude(ctx, &tx, reported, iv)
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
