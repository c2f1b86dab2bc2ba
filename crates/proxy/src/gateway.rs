//! The gateway's lifecycle: start (bind everything, then serve), reload
//! (compile, build, bind, then swap atomically, or change nothing), and
//! graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_config::runtime::Config;
use portcullis_telemetry::LogSink;
use portcullis_telemetry::metrics::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::{RunningListener, bind};
use crate::state::{Generation, Shared, sink_target};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind listener \"{name}\" to {address}: {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Build(String),
    #[error("cannot open the access log: {0}")]
    Log(std::io::Error),
}

/// A running gateway.
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
    listeners: tokio::sync::Mutex<Vec<RunningListener>>,
    addresses: Mutex<Vec<(Arc<str>, SocketAddr)>>,
    admin: Option<(SocketAddr, watch::Sender<bool>)>,
    /// The admin listener's certificates, watched like a listener's.
    pub(crate) admin_tls: Option<Arc<crate::tls::TlsRuntime>>,
    pub(crate) source: Option<PathBuf>,
}

fn bind_named(name: &str, address: SocketAddr) -> Result<TcpListener, StartError> {
    bind(address).map_err(|source| StartError::Bind {
        name: name.to_owned(),
        address,
        source,
    })
}

impl Gateway {
    /// Binds every listener, then starts serving. Nothing is served if any
    /// listener cannot be bound.
    pub async fn start(config: Config) -> Result<Arc<Gateway>, StartError> {
        let registry = Arc::new(Registry::new());
        let dropped = registry.counter(
            "portcullis_log_lines_dropped_total",
            "Log lines dropped because the writer could not keep up",
            &[],
        );
        let sink = LogSink::start(&sink_target(&config.logging.access_log), dropped)
            .map_err(StartError::Log)?;
        let source = config.source.clone();
        let admin_config = config.admin.clone();
        let generation =
            Generation::build(config, &registry, &sink, None).map_err(StartError::Build)?;
        let mut sockets = Vec::new();
        for l in &generation.config.listeners {
            sockets.push((l.name.clone(), l.address, bind_named(&l.name, l.address)?));
        }
        let admin_socket = match &admin_config {
            Some(a) => Some(bind_named("admin", a.address)?),
            None => None,
        };
        let admin_tls = match &generation.config.admin_tls {
            Some(t) => {
                Some(Arc::new(crate::tls::TlsRuntime::new(t).map_err(|e| {
                    StartError::Build(format!("admin listener TLS: {e}"))
                })?))
            }
            None => None,
        };
        let shared = Arc::new(Shared::new(registry, sink, generation));
        let mut running = Vec::new();
        for (name, configured, socket) in sockets {
            let r = RunningListener::start(name.clone(), configured, socket, shared.clone())
                .map_err(|source| StartError::Bind {
                    name: name.to_string(),
                    address: configured,
                    source,
                })?;
            tracing::info!(listener = %r.name, address = %r.local, "listener started");
            running.push(r);
        }
        let admin = match admin_socket {
            Some(socket) => {
                let local = socket.local_addr().map_err(|source| StartError::Bind {
                    name: "admin".into(),
                    address: admin_config
                        .as_ref()
                        .map_or(local_unspecified(), |a| a.address),
                    source,
                })?;
                let (tx, rx) = watch::channel(false);
                let acceptor = admin_tls.as_ref().map(|t| t.acceptor.clone());
                tokio::spawn(crate::admin::serve(socket, shared.clone(), acceptor, rx));
                tracing::info!(listener = "admin", address = %local, "admin listener started");
                Some((local, tx))
            }
            None => None,
        };
        let addresses = running.iter().map(|r| (r.name.clone(), r.local)).collect();
        Ok(Arc::new(Gateway {
            shared,
            listeners: tokio::sync::Mutex::new(running),
            addresses: Mutex::new(addresses),
            admin,
            admin_tls,
            source,
        }))
    }

    /// The bound address of each listener.
    pub fn addresses(&self) -> Vec<(Arc<str>, SocketAddr)> {
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(a, _)| *a)
    }

    /// The running configuration's authentication settings and services
    /// (credential store, key secret, lock-outs).
    pub fn auth(
        &self,
    ) -> (
        Arc<portcullis_config::runtime::Authentication>,
        Arc<portcullis_authn::AuthServices>,
    ) {
        let g = self.shared.current.load();
        (g.authentication.clone(), g.auth.clone())
    }

    /// The Prometheus text of the gateway's metrics.
    pub fn metrics(&self) -> String {
        self.shared.registry.render()
    }

    /// Reloads the configuration file the gateway was started with. A file
    /// that does not compile is refused with its errors logged, and the
    /// running configuration stays.
    pub async fn reload(&self) -> Result<(), String> {
        let Some(path) = self.source.clone() else {
            return Err("the gateway was not started from a configuration file".into());
        };
        let loaded = tokio::task::spawn_blocking(move || portcullis_config::load(&path))
            .await
            .map_err(|e| e.to_string())?;
        match loaded {
            Ok(config) => self.apply(config).await,
            Err(e) => {
                for d in &e.diagnostics {
                    tracing::error!(
                        file = %d.file,
                        line = d.pos.map(|p| p.line),
                        column = d.pos.map(|p| p.column),
                        hint = d.hint.as_deref(),
                        "configuration error: {}",
                        d.message
                    );
                }
                self.shared.reloads_failed.inc();
                tracing::error!(
                    errors = e.diagnostics.len(),
                    "configuration reload refused; the running configuration stays"
                );
                Err(e.to_string())
            }
        }
    }

    /// Swaps in a new configuration: everything is built and bound first;
    /// on any failure nothing changes.
    pub async fn apply(&self, config: Config) -> Result<(), String> {
        let result = self.apply_inner(config).await;
        match &result {
            Ok(()) => {
                self.shared.reloads_ok.inc();
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                self.shared.reloads_failed.inc();
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
            }
        }
        result
    }

    async fn apply_inner(&self, config: Config) -> Result<(), String> {
        let mut listeners = self.listeners.lock().await;
        let old = self.shared.current.load_full();
        if config.runtime.workers != old.config.runtime.workers {
            tracing::warn!("runtime.workers changes take effect after a restart");
        }
        if config.admin != old.config.admin {
            tracing::warn!("admin listener changes take effect after a restart");
        }
        let generation =
            Generation::build(config, &self.shared.registry, &self.shared.sink, Some(&old))?;

        // Bind new addresses before touching anything.
        let mut fresh = Vec::new();
        for l in &generation.config.listeners {
            let same_addr = listeners.iter().any(|r| r.configured == l.address);
            if !same_addr {
                let socket = bind_named(&l.name, l.address).map_err(|e| e.to_string())?;
                fresh.push((l.name.clone(), l.address, socket));
            }
        }
        if generation.config.logging.access_log != old.config.logging.access_log {
            self.shared
                .sink
                .switch(&sink_target(&generation.config.logging.access_log))
                .map_err(|e| format!("cannot open the access log: {e}"))?;
        }
        let deadline = generation.config.runtime.shutdown_timeout;
        let wanted: Vec<(Arc<str>, SocketAddr)> = generation
            .config
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.address))
            .collect();

        // Commit.
        self.shared.current.store(Arc::new(generation));
        let mut kept = Vec::new();
        for r in listeners.drain(..) {
            match wanted.iter().find(|(_, a)| *a == r.configured) {
                Some((name, _)) if *name == r.name => kept.push(r),
                Some((name, _)) => {
                    // Same address, new name: a new accept loop takes the socket.
                    let (socket, drained) = r.hand_over(deadline).await;
                    tokio::spawn(drained);
                    if let Some(socket) = socket {
                        fresh.push((name.clone(), r_configured(&wanted, name), socket));
                    }
                }
                None => {
                    tracing::info!(listener = %r.name, "listener removed; draining its connections");
                    tokio::spawn(r.drain(deadline));
                }
            }
        }
        for (name, configured, socket) in fresh {
            match RunningListener::start(name.clone(), configured, socket, self.shared.clone()) {
                Ok(r) => {
                    tracing::info!(listener = %r.name, address = %r.local, "listener started");
                    kept.push(r);
                }
                Err(e) => tracing::error!(listener = %name, error = %e, "listener could not start"),
            }
        }
        *self.addresses.lock().unwrap_or_else(|e| e.into_inner()) =
            kept.iter().map(|r| (r.name.clone(), r.local)).collect();
        *listeners = kept;
        Ok(())
    }

    /// Graceful shutdown: readiness fails, listeners stop accepting, and
    /// connections get until the configured shutdown timeout to finish.
    pub async fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::Release);
        let deadline = self.shared.current.load().config.runtime.shutdown_timeout;
        tracing::info!(
            timeout_ms = deadline.as_millis() as u64,
            "shutting down; draining connections"
        );
        let listeners: Vec<RunningListener> = self.listeners.lock().await.drain(..).collect();
        let drains: Vec<_> = listeners
            .into_iter()
            .map(|l| tokio::spawn(l.drain(deadline)))
            .collect();
        let mut clean = true;
        for d in drains {
            clean &= d.await.unwrap_or(false);
        }
        if let Some((_, stop)) = &self.admin {
            let _ = stop.send(true);
        }
        if clean {
            tracing::info!("all connections drained");
        } else {
            tracing::warn!("shutdown deadline reached with connections still open");
        }
        self.shared.sink.flush(Duration::from_secs(5));
    }

    /// Serves until SIGTERM or SIGINT; reloads on SIGHUP.
    pub async fn run_until_signal(self: Arc<Self>) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = self.reload().await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        self.shutdown().await;
        Ok(())
    }
}

fn r_configured(wanted: &[(Arc<str>, SocketAddr)], name: &str) -> SocketAddr {
    wanted
        .iter()
        .find(|(n, _)| &**n == name)
        .map_or(local_unspecified(), |(_, a)| *a)
}

fn local_unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}
