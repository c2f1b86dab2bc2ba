//! The Portcullis WAF engine: a memory-safe implementation of the SecLang
//! rule language, enough of it to run the OWASP Core Rule Set unmodified.
//!
//! [`RuleSet::load`] reads rule files into a rule set (all or nothing); a
//! [`Transaction`] follows one request through the five phases.

pub mod body;
mod byteset;
pub mod conformance;
pub mod crs;
mod crs_files;
mod error;
pub mod libinjection;
mod macros;
pub mod operators;
pub(crate) mod prefilter;
pub mod rule;
pub mod ruleset;
pub mod rx;
mod seclang;
pub mod transforms;
pub mod tx;
mod union;
mod value;
pub mod variables;
pub mod whole;

pub use error::LoadError;
pub use ruleset::{DataFiles, RuleSet, Settings, Source};
pub use tx::{Intervention, Match, Suspended, Transaction};
