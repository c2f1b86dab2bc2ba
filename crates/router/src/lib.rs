//! Turning a request into a route: path normalisation ([`normalize_path`]),
//! host normalisation ([`normalize_host`]) and the most-specific-match
//! [`RouteTable`].

mod host;
mod index;
mod normalize;
mod pattern;
mod table;

pub use host::{HostError, HostPattern, normalize_host};
pub use http::Method;
pub use normalize::{NormalizeOptions, PathError, normalize_path};
pub use pattern::{MethodSet, PathPattern, PatternError, Segment};
pub use table::{Lookup, RouteMatch, RouteTable};
