//! SQL injection and cross-site scripting detection of the libinjection
//! kind, in Rust: a SQL tokenizer with folding and fingerprints, and an
//! HTML5 tokenizer with a blacklist of dangerous tags, attributes and URLs.
//! Reproduces every expected output of libinjection's own test vectors.

pub mod html5;
pub mod sqli;
pub mod xss;
