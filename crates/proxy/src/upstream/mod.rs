//! Upstreams at run time: a pooled client per upstream, target selection
//! (round-robin or least-connections) over the targets that are healthy and
//! not ejected, timeouts, and retries of idempotent requests on another
//! target when connecting fails.

mod health;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::runtime::{Balance, Target, Upstream};
use portcullis_telemetry::metrics::{Counter, Gauge, Histogram, Registry};
use tokio::task::JoinHandle;

use crate::body::UpstreamBody;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// Why forwarding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Every target is unhealthy or ejected.
    NoHealthyTarget,
    /// No connection could be made (after any retries).
    Connect,
    /// The response head did not arrive in time.
    Timeout,
    /// The exchange failed after it started (reset, bad response, or the
    /// request body failed).
    Failed,
}

fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Health and load of one target.
pub struct TargetState {
    pub target: Target,
    authority: Authority,
    in_flight: AtomicUsize,
    /// From active health checks; targets start healthy.
    healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    /// Clock time (ms) until which the target is ejected; 0 when it is not.
    ejected_until: AtomicU64,
    health_gauge: Gauge,
    ok: Counter,
    connect_errors: Counter,
    timeouts: Counter,
    errors: Counter,
}

impl TargetState {
    fn available(&self, now: u64) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.ejected_until.load(Ordering::Relaxed) <= now
    }

    fn refresh_gauge(&self) {
        self.health_gauge.set(i64::from(self.available(clock_ms())));
    }
}

/// Holds a target's in-flight count up while a request uses it.
pub struct InFlight(Arc<TargetState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One upstream's client, targets and background health checks.
pub struct UpstreamRuntime {
    pub spec: Arc<Upstream>,
    client: HttpClient,
    scheme: Scheme,
    targets: Vec<Arc<TargetState>>,
    next: AtomicUsize,
    header_time: Histogram,
    health_task: Option<JoinHandle<()>>,
}

impl Drop for UpstreamRuntime {
    fn drop(&mut self) {
        if let Some(t) = &self.health_task {
            t.abort();
        }
    }
}

fn build_client(spec: &Upstream) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(spec.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let mut roots = rustls::RootCertStore::empty();
    match &spec.tls {
        Some(t) if !t.ca_certs.is_empty() => {
            for c in &t.ca_certs {
                roots
                    .add(c.clone())
                    .map_err(|e| format!("a CA certificate is not usable: {e}"))?;
            }
        }
        _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match spec.tls.as_ref().and_then(|t| t.server_name.clone()) {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name)
                .map_err(|e| format!("server name: {e}"))?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let connector = builder.enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(spec.idle_timeout)
        .pool_max_idle_per_host(spec.max_idle_connections)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

impl UpstreamRuntime {
    pub fn new(spec: Arc<Upstream>, registry: &Registry) -> Result<Self, String> {
        let client = build_client(&spec)?;
        let scheme = if spec.tls.is_some() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let mut targets = Vec::with_capacity(spec.targets.len());
        for t in &spec.targets {
            let authority = Authority::try_from(&*t.authority)
                .map_err(|e| format!("target {}: {e}", t.authority))?;
            let labels = [("upstream", &*spec.name), ("target", &*t.authority)];
            let outcome = |o: &str| {
                registry.counter(
                    "portcullis_upstream_requests_total",
                    "Requests sent upstream, by target and outcome",
                    &[labels[0], labels[1], ("outcome", o)],
                )
            };
            let state = TargetState {
                target: t.clone(),
                authority,
                in_flight: AtomicUsize::new(0),
                healthy: AtomicBool::new(true),
                consecutive_failures: AtomicU32::new(0),
                ejected_until: AtomicU64::new(0),
                health_gauge: registry.gauge(
                    "portcullis_upstream_target_healthy",
                    "Whether a target receives traffic (1) or is unhealthy or ejected (0)",
                    &labels,
                ),
                ok: outcome("ok"),
                connect_errors: outcome("connect_error"),
                timeouts: outcome("timeout"),
                errors: outcome("error"),
            };
            state.refresh_gauge();
            targets.push(Arc::new(state));
        }
        let header_time = registry.histogram(
            "portcullis_upstream_header_seconds",
            "Time until the upstream's response head arrived",
            &[("upstream", &spec.name)],
        );
        let health_task = spec.health_check.clone().map(|hc| {
            tokio::spawn(health::run(
                client.clone(),
                scheme.clone(),
                spec.name.clone(),
                spec.host_header.clone(),
                hc,
                targets.clone(),
            ))
        });
        Ok(UpstreamRuntime {
            spec,
            client,
            scheme,
            targets,
            next: AtomicUsize::new(0),
            header_time,
            health_task,
        })
    }

    /// Picks an available target not yet tried.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = clock_ms();
        let n = self.targets.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !tried.contains(i))
            .filter(|i| self.targets.get(*i).is_some_and(|t| t.available(now)));
        match self.spec.balance {
            Balance::RoundRobin => candidates.into_iter().next(),
            Balance::LeastConnections => candidates.min_by_key(|i| {
                self.targets
                    .get(*i)
                    .map_or(usize::MAX, |t| t.in_flight.load(Ordering::Relaxed))
            }),
        }
    }

    fn passive_failure(&self, t: &TargetState) {
        let Some(p) = &self.spec.passive_health else {
            return;
        };
        let failures = t.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= p.consecutive_failures {
            let until = clock_ms() + u64::try_from(p.ejection_time.as_millis()).unwrap_or(u64::MAX);
            let was = t.ejected_until.swap(until, Ordering::Relaxed);
            t.consecutive_failures.store(0, Ordering::Relaxed);
            t.health_gauge.set(0);
            if was <= clock_ms() {
                tracing::warn!(upstream = %self.spec.name, target = %t.target.authority, failures, "target ejected after consecutive failures");
            }
        }
    }

    fn passive_success(&self, t: &TargetState) {
        if t.consecutive_failures.load(Ordering::Relaxed) != 0 {
            t.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if t.ejected_until.load(Ordering::Relaxed) != 0 {
            t.ejected_until.store(0, Ordering::Relaxed);
            t.refresh_gauge();
        }
    }

    /// Sends a request to a target, retrying on another target when
    /// connecting fails and the request can safely be sent again.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: PathAndQuery,
        headers: http::HeaderMap,
        body: UpstreamBody,
        info: &mut portcullis_core::UpstreamInfo,
    ) -> Result<(Response<Incoming>, InFlight), UpstreamError> {
        let attempts = 1 + usize::from(self.spec.retries);
        let can_retry = attempts > 1
            && self.targets.len() > 1
            && is_idempotent(&method)
            && body.replay().is_some();
        let spare_headers = can_retry.then(|| headers.clone());
        let mut body = Some(body);
        let mut headers = Some(headers);
        let mut tried: Vec<usize> = Vec::new();
        let mut last = UpstreamError::NoHealthyTarget;
        for attempt in 0..attempts {
            let Some(idx) = self.pick(&tried) else {
                return Err(last);
            };
            tried.push(idx);
            let Some(target) = self.targets.get(idx) else {
                return Err(last);
            };
            let (this_body, this_headers) = match (body.take(), headers.take()) {
                (Some(b), Some(h)) => (b, h),
                _ => return Err(last),
            };
            if can_retry {
                body = this_body.replay();
                headers = spare_headers.clone();
            }
            let uri = Uri::builder()
                .scheme(self.scheme.clone())
                .authority(target.authority.clone())
                .path_and_query(path_and_query.clone())
                .build()
                .map_err(|_| UpstreamError::Failed)?;
            let mut req = Request::new(this_body);
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = this_headers;
            target.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(target.clone());
            info.target = target.target.authority.clone();
            info.attempts = u8::try_from(attempt + 1).unwrap_or(u8::MAX);
            let started = Instant::now();
            match tokio::time::timeout(self.spec.response_header_timeout, self.client.request(req))
                .await
            {
                Ok(Ok(resp)) => {
                    let elapsed = started.elapsed();
                    info.header_time = Some(elapsed);
                    self.header_time.observe(elapsed);
                    target.ok.inc();
                    self.passive_success(target);
                    return Ok((resp, guard));
                }
                Ok(Err(e)) if e.is_connect() => {
                    target.connect_errors.inc();
                    self.passive_failure(target);
                    tracing::debug!(upstream = %self.spec.name, target = %target.target.authority, error = %e, "connect failed");
                    last = UpstreamError::Connect;
                    if !can_retry {
                        return Err(last);
                    }
                }
                Ok(Err(e)) => {
                    target.errors.inc();
                    self.passive_failure(target);
                    tracing::debug!(upstream = %self.spec.name, target = %target.target.authority, error = %e, "upstream exchange failed");
                    return Err(UpstreamError::Failed);
                }
                Err(_) => {
                    target.timeouts.inc();
                    self.passive_failure(target);
                    return Err(UpstreamError::Timeout);
                }
            }
        }
        Err(last)
    }
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}
