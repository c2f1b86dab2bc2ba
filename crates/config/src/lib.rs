//! Configuration: the YAML file ([`file`]), its JSON Schema ([`schema`]),
//! and [`load`], which parses, checks and compiles a file into the runtime
//! [`Config`] or reports every error with file, line and column.
//!
//! Three passes, each reporting all it finds:
//! 1. [`yaml`]: syntax, with a position for every value;
//! 2. the JSON Schema of [`file::ConfigFile`]: unknown keys, missing keys,
//!    wrong types;
//! 3. `compile`: meaning (references, addresses, certificates, overlapping
//!    routes), producing the [`runtime`] types.

mod compile;
mod diag;
pub mod file;
pub mod runtime;
mod validate;
pub mod yaml;

pub use compile::auth::DEFAULT_STORE_FILE;
pub use compile::tls::{load_ca_bundle, load_certificate};
pub use compile::{BUILTIN_MASKED_HEADERS, BUILTIN_MASKED_PARAMS, VERSION, load, load_str};
pub use diag::{ConfigError, Diagnostic};
pub use runtime::Config;
pub use validate::schema;
