//! The SecLang reader: text to directives. Meaning is given to them in
//! [`crate::ruleset`].

mod actions;
mod lexer;

pub use actions::{RawAction, split_actions};
pub use lexer::{Line, lines};
