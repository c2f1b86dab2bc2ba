//! Authentication: proving who is calling.
//!
//! Built so far: API keys ([`apikey`]): the key format (public id, secret,
//! checksum), generation from the OS's CSPRNG, and keyed hashing with a
//! constant-time comparison. The route filter, the other methods (JWT,
//! introspection, Basic, client certificates) and brute-force protection
//! follow; consumers and credentials live in `portcullis-store`.

pub mod apikey;
