//! The access log: one JSON line per request, built from the request
//! context after the response is complete.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderMap, HeaderName, Method, Version};
use portcullis_core::Context;
use serde::Serialize;

use crate::mask::Masker;
use crate::sink::LogSink;
use crate::time::rfc3339;

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

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    request_id: &'a str,
    listener: &'a str,
    client: Displayed<std::net::IpAddr>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'static str>,
    route: Option<&'a str>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<f64>,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    aborted: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<&'a str, String>,
}

/// Serialises through `Display` without an intermediate string.
pub(crate) struct Displayed<T>(pub T);

impl<T: std::fmt::Display> Serialize for Displayed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
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

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
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
        let ctx = e.ctx;
        let decision = ctx.final_decision();
        let mut headers = BTreeMap::new();
        for name in &self.log_headers {
            let values: Vec<_> = e
                .headers
                .get_all(name)
                .iter()
                .map(|v| self.masker.header_value(name, v.as_bytes()))
                .collect();
            if !values.is_empty() {
                headers.insert(name.as_str(), values.join(", "));
            }
        }
        let line = Line {
            kind: "access",
            time: rfc3339(ctx.received_at),
            request_id: ctx.request_id.as_str(),
            listener: &ctx.listener,
            client: Displayed(ctx.client_addr),
            method: e.method.as_str(),
            host: e.host,
            path: e.path,
            query: e.query.map(|q| self.masker.query(q)),
            protocol: protocol(e.version),
            tls: ctx.tls.as_ref().map(|t| t.protocol),
            route: ctx.route_id.as_deref(),
            status: e.status,
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            duration_ms: millis(e.duration),
            upstream: ctx.upstream.as_ref().map(|u| &*u.name),
            target: ctx.upstream.as_ref().map(|u| &*u.target),
            upstream_ms: ctx
                .upstream
                .as_ref()
                .and_then(|u| u.header_time)
                .map(millis),
            decision: decision.map_or("allow", |d| d.outcome.as_str()),
            reason: decision.map(|d| &*d.code),
            decided_by: decision.map(|d| d.by),
            consumer: ctx.principal.as_ref().map(|p| p.id.as_str()),
            aborted: e.aborted,
            headers,
        };
        self.sink.write_with(|buf| serde_json::to_writer(buf, &line));
    }
}
