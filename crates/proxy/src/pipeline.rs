//! A route's pipeline: the closed list of filters it runs, and the order of
//! the phases (see `portcullis_core::Phase`).
//!
//! Request phases run the filters first to last and stop at the first
//! verdict that is not `Continue`; response phases run them last to first.
//! A filter that panics is treated as a denial (fail closed): the panic is
//! caught here and becomes a 500 problem.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};

use bytes::Bytes;
use std::sync::Arc;

use portcullis_authn::{AuthServices, Authenticate};
use portcullis_config::runtime::{Authentication, FilterSpec};
use portcullis_core::{Context, Filter, Outcome, Problem, Verdict};
use portcullis_filters::{Cors, Limits, SecurityHeaders, Waf};
use portcullis_telemetry::events::EventLog;

/// Every filter a route can run. A closed enum: dispatch is static and the
/// config can only name what exists.
pub enum RouteFilter {
    Limits(Limits),
    Authenticate(Box<Authenticate>),
    Cors(Box<Cors>),
    SecurityHeaders(SecurityHeaders),
    Waf(Box<Waf>),
}

/// What building a route's filters takes besides their policies.
pub struct BuildCx<'a> {
    pub events: &'a EventLog,
    pub authentication: &'a Arc<Authentication>,
    pub auth: &'a Arc<AuthServices>,
}

impl RouteFilter {
    pub fn build(spec: &FilterSpec, cx: &BuildCx<'_>) -> Self {
        let events = cx.events;
        match spec {
            FilterSpec::Limits(p) => RouteFilter::Limits(Limits::new(p.clone(), events.clone())),
            FilterSpec::Authenticate(p) => RouteFilter::Authenticate(Box::new(Authenticate::new(
                p.clone(),
                cx.authentication.clone(),
                cx.auth.clone(),
                events.clone(),
            ))),
            FilterSpec::Cors(p) => {
                RouteFilter::Cors(Box::new(Cors::new(p.clone(), events.clone())))
            }
            FilterSpec::SecurityHeaders(p) => {
                RouteFilter::SecurityHeaders(SecurityHeaders::new(p.clone()))
            }
            FilterSpec::Waf(p) => RouteFilter::Waf(Box::new(Waf::new(p.clone(), events.clone()))),
        }
    }
}

macro_rules! each {
    ($self:ident, $f:ident => $e:expr) => {
        match $self {
            RouteFilter::Limits($f) => $e,
            RouteFilter::Authenticate($f) => $e,
            RouteFilter::Cors($f) => $e,
            RouteFilter::SecurityHeaders($f) => $e,
            RouteFilter::Waf($f) => $e,
        }
    };
}

impl Filter for RouteFilter {
    fn name(&self) -> &'static str {
        each!(self, f => f.name())
    }

    async fn request_headers(&self, ctx: &mut Context, req: &mut http::request::Parts) -> Verdict {
        each!(self, f => f.request_headers(ctx, req).await)
    }

    fn wants_request_body(&self) -> bool {
        each!(self, f => f.wants_request_body())
    }

    async fn request_body(
        &self,
        ctx: &mut Context,
        req: &http::request::Parts,
        body: &Bytes,
    ) -> Verdict {
        each!(self, f => f.request_body(ctx, req, body).await)
    }

    fn before_upstream(&self, ctx: &mut Context, req: &mut http::request::Parts) -> Verdict {
        each!(self, f => f.before_upstream(ctx, req))
    }

    fn response_headers(&self, ctx: &mut Context, resp: &mut http::response::Parts) -> Verdict {
        each!(self, f => f.response_headers(ctx, resp))
    }

    fn wants_response_body(&self) -> bool {
        each!(self, f => f.wants_response_body())
    }

    fn response_body(
        &self,
        ctx: &mut Context,
        resp: &http::response::Parts,
        body: &mut Bytes,
    ) -> Verdict {
        each!(self, f => f.response_body(ctx, resp, body))
    }

    fn log(&self, ctx: &Context) {
        each!(self, f => f.log(ctx))
    }
}

/// A route's filters in request order.
pub struct Pipeline {
    filters: Vec<RouteFilter>,
    wants_request_body: bool,
    wants_response_body: bool,
}

/// Polls a future, turning a panic into `None`.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Some(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        }
    }
}

fn failed(ctx: &mut Context, name: &'static str) -> Verdict {
    tracing::error!(filter = name, request_id = %ctx.request_id, "a filter panicked; the request is denied");
    ctx.decide(name, Outcome::Error, "filter-failed");
    Verdict::Deny(Problem::internal())
}

impl Pipeline {
    pub fn new(filters: Vec<RouteFilter>) -> Self {
        let wants_request_body = filters.iter().any(Filter::wants_request_body);
        let wants_response_body = filters.iter().any(Filter::wants_response_body);
        Pipeline {
            filters,
            wants_request_body,
            wants_response_body,
        }
    }

    pub fn wants_request_body(&self) -> bool {
        self.wants_request_body
    }

    pub fn wants_response_body(&self) -> bool {
        self.wants_response_body
    }

    pub async fn request_headers(
        &self,
        ctx: &mut Context,
        req: &mut http::request::Parts,
    ) -> Verdict {
        for f in &self.filters {
            // Each filter's own future, not `RouteFilter`'s: that one is
            // as large as the largest filter's (authentication's) and would
            // be built and moved for every filter of every request.
            let outcome =
                each!(f, x => CatchUnwind(std::pin::pin!(x.request_headers(ctx, req))).await);
            match outcome {
                Some(Verdict::Continue) => {}
                Some(other) => return other,
                None => return failed(ctx, f.name()),
            }
        }
        Verdict::Continue
    }

    pub async fn request_body(
        &self,
        ctx: &mut Context,
        req: &http::request::Parts,
        body: &Bytes,
    ) -> Verdict {
        for f in self.filters.iter().filter(|f| f.wants_request_body()) {
            let outcome = {
                let fut = std::pin::pin!(f.request_body(ctx, req, body));
                CatchUnwind(fut).await
            };
            match outcome {
                Some(Verdict::Continue) => {}
                Some(other) => return other,
                None => return failed(ctx, f.name()),
            }
        }
        Verdict::Continue
    }

    pub fn before_upstream(&self, ctx: &mut Context, req: &mut http::request::Parts) -> Verdict {
        for f in &self.filters {
            match std::panic::catch_unwind(AssertUnwindSafe(|| f.before_upstream(ctx, req))) {
                Ok(Verdict::Continue) => {}
                Ok(other) => return other,
                Err(_) => return failed(ctx, f.name()),
            }
        }
        Verdict::Continue
    }

    pub fn response_headers(&self, ctx: &mut Context, resp: &mut http::response::Parts) -> Verdict {
        for f in self.filters.iter().rev() {
            match std::panic::catch_unwind(AssertUnwindSafe(|| f.response_headers(ctx, resp))) {
                Ok(Verdict::Continue) => {}
                Ok(other) => return other,
                Err(_) => return failed(ctx, f.name()),
            }
        }
        Verdict::Continue
    }

    pub fn response_body(
        &self,
        ctx: &mut Context,
        resp: &http::response::Parts,
        body: &mut Bytes,
    ) -> Verdict {
        for f in self
            .filters
            .iter()
            .rev()
            .filter(|f| f.wants_response_body())
        {
            match std::panic::catch_unwind(AssertUnwindSafe(|| f.response_body(ctx, resp, body))) {
                Ok(Verdict::Continue) => {}
                Ok(other) => return other,
                Err(_) => return failed(ctx, f.name()),
            }
        }
        Verdict::Continue
    }

    pub fn log(&self, ctx: &Context) {
        for f in &self.filters {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| f.log(ctx)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_filter_future_is_caught_not_propagated() {
        let ok = CatchUnwind(std::pin::pin!(async { 7 })).await;
        assert_eq!(ok, Some(7));
        let panics = CatchUnwind(std::pin::pin!(async {
            if ok.is_some() {
                panic!("a filter failed");
            }
            7
        }))
        .await;
        assert_eq!(panics, None, "the panic became None: the caller denies");
    }
}
