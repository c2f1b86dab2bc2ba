//! The admin listener: liveness, readiness and Prometheus metrics, and the
//! management API for consumers and keys ([`manage`]). It binds to
//! loopback unless the config explicitly allows otherwise.

mod manage;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_core::{Problem, RequestId};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::Shared;

pub async fn serve(
    socket: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = socket.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let svc = service_fn(move |req| respond(req, shared.clone(), false));
                            let _ = builder.http1_only().serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                acceptor.accept(stream),
                            );
                            let Ok(Ok(stream)) = handshake.await else { return };
                            // The verifier accepted the chain; a certificate
                            // here is one of the admin CA's.
                            let cert = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                            let svc = service_fn(move |req| respond(req, shared.clone(), cert));
                            let _ = builder.http1_only().serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        }
    }
}

pub(crate) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

async fn respond(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    client_cert: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path().starts_with("/v1/") {
        return Ok(manage::handle(req, &shared, client_cert).await);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let p = Problem::method_not_allowed(header::HeaderValue::from_static("GET, HEAD"));
        let (parts, body) = p.to_response(&RequestId::generate()).into_parts();
        return Ok(Response::from_parts(parts, Full::new(body)));
    }
    let json = "application/json";
    Ok(match req.uri().path() {
        "/healthz" => text(StatusCode::OK, json, r#"{"status":"ok"}"#),
        "/readyz" => {
            if shared.draining.load(Ordering::Acquire) {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json,
                    r#"{"status":"draining"}"#,
                )
            } else {
                text(StatusCode::OK, json, r#"{"status":"ready"}"#)
            }
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            shared.registry.render(),
        ),
        _ => {
            let (parts, body) = Problem::route_not_found()
                .to_response(&RequestId::generate())
                .into_parts();
            Response::from_parts(parts, Full::new(body))
        }
    })
}
