//! Listening sockets and connections: the accept loop, the connection cap,
//! the TLS handshake, HTTP/1.1 and HTTP/2 serving, and graceful draining.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_config::runtime::ListenerLimits;
use portcullis_core::{Problem, RequestId, Scheme, TlsInfo};
use portcullis_telemetry::events::{EventKind, SecurityEvent};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::conn::{ConnGuard, ConnShared, raw_problem};
use crate::service::{ConnInfo, handle};
use crate::state::{ListenerCounters, Shared};
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
        let task = tokio::spawn(accept_loop(socket, name.clone(), shared, rx));
        Ok(RunningListener {
            name,
            configured,
            local,
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
) -> TcpListener {
    let counters = shared.listener_counters(&name);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let task = serve_connection(stream, peer, name.clone(), shared.clone(), stop.clone(), counters.clone());
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

/// The HTTP/1 settings, for hyper's HTTP/1 builder and the one inside the
/// auto builder (two types with the same methods). hyper's own limits sit
/// above ours so that the gateway, not hyper, answers most oversized heads
/// (with problem+json); hyper's bare 431 remains the backstop.
macro_rules! http1_settings {
    ($b:expr, $limits:expr) => {
        $b.timer(TokioTimer::new())
            .header_read_timeout(None)
            .keep_alive(true)
            .max_buf_size(($limits.max_header_bytes * 2 + 4096).max(8192))
            .max_headers(($limits.max_headers + 50).max(100))
    };
}

fn http1(limits: &ListenerLimits) -> http1::Builder {
    let mut b = http1::Builder::new();
    http1_settings!(b, limits);
    b
}

/// Both protocols, told apart by the first bytes (h2c by prior knowledge).
fn auto_builder(limits: &ListenerLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    http1_settings!(b.http1(), limits);
    configure_http2(&mut b.http2(), limits);
    b
}

fn configure_http2<E>(b: &mut auto::Http2Builder<'_, E>, limits: &ListenerLimits) {
    b.timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes * 2).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
}

/// How a connection is served.
enum Protocol {
    /// HTTP/1.1 only: hyper's HTTP/1 connection, without protocol sniffing.
    Http1(http1::Builder),
    /// HTTP/2 only (ALPN chose it) or both (h2c allowed).
    Auto(auto::Builder<TokioExecutor>),
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    name: Arc<str>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    counters: Arc<ListenerCounters>,
) {
    // Take what the connection needs from the current generation and let
    // go of it: the connection may outlive it.
    let (limits, tls, h2c, hsts) = {
        let generation = shared.current.load();
        let Some(l) = generation.listeners.get(&name) else {
            return;
        };
        (
            l.config.limits.clone(),
            l.tls.clone(),
            l.config.h2c,
            l.config.tls.as_ref().is_some_and(|t| t.hsts),
        )
    };
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
    let conn_shared = Arc::new(ConnShared::default());
    match tls {
        Some(tls) => {
            let handshake =
                tokio::time::timeout(limits.header_timeout, tls.acceptor.accept(stream)).await;
            let Ok(Ok(stream)) = handshake else {
                counters.tls_failures.inc();
                return;
            };
            let (_, session) = stream.get_ref();
            let is_h2 = session.alpn_protocol() == Some(b"h2");
            let info = TlsInfo {
                server_name: session.server_name().map(Into::into),
                protocol: protocol_name(session.protocol_version()),
                alpn: session.alpn_protocol().map(Into::into),
                hsts,
            };
            let conn = Arc::new(ConnInfo {
                listener: name.clone(),
                peer,
                scheme: Scheme::Https,
                tls: Some(info),
                shared: conn_shared.clone(),
            });
            if is_h2 {
                let io = ConnGuard::passthrough(stream, conn_shared.clone());
                run(
                    Protocol::Auto(auto_builder(&limits).http2_only()),
                    io,
                    conn,
                    shared.clone(),
                    stop,
                )
                .await;
            } else {
                let io = ConnGuard::new(
                    stream,
                    conn_shared.clone(),
                    limits.header_timeout,
                    limits.idle_timeout,
                );
                run(
                    Protocol::Http1(http1(&limits)),
                    io,
                    conn,
                    shared.clone(),
                    stop,
                )
                .await;
            }
        }
        None => {
            let conn = Arc::new(ConnInfo {
                listener: name.clone(),
                peer,
                scheme: Scheme::Http,
                tls: None,
                shared: conn_shared.clone(),
            });
            let io = ConnGuard::new(
                stream,
                conn_shared.clone(),
                limits.header_timeout,
                limits.idle_timeout,
            );
            let protocol = if h2c {
                Protocol::Auto(auto_builder(&limits))
            } else {
                Protocol::Http1(http1(&limits))
            };
            run(protocol, io, conn, shared.clone(), stop).await;
        }
    }
    if let Some(id) = conn_shared.header_timed_out.get() {
        counters.header_timeouts.inc();
        let generation = shared.current.load();
        generation.events.emit(&SecurityEvent {
            kind: EventKind::LimitExceeded,
            code: "header-timeout".into(),
            request_id: Some(id.as_str().to_owned()),
            listener: Some(name.clone()),
            client: Some(peer.ip()),
            route: None,
            detail: None,
        });
    }
}

async fn run<IO>(
    protocol: Protocol,
    io: IO,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The request future is boxed: hyper keeps room for one per connection,
    // and a box keeps idle connections small.
    let service = service_fn(move |req| Box::pin(handle(req, conn.clone(), shared.clone())));
    let io = TokioIo::new(io);
    // The two connection types share the method names, not a trait.
    macro_rules! serve_until_stopped {
        ($connection:expr) => {{
            let connection = $connection;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        }};
    }
    match protocol {
        Protocol::Http1(builder) => serve_until_stopped!(builder.serve_connection(io, service)),
        Protocol::Auto(builder) => serve_until_stopped!(builder.serve_connection(io, service)),
    }
}

/// Turns a connection away at the cap with a short 503 (plain HTTP only;
/// a TLS connection is simply closed).
async fn refuse(mut stream: TcpStream) {
    let raw = raw_problem(&Problem::too_many_connections(), &RequestId::generate());
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&raw)).await;
    let _ = stream.shutdown().await;
}
