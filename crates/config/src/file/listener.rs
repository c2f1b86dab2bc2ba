//! Listeners: where clients connect.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ByteSize, DurationStr, yes};

/// A listening socket.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// A unique name, used by routes, logs and metrics.
    pub name: String,
    /// The address to bind, e.g. "0.0.0.0:8443" or "[::]:8080".
    pub address: String,
    /// Terminate TLS on this listener.
    #[serde(default)]
    pub tls: Option<TlsFile>,
    /// Accept HTTP/2 without TLS (h2c with prior knowledge) on a plain
    /// listener. Default: false. TLS listeners offer h2 through ALPN.
    #[serde(default)]
    pub h2c: bool,
    /// On a plain listener: answer every request with a redirect to HTTPS.
    #[serde(default)]
    pub redirect_https: Option<RedirectFile>,
    /// Networks of proxies in front of the gateway whose `X-Forwarded-For`,
    /// `Forwarded` and `X-Request-Id` are believed. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Connection and header limits.
    #[serde(default)]
    pub limits: ListenerLimitsFile,
}

/// Redirect plain HTTP to HTTPS.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectFile {
    /// The HTTPS port to redirect to. Default: 443 (left out of the URL).
    #[serde(default = "default_https_port")]
    pub port: u16,
}

fn default_https_port() -> u16 {
    443
}

/// TLS termination.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// Certificates, chosen by the SNI name the client asks for. The first
    /// is the default for clients that send no name or an unknown one.
    pub certificates: Vec<CertificateFile>,
    /// The oldest TLS version accepted: "1.2" (default) or "1.3".
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Offer HTTP/2 through ALPN. Default: true.
    #[serde(default = "yes")]
    pub http2: bool,
    /// Send `Strict-Transport-Security` on responses of this listener.
    /// Default: true.
    #[serde(default = "yes")]
    pub hsts: bool,
    /// Ask clients for certificates (mutual TLS); routes accept them with
    /// the `mtls` authentication method.
    #[serde(default)]
    pub client_auth: Option<ClientAuthFile>,
}

/// Client certificates: who may present one, and whether one is required.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthFile {
    /// PEM file with the CA certificates client certificates must chain to.
    pub ca_file: PathBuf,
    /// PEM files with certificate revocation lists of those CAs.
    #[serde(default)]
    pub crl_files: Vec<PathBuf>,
    /// Refuse the handshake without a valid client certificate. Default:
    /// true; with false, clients without one may connect and routes decide.
    #[serde(default = "yes")]
    pub required: bool,
}

/// A certificate chain and its private key, in PEM files. Both are reloaded
/// when the files change.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The SNI names this certificate serves. Default: the DNS names in
    /// the certificate.
    #[serde(default)]
    pub server_names: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// Limits against slow, large and numerous clients.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimitsFile {
    /// Open connections at once; further ones are turned away. Default: 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Total size of the request line and headers. Default: 32KiB.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// Number of request headers. Default: 100.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Time to receive a whole request head; slower clients get 408.
    /// Default: 10s.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: DurationStr,
    /// Longest pause while receiving a request body (slower clients get
    /// 408), and longest wait for a client to take a piece of the response
    /// over HTTP/1.1 (a client that stops reading is disconnected).
    /// Default: 30s.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: DurationStr,
    /// How long an idle keep-alive connection stays open. Default: 60s.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: DurationStr,
    /// Concurrent HTTP/2 streams per connection. Default: 100.
    #[serde(default = "default_h2_streams")]
    pub max_concurrent_streams: u32,
}

impl Default for ListenerLimitsFile {
    fn default() -> Self {
        ListenerLimitsFile {
            max_connections: default_max_connections(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            idle_timeout: default_idle_timeout(),
            max_concurrent_streams: default_h2_streams(),
        }
    }
}

fn default_max_connections() -> usize {
    10_000
}
fn default_max_header_bytes() -> ByteSize {
    ByteSize::kib(32)
}
fn default_max_headers() -> usize {
    100
}
fn default_header_timeout() -> DurationStr {
    DurationStr::secs(10)
}
fn default_body_timeout() -> DurationStr {
    DurationStr::secs(30)
}
fn default_idle_timeout() -> DurationStr {
    DurationStr::secs(60)
}
fn default_h2_streams() -> u32 {
    100
}
