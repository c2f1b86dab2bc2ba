//! What the proxy runs on. [`Shared`] lives as long as the process;
//! a [`Generation`] is built from one compiled config and swapped in whole
//! on reload. A request takes the current generation when it starts and
//! keeps it to the end, so requests in flight finish on the config they
//! started with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use portcullis_config::runtime::{Config, Listener, LogTarget, Route};
use portcullis_telemetry::access::AccessLog;
use portcullis_telemetry::events::EventLog;
use portcullis_telemetry::mask::Masker;
use portcullis_telemetry::metrics::{Counter, Gauge, Histogram, Registry, StatusCounters};
use portcullis_telemetry::{LogSink, SinkTarget};

use crate::pipeline::{BuildCx, Pipeline, RouteFilter};
use crate::tls::TlsRuntime;
use crate::upstream::UpstreamRuntime;
use portcullis_authn::AuthServices;
use portcullis_config::runtime::Authentication;

pub fn sink_target(t: &LogTarget) -> SinkTarget {
    match t {
        LogTarget::Stdout => SinkTarget::Stdout,
        LogTarget::Stderr => SinkTarget::Stderr,
        LogTarget::Off => SinkTarget::Off,
        LogTarget::File(p) => SinkTarget::File(p.clone()),
    }
}

/// Per-listener connection accounting, kept across reloads.
pub struct ListenerCounters {
    pub active: AtomicUsize,
    pub active_gauge: Gauge,
    pub accepted: Counter,
    pub rejected: Counter,
    pub tls_failures: Counter,
    pub header_timeouts: Counter,
}

/// Process-wide state.
pub struct Shared {
    pub registry: Arc<Registry>,
    pub sink: LogSink,
    pub current: ArcSwap<Generation>,
    /// Set while shutting down: readiness fails, listeners stop accepting.
    pub draining: AtomicBool,
    pub reloads_ok: Counter,
    pub reloads_failed: Counter,
    listeners: Mutex<HashMap<Arc<str>, Arc<ListenerCounters>>>,
}

impl Shared {
    pub fn new(registry: Arc<Registry>, sink: LogSink, first: Generation) -> Self {
        let reload = |result: &str| {
            registry.counter(
                "portcullis_config_reloads_total",
                "Configuration reloads, by result",
                &[("result", result)],
            )
        };
        Shared {
            reloads_ok: reload("success"),
            reloads_failed: reload("failure"),
            current: ArcSwap::from_pointee(first),
            draining: AtomicBool::new(false),
            listeners: Mutex::new(HashMap::new()),
            registry,
            sink,
        }
    }

    pub fn listener_counters(&self, name: &Arc<str>) -> Arc<ListenerCounters> {
        let mut map = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name.clone())
            .or_insert_with(|| {
                let r = &self.registry;
                let l = [("listener", &**name)];
                Arc::new(ListenerCounters {
                    active: AtomicUsize::new(0),
                    active_gauge: r.gauge(
                        "portcullis_active_connections",
                        "Open client connections",
                        &l,
                    ),
                    accepted: r.counter(
                        "portcullis_connections_total",
                        "Client connections accepted",
                        &l,
                    ),
                    rejected: r.counter(
                        "portcullis_connections_rejected_total",
                        "Client connections turned away at the connection cap",
                        &l,
                    ),
                    tls_failures: r.counter(
                        "portcullis_tls_handshake_failures_total",
                        "TLS handshakes that failed or timed out",
                        &l,
                    ),
                    header_timeouts: r.counter(
                        "portcullis_header_timeouts_total",
                        "Connections closed with 408 for a slow request head",
                        &l,
                    ),
                })
            })
            .clone()
    }
}

/// A route ready to serve.
pub struct RouteRuntime {
    pub route: Arc<Route>,
    pub pipeline: Pipeline,
    pub upstream: Arc<UpstreamRuntime>,
    pub statuses: StatusCounters,
    pub duration: Histogram,
}

/// A listener's settings and TLS context in this generation.
pub struct ListenerRuntime {
    pub config: Arc<Listener>,
    pub tls: Option<Arc<TlsRuntime>>,
}

/// Everything built from one compiled configuration.
pub struct Generation {
    pub config: Arc<Config>,
    pub routes: Vec<RouteRuntime>,
    /// Looked up by every request: a fast hash, over names from the config.
    pub listeners: HashMap<Arc<str>, ListenerRuntime, foldhash::fast::RandomState>,
    pub upstreams: HashMap<Arc<str>, Arc<UpstreamRuntime>>,
    pub access_log: AccessLog,
    pub events: EventLog,
    pub authentication: Arc<Authentication>,
    /// The credential store's snapshot, secret and lock-outs; shared with
    /// the next generation when its settings are the same.
    pub auth: Arc<AuthServices>,
    /// Hardening for responses that match no route.
    pub default_pipeline: Pipeline,
    pub unrouted: StatusCounters,
    pub unrouted_duration: Histogram,
}

impl Generation {
    /// Builds a generation; upstreams whose settings did not change are
    /// taken over from `previous` with their pools and health state.
    pub fn build(
        config: Config,
        registry: &Arc<Registry>,
        sink: &LogSink,
        previous: Option<&Generation>,
    ) -> Result<Generation, String> {
        let config = Arc::new(config);
        let events = EventLog::new(sink.clone(), registry);
        let access_log = AccessLog::new(
            sink.clone(),
            Masker::new(
                config.logging.mask_headers.clone(),
                config.logging.mask_query_params.clone(),
            ),
            config.logging.log_headers.clone(),
        );
        let mut upstreams = HashMap::new();
        for (name, spec) in &config.upstreams {
            let reused = previous
                .and_then(|p| p.upstreams.get(name))
                .filter(|u| *u.spec == **spec)
                .cloned();
            let rt = match reused {
                Some(u) => u,
                None => Arc::new(
                    UpstreamRuntime::new(spec.clone(), registry)
                        .map_err(|e| format!("upstream \"{name}\": {e}"))?,
                ),
            };
            upstreams.insert(name.clone(), rt);
        }
        let authentication = Arc::new(config.authentication.clone());
        let auth = AuthServices::open(&authentication, previous.map(|p| &p.auth))?;
        let build_cx = BuildCx {
            events: &events,
            authentication: &authentication,
            auth: &auth,
        };
        let mut routes = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let upstream = upstreams
                .get(&route.upstream)
                .cloned()
                .ok_or_else(|| format!("route \"{}\": unknown upstream", route.id))?;
            let filters = route
                .filters
                .iter()
                .map(|s| RouteFilter::build(s, &build_cx))
                .collect();
            routes.push(RouteRuntime {
                route: route.clone(),
                pipeline: Pipeline::new(filters),
                upstream,
                statuses: StatusCounters::new(registry.clone(), route.id.clone()),
                duration: route_histogram(registry, &route.id),
            });
        }
        let mut listeners = HashMap::default();
        for l in &config.listeners {
            let tls = match &l.tls {
                Some(t) => Some(Arc::new(
                    TlsRuntime::new(t).map_err(|e| format!("listener \"{}\": TLS: {e}", l.name))?,
                )),
                None => None,
            };
            listeners.insert(
                l.name.clone(),
                ListenerRuntime {
                    config: l.clone(),
                    tls,
                },
            );
        }
        let default_pipeline = Pipeline::new(
            config
                .default_security_headers
                .iter()
                .map(|p| {
                    RouteFilter::SecurityHeaders(portcullis_filters::SecurityHeaders::new(
                        p.clone(),
                    ))
                })
                .collect(),
        );
        Ok(Generation {
            unrouted: StatusCounters::new(registry.clone(), "-".into()),
            unrouted_duration: route_histogram(registry, "-"),
            config,
            routes,
            listeners,
            upstreams,
            access_log,
            events,
            authentication,
            auth,
            default_pipeline,
        })
    }
}

fn route_histogram(registry: &Registry, route: &str) -> Histogram {
    registry.histogram(
        "portcullis_request_duration_seconds",
        "Time from request head to the end of the response, by route",
        &[("route", route)],
    )
}
