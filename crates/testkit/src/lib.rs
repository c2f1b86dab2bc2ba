//! What the integration tests stand on: a fake upstream ([`FakeUpstream`]),
//! the real `portcullis` binary run as a child process ([`GatewayProcess`]),
//! a throwaway certificate authority ([`TestCa`]), and raw-socket helpers
//! for requests no well-behaved client would send ([`raw`]).
//!
//! Everything binds to 127.0.0.1 on ports the OS assigns, and every wait is
//! bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod gateway;
pub mod idp;
pub mod raw;
mod tls;
mod upstream;

pub use gateway::{GatewayProcess, wait_until};
pub use idp::Idp;
pub use tls::TestCa;
pub use upstream::FakeUpstream;

/// The body of a successful GET, as text (e.g. the metrics page).
pub async fn fetch_text(url: &str) -> String {
    let resp = client().get(url).send().await.unwrap();
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.text().await.unwrap()
}

/// A plain HTTP/1.1 client that does not reuse connections between tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
