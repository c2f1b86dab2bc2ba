//! The proxy: listeners (plain and TLS, HTTP/1.1 and HTTP/2), the request
//! pipeline, upstream pools with health checks, the admin listener, and the
//! lifecycle (hot reload, graceful shutdown).
//!
//! The path of one request, file by file: `server` accepts the connection
//! and hands it to `h1` (HTTP/1.1, the gateway's own codec) or hyper
//! (HTTP/2); `service::handle` runs the phases,
//! with `pipeline` dispatching to the route's filters and `upstream`
//! forwarding; `body` carries the bodies and completes the request's
//! accounting when the response ends.

mod admin;
mod body;
mod chunked;
mod files;
mod gateway;
mod h1;
mod headers;
mod pipeline;
mod server;
mod service;
mod state;
mod timer;
mod tls;
mod upstream;
pub mod watch;

pub use gateway::{Gateway, StartError};
