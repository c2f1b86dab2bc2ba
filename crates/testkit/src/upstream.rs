//! A fake upstream API: echoes what it received, and misbehaves on request.
//!
//! - `GET /health`: 200, or 503 after `set_healthy(false)`
//! - `/status/{code}`: answers with that status
//! - `/delay/{ms}`: answers after a pause
//! - `/bytes/{n}`: answers with n bytes
//! - `/stream/{n}`: answers with n chunks of `chunk-{i};` of unknown total
//!   length (sent chunked)
//! - `.../leak`: an HTML page with a database error message in it, the kind
//!   of data leak a WAF looks for in responses
//! - anything else: a JSON echo of method, path, headers, body size and
//!   body text
//!
//! Every response carries banners and hop-by-hop headers the gateway must
//! remove, and a CORS header the gateway must replace.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

struct State {
    name: String,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    connections: AtomicUsize,
    healthy: AtomicBool,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    tasks: Option<tokio::task::JoinHandle<()>>,
}

impl FakeUpstream {
    pub async fn start(name: &str) -> FakeUpstream {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    /// Starts on a given address (to bring a stopped upstream back).
    pub async fn start_on(name: &str, addr: SocketAddr) -> std::io::Result<FakeUpstream> {
        Self::start_inner(name, addr, None).await
    }

    /// Starts serving HTTPS with the given PEM certificate chain and key.
    pub async fn start_tls(name: &str, cert_pem: &str, key_pem: &str) -> FakeUpstream {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_inner(name, "127.0.0.1:0".parse().unwrap(), Some(acceptor))
            .await
            .unwrap()
    }

    async fn start_inner(
        name: &str,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<FakeUpstream> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener = TcpListener::from_std(socket.into())?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            name: name.to_owned(),
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(req, st.clone()));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Ok(FakeUpstream {
            addr,
            state,
            tasks: Some(task),
        })
    }

    /// Requests received (health probes excluded).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (health probes included).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.state.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Closes the listening socket and every open connection.
    pub async fn stop(mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn handle(req: Request<Incoming>, st: Arc<State>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/health" {
        let status = if st.healthy.load(Ordering::SeqCst) {
            200
        } else {
            503
        };
        return Ok(respond(
            &st,
            StatusCode::from_u16(status).unwrap(),
            Bytes::from_static(b"{}"),
        ));
    }
    st.requests.fetch_add(1, Ordering::SeqCst);
    st.in_flight.fetch_add(1, Ordering::SeqCst);
    let out = answer(req, &st).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(out)
}

async fn answer(req: Request<Incoming>, st: &State) -> Response<Body> {
    let segments: Vec<String> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["status", code] => {
            let status = code
                .parse()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::OK);
            return respond(st, status, Bytes::from_static(b"{}"));
        }
        ["delay", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        }
        ["bytes", n] => {
            let n: usize = n.parse().unwrap_or(0);
            return respond(st, StatusCode::OK, Bytes::from(vec![b'x'; n]));
        }
        [.., "leak"] => {
            let page = "<html><body><p>Microsoft OLE DB Provider for ODBC Drivers error '80040e14'</p>\
                <p>[Microsoft][ODBC Microsoft Access Driver] Syntax error (missing operator) in \
                query expression 'id = 1''.</p></body></html>";
            let mut r = respond(st, StatusCode::OK, Bytes::from_static(page.as_bytes()));
            r.headers_mut()
                .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
            return r;
        }
        ["stream", n] => {
            let n: usize = n.parse().unwrap_or(0);
            let chunks = (0..n).map(|i| {
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(format!("chunk-{i};"))))
            });
            let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
            let mut r = respond(st, StatusCode::OK, Bytes::new());
            *r.body_mut() = body;
            return r;
        }
        _ => {}
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = json!({
        "upstream": st.name,
        "method": method,
        "uri": uri,
        "headers": headers,
        "body_len": body.len(),
        "body": String::from_utf8_lossy(&body),
    });
    respond(st, StatusCode::OK, Bytes::from(echo.to_string()))
}

fn respond(st: &State, status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("server", "fake-upstream/1.0".parse().unwrap());
    h.insert("x-powered-by", "TestFramework".parse().unwrap());
    h.insert("x-upstream", st.name.parse().unwrap());
    h.insert("keep-alive", "timeout=5".parse().unwrap());
    h.insert("access-control-allow-origin", "*".parse().unwrap());
    r
}
