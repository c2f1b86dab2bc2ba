//! Request limits that depend on the route: the body size.

use http::header::CONTENT_LENGTH;
use portcullis_config::runtime::LimitsPolicy;
use portcullis_core::{Context, Filter, Outcome, Problem, Verdict};
use portcullis_telemetry::events::{EventKind, EventLog, SecurityEvent};

/// Refuses a body larger than the route allows: at once when
/// `Content-Length` says so, and otherwise as it streams (the proxy enforces
/// [`Context::max_request_body`], which this filter sets).
pub struct Limits {
    policy: LimitsPolicy,
    events: EventLog,
}

impl Limits {
    pub fn new(policy: LimitsPolicy, events: EventLog) -> Self {
        Limits { policy, events }
    }
}

impl Filter for Limits {
    fn name(&self) -> &'static str {
        "limits"
    }

    async fn request_headers(&self, ctx: &mut Context, req: &mut http::request::Parts) -> Verdict {
        ctx.max_request_body = Some(self.policy.max_body);
        let Some(value) = req.headers.get(CONTENT_LENGTH) else {
            return Verdict::Continue;
        };
        // The HTTP layer has already refused malformed or conflicting
        // lengths; an unparsable one here is refused all the same.
        let declared = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n <= self.policy.max_body => Verdict::Continue,
            Some(n) => {
                ctx.decide("limits", Outcome::Deny, "body-too-large");
                self.events.emit(
                    &SecurityEvent::for_request(ctx, EventKind::LimitExceeded, "body-too-large")
                        .with_detail(format!(
                            "declared {n} bytes, limit {}",
                            self.policy.max_body
                        )),
                );
                Verdict::Deny(Problem::payload_too_large(self.policy.max_body))
            }
            None => {
                ctx.decide("limits", Outcome::Deny, "bad-content-length");
                Verdict::Deny(Problem::bad_request(
                    "bad-content-length",
                    "the Content-Length header is not a number",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ctx, events, request};

    #[tokio::test]
    async fn declared_bodies_over_the_limit_are_refused() {
        let (ev, registry) = events();
        let f = Limits::new(LimitsPolicy { max_body: 10 }, ev);
        let mut c = ctx();
        let mut ok = request("POST", &[("content-length", "10")]);
        assert!(f.request_headers(&mut c, &mut ok).await.is_continue());
        assert_eq!(c.max_request_body, Some(10));

        let mut big = request("POST", &[("content-length", "11")]);
        let mut c = ctx();
        match f.request_headers(&mut c, &mut big).await {
            Verdict::Deny(p) => assert_eq!(p.status, 413),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.final_decision().unwrap().code, "body-too-large");
        assert!(registry.render().contains("event=\"limit_exceeded\"} 1"));
    }
}
