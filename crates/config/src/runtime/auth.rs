//! Compiled authentication settings and per-route policies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

/// Where the credential store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    /// An SQLite database in memory: gone when the process exits.
    Memory,
}

/// Where the API key hashing secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file; created with 32 random bytes (mode 0600) when missing.
    File(PathBuf),
    /// An environment variable of hex digits.
    Env(String),
    /// Random at start (for an in-memory store, whose keys die with it).
    Ephemeral,
}

/// Headers that carry the verified identity upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub consumer_id: HeaderName,
    pub consumer_name: HeaderName,
    pub groups: HeaderName,
    pub scopes: HeaderName,
    pub method: HeaderName,
    /// Removed from every incoming request (with every `x-consumer-*`),
    /// including the five above.
    pub strip: Vec<HeaderName>,
}

impl IdentityHeaders {
    /// Whether an incoming header must be removed before anything reads it.
    pub fn is_identity_header(&self, name: &HeaderName) -> bool {
        name.as_str().starts_with("x-consumer-") || self.strip.contains(name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockout {
    pub max_failures: u32,
    pub window: Duration,
    pub duration: Duration,
}

/// Process-wide authentication settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    /// The credential store: as configured, or the default file next to
    /// the configuration.
    pub store: StoreLocation,
    /// Whether the gateway opens the store: one is configured, or a route
    /// accepts a stored credential. (The CLI always opens it.)
    pub store_in_use: bool,
    /// The API key hashing secret (by default a file beside the store).
    pub key_secret: SecretSource,
    pub key_prefix: String,
    /// The header API keys are read from (besides `Authorization: ApiKey`).
    pub key_header: HeaderName,
    pub identity: IdentityHeaders,
    pub lockout: Option<Lockout>,
    /// JWT issuers; `AuthMethod::Jwt(i)` names `jwt[i]`.
    pub jwt: Vec<Arc<JwtIssuer>>,
    /// Introspection endpoints; `AuthMethod::Introspection(i)` names
    /// `introspection[i]`.
    pub introspection: Vec<Arc<Introspection>>,
}

/// An OAuth 2.0 token introspection endpoint (RFC 7662).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Introspection {
    pub name: Arc<str>,
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: SecretSource,
    pub audiences: Vec<String>,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub timeout: Duration,
}

/// Where a JWT issuer's verification keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtKeySource {
    /// A JWKS URL, fetched at start and refreshed in the background.
    JwksUrl(String),
    /// An OpenID Connect issuer; its discovery document names the JWKS.
    OidcDiscovery(String),
    /// Public keys from PEM files.
    PemFiles(Vec<PathBuf>),
    /// A JWKS document in a file.
    JwksFile(PathBuf),
    /// A shared secret (HS algorithms only).
    Secret(SecretSource),
}

/// A JWT issuer: how its tokens are verified and mapped to a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtIssuer {
    pub name: Arc<str>,
    /// The required `iss`.
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Canonical names: RS256, PS256, ES256, EdDSA, HS256, ...
    pub algorithms: Vec<String>,
    pub keys: JwtKeySource,
    pub clock_skew: Duration,
    /// Required claims besides `exp`.
    pub required_claims: Vec<String>,
    pub consumer_claim: String,
    pub scope_claims: Vec<String>,
    pub group_claims: Vec<String>,
    pub refresh_interval: Duration,
    pub min_refetch_interval: Duration,
}

/// A way of proving identity a route accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    ApiKey,
    /// HTTP Basic against the store's argon2id password hashes.
    Basic,
    /// A client certificate verified by the listener (mutual TLS), mapped
    /// to the consumer named by a subject alternative name or the CN.
    Mtls,
    /// Bearer JWTs from [`Authentication::jwt`]`[i]`.
    Jwt(usize),
    /// Opaque bearer tokens checked at [`Authentication::introspection`]`[i]`.
    Introspection(usize),
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Basic => "basic",
            AuthMethod::Mtls => "mtls",
            AuthMethod::Jwt(_) => "jwt",
            AuthMethod::Introspection(_) => "introspection",
        }
    }

    /// Whether the method reads credentials from the store.
    pub fn uses_store(self) -> bool {
        matches!(
            self,
            AuthMethod::ApiKey | AuthMethod::Basic | AuthMethod::Mtls
        )
    }
}

/// A route's authentication policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthPolicy {
    pub methods: Vec<AuthMethod>,
    /// Every method must pass (else any one).
    pub require_all: bool,
    pub anonymous: bool,
    /// Scopes the caller must hold, all of them.
    pub scopes: Vec<String>,
    pub forward_credential: bool,
}

/// Whether the gateway may fetch keys or ask about tokens at `url`: https,
/// or http to a loopback address (keys fetched in clear over a network
/// could be swapped). Checked at config time and again for URLs found at
/// run time (a discovery document's `jwks_uri`).
pub fn check_key_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL")?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let h = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("keys must be fetched over https (http only to a loopback address)")
            }
        }
        _ => Err("the scheme must be https"),
    }
}

#[cfg(test)]
mod tests {
    use super::check_key_url;

    #[test]
    fn keys_travel_over_https_or_stay_on_the_host() {
        assert!(check_key_url("https://id.example.com/jwks").is_ok());
        assert!(check_key_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_key_url("http://[::1]/jwks").is_ok());
        assert!(check_key_url("http://localhost/jwks").is_ok());
        assert!(check_key_url("http://id.example.com/jwks").is_err());
        assert!(check_key_url("http://10.0.0.1/jwks").is_err());
        assert!(check_key_url("ftp://id.example.com/jwks").is_err());
        assert!(check_key_url("jwks").is_err());
    }
}
