//! CORS as an allow-list. The gateway answers preflights itself and owns the
//! CORS headers of the route's responses: whatever the upstream said about
//! CORS is replaced by the policy.

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, HOST, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use portcullis_config::runtime::CorsPolicy;
use portcullis_core::{Context, Filter, Outcome, Problem, Verdict};
use portcullis_telemetry::events::{EventKind, EventLog, SecurityEvent};

/// Request headers browsers send without a preflight (the safelist).
const SAFELISTED_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-language",
    "content-type",
    "range",
];

/// What the request phase decided, for the response phase.
#[derive(Clone)]
struct Allowed(HeaderValue);

/// The response is this filter's own preflight answer.
#[derive(Clone)]
struct Preflight;

pub struct Cors {
    policy: CorsPolicy,
    events: EventLog,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: HeaderValue,
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let s = items.collect::<Vec<_>>().join(", ");
    if s.is_empty() {
        None
    } else {
        HeaderValue::from_str(&s).ok()
    }
}

impl Cors {
    pub fn new(policy: CorsPolicy, events: EventLog) -> Self {
        let allow_methods = join(policy.allow_methods.iter().map(Method::as_str))
            .unwrap_or(HeaderValue::from_static("GET, HEAD, POST"));
        let allow_headers = join(policy.allow_headers.iter().map(|h| h.as_str()));
        let expose_headers = join(policy.expose_headers.iter().map(|h| h.as_str()));
        let max_age = HeaderValue::from(policy.max_age.as_secs());
        Cors {
            policy,
            events,
            allow_methods,
            allow_headers,
            expose_headers,
            max_age,
        }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.policy.any_origin || self.policy.origins.iter().any(|p| p.matches(origin))
    }

    /// The `Access-Control-Allow-Origin` value for an allowed origin.
    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.policy.any_origin && !self.policy.allow_credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    fn deny(
        &self,
        ctx: &mut Context,
        code: &'static str,
        detail: &'static str,
        origin: &str,
    ) -> Verdict {
        ctx.decide("cors", Outcome::Deny, code);
        // The origin is attacker-chosen text; keep the logged copy short.
        let shown: String = origin.chars().take(200).collect();
        self.events.emit(
            &SecurityEvent::for_request(ctx, EventKind::CorsRejected, code)
                .with_detail(format!("origin {shown:?}")),
        );
        Verdict::Deny(
            Problem::new(StatusCode::FORBIDDEN, code, "Cross-origin request refused")
                .with_detail(detail),
        )
    }

    fn method_allowed(&self, m: &str) -> bool {
        matches!(m, "GET" | "HEAD" | "POST")
            || self.policy.allow_methods.iter().any(|x| x.as_str() == m)
    }

    fn header_allowed(&self, h: &str) -> bool {
        SAFELISTED_HEADERS.contains(&h) || self.policy.allow_headers.iter().any(|x| x.as_str() == h)
    }

    fn preflight(
        &self,
        ctx: &mut Context,
        origin: &HeaderValue,
        origin_str: &str,
        headers: &HeaderMap,
    ) -> Verdict {
        let requested = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !self.method_allowed(requested) {
            return self.deny(
                ctx,
                "cors-method-not-allowed",
                "the requested method is not allowed cross-origin",
                origin_str,
            );
        }
        let requested_headers: Vec<String> = headers
            .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if !requested_headers.iter().all(|h| self.header_allowed(h)) {
            return self.deny(
                ctx,
                "cors-header-not-allowed",
                "a requested header is not allowed cross-origin",
                origin_str,
            );
        }
        ctx.decide("cors", Outcome::Respond, "preflight");
        ctx.ext.insert(Preflight);
        let mut resp = Response::new(Bytes::new());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(origin));
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone());
        if let Some(v) = &self.allow_headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if self.policy.allow_credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        h.insert(
            VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Verdict::Respond(resp)
    }
}

/// Whether `origin` is the request's own origin (same scheme and host), in
/// which case it is not a cross-origin request at all.
fn is_same_origin(ctx: &Context, origin: &str, headers: &HeaderMap, uri: &http::Uri) -> bool {
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()));
    match (host, origin.split_once("://")) {
        (Some(host), Some((scheme, rest))) => {
            scheme == ctx.scheme.as_str() && rest.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

impl Filter for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    async fn request_headers(&self, ctx: &mut Context, req: &mut http::request::Parts) -> Verdict {
        let Some(origin) = req.headers.get(ORIGIN).cloned() else {
            return Verdict::Continue;
        };
        let origin_str = origin.to_str().unwrap_or("");
        let is_preflight = req.method == Method::OPTIONS
            && req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if !is_preflight && is_same_origin(ctx, origin_str, &req.headers, &req.uri) {
            return Verdict::Continue;
        }
        if !self.origin_allowed(origin_str) {
            return self.deny(
                ctx,
                "cors-origin-not-allowed",
                "this origin may not call this route",
                origin_str,
            );
        }
        if is_preflight {
            return self.preflight(ctx, &origin, origin_str, &req.headers);
        }
        ctx.decide("cors", Outcome::Allow, "origin-allowed");
        let value = self.allow_origin_value(&origin);
        ctx.ext.insert(Allowed(value));
        Verdict::Continue
    }

    fn response_headers(&self, ctx: &mut Context, resp: &mut http::response::Parts) -> Verdict {
        if ctx.ext.get::<Preflight>().is_some() {
            return Verdict::Continue;
        }
        let h = &mut resp.headers;
        // The policy, not the upstream, decides what is shared.
        for name in [
            ACCESS_CONTROL_ALLOW_ORIGIN,
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            ACCESS_CONTROL_EXPOSE_HEADERS,
            ACCESS_CONTROL_ALLOW_METHODS,
            ACCESS_CONTROL_ALLOW_HEADERS,
            ACCESS_CONTROL_MAX_AGE,
        ] {
            h.remove(name);
        }
        if !h
            .get_all(VARY)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"origin"))
        {
            h.append(VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(Allowed(origin)) = ctx.ext.get::<Allowed>() {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            if self.policy.allow_credentials {
                h.insert(
                    ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if let Some(v) = &self.expose_headers {
                h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
            }
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ctx, events, request};
    use portcullis_config::runtime::OriginPattern;
    use std::time::Duration;

    fn cors(credentials: bool) -> Cors {
        Cors::new(
            CorsPolicy {
                any_origin: false,
                origins: vec![
                    OriginPattern::Exact("https://app.example.com".into()),
                    OriginPattern::Subdomains {
                        prefix: "https://".into(),
                        suffix: ".partner.com".into(),
                    },
                ],
                allow_methods: vec![Method::GET, Method::PUT],
                allow_headers: vec![http::HeaderName::from_static("x-trace")],
                expose_headers: vec![http::HeaderName::from_static("x-total")],
                allow_credentials: credentials,
                max_age: Duration::from_secs(300),
            },
            events().0,
        )
    }

    fn response(h: &[(&str, &str)]) -> http::response::Parts {
        let mut b = Response::builder();
        for (k, v) in h {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn preflight_for_an_allowed_origin_is_answered() {
        let f = cors(true);
        let mut c = ctx();
        let mut req = request(
            "OPTIONS",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "X-Trace, Content-Type"),
            ],
        );
        let Verdict::Respond(resp) = f.request_headers(&mut c, &mut req).await else {
            panic!("a preflight is answered by the gateway")
        };
        assert_eq!(resp.status(), 204);
        let h = resp.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, PUT");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "x-trace");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "300");
        // The gateway's response phase must leave the preflight answer intact.
        let (mut parts, _) = resp.into_parts();
        f.response_headers(&mut c, &mut parts);
        assert_eq!(
            parts.headers[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(parts.headers[ACCESS_CONTROL_ALLOW_METHODS], "GET, PUT");
    }

    #[tokio::test]
    async fn preflights_outside_the_policy_are_refused() {
        let f = cors(false);
        for (origin, method, headers, code) in [
            ("https://evil.com", "GET", "", "cors-origin-not-allowed"),
            (
                "https://app.example.com",
                "DELETE",
                "",
                "cors-method-not-allowed",
            ),
            (
                "https://app.example.com",
                "PUT",
                "x-secret",
                "cors-header-not-allowed",
            ),
        ] {
            let mut c = ctx();
            let mut req = request(
                "OPTIONS",
                &[
                    ("origin", origin),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", headers),
                ],
            );
            match f.request_headers(&mut c, &mut req).await {
                Verdict::Deny(p) => {
                    assert_eq!(p.status, 403);
                    assert_eq!(p.code, code);
                }
                other => panic!("{origin} {method}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn actual_requests_get_policy_headers_and_upstream_cors_is_replaced() {
        let f = cors(false);
        let mut c = ctx();
        let mut req = request("GET", &[("origin", "https://a.partner.com")]);
        assert!(f.request_headers(&mut c, &mut req).await.is_continue());
        let mut resp = response(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
        ]);
        f.response_headers(&mut c, &mut resp);
        assert_eq!(
            resp.headers[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://a.partner.com"
        );
        assert!(resp.headers.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert_eq!(resp.headers[ACCESS_CONTROL_EXPOSE_HEADERS], "x-total");
        assert_eq!(resp.headers[VARY], "Origin");

        // Without an Origin the upstream's CORS headers are still removed.
        let mut c = ctx();
        let mut req = request("GET", &[]);
        assert!(f.request_headers(&mut c, &mut req).await.is_continue());
        let mut resp = response(&[("access-control-allow-origin", "*")]);
        f.response_headers(&mut c, &mut resp);
        assert!(resp.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[tokio::test]
    async fn cross_origin_requests_from_other_origins_are_refused_but_same_origin_passes() {
        let f = cors(false);
        let mut c = ctx();
        let mut req = request("POST", &[("origin", "https://evil.com")]);
        assert!(matches!(
            f.request_headers(&mut c, &mut req).await,
            Verdict::Deny(_)
        ));
        let mut c = ctx();
        let mut req = request("POST", &[("origin", "http://api.example.com")]);
        assert!(f.request_headers(&mut c, &mut req).await.is_continue());
    }
}
