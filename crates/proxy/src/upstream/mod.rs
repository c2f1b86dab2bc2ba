//! Upstreams at run time: per-target connection pools, target selection
//! (round-robin or least-connections) over the targets that are healthy and
//! not ejected, timeouts, and retries of idempotent requests on another
//! target when connecting fails.

mod h1;
mod health;
mod pool;
mod stream;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::{HeaderMap, Method};
use portcullis_config::runtime::{Balance, Target, Upstream};
use portcullis_telemetry::metrics::{Counter, Gauge, Histogram, Registry};
use tokio::task::JoinHandle;

#[doc(hidden)]
pub use h1::parse_head;
use h1::{Conn, OutFraming};
pub use h1::{ExchangeError, ResponseStream};
use pool::Pool;
use stream::Connector;

use crate::body::UpstreamBody;
use crate::headers::Forwarding;
use crate::timer::LazyTimer;

/// Why forwarding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Every target is unhealthy or ejected.
    NoHealthyTarget,
    /// No connection could be made (after any retries).
    Connect,
    /// The response head did not arrive in time.
    Timeout,
    /// The exchange failed after it started (reset, malformed response, or
    /// the request body failed).
    Failed,
}

fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Health, load and connections of one target.
pub struct TargetState {
    pub target: Target,
    pool: Arc<Pool>,
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

/// One upstream's connector, targets and background health checks.
pub struct UpstreamRuntime {
    pub spec: Arc<Upstream>,
    connector: Arc<Connector>,
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

/// What one attempt produced. The large variant is the common one, so boxing
/// it would add an allocation to every request for nothing.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    Done(http::response::Parts, ResponseStream),
    Failed(ExchangeError),
    TimedOut,
}

impl UpstreamRuntime {
    pub fn new(spec: Arc<Upstream>, registry: &Registry) -> Result<Self, String> {
        let connector = Arc::new(Connector::new(&spec)?);
        let mut targets = Vec::with_capacity(spec.targets.len());
        for t in &spec.targets {
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
                pool: Arc::new(Pool::new(spec.max_idle_connections, spec.idle_timeout)),
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
                connector.clone(),
                spec.name.clone(),
                spec.host_header.clone(),
                hc,
                targets.clone(),
            ))
        });
        Ok(UpstreamRuntime {
            spec,
            connector,
            targets,
            next: AtomicUsize::new(0),
            header_time,
            health_task,
        })
    }

    /// Picks an available target not yet tried, scanning from `start` (one
    /// round-robin step per request, not per attempt, so retries do not
    /// skew the rotation).
    fn pick(&self, start: usize, tried: &Tried) -> Option<usize> {
        // The clock matters only while some target is ejected.
        let any_ejected = self
            .targets
            .iter()
            .any(|t| t.ejected_until.load(Ordering::Relaxed) != 0);
        let now = if any_ejected { clock_ms() } else { 0 };
        let n = self.targets.len();
        if n == 0 {
            return None;
        }
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
            let now = clock_ms();
            let until = now + u64::try_from(p.ejection_time.as_millis()).unwrap_or(u64::MAX);
            let was = t.ejected_until.swap(until, Ordering::Relaxed);
            t.consecutive_failures.store(0, Ordering::Relaxed);
            t.health_gauge.set(0);
            if was <= now {
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
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        forwarding: &Forwarding<'_>,
        body: UpstreamBody<'_>,
        info: &mut portcullis_core::UpstreamInfo,
    ) -> Result<(http::response::Parts, ResponseStream, InFlight), UpstreamError> {
        let framing = OutFraming::for_body(method, &body);
        let mut head = crate::bufpool::take(512);
        h1::encode_head(
            method,
            target,
            headers,
            Some(forwarding),
            framing,
            &mut head,
        );
        let replayable = is_idempotent(method) && body.replay().is_some();
        let attempts = 1 + usize::from(self.spec.retries);
        let mut body = Some(body);
        let mut tried = Tried::default();
        let mut last = UpstreamError::NoHealthyTarget;
        let is_head = *method == Method::HEAD;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        while tried.count() < attempts {
            let Some(idx) = self.pick(start, &tried) else {
                return Err(last);
            };
            tried.push(idx);
            let Some(target) = self.targets.get(idx) else {
                return Err(last);
            };
            target.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(target.clone());
            info.target = Some(target.target.authority.clone());
            info.attempts = u8::try_from(tried.count()).unwrap_or(u8::MAX);
            let started = Instant::now();
            // A pooled connection the upstream closed meanwhile fails
            // before any response; the request then goes again on a fresh
            // connection to the same target (when it may be sent twice).
            let mut pooled = target.pool.take(started);
            let outcome = loop {
                let reused = pooled.is_some();
                let mut conn = match pooled.take() {
                    Some(c) => c,
                    // Boxed: connecting (with its TLS handshake) is rare on
                    // a warm pool, and inline it would make every request's
                    // future several times larger.
                    None => match Box::pin(self.connector.connect(&target.target)).await {
                        Ok(io) => Conn::new(io),
                        Err(e) => {
                            tracing::debug!(upstream = %self.spec.name, target = %target.target.authority, error = %e, "connect failed");
                            break None;
                        }
                    },
                };
                let Some(this_body) = (if replayable {
                    body.as_ref().and_then(UpstreamBody::replay)
                } else {
                    body.take()
                }) else {
                    break Some(Attempt::Failed(ExchangeError::Closed));
                };
                // One exchange on this connection, within the
                // response-header timeout counted from `started`. Written
                // here rather than as an async function of its own, whose
                // state every request would copy into this one's.
                let deadline =
                    tokio::time::Instant::from_std(started + self.spec.response_header_timeout);
                // The connection's own timer, moved lazily (see `timer.rs`).
                let mut timer = conn
                    .timer
                    .take()
                    .unwrap_or_else(|| LazyTimer::new(deadline));
                timer.set(deadline);
                let exchanged = timer
                    .run(async {
                        conn.send(&head, this_body, framing).await?;
                        conn.read_head(is_head).await
                    })
                    .await;
                conn.timer = Some(timer);
                let attempt = match exchanged {
                    None => Attempt::TimedOut,
                    Some(Err(e)) => Attempt::Failed(e),
                    Some(Ok(h)) => {
                        let stream = ResponseStream::new(
                            conn,
                            &h,
                            target.pool.clone(),
                            self.spec.idle_timeout,
                        );
                        Attempt::Done(h.parts, stream)
                    }
                };
                match attempt {
                    Attempt::Failed(ExchangeError::Closed) if reused && replayable => continue,
                    other => break Some(other),
                }
            };
            match outcome {
                None => {
                    target.connect_errors.inc();
                    self.passive_failure(target);
                    last = UpstreamError::Connect;
                    if !(replayable && self.targets.len() > 1) {
                        return Err(last);
                    }
                }
                Some(Attempt::Done(parts, mut stream)) => {
                    let now = Instant::now();
                    // Idle from about now: saves the pool a clock read.
                    stream.head_arrived(now);
                    let elapsed = now.saturating_duration_since(started);
                    info.header_time = Some(elapsed);
                    self.header_time.observe(elapsed);
                    target.ok.inc();
                    self.passive_success(target);
                    return Ok((parts, stream, guard));
                }
                Some(Attempt::TimedOut) => {
                    target.timeouts.inc();
                    self.passive_failure(target);
                    return Err(UpstreamError::Timeout);
                }
                Some(Attempt::Failed(e)) => {
                    target.errors.inc();
                    if !matches!(e, ExchangeError::Body(_)) {
                        self.passive_failure(target);
                    }
                    tracing::debug!(upstream = %self.spec.name, target = %target.target.authority, error = %e, "upstream exchange failed");
                    return Err(UpstreamError::Failed);
                }
            }
        }
        Err(last)
    }
}

/// The targets a request was tried on. The first inline: most requests
/// are sent once, and need no allocation for it.
#[derive(Default)]
struct Tried {
    first: Option<usize>,
    more: Vec<usize>,
}

impl Tried {
    fn push(&mut self, i: usize) {
        if self.first.is_none() {
            self.first = Some(i);
        } else {
            self.more.push(i);
        }
    }

    fn contains(&self, i: &usize) -> bool {
        self.first.as_ref() == Some(i) || self.more.contains(i)
    }

    fn count(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}
