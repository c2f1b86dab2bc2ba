//! Authentication: who is calling, proven on every request.
//!
//! - [`apikey`]: the API key format, generation and keyed hashing;
//! - [`verify`]: finding and checking credentials in a request;
//! - [`filter::Authenticate`]: the pipeline filter applying a route's policy;
//! - [`lockout`]: brute-force protection;
//! - [`services::AuthServices`]: what filters share (store snapshot, secret,
//!   lock-out table) across routes and reloads.

pub mod admin_token;
pub mod apikey;
pub mod basic;
pub mod cache;
pub mod filter;
pub mod fuzzing;
pub mod introspect;
pub mod jwt;
pub mod lockout;
pub mod manage;
pub mod secret;
pub mod services;
pub mod verify;

pub use filter::Authenticate;
pub use services::AuthServices;
