//! Response hardening headers.

use portcullis_config::runtime::SecurityHeadersPolicy;
use portcullis_core::{Context, Filter, Verdict};

/// Sets the policy's headers on every response of the route (including
/// the gateway's own error responses), replacing upstream values, removes
/// the listed upstream headers, and adds HSTS on TLS listeners that send it.
pub struct SecurityHeaders {
    policy: SecurityHeadersPolicy,
}

impl SecurityHeaders {
    pub fn new(policy: SecurityHeadersPolicy) -> Self {
        SecurityHeaders { policy }
    }
}

impl Filter for SecurityHeaders {
    fn name(&self) -> &'static str {
        "security_headers"
    }

    fn response_headers(&self, ctx: &mut Context, resp: &mut http::response::Parts) -> Verdict {
        let h = &mut resp.headers;
        for name in &self.policy.remove {
            h.remove(name);
        }
        for (name, value) in &self.policy.set {
            h.insert(name.clone(), value.clone());
        }
        if let (Some(hsts), Some(tls)) = (&self.policy.hsts, &ctx.tls)
            && tls.hsts
        {
            h.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ctx;
    use http::{HeaderName, HeaderValue};
    use portcullis_core::TlsInfo;

    fn policy() -> SecurityHeadersPolicy {
        SecurityHeadersPolicy {
            set: vec![
                (
                    HeaderName::from_static("x-content-type-options"),
                    HeaderValue::from_static("nosniff"),
                ),
                (
                    HeaderName::from_static("x-frame-options"),
                    HeaderValue::from_static("DENY"),
                ),
            ],
            hsts: Some(HeaderValue::from_static("max-age=60")),
            remove: vec![HeaderName::from_static("x-aspnet-version")],
        }
    }

    #[test]
    fn sets_replaces_and_removes() {
        let f = SecurityHeaders::new(policy());
        let mut c = ctx();
        let mut resp = http::Response::builder()
            .header("x-frame-options", "ALLOWALL")
            .header("x-aspnet-version", "4.0")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        f.response_headers(&mut c, &mut resp);
        assert_eq!(resp.headers["x-frame-options"], "DENY");
        assert_eq!(resp.headers["x-content-type-options"], "nosniff");
        assert!(resp.headers.get("x-aspnet-version").is_none());
        assert!(
            resp.headers.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
    }

    #[test]
    fn hsts_only_on_tls_listeners_that_want_it() {
        let f = SecurityHeaders::new(policy());
        for (hsts, expected) in [(true, true), (false, false)] {
            let mut c = ctx();
            c.tls = Some(TlsInfo {
                protocol: "TLSv1.3",
                hsts,
                ..TlsInfo::default()
            });
            let mut resp = http::Response::new(()).into_parts().0;
            f.response_headers(&mut c, &mut resp);
            assert_eq!(
                resp.headers.contains_key("strict-transport-security"),
                expected
            );
        }
    }
}
