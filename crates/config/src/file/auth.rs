//! Authentication: the process-wide settings and the per-route policy.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{DurationStr, yes};

/// Authentication settings shared by every route.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationFile {
    /// Where consumers and their credentials live. Default: an SQLite file
    /// `portcullis.db` next to this file, opened when a route accepts API
    /// keys.
    #[serde(default)]
    pub store: Option<StoreFile>,
    /// The secret API keys are hashed under (HMAC-SHA256). Default: the
    /// file `<store>.key`, created with 32 random bytes when missing.
    #[serde(default)]
    pub key_secret: Option<SecretFile>,
    /// API key settings.
    #[serde(default)]
    pub api_keys: ApiKeysFile,
    /// Headers that carry the verified identity upstream.
    #[serde(default)]
    pub identity_headers: IdentityHeadersFile,
    /// Lock-out of clients and credentials after repeated failures.
    #[serde(default)]
    pub lockout: LockoutFile,
    /// JWT issuers routes may accept bearer tokens from.
    #[serde(default)]
    pub jwt: Vec<JwtIssuerFile>,
    /// OAuth 2.0 introspection endpoints (RFC 7662) for opaque bearer
    /// tokens; routes accept them as `introspection:<name>`.
    #[serde(default)]
    pub introspection: Vec<IntrospectionFile>,
}

/// An OAuth 2.0 token introspection endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionFile {
    /// The name routes use: `methods: [introspection:<name>]`.
    pub name: String,
    /// The endpoint URL (https; http only to loopback addresses).
    pub endpoint: String,
    /// The gateway's client id at the authorization server.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: SecretFile,
    /// Accepted `aud` values; when set, a token must name one.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// How long an active token's result is reused, at most (never past the
    /// token's own expiry). Default: 60s.
    #[serde(default)]
    pub cache_ttl: Option<DurationStr>,
    /// How long an inactive token's result is reused. Default: 10s.
    #[serde(default)]
    pub negative_cache_ttl: Option<DurationStr>,
    /// How long to wait for the endpoint. Default: 2s.
    #[serde(default)]
    pub timeout: Option<DurationStr>,
}

/// The credential store.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// Path of the SQLite database, created and migrated on start.
    /// ":memory:" keeps it in memory (lost on exit; for demos and tests).
    pub sqlite: PathBuf,
}

/// Where a secret comes from.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretFile {
    /// A file holding at least 32 bytes (created with mode 0600 when
    /// missing).
    File(PathBuf),
    /// An environment variable holding at least 64 hex digits.
    Env(String),
}

/// API key settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysFile {
    /// The prefix of generated keys, so leaked keys can be found by secret
    /// scanners. Default: "pcl".
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The request header keys are read from. `Authorization: ApiKey <key>`
    /// is accepted too. Default: X-API-Key.
    #[serde(default = "default_key_header")]
    pub header: String,
}

impl Default for ApiKeysFile {
    fn default() -> Self {
        ApiKeysFile {
            prefix: default_prefix(),
            header: default_key_header(),
        }
    }
}

fn default_prefix() -> String {
    "pcl".to_owned()
}
fn default_key_header() -> String {
    "x-api-key".to_owned()
}

/// Headers that carry the verified identity upstream. Incoming headers of
/// these names, and every `X-Consumer-*` header, are removed from every
/// request first, so a client cannot claim an identity.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersFile {
    /// Default: X-Consumer-Id.
    #[serde(default = "h_id")]
    pub consumer_id: String,
    /// Default: X-Consumer-Name.
    #[serde(default = "h_name")]
    pub consumer_name: String,
    /// Comma-separated groups. Default: X-Consumer-Groups.
    #[serde(default = "h_groups")]
    pub groups: String,
    /// Space-separated scopes. Default: X-Consumer-Scopes.
    #[serde(default = "h_scopes")]
    pub scopes: String,
    /// How the caller authenticated. Default: X-Consumer-Auth-Method.
    #[serde(default = "h_method")]
    pub method: String,
    /// Further incoming headers to remove from every request.
    #[serde(default)]
    pub strip: Vec<String>,
}

impl Default for IdentityHeadersFile {
    fn default() -> Self {
        IdentityHeadersFile {
            consumer_id: h_id(),
            consumer_name: h_name(),
            groups: h_groups(),
            scopes: h_scopes(),
            method: h_method(),
            strip: Vec::new(),
        }
    }
}

fn h_id() -> String {
    "x-consumer-id".to_owned()
}
fn h_name() -> String {
    "x-consumer-name".to_owned()
}
fn h_groups() -> String {
    "x-consumer-groups".to_owned()
}
fn h_scopes() -> String {
    "x-consumer-scopes".to_owned()
}
fn h_method() -> String {
    "x-consumer-auth-method".to_owned()
}

/// Lock-out after repeated authentication failures, per client address
/// and per credential id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LockoutFile {
    /// Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Failures within `window` that lock the source out. Default: 10.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Default: 1m.
    #[serde(default = "default_window")]
    pub window: DurationStr,
    /// How long a lock-out lasts. Default: 5m.
    #[serde(default = "default_lockout")]
    pub duration: DurationStr,
}

impl Default for LockoutFile {
    fn default() -> Self {
        LockoutFile {
            enabled: true,
            max_failures: default_max_failures(),
            window: default_window(),
            duration: default_lockout(),
        }
    }
}

fn default_max_failures() -> u32 {
    10
}
fn default_window() -> DurationStr {
    DurationStr::secs(60)
}
fn default_lockout() -> DurationStr {
    DurationStr::secs(300)
}

/// How many of the accepted methods a request must pass.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RequireFile {
    /// Any one of them (the default).
    #[default]
    Any,
    /// Every one of them.
    All,
}

/// Who may call a route. Every route needs one, from its own filters or
/// from `defaults.authenticate`; a public route says `anonymous: true`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateFile {
    /// The accepted methods: "api_key", "basic", "mtls", "jwt:<issuer name>",
    /// "introspection:<name>".
    #[serde(default)]
    pub methods: Vec<String>,
    /// Whether one accepted method is enough or all are needed.
    #[serde(default)]
    pub require: RequireFile,
    /// Let requests without any credential through as anonymous. A
    /// credential that is presented is still checked. Default: false.
    #[serde(default)]
    pub anonymous: bool,
    /// Scopes the caller must hold, all of them (403 otherwise).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Pass the credential on to the upstream. Default: false.
    #[serde(default)]
    pub forward_credential: bool,
}

/// A JWT issuer whose bearer tokens routes may accept (as `jwt:<name>`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerFile {
    /// The name routes use: `methods: [jwt:<name>]`.
    pub name: String,
    /// The required `iss` claim.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Accepted algorithms. Default: RS256, PS256, ES256, EdDSA. HS256/384/512
    /// only with `keys.secret`; "none" never.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Where the verification keys come from.
    pub keys: JwtKeysFile,
    /// Allowed clock difference for exp, nbf and iat. Default: 30s, at most 5m.
    #[serde(default)]
    pub clock_skew: Option<DurationStr>,
    /// Claims every token must carry, besides exp (always required).
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Which claims name the consumer, its groups and scopes.
    #[serde(default)]
    pub claims: JwtClaimsFile,
    /// How often the key set is refetched. Default: 10m.
    #[serde(default)]
    pub refresh_interval: Option<DurationStr>,
    /// The shortest time between fetches triggered by an unknown `kid`
    /// (so unknown kids cannot make the gateway hammer the key server).
    /// Default: 30s.
    #[serde(default)]
    pub min_refetch_interval: Option<DurationStr>,
}

/// Where an issuer's keys come from: exactly one of these.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtKeysFile {
    /// A JWKS document URL (https; http only to loopback addresses).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// An OpenID Connect issuer URL; its
    /// `/.well-known/openid-configuration` names the JWKS.
    #[serde(default)]
    pub oidc_discovery: Option<String>,
    /// Public keys in PEM files (RSA, EC or Ed25519).
    #[serde(default)]
    pub pem_files: Vec<PathBuf>,
    /// A JWKS document in a file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A shared secret for HS256/384/512 (at least 32 bytes).
    #[serde(default)]
    pub secret: Option<SecretFile>,
}

/// Claims mapped to the caller.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtClaimsFile {
    /// The claim that names the consumer. Default: sub.
    #[serde(default = "claim_sub")]
    pub consumer: String,
    /// Claims holding scopes (a space-separated string or a list).
    /// Default: scope, scp.
    #[serde(default = "claim_scopes")]
    pub scopes: Vec<String>,
    /// Claims holding groups or roles (a list or a string). Default: groups, roles.
    #[serde(default = "claim_groups")]
    pub groups: Vec<String>,
}

impl Default for JwtClaimsFile {
    fn default() -> Self {
        JwtClaimsFile {
            consumer: claim_sub(),
            scopes: claim_scopes(),
            groups: claim_groups(),
        }
    }
}

fn claim_sub() -> String {
    "sub".to_owned()
}
fn claim_scopes() -> Vec<String> {
    vec!["scope".to_owned(), "scp".to_owned()]
}
fn claim_groups() -> Vec<String> {
    vec!["groups".to_owned(), "roles".to_owned()]
}
