//! Active health checks: each target is probed with `GET path` at an
//! interval; consecutive successes and failures past their thresholds move
//! it in and out of rotation.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri};
use portcullis_config::runtime::HealthCheck;

use super::{HttpClient, TargetState};
use crate::body::UpstreamBody;

pub(super) async fn run(
    client: HttpClient,
    scheme: Scheme,
    upstream: Arc<str>,
    host_header: Option<HeaderValue>,
    hc: HealthCheck,
    targets: Vec<Arc<TargetState>>,
) {
    let Ok(path) = PathAndQuery::try_from(hc.path.as_str()) else {
        return;
    };
    let mut streaks: Vec<(u32, u32)> = vec![(0, 0); targets.len()];
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (t, streak) in targets.iter().zip(streaks.iter_mut()) {
            let ok = probe(&client, &scheme, &path, host_header.as_ref(), &hc, t).await;
            if ok {
                streak.0 += 1;
                streak.1 = 0;
            } else {
                streak.1 += 1;
                streak.0 = 0;
            }
            let healthy = t.healthy.load(Ordering::Relaxed);
            if !healthy && streak.0 >= hc.healthy_threshold {
                t.healthy.store(true, Ordering::Relaxed);
                tracing::info!(upstream = %upstream, target = %t.target.authority, "target healthy again");
            } else if healthy && streak.1 >= hc.unhealthy_threshold {
                t.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(upstream = %upstream, target = %t.target.authority, "target unhealthy: health checks failed");
            }
            t.refresh_gauge();
        }
    }
}

async fn probe(
    client: &HttpClient,
    scheme: &Scheme,
    path: &PathAndQuery,
    host: Option<&HeaderValue>,
    hc: &HealthCheck,
    t: &TargetState,
) -> bool {
    let Ok(uri) = Uri::builder()
        .scheme(scheme.clone())
        .authority(t.authority.clone())
        .path_and_query(path.clone())
        .build()
    else {
        return false;
    };
    let mut req = Request::new(UpstreamBody::Empty);
    *req.uri_mut() = uri;
    if let Some(h) = host {
        req.headers_mut().insert(http::header::HOST, h.clone());
    }
    req.headers_mut().insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("portcullis-health-check"),
    );
    match tokio::time::timeout(hc.timeout, client.request(req)).await {
        Ok(Ok(resp)) => hc.is_expected(resp.status().as_u16()),
        _ => false,
    }
}
