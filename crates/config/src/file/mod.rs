//! The configuration file as written: serde types, versioned, with unknown
//! keys refused. The doc comments here become the JSON Schema's
//! descriptions, so they are written for the person editing the file.
//!
//! Nothing here is trusted: `compile` checks every value and builds the
//! runtime config.

mod auth;
mod listener;
mod route;
mod units;
mod upstream;

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

pub use auth::{
    ApiKeysFile, AuthenticateFile, AuthenticationFile, IdentityHeadersFile, IntrospectionFile,
    JwtClaimsFile, JwtIssuerFile, JwtKeysFile, LockoutFile, RequireFile, SecretFile, StoreFile,
};
pub use listener::{
    CertificateFile, ClientAuthFile, ListenerFile, ListenerLimitsFile, RedirectFile, TlsFile,
    TlsVersion,
};
pub use route::{
    CorsFile, FilterFile, FrameOptions, HstsFile, MatchFile, RouteFile, RouteLimitsFile,
    SecurityHeadersFile, WafBodyLimitActionFile, WafExclusionFile, WafFile, WafModeFile,
};
pub(crate) use units::{BYTE_SIZE_PATTERN, DURATION_PATTERN};
pub use units::{ByteSize, DurationStr};
pub use upstream::{
    Balance, HealthCheckFile, PassiveHealthFile, UpstreamFile, UpstreamTimeoutsFile,
    UpstreamTlsFile,
};

/// A Portcullis configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Portcullis configuration")]
pub struct ConfigFile {
    /// The version of this file format. This build reads version 1.
    pub version: u32,
    /// Process-wide settings.
    #[serde(default)]
    pub runtime: RuntimeFile,
    /// The admin listener: health, readiness and metrics.
    #[serde(default)]
    pub admin: AdminFile,
    /// Access logs, security events and diagnostics.
    #[serde(default)]
    pub logging: LoggingFile,
    /// Where clients connect.
    pub listeners: Vec<ListenerFile>,
    /// Consumers, credentials and identity: settings shared by every
    /// route's `authenticate` policy.
    #[serde(default)]
    pub authentication: AuthenticationFile,
    /// Where requests are sent.
    #[serde(default)]
    pub upstreams: Vec<UpstreamFile>,
    /// Policies applied to every route unless the route sets its own.
    #[serde(default)]
    pub defaults: DefaultsFile,
    /// Which requests go where, under which policy.
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

/// Process-wide settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    /// Worker threads serving requests. Default: one per CPU core.
    /// Changing it needs a restart.
    #[serde(default)]
    pub workers: Option<usize>,
    /// How long a graceful shutdown waits for requests in flight. Default: 30s.
    #[serde(default)]
    pub shutdown_timeout: Option<DurationStr>,
}

/// The admin listener.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Serve the admin endpoints at all. Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address of the admin listener. Default: 127.0.0.1:9901. An address
    /// other than loopback needs `allow_remote: true`.
    #[serde(default = "default_admin_address")]
    pub address: String,
    /// Allow the admin listener on a non-loopback address. Default: false.
    #[serde(default)]
    pub allow_remote: bool,
    /// The hash of the bearer token for the management API (`/v1/...`):
    /// "sha256:<64 hex digits>", as printed by `portcullis admin-token`.
    /// Without it the management API is off.
    #[serde(default)]
    pub token_hash: Option<String>,
    /// Serve the admin listener over TLS. With `client_auth`, a verified
    /// client certificate also authorizes the management API.
    #[serde(default)]
    pub tls: Option<TlsFile>,
}

impl Default for AdminFile {
    fn default() -> Self {
        AdminFile {
            enabled: true,
            address: default_admin_address(),
            allow_remote: false,
            token_hash: None,
            tls: None,
        }
    }
}

fn default_admin_address() -> String {
    "127.0.0.1:9901".to_owned()
}

pub(crate) fn yes() -> bool {
    true
}

/// Where access log lines and security events go.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LogTarget {
    /// Standard output (the default).
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
    /// Nowhere.
    Off,
    /// Appended to a file.
    File(PathBuf),
}

/// Access logs, security events and diagnostics.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoggingFile {
    /// Where the JSON access log and security events go. Default: stdout.
    #[serde(default)]
    pub access_log: LogTarget,
    /// Request headers to include in each access log line (lower case).
    /// Credential headers are always masked.
    #[serde(default)]
    pub log_headers: Vec<String>,
    /// Headers masked in logs in addition to the built-in ones
    /// (authorization, proxy-authorization, cookie, set-cookie, x-api-key).
    #[serde(default)]
    pub mask_headers: Vec<String>,
    /// Query parameters masked in logged paths in addition to the built-in
    /// ones (access_token, api_key, apikey, key, password, secret, token, ...).
    #[serde(default)]
    pub mask_query_params: Vec<String>,
}

/// Policies every route gets unless it lists its own filter of that kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsFile {
    /// Response security headers.
    #[serde(default)]
    pub security_headers: SecurityHeadersFile,
    /// Request limits.
    #[serde(default)]
    pub limits: RouteLimitsFile,
    /// Refuse paths percent-encoded twice (`%252e`). Default: true.
    #[serde(default = "yes")]
    pub reject_double_encoding: bool,
    /// Who may call routes that have no `authenticate` filter of their own.
    /// Without it, every route must have one.
    #[serde(default)]
    pub authenticate: Option<AuthenticateFile>,
}

// Written out rather than derived: a derived `Default` would ignore the
// serde defaults above when the whole `defaults` section is absent.
impl Default for DefaultsFile {
    fn default() -> Self {
        DefaultsFile {
            security_headers: SecurityHeadersFile::default(),
            limits: RouteLimitsFile::default(),
            reject_double_encoding: true,
            authenticate: None,
        }
    }
}
