//! `portcullis demo`: a sample API served in-process, the gateway in front
//! of it with a sample policy ([`demo.yaml`](demo.yaml)), and a short tour
//! of requests to try.

mod issuer;
mod sample_api;

pub use issuer::DemoIssuer;

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
        .replace("{{ISSUER}}", issuer::ISSUER)
        .replace("{{AUDIENCE}}", issuer::AUDIENCE)
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

/// Creates the demo's consumer and its API key (scope `users:read` only,
/// so `/orders`, which needs `orders:read`, shows a 403). Returns the key.
pub fn seed(
    settings: &portcullis_config::runtime::Authentication,
    auth: &portcullis_authn::AuthServices,
) -> Result<String, String> {
    use portcullis_authn::manage;
    let snapshot = auth
        .snapshot
        .as_ref()
        .ok_or("the demo configuration has no credential store")?;
    let store = snapshot.store().as_ref();
    manage::create_consumer(
        store,
        "demo-app",
        &["demo".to_owned()],
        &std::collections::BTreeMap::new(),
    )
    .map_err(|e| e.to_string())?;
    let key = manage::create_key(
        store,
        &auth.secret,
        &settings.key_prefix,
        "demo-app",
        &manage::KeyRequest {
            label: Some("demo".into()),
            scopes: vec!["users:read".into()],
            expires_in: None,
        },
    )
    .map_err(|e| e.to_string())?;
    snapshot.reload().map_err(|e| e.to_string())?;
    Ok(key.key)
}

/// The tour printed when the demo starts.
pub fn tour(gateway: SocketAddr, admin: SocketAddr, key: &str, token: &str) -> String {
    let g = format!("http://{gateway}");
    let a = format!("http://{admin}");
    format!(
        r#"
Portcullis demo: the gateway listens on {g}, in front of a sample API
(users and orders) running in this process. The policy is built in; print
it with `portcullis demo --print-config`.

The demo's consumer "demo-app" has this API key (scope users:read), shown
once; the gateway keeps only its keyed hash:

  KEY={key}

Try:

  # A user, through the gateway (note X-Request-Id and the security headers)
  curl -i {g}/users/1 -H "X-API-Key: $KEY"

  # No key: 401 with a WWW-Authenticate challenge; a wrong key: 401 invalid_token
  curl -i {g}/users/1
  curl -i {g}/users/1 -H 'X-API-Key: pcl_0000000000_wrong'

  # /orders needs the scope orders:read, which this key lacks: 403
  curl -i {g}/orders -H "Authorization: ApiKey $KEY"

  # A JWT from the built-in demo issuer (ES256, scope orders:read), verified
  # against the issuer's JWKS: 200; the same token tampered with: 401
  TOKEN={token}
  curl -i {g}/orders -H "Authorization: Bearer $TOKEN"
  curl -i {g}/orders -H "Authorization: Bearer ${{TOKEN%?}}x"

  # Keys in the URL are refused (they end up in logs): 400
  curl -i "{g}/users/1?api_key=$KEY"

  # What the API received: the verified consumer in X-Consumer-*, a spoofed
  # X-Consumer-Id removed, no key, no hop-by-hop headers (/echo is public)
  curl -s {g}/echo -H 'X-Consumer-Id: admin' -H 'Connection: keep-alive, X-Secret' -H 'X-Secret: s'

  # Path normalisation: the route and the API both see /users/2
  curl -i --path-as-is {g}/admin/../users/2 -H "X-API-Key: $KEY"

  # Ambiguous encodings are refused: 400 problem+json
  curl -i {g}/users%2f1

  # No route: 404; wrong method: 405 with Allow
  curl -i {g}/nothing-here
  curl -i -X DELETE {g}/users/1

  # CORS: the gateway answers the preflight for an allowed origin, refuses others
  curl -i -X OPTIONS {g}/users -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: POST'
  curl -i -X OPTIONS {g}/users -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: POST'

  # The WAF (OWASP Core Rule Set) on /users: SQL injection in the query is
  # refused with 403 problem+json; `portcullis waf eval` shows why
  curl -i "{g}/users?name=1%27%20OR%20%271%27=%271" -H "X-API-Key: $KEY"

  # Body limit on /users (POST): 413 before the body is read
  head -c 20000 /dev/zero | curl -i -X POST {g}/users -H "X-API-Key: $KEY" --data-binary @-

  # Metrics and health on the admin listener
  curl -s {a}/metrics | grep portcullis_requests_total
  curl -s {a}/readyz

Access log lines (JSON) appear on standard output. Stop with Ctrl-C.
"#
    )
}
