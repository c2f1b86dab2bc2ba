//! Security events: typed, counted and logged together, one JSON line each
//! with `"type":"security"`, for SIEM ingestion.

use std::borrow::Cow;
use std::sync::Arc;

use portcullis_core::Context;
use serde::Serialize;

use crate::metrics::{Counter, Registry};
use crate::sink::LogSink;
use crate::time::rfc3339;

/// What happened. Later capabilities add their kinds here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A malformed or ambiguous request was refused (bad path, smuggling
    /// attempt, oversized headers).
    RequestRejected,
    /// A size, time or connection limit was hit.
    LimitExceeded,
    /// A cross-origin request or preflight from an origin not allowed.
    CorsRejected,
    /// A credential was missing, malformed, unknown, expired or revoked,
    /// or lacked a required scope.
    AuthFailed,
    /// A client address or credential was locked out after repeated
    /// failures.
    AuthLockedOut,
    /// WAF rules matched a request (blocked or, in detection mode, not).
    WafMatch,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::RequestRejected,
        EventKind::LimitExceeded,
        EventKind::CorsRejected,
        EventKind::AuthFailed,
        EventKind::AuthLockedOut,
        EventKind::WafMatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RequestRejected => "request_rejected",
            EventKind::LimitExceeded => "limit_exceeded",
            EventKind::CorsRejected => "cors_rejected",
            EventKind::AuthFailed => "auth_failed",
            EventKind::AuthLockedOut => "auth_locked_out",
            EventKind::WafMatch => "waf_match",
        }
    }
}

/// One security event. Values in `detail` must already be masked.
#[derive(Clone, Debug)]
pub struct SecurityEvent {
    pub kind: EventKind,
    /// The stable reason code, e.g. `path-encoded-separator`.
    pub code: Cow<'static, str>,
    pub request_id: Option<String>,
    pub listener: Option<Arc<str>>,
    pub client: Option<std::net::IpAddr>,
    pub route: Option<Arc<str>>,
    pub detail: Option<String>,
}

impl SecurityEvent {
    /// An event about the request of `ctx`.
    pub fn for_request(ctx: &Context, kind: EventKind, code: impl Into<Cow<'static, str>>) -> Self {
        SecurityEvent {
            kind,
            code: code.into(),
            request_id: Some(ctx.request_id.as_str().to_owned()),
            listener: Some(ctx.listener.clone()),
            client: Some(ctx.client_addr),
            route: ctx.route_id.clone(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    event: EventKind,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    listener: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// Where events go, and their counters.
#[derive(Clone, Debug)]
pub struct EventLog {
    sink: LogSink,
    counters: Vec<(EventKind, Counter)>,
}

impl EventLog {
    pub fn new(sink: LogSink, registry: &Registry) -> Self {
        let counters = EventKind::ALL
            .iter()
            .map(|k| {
                (
                    *k,
                    registry.counter(
                        "portcullis_security_events_total",
                        "Security events, by kind",
                        &[("event", k.as_str())],
                    ),
                )
            })
            .collect();
        EventLog { sink, counters }
    }

    pub fn emit(&self, ev: &SecurityEvent) {
        if let Some((_, c)) = self.counters.iter().find(|(k, _)| *k == ev.kind) {
            c.inc();
        }
        if !self.sink.is_enabled() {
            return;
        }
        let line = Line {
            kind: "security",
            time: rfc3339(std::time::SystemTime::now()),
            event: ev.kind,
            code: &ev.code,
            request_id: ev.request_id.as_deref(),
            listener: ev.listener.as_deref(),
            client: ev.client.map(|c| c.to_string()),
            route: ev.route.as_deref(),
            detail: ev.detail.as_deref(),
        };
        self.sink
            .write_with(|buf| serde_json::to_writer(buf, &line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SinkTarget;
    use portcullis_core::{RequestId, Scheme};
    use std::time::Duration;

    #[test]
    fn events_are_logged_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let registry = Registry::new();
        let sink = LogSink::start(&SinkTarget::File(path.clone()), Counter::default()).unwrap();
        let log = EventLog::new(sink.clone(), &registry);
        let ctx = Context::new(
            RequestId::from_incoming(b"r1").unwrap(),
            "main".into(),
            "10.1.2.3:999".parse().unwrap(),
            Scheme::Http,
        );
        log.emit(&SecurityEvent::for_request(
            &ctx,
            EventKind::CorsRejected,
            "origin-not-allowed",
        ));
        sink.flush(Duration::from_secs(5));
        let line: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(path).unwrap().trim()).unwrap();
        assert_eq!(line["type"], "security");
        assert_eq!(line["event"], "cors_rejected");
        assert_eq!(line["code"], "origin-not-allowed");
        assert_eq!(line["client"], "10.1.2.3");
        assert_eq!(line["request_id"], "r1");
        assert!(
            registry
                .render()
                .contains("portcullis_security_events_total{event=\"cors_rejected\"} 1")
        );
    }
}
