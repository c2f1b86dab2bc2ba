//! Listening sockets and connections: the accept loop, the connection cap,
//! the TLS handshake, HTTP/1.1 (`h1`) or HTTP/2 (hyper) serving, and
//! graceful draining.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::convert::Infallible;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis_config::runtime::ListenerLimits;
use portcullis_core::{Problem, RequestId, Scheme, TlsInfo};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::body::ClientBody;
use crate::h1::{self, io::ClientIo};
use crate::service::{ConnInfo, handle};
use crate::state::{ListenerCounters, Shared};
use crate::stop::StopSignal;
use crate::tls::protocol_name;

/// Binds a listening socket (address reuse on, a deep backlog).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// A listener whose accept loop runs.
pub struct RunningListener {
    pub name: Arc<str>,
    /// The address in the config (port 0 stays 0 here).
    pub configured: SocketAddr,
    /// The address actually bound.
    pub local: SocketAddr,
    /// Raised with `stop` for the HTTP/1 connections, which wait on it
    /// between requests; the channel is for HTTP/2 connections and tells
    /// when every connection has finished (all receivers dropped).
    signal: Arc<StopSignal>,
    stop: watch::Sender<bool>,
    task: JoinHandle<TcpListener>,
}

impl RunningListener {
    pub fn start(
        name: Arc<str>,
        configured: SocketAddr,
        socket: TcpListener,
        shared: Arc<Shared>,
    ) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let (stop, rx) = watch::channel(false);
        let signal = Arc::new(StopSignal::default());
        let task = tokio::spawn(accept_loop(
            socket,
            name.clone(),
            shared,
            rx,
            signal.clone(),
        ));
        Ok(RunningListener {
            name,
            configured,
            local,
            signal,
            stop,
            task,
        })
    }

    /// Stops accepting, asks every connection to finish (HTTP/1: after its
    /// current response; HTTP/2: GOAWAY), and waits up to `deadline`.
    /// Returns whether every connection finished in time.
    pub async fn drain(self, deadline: Duration) -> bool {
        let (_, drained) = self.hand_over(deadline).await;
        drained.await
    }

    /// Stops accepting and gives the socket back (for a new accept loop on
    /// the same address); the returned future drains this loop's
    /// connections, as [`RunningListener::drain`] does.
    pub async fn hand_over(
        self,
        deadline: Duration,
    ) -> (Option<TcpListener>, impl Future<Output = bool> + use<>) {
        let _ = self.stop.send(true);
        self.signal.stop();
        let socket = self.task.await.ok();
        let stop = self.stop;
        (socket, async move {
            tokio::time::timeout(deadline, stop.closed()).await.is_ok()
        })
    }
}

async fn accept_loop(
    socket: TcpListener,
    name: Arc<str>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    signal: Arc<StopSignal>,
) -> TcpListener {
    let counters = shared.listener_counters(&name);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let task = serve_connection(stream, peer, name.clone(), shared.clone(), (stop.clone(), signal.clone()), counters.clone());
                    tokio::spawn(task);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(listener = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    socket
}

struct Active(Arc<ListenerCounters>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.active_gauge.dec();
    }
}

fn http2(limits: &ListenerLimits) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes * 2).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    name: Arc<str>,
    shared: Arc<Shared>,
    (stop, signal): (watch::Receiver<bool>, Arc<StopSignal>),
    counters: Arc<ListenerCounters>,
) {
    // Take what the connection needs from the current generation and let
    // go of it: the connection may outlive it.
    let (settings, tls, hsts) = {
        let generation = shared.current.load();
        let Some(l) = generation.listeners.get(&name) else {
            return;
        };
        (
            h1::Settings {
                limits: l.config.limits.clone(),
                h2c: l.config.h2c,
            },
            l.tls.clone(),
            l.config.tls.as_ref().is_some_and(|t| t.hsts),
        )
    };
    let limits = &settings.limits;
    let active = counters.active.fetch_add(1, Ordering::AcqRel) + 1;
    counters.active_gauge.inc();
    let _active = Active(counters.clone());
    if active > limits.max_connections {
        counters.rejected.inc();
        if tls.is_none() {
            refuse(stream).await;
        }
        return;
    }
    counters.accepted.inc();
    let _ = stream.set_nodelay(true);
    let (io, info) = match tls {
        Some(tls) => {
            let handshake =
                tokio::time::timeout(limits.header_timeout, tls.acceptor.accept(stream)).await;
            let Ok(Ok(stream)) = handshake else {
                counters.tls_failures.inc();
                return;
            };
            let (_, session) = stream.get_ref();
            let info = TlsInfo {
                server_name: session.server_name().map(Into::into),
                protocol: protocol_name(session.protocol_version()),
                alpn: session.alpn_protocol().map(Into::into),
                hsts,
                client_cert: session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(crate::tls::client_certificate)
                    .map(Arc::new),
            };
            (ClientIo::Tls(Box::new(stream)), Some(info))
        }
        None => (ClientIo::Plain(stream), None),
    };
    let is_h2 = info.as_ref().and_then(|i| i.alpn.as_deref()) == Some(b"h2");
    let conn = Arc::new(ConnInfo {
        listener: name.clone(),
        peer,
        scheme: if info.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        },
        tls: info,
        peer_value: crate::headers::ip_value(peer.ip()),
    });
    // HTTP/2 is boxed so that the (far more numerous) HTTP/1 connections
    // do not carry room for it.
    if is_h2 {
        Box::pin(serve_h2(io, limits, conn, shared, stop)).await;
        return;
    }
    // HTTP/1, unless the client opens with the HTTP/2 preface (h2c).
    let waiter = signal.waiter();
    let upgraded = h1::serve(io, &conn, &shared, &settings, &counters, &waiter).await;
    drop(waiter);
    if let Some(io) = upgraded {
        Box::pin(serve_h2(io, limits, conn, shared, stop)).await;
    }
}

/// Serves an HTTP/2 connection with hyper until it ends or the listener
/// stops (then GOAWAY, and the streams in flight finish).
async fn serve_h2<IO>(
    io: IO,
    limits: &ListenerLimits,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let conn = conn.clone();
        let shared = shared.clone();
        // Boxed: hyper keeps room for one per stream.
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let resp = handle(&mut parts, ClientBody::H2(body), &conn, &shared).await;
            crate::bufpool::give_header_map(std::mem::take(&mut parts.headers));
            Ok::<_, Infallible>(resp)
        })
    });
    let connection = http2(limits).serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    if *stop.borrow() {
        connection.as_mut().graceful_shutdown();
    }
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Turns a connection away at the cap with a short 503 (plain HTTP only;
/// a TLS connection is simply closed).
async fn refuse(mut stream: TcpStream) {
    let raw = raw_problem(&Problem::too_many_connections(), &RequestId::generate());
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&raw)).await;
    let _ = stream.shutdown().await;
}

/// A problem+json response as raw HTTP/1.1 bytes, for the few answers
/// written below the HTTP layer (a connection over the cap).
/// The connection is closed after it.
fn raw_problem(problem: &Problem, id: &RequestId) -> Vec<u8> {
    let resp = problem.to_response(id);
    let status = resp.status();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in resp.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "connection: close\r\ncontent-length: {}\r\n\r\n",
            resp.body().len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(resp.body());
    out
}
