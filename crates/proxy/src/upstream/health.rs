//! Active health checks: each target is probed with `GET path` at an
//! interval; consecutive successes and failures past their thresholds move
//! it in and out of rotation. Probes use their own short-lived connections,
//! so a probe never takes a pooled connection from real traffic.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderValue, Method};
use portcullis_config::runtime::HealthCheck;

use super::TargetState;
use super::h1::{self, Conn, OutFraming};
use super::stream::Connector;
use crate::body::UpstreamBody;

pub(super) async fn run(
    connector: Arc<Connector>,
    upstream: Arc<str>,
    host_header: Option<HeaderValue>,
    hc: HealthCheck,
    targets: Vec<Arc<TargetState>>,
) {
    let mut streaks: Vec<(u32, u32)> = vec![(0, 0); targets.len()];
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (t, streak) in targets.iter().zip(streaks.iter_mut()) {
            let ok =
                tokio::time::timeout(hc.timeout, probe(&connector, host_header.as_ref(), &hc, t))
                    .await
                    .unwrap_or(false);
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
    connector: &Connector,
    host: Option<&HeaderValue>,
    hc: &HealthCheck,
    t: &TargetState,
) -> bool {
    let Ok(io) = connector.connect(&t.target).await else {
        return false;
    };
    let mut conn = Conn::new(io);
    let mut headers = HeaderMap::new();
    let host = host
        .cloned()
        .or_else(|| HeaderValue::from_str(&t.target.authority).ok());
    if let Some(h) = host {
        headers.insert(http::header::HOST, h);
    }
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("portcullis-health-check"),
    );
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    let mut head = Vec::with_capacity(256);
    h1::encode_head(
        &Method::GET,
        &hc.path,
        &headers,
        None,
        OutFraming::None,
        &mut head,
    );
    if conn
        .send(&head, UpstreamBody::Empty, OutFraming::None)
        .await
        .is_err()
    {
        return false;
    }
    match conn.read_head(false).await {
        Ok(h) => hc.is_expected(h.parts.status.as_u16()),
        Err(_) => false,
    }
}
