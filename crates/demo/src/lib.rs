//! `portcullis demo`: a sample API served in-process, the gateway in front
//! of it with a sample policy ([`demo.yaml`](demo.yaml)), and a short tour
//! of requests to try.

mod sample_api;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use sample_api::SampleApi;

const CONFIG: &str = include_str!("demo.yaml");

/// Where the demo listens.
#[derive(Clone, Copy, Debug)]
pub struct DemoAddresses {
    pub gateway: SocketAddr,
    pub admin: SocketAddr,
}

/// The demo's configuration text with the addresses filled in.
pub fn config_text(api: SocketAddr, addrs: DemoAddresses) -> String {
    CONFIG
        .replace("{{API}}", &api.to_string())
        .replace("{{GATEWAY}}", &addrs.gateway.to_string())
        .replace("{{ADMIN}}", &addrs.admin.to_string())
}

/// Compiles the demo configuration through the same path as any file.
pub fn config(
    api: SocketAddr,
    addrs: DemoAddresses,
) -> Result<portcullis_config::Config, portcullis_config::ConfigError> {
    portcullis_config::load_str(
        &config_text(api, addrs),
        Arc::from("demo.yaml (built in)"),
        Path::new("."),
    )
}

/// The tour printed when the demo starts.
pub fn tour(gateway: SocketAddr, admin: SocketAddr) -> String {
    let g = format!("http://{gateway}");
    let a = format!("http://{admin}");
    format!(
        r#"
Portcullis demo: the gateway listens on {g}, in front of a sample API
(users and orders) running in this process. The policy is built in; print
it with `portcullis demo --print-config`.

Try:

  # A user, through the gateway (note X-Request-Id and the security headers)
  curl -i {g}/users/1

  # What the API received: X-Forwarded-For, X-Request-Id, no hop-by-hop headers
  curl -s {g}/echo -H 'Connection: keep-alive, X-Secret' -H 'X-Secret: s'

  # Path normalisation: the route and the API both see /users/2
  curl -i --path-as-is {g}/admin/../users/2

  # Ambiguous encodings are refused: 400 problem+json
  curl -i {g}/users%2f1

  # No route: 404; wrong method: 405 with Allow
  curl -i {g}/nothing-here
  curl -i -X DELETE {g}/users/1

  # CORS: the gateway answers the preflight for an allowed origin, refuses others
  curl -i -X OPTIONS {g}/users -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: POST'
  curl -i -X OPTIONS {g}/users -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: POST'

  # Body limit on /users (POST): 413 before the body is read
  head -c 20000 /dev/zero | curl -i -X POST {g}/users --data-binary @-

  # Metrics and health on the admin listener
  curl -s {a}/metrics | grep portcullis_requests_total
  curl -s {a}/readyz

Access log lines (JSON) appear on standard output. Stop with Ctrl-C.
"#
    )
}
