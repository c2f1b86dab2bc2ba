//! Host names: normalising the `Host` header and matching host patterns.

use std::borrow::Cow;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the host is empty")]
    Empty,
    #[error("the host has characters a host name cannot have")]
    BadCharacter,
    #[error("the host has a malformed port")]
    BadPort,
}

/// Lower-cases a `Host` value and strips its port and any trailing dot.
/// Refuses anything that is not a DNS name, an IPv4 address or a bracketed
/// IPv6 literal, so odd bytes never reach routing or the upstream.
pub fn normalize_host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']').ok_or(HostError::BadCharacter)?;
        let (literal, after) = rest.split_at(end);
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(HostError::BadCharacter);
        }
        let after = after.get(1..).unwrap_or("");
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(HostError::BadPort)?),
        };
        (raw.get(..end + 2).unwrap_or(raw), port)
    } else {
        match raw.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(HostError::BadPort);
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(HostError::Empty);
    }
    if !host.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(HostError::BadCharacter);
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(host))
    }
}

/// Which hosts a route serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// One host name, e.g. `api.example.com`.
    Exact(String),
    /// Any sub-domain, e.g. `*.example.com` (stored as `.example.com`); it
    /// does not match `example.com` itself.
    Wildcard(String),
}

impl HostPattern {
    /// Parses `api.example.com` or `*.example.com`.
    pub fn parse(s: &str) -> Result<Self, HostError> {
        if let Some(suffix) = s.strip_prefix("*.") {
            let norm = normalize_host(suffix)?;
            if norm.contains(':') || norm.starts_with('[') {
                return Err(HostError::BadCharacter);
            }
            Ok(HostPattern::Wildcard(format!(".{norm}")))
        } else {
            if s.contains('*') {
                return Err(HostError::BadCharacter);
            }
            let norm = normalize_host(s)?;
            if norm.len() != s.trim_end_matches('.').len() {
                // A port in a host pattern would never match a normalised host.
                return Err(HostError::BadPort);
            }
            Ok(HostPattern::Exact(norm.into_owned()))
        }
    }

    /// Matches a host already passed through [`normalize_host`].
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }

    /// Higher is more specific: exact names beat wildcards, and longer
    /// wildcards beat shorter ones.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            HostPattern::Exact(h) => (2, h.len()),
            HostPattern::Wildcard(s) => (1, s.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_hosts() {
        assert_eq!(
            normalize_host("API.Example.com:8443").unwrap(),
            "api.example.com"
        );
        assert_eq!(normalize_host("example.com.").unwrap(), "example.com");
        assert_eq!(normalize_host("127.0.0.1:80").unwrap(), "127.0.0.1");
        assert_eq!(normalize_host("[::1]:8080").unwrap(), "[::1]");
        assert_eq!(normalize_host("[::1]").unwrap(), "[::1]");
        assert_eq!(normalize_host(""), Err(HostError::Empty));
        assert_eq!(normalize_host("a b"), Err(HostError::BadCharacter));
        assert_eq!(normalize_host("a/b"), Err(HostError::BadCharacter));
        assert_eq!(normalize_host("host:"), Err(HostError::BadPort));
        assert_eq!(normalize_host("host:12ab"), Err(HostError::BadPort));
        assert_eq!(normalize_host("[::1]x"), Err(HostError::BadPort));
        assert_eq!(normalize_host("[zz]"), Err(HostError::BadCharacter));
    }

    #[test]
    fn patterns_match() {
        let exact = HostPattern::parse("API.example.com").unwrap();
        assert!(exact.matches("api.example.com"));
        assert!(!exact.matches("x.api.example.com"));
        let wild = HostPattern::parse("*.example.com").unwrap();
        assert!(wild.matches("api.example.com"));
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("badexample.com"));
        assert!(HostPattern::parse("a*.example.com").is_err());
        assert!(HostPattern::parse("example.com:80").is_err());
        assert!(exact.specificity() > wild.specificity());
    }
}
