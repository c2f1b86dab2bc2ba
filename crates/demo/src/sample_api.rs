//! The sample API behind the demo: a few JSON resources with ids in paths.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A running sample API.
#[derive(Debug)]
pub struct SampleApi {
    pub address: SocketAddr,
}

fn users() -> Value {
    json!([
        {"id": 1, "username": "alice", "email": "alice@example.com", "role": "admin"},
        {"id": 2, "username": "bob", "email": "bob@example.com", "role": "user"},
        {"id": 3, "username": "carol", "email": "carol@example.com", "role": "user"}
    ])
}

fn orders() -> Value {
    json!([
        {"id": 100, "user_id": 2, "item": "keyboard", "total": 49.5},
        {"id": 101, "user_id": 3, "item": "monitor", "total": 189.0},
        {"id": 102, "user_id": 2, "item": "cable", "total": 7.25}
    ])
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    // Banners a real backend might leak; the gateway removes them.
    h.insert(
        header::SERVER,
        header::HeaderValue::from_static("sample-api/1.0"),
    );
    h.insert(
        "x-powered-by",
        header::HeaderValue::from_static("SampleFramework 2.3"),
    );
    r
}

fn find(list: Value, id: &str) -> Option<Value> {
    let id: u64 = id.parse().ok()?;
    list.as_array()?.iter().find(|v| v["id"] == id).cloned()
}

async fn handle(
    req: Request<Incoming>,
    jwks: Arc<str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let not_found = || reply(StatusCode::NOT_FOUND, &json!({"error": "not found"}));
    Ok(match (&method, segments.as_slice()) {
        (&Method::GET, ["health"]) => reply(StatusCode::OK, &json!({"status": "ok"})),
        // The demo issuer's keys, fetched by the gateway (not routed).
        (&Method::GET, [".well-known", "jwks.json"]) => {
            let v: Value = serde_json::from_str(&jwks).unwrap_or(Value::Null);
            reply(StatusCode::OK, &v)
        }
        (_, ["echo"]) => reply(
            StatusCode::OK,
            &json!({"method": method.as_str(), "path": path, "headers": headers, "body_bytes": body.len()}),
        ),
        (&Method::GET, ["users"]) => reply(StatusCode::OK, &users()),
        (&Method::POST, ["users"]) => {
            let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            reply(StatusCode::CREATED, &json!({"id": 4, "received": input}))
        }
        (&Method::GET, ["users", id]) => {
            find(users(), id).map_or_else(not_found, |u| reply(StatusCode::OK, &u))
        }
        (&Method::GET, ["orders"]) => reply(StatusCode::OK, &orders()),
        (&Method::GET, ["orders", id]) => {
            find(orders(), id).map_or_else(not_found, |o| reply(StatusCode::OK, &o))
        }
        _ => not_found(),
    })
}

impl SampleApi {
    /// Starts the API on a loopback port chosen by the OS; it also serves
    /// the demo issuer's JWKS.
    pub async fn start(jwks: &str) -> std::io::Result<SampleApi> {
        let jwks: Arc<str> = jwks.into();
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let jwks = jwks.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, jwks.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(SampleApi { address })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_compiles() {
        let addrs = crate::DemoAddresses {
            gateway: "127.0.0.1:8080".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
        };
        let c = crate::config("127.0.0.1:3000".parse().unwrap(), addrs).unwrap();
        assert_eq!(c.routes.len(), 4);
    }

    #[test]
    fn lookups() {
        assert_eq!(find(users(), "2").unwrap()["username"], "bob");
        assert!(find(users(), "9").is_none());
        assert!(find(users(), "x").is_none());
    }
}
