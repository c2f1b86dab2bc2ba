//! Routes and their filters.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{AuthenticateFile, ByteSize, DurationStr, yes};

/// Which requests go where, under which policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// A unique id, used in logs, metrics and problem responses.
    pub id: String,
    /// The listeners this route is served on. Default: all.
    #[serde(default)]
    pub listeners: Vec<String>,
    /// What the route matches. The most specific matching route wins.
    #[serde(rename = "match")]
    pub matcher: MatchFile,
    /// The upstream that serves it.
    pub upstream: String,
    /// The route's filters, run in this order on the request and in
    /// reverse order on the response.
    #[serde(default)]
    pub filters: Vec<FilterFile>,
}

/// What a route matches.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    /// Host names, exact ("api.example.com") or wildcard ("*.example.com").
    /// Default: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// An exact path ("/health"), or a template with whole-segment
    /// parameters ("/users/{id}").
    #[serde(default)]
    pub path: Option<String>,
    /// A path prefix, matched at a segment boundary ("/api" matches
    /// "/api/x" but not "/apiary").
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Methods in upper case. Default: any. GET also admits HEAD.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// A step of a route's pipeline.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterFile {
    /// Who may call: the accepted credentials, required scopes, or
    /// anonymous access.
    Authenticate(AuthenticateFile),
    /// Cross-origin resource sharing as an allow-list.
    Cors(CorsFile),
    /// Response security headers (replaces the defaults for this route).
    SecurityHeaders(SecurityHeadersFile),
    /// Request limits (replaces the defaults for this route).
    Limits(RouteLimitsFile),
    /// The web application firewall: the OWASP Core Rule Set, run on the
    /// request (headers and body) before it goes upstream.
    Waf(WafFile),
}

/// Whether the WAF blocks or only reports.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WafModeFile {
    /// Requests past the anomaly threshold get 403 (the default).
    #[default]
    Block,
    /// Matches are reported as security events; nothing is blocked.
    Detect,
}

/// What to do with a request body larger than the WAF inspects.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WafBodyLimitActionFile {
    /// Refuse it with 413 (the default): nothing goes uninspected.
    #[default]
    Reject,
    /// Inspect the first `body_limit` bytes and let the rest through.
    InspectPartial,
}

/// The WAF policy of a route.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WafFile {
    /// `block` (default) or `detect`.
    #[serde(default)]
    pub mode: WafModeFile,
    /// Paranoia level, 1 (default: few false positives) to 4 (strictest).
    #[serde(default = "default_paranoia")]
    pub paranoia: u8,
    /// Inbound anomaly score at which a request is blocked. Default: 5
    /// (one critical match).
    #[serde(default = "default_inbound_threshold")]
    pub inbound_threshold: u32,
    /// Request bodies are inspected up to this size. Default: 128KiB.
    #[serde(default = "default_waf_body_limit")]
    pub body_limit: ByteSize,
    /// Beyond `body_limit`: `reject` (default) or `inspect_partial`.
    #[serde(default)]
    pub body_limit_action: WafBodyLimitActionFile,
    /// Rules, tags or targets left out for this route.
    #[serde(default)]
    pub exclusions: Vec<WafExclusionFile>,
    /// Also inspect responses for data leaks (SQL, Java, PHP and IIS
    /// errors, web shells): the status and headers, and bodies that are
    /// text, HTML, XML or JSON, the first 512KiB of each. Responses are
    /// then buffered whole before they are sent (up to 8MiB; a larger one
    /// is refused with 502). Default: false.
    #[serde(default)]
    pub responses: bool,
}

/// One exclusion: a rule id or a tag, and optionally one target (then only
/// that target is left out, e.g. `ARGS:password`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WafExclusionFile {
    /// A rule id, e.g. 942100.
    #[serde(default)]
    pub rule: Option<u32>,
    /// A rule tag, e.g. `attack-sqli`.
    #[serde(default)]
    pub tag: Option<String>,
    /// A variable, e.g. `ARGS:password` or `REQUEST_COOKIES:/^_ga/`.
    #[serde(default)]
    pub target: Option<String>,
}

fn default_paranoia() -> u8 {
    1
}

fn default_inbound_threshold() -> u32 {
    5
}

fn default_waf_body_limit() -> ByteSize {
    ByteSize::kib(128)
}

/// A CORS allow-list. Preflights are answered by the gateway; the upstream's
/// own CORS headers are replaced.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsFile {
    /// Allowed origins: exact ("https://app.example.com"), a wildcard
    /// sub-domain ("https://*.example.com"), or "*" (not with credentials).
    pub allow_origins: Vec<String>,
    /// Allowed methods. Default: GET, HEAD, POST.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Allowed request headers (case-insensitive). Default: none beyond
    /// the CORS-safelisted ones.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may expose to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Allow cookies and credentials. Default: false.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer. Default: 10m.
    #[serde(default)]
    pub max_age: Option<DurationStr>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FrameOptions {
    /// `X-Frame-Options: DENY` (the default).
    #[default]
    Deny,
    /// `X-Frame-Options: SAMEORIGIN`.
    SameOrigin,
    /// Do not send the header.
    Off,
}

/// HTTP Strict Transport Security, sent on TLS listeners only.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HstsFile {
    /// Default: 365d.
    #[serde(default = "default_hsts_max_age")]
    pub max_age: DurationStr,
    /// Default: true.
    #[serde(default = "yes")]
    pub include_subdomains: bool,
    /// Default: false.
    #[serde(default)]
    pub preload: bool,
}

impl Default for HstsFile {
    fn default() -> Self {
        HstsFile {
            max_age: default_hsts_max_age(),
            include_subdomains: true,
            preload: false,
        }
    }
}

fn default_hsts_max_age() -> DurationStr {
    DurationStr::secs(365 * 86_400)
}

/// Response security headers. Upstream `Server` and `X-Powered-By` headers
/// are always removed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityHeadersFile {
    /// Send `X-Content-Type-Options: nosniff`. Default: true.
    #[serde(default = "yes")]
    pub content_type_options: bool,
    /// `X-Frame-Options`. Default: deny.
    #[serde(default)]
    pub frame_options: FrameOptions,
    /// `Referrer-Policy`, or "off". Default: no-referrer.
    #[serde(default = "default_referrer_policy")]
    pub referrer_policy: String,
    /// HSTS settings (TLS listeners only); null to disable.
    #[serde(default = "default_hsts")]
    pub hsts: Option<HstsFile>,
    /// `Content-Security-Policy`. Default: none.
    #[serde(default)]
    pub content_security_policy: Option<String>,
    /// Further response headers to remove (case-insensitive).
    #[serde(default)]
    pub remove: Vec<String>,
    /// Further response headers to set, replacing the upstream's.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

impl Default for SecurityHeadersFile {
    fn default() -> Self {
        SecurityHeadersFile {
            content_type_options: true,
            frame_options: FrameOptions::Deny,
            referrer_policy: default_referrer_policy(),
            hsts: default_hsts(),
            content_security_policy: None,
            remove: Vec::new(),
            set: BTreeMap::new(),
        }
    }
}

fn default_referrer_policy() -> String {
    "no-referrer".to_owned()
}
fn default_hsts() -> Option<HstsFile> {
    Some(HstsFile::default())
}

/// Request limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteLimitsFile {
    /// Largest request body. Larger declared bodies get 413 before
    /// anything is read; streamed ones when they cross it. Default: 1MiB.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
}

impl Default for RouteLimitsFile {
    fn default() -> Self {
        RouteLimitsFile {
            max_body: default_max_body(),
        }
    }
}

fn default_max_body() -> ByteSize {
    ByteSize::mib(1)
}
