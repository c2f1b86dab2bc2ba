//! What the gateway tells the world: one JSON access log line per request
//! ([`access`]), typed security events ([`events`]), and Prometheus metrics
//! ([`metrics`]). Secrets are masked before anything is written ([`mask`]).

pub mod access;
pub mod events;
mod json;
pub mod mask;
pub mod metrics;
mod sink;
mod time;

pub use sink::{LogSink, SinkTarget, thread_idle};
pub use time::rfc3339;
