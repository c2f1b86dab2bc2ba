//! The compiled configuration the proxy runs on. Every value here has been
//! checked; the proxy never re-validates it ("parse, don't validate").

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use ipnet::IpNet;
use portcullis_router::{NormalizeOptions, RouteMatch, RouteTable};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;

pub use crate::file::{Balance, LogTarget, TlsVersion};

mod auth;
pub use auth::{
    AuthMethod, AuthPolicy, Authentication, IdentityHeaders, Introspection, JwtIssuer,
    JwtKeySource, Lockout, SecretSource, StoreLocation, check_key_url,
};

/// A whole compiled configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it was loaded from, if any (the demo's is built in).
    pub source: Option<PathBuf>,
    pub runtime: Runtime,
    pub admin: Option<Admin>,
    /// TLS for the admin listener (with client certificates, they
    /// authorize the management API too).
    pub admin_tls: Option<Tls>,
    pub logging: Logging,
    pub authentication: Authentication,
    pub listeners: Vec<Arc<Listener>>,
    pub upstreams: BTreeMap<Arc<str>, Arc<Upstream>>,
    pub routes: Vec<Arc<Route>>,
    pub path_options: NormalizeOptions,
    /// Security headers for responses that match no route (404, 400, ...).
    pub default_security_headers: Option<SecurityHeadersPolicy>,
}

impl Config {
    pub fn listener(&self, name: &str) -> Option<&Arc<Listener>> {
        self.listeners.iter().find(|l| &*l.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    pub workers: Option<usize>,
    pub shutdown_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    pub address: SocketAddr,
    /// SHA-256 of the management API's bearer token; `None`: API off.
    pub token_sha256: Option<[u8; 32]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    pub access_log: LogTarget,
    /// Request headers copied into each access log line.
    pub log_headers: Vec<HeaderName>,
    /// Headers whose values are masked wherever they are logged.
    pub mask_headers: Vec<HeaderName>,
    /// Query parameters (lower case) whose values are masked in logged paths.
    pub mask_query_params: Vec<String>,
}

/// A listening socket and the routes it serves.
pub struct Listener {
    pub name: Arc<str>,
    pub address: SocketAddr,
    pub tls: Option<Tls>,
    pub h2c: bool,
    /// Answer everything with a redirect to HTTPS on this port.
    pub redirect_https: Option<u16>,
    pub trusted_proxies: Vec<IpNet>,
    pub limits: ListenerLimits,
    /// Routes served here; values index [`Config::routes`].
    pub routes: RouteTable<usize>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Listener {
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_concurrent_streams: u32,
}

/// TLS termination settings with the certificates already loaded.
#[derive(Clone)]
pub struct Tls {
    pub certificates: Vec<Certificate>,
    pub min_version: TlsVersion,
    pub http2: bool,
    pub hsts: bool,
    pub client_auth: Option<ClientAuth>,
}

/// Client certificate verification (mutual TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuth {
    pub ca_certs: Vec<CertificateDer<'static>>,
    pub crls: Vec<rustls_pki_types::CertificateRevocationListDer<'static>>,
    pub required: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("certificates", &self.certificates)
            .field("min_version", &self.min_version)
            .finish_non_exhaustive()
    }
}

/// A certificate, its key, and the SNI names it serves.
#[derive(Clone)]
pub struct Certificate {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Lower-case names; `*.example.com` serves one level of sub-domain.
    pub names: Vec<String>,
    /// The names were read from the certificate (not configured), so a
    /// reloaded certificate brings its own.
    pub names_from_cert: bool,
    pub key: Arc<CertifiedKey>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("cert_path", &self.cert_path)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// One upstream target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// "host:port" as written.
    pub authority: Arc<str>,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Extra trust anchors; empty means the public web roots.
    pub ca_certs: Vec<CertificateDer<'static>>,
    pub server_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Status codes counted as healthy; empty means 200 to 399.
    pub expected_status: Vec<u16>,
}

impl HealthCheck {
    pub fn is_expected(&self, status: u16) -> bool {
        if self.expected_status.is_empty() {
            (200..400).contains(&status)
        } else {
            self.expected_status.contains(&status)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassiveHealth {
    pub consecutive_failures: u32,
    pub ejection_time: Duration,
}

/// A group of targets serving one API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub name: Arc<str>,
    pub targets: Vec<Target>,
    pub balance: Balance,
    pub tls: Option<UpstreamTls>,
    pub connect_timeout: Duration,
    pub response_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub health_check: Option<HealthCheck>,
    pub passive_health: Option<PassiveHealth>,
    pub retries: u8,
    pub max_idle_connections: usize,
    pub host_header: Option<HeaderValue>,
}

/// A route: what it matches, where it goes, and its pipeline.
#[derive(Debug)]
pub struct Route {
    pub id: Arc<str>,
    pub matcher: RouteMatch,
    pub upstream: Arc<str>,
    /// The filters in request order, defaults included.
    pub filters: Vec<FilterSpec>,
}

impl Route {
    /// Whether the route has a CORS policy (and so answers preflights).
    pub fn has_cors(&self) -> bool {
        self.filters
            .iter()
            .any(|f| matches!(f, FilterSpec::Cors(_)))
    }

    /// The body limit in force for this route.
    pub fn max_body(&self) -> u64 {
        self.filters
            .iter()
            .find_map(|f| match f {
                FilterSpec::Limits(l) => Some(l.max_body),
                _ => None,
            })
            .unwrap_or(0)
    }
}

/// A configured filter: the closed, typed list of what a route can run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterSpec {
    Limits(LimitsPolicy),
    Authenticate(AuthPolicy),
    Cors(CorsPolicy),
    SecurityHeaders(SecurityHeadersPolicy),
    Waf(WafPolicy),
}

impl FilterSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            FilterSpec::Limits(_) => "limits",
            FilterSpec::Authenticate(_) => "authenticate",
            FilterSpec::Cors(_) => "cors",
            FilterSpec::SecurityHeaders(_) => "security_headers",
            FilterSpec::Waf(_) => "waf",
        }
    }
}

/// A route's WAF: the compiled rule set (the Core Rule Set with the
/// route's paranoia level, threshold, body limit and exclusions) and how to
/// apply it.
#[derive(Clone, Debug)]
pub struct WafPolicy {
    /// False: detection only, matches are reported and nothing blocked.
    pub block: bool,
    pub paranoia: u8,
    pub inbound_threshold: u32,
    /// Request bodies are inspected up to this many bytes.
    pub body_limit: u64,
    /// Beyond the limit: refuse (413) rather than inspect the first part.
    pub reject_oversized: bool,
    /// The exclusions as SecLang directives, applied after the rules.
    pub exclusions: String,
    /// Responses are inspected too (phases 3 and 4 of the rule set).
    pub responses: bool,
    pub rules: Arc<portcullis_waf::RuleSet>,
}

/// Two policies are equal when configured alike (the rule set follows
/// from the rest).
impl PartialEq for WafPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.block == other.block
            && self.paranoia == other.paranoia
            && self.inbound_threshold == other.inbound_threshold
            && self.body_limit == other.body_limit
            && self.reject_oversized == other.reject_oversized
            && self.exclusions == other.exclusions
            && self.responses == other.responses
    }
}

impl Eq for WafPolicy {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsPolicy {
    pub max_body: u64,
}

/// An origin pattern of a CORS allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginPattern {
    /// `scheme://host[:port]`, lower case.
    Exact(String),
    /// `scheme://*.suffix[:port]`: any sub-domain of suffix.
    Subdomains { prefix: String, suffix: String },
}

impl OriginPattern {
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Exact(o) => o.eq_ignore_ascii_case(origin),
            OriginPattern::Subdomains { prefix, suffix } => {
                let lower = origin.to_ascii_lowercase();
                match lower
                    .strip_prefix(prefix.as_str())
                    .and_then(|r| r.strip_suffix(suffix.as_str()))
                {
                    Some(label) => {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                            && !label.starts_with('.')
                            && !label.ends_with('.')
                    }
                    None => false,
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsPolicy {
    /// `*`: any origin (never with credentials).
    pub any_origin: bool,
    pub origins: Vec<OriginPattern>,
    pub allow_methods: Vec<Method>,
    /// Lower-case header names.
    pub allow_headers: Vec<HeaderName>,
    pub expose_headers: Vec<HeaderName>,
    pub allow_credentials: bool,
    pub max_age: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityHeadersPolicy {
    /// Headers set on every response, replacing any upstream value.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// `Strict-Transport-Security`, added on TLS listeners only.
    pub hsts: Option<HeaderValue>,
    /// Upstream response headers removed.
    pub remove: Vec<HeaderName>,
}
