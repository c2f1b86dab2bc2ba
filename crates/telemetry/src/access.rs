//! The access log: one JSON line per request, built from the request
//! context after the response is complete.

use std::time::Duration;

use http::{HeaderMap, HeaderName, Method, Version};
use portcullis_core::Context;

use crate::json;
use crate::mask::Masker;
use crate::sink::LogSink;
use crate::time::write_rfc3339;

/// The facts of one exchange that the context does not hold.
#[derive(Debug)]
pub struct AccessEntry<'a> {
    pub ctx: &'a Context,
    pub method: &'a Method,
    pub host: Option<&'a str>,
    /// The normalised path (or the raw one when normalisation refused it).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
    /// The response did not complete (client gone, upstream reset).
    pub aborted: bool,
}

pub(crate) fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP",
    }
}

/// The access log of one configuration generation: where lines go, what is
/// masked, which headers are copied.
#[derive(Clone, Debug)]
pub struct AccessLog {
    sink: LogSink,
    masker: Masker,
    log_headers: Vec<HeaderName>,
}

impl AccessLog {
    pub fn new(sink: LogSink, masker: Masker, log_headers: Vec<HeaderName>) -> Self {
        AccessLog {
            sink,
            masker,
            log_headers,
        }
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// The request headers the log copies, taken when the request arrives
    /// (empty, without allocating, when none are configured).
    pub fn pick_headers(&self, headers: &HeaderMap) -> HeaderMap {
        let mut picked = HeaderMap::new();
        for name in &self.log_headers {
            for v in headers.get_all(name) {
                picked.append(name.clone(), v.clone());
            }
        }
        picked
    }

    pub fn log(&self, e: &AccessEntry<'_>) {
        if !self.sink.is_enabled() {
            return;
        }
        self.sink.write_with(|buf| {
            self.write_line(buf, e);
            Ok::<(), ()>(())
        });
    }

    /// The line's fields, in a fixed order; absent values are left out.
    fn write_line(&self, buf: &mut Vec<u8>, e: &AccessEntry<'_>) {
        let ctx = e.ctx;
        let decision = ctx.final_decision();
        let upstream = ctx.upstream.as_ref();
        let mut o = json::Object::new(buf);
        o.str("type", "access")
            .with("time", |b| {
                b.push(b'"');
                write_rfc3339(b, ctx.received_at);
                b.push(b'"');
            })
            .str("request_id", ctx.request_id.as_str())
            .str("listener", &ctx.listener)
            .ip("client", ctx.client_addr)
            .str("method", e.method.as_str())
            .opt_str("host", e.host)
            .str("path", e.path);
        if let Some(q) = e.query {
            o.str("query", &self.masker.query(q));
        }
        o.str("protocol", protocol(e.version))
            .opt_str("tls", ctx.tls.as_ref().map(|t| t.protocol))
            .str_or_null("route", ctx.route_id.as_deref())
            .uint("status", u64::from(e.status))
            .uint("bytes_in", e.bytes_in)
            .uint("bytes_out", e.bytes_out)
            .thousandths("duration_ms", micros(e.duration))
            .opt_str("upstream", upstream.map(|u| &*u.name))
            .opt_str("target", upstream.and_then(|u| u.target.as_deref()));
        if let Some(t) = upstream.and_then(|u| u.header_time) {
            o.thousandths("upstream_ms", micros(t));
        }
        if let Some(a) = upstream.map(|u| u.attempts).filter(|a| *a > 1) {
            o.uint("attempts", u64::from(a));
        }
        o.str("decision", decision.map_or("allow", |d| d.outcome.as_str()));
        if let Some(d) = decision {
            o.str("reason", &d.code).str("decided_by", d.by);
        }
        o.opt_str("consumer", ctx.principal.as_ref().map(|p| p.id.as_str()));
        if e.aborted {
            o.bool("aborted", true);
        }
        if !self.log_headers.is_empty() {
            let mut headers: Vec<(&str, String)> = Vec::new();
            for name in &self.log_headers {
                let values: Vec<_> = e
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|v| self.masker.header_value(name, v.as_bytes()))
                    .collect();
                if !values.is_empty() {
                    headers.push((name.as_str(), values.join(", ")));
                }
            }
            if !headers.is_empty() {
                o.map("headers", headers.iter().map(|(k, v)| (*k, v.as_str())));
            }
        }
        o.end();
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SinkTarget;
    use crate::metrics::Counter;
    use portcullis_core::{Outcome, RequestId, Scheme, UpstreamInfo};

    #[test]
    fn lines_carry_the_request_and_mask_secrets() {
        let sink = LogSink::start(&SinkTarget::Off, Counter::default()).unwrap();
        let log = AccessLog::new(
            sink,
            Masker::new(
                vec![HeaderName::from_static("authorization")],
                vec!["token".into()],
            ),
            vec![
                HeaderName::from_static("authorization"),
                HeaderName::from_static("user-agent"),
            ],
        );
        let mut ctx = Context::new(
            RequestId::from_incoming(b"rid").unwrap(),
            "main".into(),
            "192.0.2.9:1234".parse().unwrap(),
            Scheme::Http,
        );
        ctx.route_id = Some("users".into());
        ctx.upstream = Some(UpstreamInfo {
            name: "api".into(),
            target: Some("10.0.0.1:80".into()),
            header_time: Some(Duration::from_micros(1500)),
            attempts: 2,
        });
        ctx.decide("cors", Outcome::Deny, "cors-origin-not-allowed");
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        headers.insert("user-agent", "agent \"quoted\"".parse().unwrap());
        let mut buf = Vec::new();
        log.write_line(
            &mut buf,
            &AccessEntry {
                ctx: &ctx,
                method: &Method::GET,
                host: Some("api.example.com"),
                path: "/users/1",
                query: Some("token=abc&x=1"),
                version: Version::HTTP_11,
                headers: &headers,
                status: 403,
                bytes_in: 0,
                bytes_out: 120,
                duration: Duration::from_micros(2_345),
                aborted: false,
            },
        );
        let text = String::from_utf8(buf).unwrap();
        assert!(!text.contains("secret") && !text.contains("abc"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "access");
        assert_eq!(v["request_id"], "rid");
        assert_eq!(v["client"], "192.0.2.9");
        assert_eq!(v["query"], "token=***&x=1");
        assert_eq!(v["route"], "users");
        assert_eq!(v["status"], 403);
        assert_eq!(v["duration_ms"], 2.345);
        assert_eq!(v["upstream_ms"], 1.5);
        assert_eq!(v["attempts"], 2);
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["reason"], "cors-origin-not-allowed");
        assert_eq!(v["decided_by"], "cors");
        assert_eq!(v["headers"]["authorization"], "***");
        assert_eq!(v["headers"]["user-agent"], "agent \"quoted\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
