//! One request, start to finish. Read top to bottom, `handle` is the order
//! of the phases; every way out goes through `finish`, the one place where
//! a verdict becomes a response (problem+json for denials and errors).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderValue, LOCATION};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Response, StatusCode, Version};
use http_body::Body as _;
use portcullis_core::{
    Context, Outcome, Problem, RequestId, Scheme, TlsInfo, UpstreamInfo, Verdict,
};
use portcullis_router::{Lookup, normalize_host, normalize_path};
use portcullis_telemetry::access::AccessEntry;
use portcullis_telemetry::events::{EventKind, SecurityEvent};

use crate::body::{self, ClientBody, RequestStats, ResponseBody, StreamingBody, UpstreamBody};
use crate::h1::HeadError;
use crate::headers::{self, Forwarding, X_REQUEST_ID};
use crate::state::{Generation, Shared};
use crate::upstream::{InFlight, ResponseStream, UpstreamError};

/// The largest upstream response body buffered for a response-body filter.
const MAX_BUFFERED_RESPONSE: u64 = 8 * 1024 * 1024;

/// What a connection knows, shared by its requests.
pub struct ConnInfo {
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    pub scheme: Scheme,
    pub tls: Option<TlsInfo>,
    /// The peer's address as a header value, for the forwarding headers.
    pub peer_value: HeaderValue,
}

/// The request facts kept for the log after the request itself is gone.
struct Facts {
    method: Method,
    /// The request target as received (cheap to clone: shared bytes);
    /// none when the request head could not be parsed.
    uri: Option<http::Uri>,
    /// The normalised path, when it differs from the received one.
    normalized: Option<String>,
    host: Option<HeaderValue>,
    version: Version,
    logged_headers: HeaderMap,
}

/// Everything needed to close the books on a request once its response
/// body has been sent (or abandoned).
pub struct Completion {
    generation: Arc<Generation>,
    route: Option<usize>,
    ctx: Context,
    facts: Facts,
    status: u16,
    stats: Option<Arc<RequestStats>>,
    _in_flight: Option<InFlight>,
}

impl Completion {
    /// Closes the books; returns the instant it read, for the caller's
    /// next deadline.
    pub fn complete(self: Box<Self>, bytes_out: u64, aborted: bool) -> std::time::Instant {
        let route = self.route.and_then(|i| self.generation.routes.get(i));
        match route {
            Some(r) => r.pipeline.log(&self.ctx),
            None => self.generation.default_pipeline.log(&self.ctx),
        }
        let now = std::time::Instant::now();
        let duration = now.saturating_duration_since(self.ctx.started);
        match route {
            Some(r) => {
                r.statuses.inc(self.status);
                r.duration.observe(duration);
            }
            None => {
                self.generation.unrouted.inc(self.status);
                self.generation.unrouted_duration.observe(duration);
            }
        }
        let f = &self.facts;
        self.generation.access_log.log(&AccessEntry {
            ctx: &self.ctx,
            method: &f.method,
            host: f.host.as_ref().and_then(|h| h.to_str().ok()),
            path: f
                .normalized
                .as_deref()
                .or(f.uri.as_ref().map(http::Uri::path))
                .unwrap_or("-"),
            query: f.uri.as_ref().and_then(http::Uri::query),
            version: f.version,
            headers: &f.logged_headers,
            status: self.status,
            bytes_in: self
                .stats
                .as_ref()
                .map_or(0, |s| s.bytes.load(Ordering::Relaxed)),
            bytes_out,
            duration,
            aborted: aborted && f.method != Method::HEAD,
        });
        now
    }
}

/// The state of a request on its way through `handle`: its books, boxed
/// from the start (the response body takes them over as they are), and
/// whether the connection closes after it. Boxed, the state every await
/// of the request keeps stays small, and handing the books over moves a
/// pointer, not the request's context.
struct Exchange {
    books: Box<Completion>,
    close: bool,
}

impl std::ops::Deref for Exchange {
    type Target = Completion;
    fn deref(&self) -> &Completion {
        &self.books
    }
}

impl std::ops::DerefMut for Exchange {
    fn deref_mut(&mut self) -> &mut Completion {
        &mut self.books
    }
}

impl Exchange {
    fn new(generation: Arc<Generation>, ctx: Context, facts: Facts, close: bool) -> Exchange {
        Exchange {
            books: Box::new(Completion {
                generation,
                route: None,
                ctx,
                facts,
                status: 0,
                stats: None,
                _in_flight: None,
            }),
            close,
        }
    }

    fn event(&self, kind: EventKind, code: &'static str) {
        self.generation
            .events
            .emit(&SecurityEvent::for_request(&self.ctx, kind, code));
    }

    fn deny(&mut self, by: &'static str, problem: Problem) -> Verdict {
        self.ctx.decide(by, Outcome::Deny, problem.code);
        Verdict::Deny(problem)
    }

    /// Turns a gateway-made verdict into the response: problem+json for
    /// denials, then the route's (or the default) response phase.
    fn finish(mut self, verdict: Verdict) -> Response<ResponseBody> {
        let resp = match verdict {
            Verdict::Deny(p) => p.to_response(&self.ctx.request_id),
            Verdict::Respond(r) => r,
            Verdict::Continue => Problem::internal().to_response(&self.ctx.request_id),
        };
        let (mut parts, mut body) = resp.into_parts();
        if let Some(replacement) = self.response_phase(&mut parts) {
            (parts, body) = replacement.into_parts();
        }
        self.finish_parts(&mut parts);
        self.respond(parts, |c| ResponseBody::full(body, Some(c)), None)
    }

    /// Runs the response-headers phase. A verdict other than `Continue`
    /// replaces the response; the replacement is not filtered again.
    fn response_phase(&mut self, parts: &mut http::response::Parts) -> Option<Response<Bytes>> {
        let books = &mut *self.books;
        let pipeline = match books.route.and_then(|i| books.generation.routes.get(i)) {
            Some(r) => &r.pipeline,
            None => &books.generation.default_pipeline,
        };
        match pipeline.response_headers(&mut books.ctx, parts) {
            Verdict::Continue => None,
            Verdict::Deny(p) => Some(p.to_response(&self.ctx.request_id)),
            Verdict::Respond(r) => Some(r),
        }
    }

    fn finish_parts(&self, parts: &mut http::response::Parts) {
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), self.ctx.request_id.header_value());
        if self.close {
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }

    fn respond(
        self,
        parts: http::response::Parts,
        body: impl FnOnce(Box<Completion>) -> ResponseBody,
        in_flight: Option<InFlight>,
    ) -> Response<ResponseBody> {
        let mut books = self.books;
        books.status = parts.status.as_u16();
        books._in_flight = in_flight;
        Response::from_parts(parts, body(books))
    }
}

fn header_bytes(parts: &http::request::Parts) -> usize {
    let line = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    line + parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
}

/// Values captured by a route's path template.
type PathParams = Vec<(Arc<str>, String)>;

/// The listener was removed by a reload; this connection is closing.
fn listener_closing() -> Response<ResponseBody> {
    let mut resp = Problem::listener_closing().to_response(&RequestId::generate());
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    let (p, b) = resp.into_parts();
    Response::from_parts(p, ResponseBody::full(b, None))
}

/// A request refused below the pipeline, before it could be routed.
#[derive(Clone, Copy, Debug)]
pub enum Refusal {
    /// The HTTP/1 head is malformed, ambiguous or over a limit.
    Head(HeadError),
    /// The head did not arrive within the listener's header timeout.
    HeaderTimeout,
}

impl Refusal {
    fn problem(self) -> (Problem, EventKind, &'static str) {
        use http::StatusCode as S;
        match self {
            Refusal::HeaderTimeout => (
                Problem::request_timeout(),
                EventKind::LimitExceeded,
                "header-timeout",
            ),
            Refusal::Head(HeadError::ConflictingFraming) => (
                Problem::conflicting_framing(),
                EventKind::RequestRejected,
                "conflicting-framing",
            ),
            Refusal::Head(HeadError::TooManyHeaders) => (
                Problem::headers_too_large("the request has too many headers"),
                EventKind::LimitExceeded,
                "too-many-headers",
            ),
            Refusal::Head(HeadError::TooLarge) => (
                Problem::headers_too_large("the request headers are too large"),
                EventKind::LimitExceeded,
                "headers-too-large",
            ),
            Refusal::Head(HeadError::Malformed(why)) => (
                Problem::bad_request("bad-request", why),
                EventKind::RequestRejected,
                "bad-request",
            ),
            Refusal::Head(HeadError::UnsupportedExpectation) => (
                Problem::new(
                    S::EXPECTATION_FAILED,
                    "expectation-failed",
                    "Expectation Failed",
                )
                .with_detail("only Expect: 100-continue is supported"),
                EventKind::RequestRejected,
                "expectation-failed",
            ),
            Refusal::Head(HeadError::BadHost) => {
                (Problem::bad_host(), EventKind::RequestRejected, "bad-host")
            }
            Refusal::Head(HeadError::UnsupportedVersion) => (
                Problem::new(
                    S::HTTP_VERSION_NOT_SUPPORTED,
                    "http-version-not-supported",
                    "HTTP Version Not Supported",
                ),
                EventKind::RequestRejected,
                "http-version-not-supported",
            ),
        }
    }
}

/// Answers a refused request: problem+json, a security event, the access
/// log line and metrics, like any other denial. The connection closes.
pub fn refuse(conn: &ConnInfo, shared: &Shared, why: Refusal) -> Response<ResponseBody> {
    let generation = shared.current.load_full();
    let mut ctx = Context::new(
        RequestId::generate(),
        conn.listener.clone(),
        conn.peer,
        conn.scheme,
    );
    ctx.tls = conn.tls.clone();
    let facts = Facts {
        method: Method::from_bytes(b"-").unwrap_or_default(),
        uri: None,
        normalized: None,
        host: None,
        version: Version::HTTP_11,
        logged_headers: HeaderMap::new(),
    };
    let mut ex = Exchange::new(generation, ctx, facts, true);
    let (problem, kind, code) = why.problem();
    ex.event(kind, code);
    let v = ex.deny("http", problem);
    ex.finish(v)
}

/// Serves one request (HTTP/1 or HTTP/2): never fails; every outcome is
/// a response. One async function from head to response: each nested one
/// would be moved into this one's state whole on every request.
///
/// The head stays the caller's (a move into this function's state would
/// copy it): it is done with when this returns, and the caller gives its
/// header map back to the pool.
pub async fn handle(
    parts: &mut http::request::Parts,
    body: ClientBody<'_>,
    conn: &ConnInfo,
    shared: &Shared,
) -> Response<ResponseBody> {
    let generation = &shared.current.load_full();
    let Some(listener) = generation.listeners.get(&conn.listener) else {
        return listener_closing();
    };
    let lcfg = &listener.config;
    let peer = conn.peer.ip();
    let trusted = lcfg.is_trusted_proxy(peer);
    let request_id = trusted
        .then(|| parts.headers.get(&X_REQUEST_ID))
        .flatten()
        .and_then(|v| RequestId::from_incoming(v.as_bytes()))
        .unwrap_or_else(RequestId::generate);
    // HTTP/2 carries the host in the URI, HTTP/1 in the Host header.
    let host_value = match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => parts.headers.get(HOST).cloned(),
    };
    let uri = parts.uri.clone();
    let facts = Facts {
        method: parts.method.clone(),
        uri: Some(uri.clone()),
        normalized: None,
        host: host_value.clone(),
        version: parts.version,
        logged_headers: generation.access_log.pick_headers(&parts.headers),
    };
    let ctx = Context::new(request_id, conn.listener.clone(), conn.peer, conn.scheme);
    let mut ex = Exchange::new(generation.clone(), ctx, facts, false);
    ex.ctx.tls = conn.tls.clone();
    ex.ctx.client_addr = headers::client_address(lcfg, peer, &parts.headers);

    // Header size and count (HTTP/1 heads were checked while parsing; an
    // HTTP/2 header list is checked here).
    if parts.headers.len() > lcfg.limits.max_headers {
        ex.close = true;
        ex.event(EventKind::LimitExceeded, "too-many-headers");
        let v = ex.deny(
            "http",
            Problem::headers_too_large("the request has too many headers"),
        );
        return ex.finish(v);
    }
    if header_bytes(parts) > lcfg.limits.max_header_bytes {
        ex.close = true;
        ex.event(EventKind::LimitExceeded, "headers-too-large");
        let v = ex.deny(
            "http",
            Problem::headers_too_large("the request headers are too large"),
        );
        return ex.finish(v);
    }

    // Host and the HTTPS redirect.
    let host_raw: Option<&str> = match &host_value {
        Some(v) => match v.to_str() {
            Ok(h) => Some(h),
            Err(_) => {
                ex.event(EventKind::RequestRejected, "bad-host");
                let v = ex.deny("http", Problem::bad_host());
                return ex.finish(v);
            }
        },
        None => None,
    };
    let host = match host_raw.map(normalize_host) {
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => {
            ex.event(EventKind::RequestRejected, "bad-host");
            let v = ex.deny("http", Problem::bad_host());
            return ex.finish(v);
        }
        None => None,
    };
    if let Some(port) = lcfg.redirect_https {
        return redirect(ex, host.as_deref(), parts, port);
    }

    // Path normalisation, then routing.
    let path = match normalize_path(uri.path(), generation.config.path_options) {
        Ok(p) => p,
        Err(e) => {
            ex.event(EventKind::RequestRejected, e.code());
            let v = ex.deny("normalize", Problem::bad_path(e.detail()));
            return ex.finish(v);
        }
    };
    if let std::borrow::Cow::Owned(p) = &path {
        ex.facts.normalized = Some(p.clone());
    }
    let (index, params) = match route_lookup(generation, lcfg, host.as_deref(), &path, parts) {
        Ok(found) => found,
        Err(v) => {
            let v = ex.deny("router", v);
            return ex.finish(v);
        }
    };
    let Some(route) = generation.routes.get(index) else {
        let v = ex.deny("router", Problem::internal());
        return ex.finish(v);
    };
    ex.route = Some(index);
    ex.ctx.route_id = Some(route.route.id.clone());
    ex.ctx.path_params = params;

    // Nobody but an authentication filter sets identity headers.
    headers::strip_identity(&mut parts.headers, &generation.authentication.identity);

    // Phase 1: request headers.
    match route.pipeline.request_headers(&mut ex.ctx, parts).await {
        Verdict::Continue => {}
        v => return ex.finish(v),
    }

    // Phase 2: the request body, streamed or (when a filter asks) buffered.
    let limit = ex.ctx.max_request_body.unwrap_or(u64::MAX);
    let mut upstream_body = if body.is_end_stream() {
        UpstreamBody::Empty
    } else {
        let stats = Arc::new(RequestStats::default());
        ex.stats = Some(stats.clone());
        UpstreamBody::Stream(Box::new(StreamingBody::new(
            body,
            limit,
            lcfg.limits.body_timeout,
            stats,
        )))
    };
    if route.pipeline.wants_request_body() {
        let bytes = match upstream_body {
            // Boxed, like the other buffering paths: most routes never
            // take them, and inline they would enlarge every request.
            UpstreamBody::Stream(s) => match Box::pin(body::collect(s)).await {
                Ok(b) => b,
                Err(e) => {
                    let v = body_error(&mut ex, &e);
                    return ex.finish(v);
                }
            },
            _ => Bytes::new(),
        };
        match Box::pin(route.pipeline.request_body(&mut ex.ctx, parts, &bytes)).await {
            Verdict::Continue => {}
            v => return ex.finish(v),
        }
        upstream_body = UpstreamBody::Full(Some(bytes));
    }

    // Phase 3: the request as it goes upstream.
    headers::strip_hop_by_hop(&mut parts.headers);
    match (&route.upstream.spec.host_header, &host_value) {
        (Some(h), _) | (None, Some(h)) => {
            parts.headers.insert(HOST, h.clone());
        }
        (None, None) => {}
    }
    match route.pipeline.before_upstream(&mut ex.ctx, parts) {
        Verdict::Continue => {}
        v => return ex.finish(v),
    }

    // Send.
    // The normalised path (validated) and the query as received (validated
    // by the URI parser) make the target sent upstream.
    let target = match uri.query() {
        Some(q) => {
            let mut t = String::with_capacity(path.len() + 1 + q.len());
            t.push_str(&path);
            t.push('?');
            t.push_str(q);
            std::borrow::Cow::Owned(t)
        }
        None => path,
    };
    // The forwarding fields and the request id are written into the
    // upstream head last, from what the gateway knows: no client and no
    // filter sets them.
    let forwarding = Forwarding {
        peer,
        peer_value: &conn.peer_value,
        client: ex.ctx.client_addr,
        trusted_peer: trusted,
        proto: conn.scheme.as_str(),
        host: host_value.as_ref(),
        request_id: ex.ctx.request_id.as_str().as_bytes(),
    };
    let mut info = UpstreamInfo {
        name: route.route.upstream.clone(),
        target: None,
        header_time: None,
        attempts: 0,
    };
    let result = route
        .upstream
        .send(
            &parts.method,
            &target,
            &parts.headers,
            &forwarding,
            upstream_body,
            &mut info,
        )
        .await;
    if info.attempts > 0 {
        ex.ctx.upstream = Some(info);
    }
    let (mut rparts, rbody, in_flight) = match result {
        Ok(r) => r,
        Err(e) => {
            let v = upstream_error(&mut ex, e);
            return ex.finish(v);
        }
    };

    // Phase 4: the response head (already clean of hop-by-hop fields and
    // banners: see `upstream::h1::parse_head`).
    if let Some(replacement) = ex.response_phase(&mut rparts) {
        let (mut p, b) = replacement.into_parts();
        ex.finish_parts(&mut p);
        return ex.respond(p, |c| ResponseBody::full(b, Some(c)), None);
    }
    ex.finish_parts(&mut rparts);

    // Phase 5: the response body, when a filter asks for it whole.
    if route.pipeline.wants_response_body() {
        let mut bytes = match Box::pin(collect_response(rbody)).await {
            Ok(b) => b,
            Err(()) => {
                let v = ex.deny(
                    "upstream",
                    Problem::bad_gateway().with_detail("the upstream response is too large"),
                );
                return ex.finish(v);
            }
        };
        match route
            .pipeline
            .response_body(&mut ex.ctx, &rparts, &mut bytes)
        {
            Verdict::Continue => {}
            v => return ex.finish(v),
        }
        rparts.headers.remove(http::header::CONTENT_LENGTH);
        return ex.respond(
            rparts,
            |c| ResponseBody::full(bytes, Some(c)),
            Some(in_flight),
        );
    }
    ex.respond(
        rparts,
        |c| ResponseBody::upstream(rbody, c),
        Some(in_flight),
    )
}

/// Finds the route. A CORS preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) that no route accepts as `OPTIONS` is
/// routed as the request it announces, so the CORS policy of the route that
/// will serve that request answers it.
fn route_lookup(
    generation: &Generation,
    listener: &portcullis_config::runtime::Listener,
    host: Option<&str>,
    path: &str,
    parts: &http::request::Parts,
) -> Result<(usize, PathParams), Problem> {
    let lookup = listener.routes.lookup(host, path, &parts.method);
    let methods = match lookup {
        Lookup::Found { route, params } => return Ok((*route, params)),
        Lookup::NotFound => return Err(Problem::route_not_found()),
        Lookup::MethodNotAllowed(methods) => methods,
    };
    let announced = (parts.method == Method::OPTIONS)
        .then(|| {
            parts
                .headers
                .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        })
        .flatten()
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    if let Some(m) = announced
        && let Lookup::Found { route, params } = listener.routes.lookup(host, path, &m)
        && generation
            .routes
            .get(*route)
            .is_some_and(|r| r.route.has_cors())
    {
        return Ok((*route, params));
    }
    let allow = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    Err(Problem::method_not_allowed(
        HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("")),
    ))
}

async fn collect_response(mut body: ResponseStream) -> Result<Bytes, ()> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|_| ())?;
        if let Ok(d) = frame.into_data() {
            if (buf.len() + d.len()) as u64 > MAX_BUFFERED_RESPONSE {
                return Err(());
            }
            buf.extend_from_slice(&d);
        }
    }
    Ok(buf.freeze())
}

fn body_error(ex: &mut Exchange, e: &body::BodyError) -> Verdict {
    match e {
        body::BodyError::TooLarge => {
            ex.event(EventKind::LimitExceeded, "body-too-large");
            let limit = ex.ctx.max_request_body.unwrap_or(0);
            ex.close = true;
            ex.deny("limits", Problem::payload_too_large(limit))
        }
        body::BodyError::Timeout => {
            ex.event(EventKind::LimitExceeded, "body-timeout");
            ex.close = true;
            ex.deny("limits", Problem::request_timeout())
        }
        body::BodyError::Client(_) => bad_body(ex),
    }
}

/// The client's body was malformed (bad chunked framing) or cut off.
fn bad_body(ex: &mut Exchange) -> Verdict {
    ex.event(EventKind::RequestRejected, "bad-body");
    ex.close = true;
    ex.deny(
        "http",
        Problem::bad_request("bad-body", "the request body could not be read"),
    )
}

fn upstream_error(ex: &mut Exchange, e: UpstreamError) -> Verdict {
    // A failure caused by the client's body is the client's problem.
    if let Some(stats) = &ex.stats {
        if stats.too_large.load(Ordering::Relaxed) {
            return body_error(ex, &body::BodyError::TooLarge);
        }
        if stats.timed_out.load(Ordering::Relaxed) {
            return body_error(ex, &body::BodyError::Timeout);
        }
        if stats.broken.load(Ordering::Relaxed) {
            return bad_body(ex);
        }
    }
    let problem = match e {
        UpstreamError::NoHealthyTarget => Problem::no_healthy_upstream(),
        UpstreamError::Connect | UpstreamError::Failed => Problem::bad_gateway(),
        UpstreamError::Timeout => Problem::gateway_timeout(),
    };
    ex.ctx.decide("upstream", Outcome::Error, problem.code);
    Verdict::Deny(problem)
}

fn redirect(
    mut ex: Exchange,
    host: Option<&str>,
    parts: &http::request::Parts,
    port: u16,
) -> Response<ResponseBody> {
    let Some(host) = host else {
        let v = ex.deny("http", Problem::bad_host());
        return ex.finish(v);
    };
    let authority = if port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    let pq = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let location = format!("https://{authority}{pq}");
    let Ok(value) = HeaderValue::from_str(&location) else {
        let v = ex.deny("http", Problem::bad_host());
        return ex.finish(v);
    };
    ex.ctx
        .decide("redirect", Outcome::Respond, "https-redirect");
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(LOCATION, value);
    ex.finish(Verdict::Respond(resp))
}
