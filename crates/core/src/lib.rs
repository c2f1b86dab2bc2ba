//! The vocabulary every Portcullis crate shares: the per-request [`Context`],
//! the [`Filter`] trait with its named phases and explicit [`Verdict`]s, and
//! [`Problem`], the one shape in which denials and errors reach clients
//! (RFC 9457 problem+json).
//!
//! This crate does no I/O; the proxy crate drives the phases.

mod context;
mod filter;
mod problem;
mod request_id;

pub use context::{
    ClientCertificate, Context, Decision, Outcome, Principal, Scheme, TlsInfo, UpstreamInfo,
};
pub use filter::{Filter, Phase, Verdict};
pub use problem::{PROBLEM_CONTENT_TYPE, Problem};
pub use request_id::{RequestId, is_acceptable_request_id};
