//! The one per-request context every phase reads and writes.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::RequestId;

/// How the client reached the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What the TLS handshake established, for filters and the log.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    pub server_name: Option<Box<str>>,
    pub protocol: &'static str,
    pub alpn: Option<Box<[u8]>>,
    /// Whether the listener sends `Strict-Transport-Security`.
    pub hsts: bool,
    /// The client's certificate, verified in the handshake (mutual TLS).
    pub client_cert: Option<Arc<ClientCertificate>>,
}

/// What a verified client certificate says about its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject's common name.
    pub common_name: Option<String>,
    /// Subject alternative names: DNS names, e-mail addresses, URIs.
    pub names: Vec<String>,
    /// The serial number in hex (for logs).
    pub serial: String,
}

/// The verified caller. Authentication filters fill it in; until one has
/// run, the request is anonymous.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principal {
    /// Stable identifier of the consumer (never a credential).
    pub id: String,
    /// How the identity was proven, e.g. `api_key` or `jwt`.
    pub method: &'static str,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
}

/// Where the request was sent upstream.
#[derive(Clone, Debug)]
pub struct UpstreamInfo {
    pub name: Arc<str>,
    /// The target tried last; none until one was picked.
    pub target: Option<Arc<str>>,
    /// Time until the upstream's response head arrived.
    pub header_time: Option<std::time::Duration>,
    pub attempts: u8,
}

/// The outcome a filter recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The filter looked and let the request through.
    Allow,
    /// The filter refused the request.
    Deny,
    /// The filter answered the request itself (a CORS preflight, a redirect).
    Respond,
    /// The gateway could not complete the request (upstream failure, ...).
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Respond => "respond",
            Outcome::Error => "error",
        }
    }
}

/// One decision taken while serving a request; the access log and security
/// events are built from these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The filter or stage that decided, e.g. `cors`, `router`.
    pub by: &'static str,
    pub outcome: Outcome,
    /// A stable, machine-readable reason, e.g. `origin-not-allowed`.
    pub code: Cow<'static, str>,
}

/// Everything the gateway knows about one request while serving it.
#[derive(Debug)]
pub struct Context {
    pub request_id: RequestId,
    pub listener: Arc<str>,
    /// The matched route, once routing has run.
    pub route_id: Option<Arc<str>>,
    /// Values captured by `{name}` segments of the route's path template.
    pub path_params: Vec<(Arc<str>, String)>,
    /// The client as far as the gateway can tell: the peer, or the
    /// right-most untrusted hop in `X-Forwarded-For` when the peer is a
    /// trusted proxy.
    pub client_addr: IpAddr,
    pub peer_addr: SocketAddr,
    pub scheme: Scheme,
    pub tls: Option<TlsInfo>,
    pub principal: Option<Principal>,
    /// Decisions in the order taken: the first inline (most requests take
    /// one or none), the rest after it.
    first_decision: Option<Decision>,
    more_decisions: Vec<Decision>,
    pub upstream: Option<UpstreamInfo>,
    /// The largest request body accepted, set by the limits filter and
    /// enforced by the proxy whether the body streams or is buffered.
    pub max_request_body: Option<u64>,
    pub started: Instant,
    pub received_at: SystemTime,
    /// Per-request state a filter keeps between its phases.
    pub ext: http::Extensions,
}

impl Context {
    pub fn new(
        request_id: RequestId,
        listener: Arc<str>,
        peer_addr: SocketAddr,
        scheme: Scheme,
    ) -> Self {
        Context {
            request_id,
            listener,
            route_id: None,
            path_params: Vec::new(),
            client_addr: peer_addr.ip(),
            peer_addr,
            scheme,
            tls: None,
            principal: None,
            first_decision: None,
            more_decisions: Vec::new(),
            upstream: None,
            max_request_body: None,
            started: Instant::now(),
            received_at: SystemTime::now(),
            ext: http::Extensions::new(),
        }
    }

    /// Records a decision.
    pub fn decide(
        &mut self,
        by: &'static str,
        outcome: Outcome,
        code: impl Into<Cow<'static, str>>,
    ) {
        let d = Decision {
            by,
            outcome,
            code: code.into(),
        };
        if self.first_decision.is_none() {
            self.first_decision = Some(d);
        } else {
            self.more_decisions.push(d);
        }
    }

    /// Every decision taken, in order.
    pub fn decisions(&self) -> impl Iterator<Item = &Decision> {
        self.first_decision.iter().chain(&self.more_decisions)
    }

    /// The decision that shaped the response: the first denial, response or
    /// error if there was one, else `None` (the request was allowed).
    pub fn final_decision(&self) -> Option<&Decision> {
        self.decisions().find(|d| d.outcome != Outcome::Allow)
    }

    /// The value of a `{name}` path parameter of the matched route.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.path_params
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context::new(
            RequestId::generate(),
            "main".into(),
            "127.0.0.1:5000".parse().unwrap(),
            Scheme::Http,
        )
    }

    #[test]
    fn final_decision_is_the_first_non_allow() {
        let mut c = ctx();
        assert!(c.final_decision().is_none());
        c.decide("cors", Outcome::Allow, "origin-allowed");
        assert!(c.final_decision().is_none());
        c.decide("limits", Outcome::Deny, "body-too-large");
        c.decide("proxy", Outcome::Error, "later");
        assert_eq!(c.final_decision().unwrap().code, "body-too-large");
        let all: Vec<_> = c.decisions().map(|d| d.by).collect();
        assert_eq!(all, ["cors", "limits", "proxy"]);
    }

    #[test]
    fn path_params_are_found_by_name() {
        let mut c = ctx();
        c.path_params.push(("id".into(), "42".into()));
        assert_eq!(c.path_param("id"), Some("42"));
        assert_eq!(c.path_param("other"), None);
    }
}
