//! Load errors: the file and line of the directive the engine cannot take.

use std::fmt;

/// A rule set that cannot be loaded as a whole. Nothing of it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl LoadError {
    pub fn at(file: &str, line: usize, message: impl Into<String>) -> LoadError {
        LoadError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for LoadError {}
