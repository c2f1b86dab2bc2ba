//! Upstreams: the services behind the gateway.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{DurationStr, yes};

/// A group of interchangeable targets serving one API.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// A unique name, used by routes, logs and metrics.
    pub name: String,
    /// The targets as "host:port"; a host name is resolved on each new
    /// connection.
    pub targets: Vec<String>,
    /// How a target is chosen. Default: round_robin.
    #[serde(default)]
    pub balance: Balance,
    /// Connect to the targets with TLS.
    #[serde(default)]
    pub tls: Option<UpstreamTlsFile>,
    /// Timeouts towards the targets.
    #[serde(default)]
    pub timeouts: UpstreamTimeoutsFile,
    /// Probe the targets in the background and skip unhealthy ones.
    #[serde(default)]
    pub health_check: Option<HealthCheckFile>,
    /// Take a target out of rotation after consecutive failures.
    #[serde(default)]
    pub passive_health: PassiveHealthFile,
    /// Further attempts on another target when connecting fails. Only
    /// idempotent requests without a streamed body are retried. Default: 1.
    #[serde(default = "default_retries")]
    pub retries: u8,
    /// Idle keep-alive connections kept per target. Default: 256.
    #[serde(default = "default_max_idle")]
    pub max_idle_connections: usize,
    /// Send this `Host` header instead of the client's.
    #[serde(default)]
    pub host_header: Option<String>,
}

fn default_retries() -> u8 {
    1
}
fn default_max_idle() -> usize {
    256
}

#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each target in turn.
    #[default]
    RoundRobin,
    /// The target with the fewest requests in flight.
    LeastConnections,
}

/// TLS towards the targets. The certificate is always verified.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// PEM file of the CA certificates to trust. Default: the public web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name to verify and send as SNI. Default: the target's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTimeoutsFile {
    /// Time to establish a connection (and TLS). Default: 2s.
    #[serde(default = "default_connect")]
    pub connect: DurationStr,
    /// Time from sending the request to receiving the response head.
    /// Default: 30s.
    #[serde(default = "default_response_header")]
    pub response_header: DurationStr,
    /// How long an idle pooled connection is kept. Default: 60s.
    #[serde(default = "default_idle")]
    pub idle: DurationStr,
}

impl Default for UpstreamTimeoutsFile {
    fn default() -> Self {
        UpstreamTimeoutsFile {
            connect: default_connect(),
            response_header: default_response_header(),
            idle: default_idle(),
        }
    }
}

fn default_connect() -> DurationStr {
    DurationStr::secs(2)
}
fn default_response_header() -> DurationStr {
    DurationStr::secs(30)
}
fn default_idle() -> DurationStr {
    DurationStr::secs(60)
}

/// An HTTP probe sent to each target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    /// The path to request with GET.
    pub path: String,
    /// Time between probes. Default: 5s.
    #[serde(default = "default_hc_interval")]
    pub interval: DurationStr,
    /// Time a probe may take. Default: 2s.
    #[serde(default = "default_hc_timeout")]
    pub timeout: DurationStr,
    /// Successful probes in a row that bring a target back. Default: 2.
    #[serde(default = "default_healthy")]
    pub healthy_threshold: u32,
    /// Failed probes in a row that take a target out. Default: 3.
    #[serde(default = "default_unhealthy")]
    pub unhealthy_threshold: u32,
    /// Status codes that count as healthy. Default: 200 to 399.
    #[serde(default)]
    pub expected_status: Vec<u16>,
}

fn default_hc_interval() -> DurationStr {
    DurationStr::secs(5)
}
fn default_hc_timeout() -> DurationStr {
    DurationStr::secs(2)
}
fn default_healthy() -> u32 {
    2
}
fn default_unhealthy() -> u32 {
    3
}

/// Passive health: failures seen on real traffic.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthFile {
    /// Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Connection failures or timeouts in a row that eject a target.
    /// Default: 5.
    #[serde(default = "default_consecutive")]
    pub consecutive_failures: u32,
    /// How long an ejected target stays out. Default: 30s.
    #[serde(default = "default_ejection")]
    pub ejection_time: DurationStr,
}

impl Default for PassiveHealthFile {
    fn default() -> Self {
        PassiveHealthFile {
            enabled: true,
            consecutive_failures: default_consecutive(),
            ejection_time: default_ejection(),
        }
    }
}

fn default_consecutive() -> u32 {
    5
}
fn default_ejection() -> DurationStr {
    DurationStr::secs(30)
}
