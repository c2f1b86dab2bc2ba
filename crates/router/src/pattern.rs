//! Path patterns (exact, prefix, template) and method sets.

use std::sync::Arc;

use http::Method;

use crate::normalize::{NormalizeOptions, normalize_path};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a path pattern must start with '/'")]
    NotAbsolute,
    #[error("the path is not in normal form; write it as \"{0}\"")]
    NotNormal(String),
    #[error("the path cannot be normalised: {0}")]
    Invalid(&'static str),
    #[error("a template parameter must be a whole segment like {{id}}")]
    PartialParam,
    #[error(
        "\"{0}\" is not a valid parameter name (letters, digits, '_'; not starting with a digit)"
    )]
    BadParamName(String),
    #[error("the parameter {{{0}}} appears twice")]
    DuplicateParam(String),
}

/// One segment of a path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(Arc<str>),
}

/// How a route matches the (normalised) request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// The whole path, exactly.
    Exact(String),
    /// The path starts with this prefix at a segment boundary: `/api`
    /// matches `/api` and `/api/x` but not `/apiary`.
    Prefix(String),
    /// Segments with `{name}` placeholders, each matching one non-empty
    /// segment: `/users/{id}`.
    Template {
        source: String,
        segments: Vec<Segment>,
    },
}

fn check_normal(path: &str) -> Result<(), PatternError> {
    if !path.starts_with('/') {
        return Err(PatternError::NotAbsolute);
    }
    match normalize_path(path, NormalizeOptions::default()) {
        Ok(n) if n == path => Ok(()),
        Ok(n) => Err(PatternError::NotNormal(n.into_owned())),
        Err(e) => Err(PatternError::Invalid(e.detail())),
    }
}

fn valid_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PathPattern {
    /// Parses an exact path, or a template when it has `{param}` segments.
    pub fn parse_path(path: &str) -> Result<Self, PatternError> {
        if !path.contains(['{', '}']) {
            check_normal(path)?;
            return Ok(PathPattern::Exact(path.to_owned()));
        }
        if !path.starts_with('/') {
            return Err(PatternError::NotAbsolute);
        }
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for seg in path.split('/').skip(1) {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if !valid_param_name(name) {
                    return Err(PatternError::BadParamName(name.to_owned()));
                }
                if names.contains(&name) {
                    return Err(PatternError::DuplicateParam(name.to_owned()));
                }
                names.push(name);
                segments.push(Segment::Param(name.into()));
            } else if seg.contains(['{', '}']) {
                return Err(PatternError::PartialParam);
            } else {
                segments.push(Segment::Literal(seg.to_owned()));
            }
        }
        // The literal skeleton must itself be normal.
        let skeleton: String = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => format!("/{l}"),
                Segment::Param(_) => "/x".to_owned(),
            })
            .collect();
        check_normal(&skeleton).map_err(|e| match e {
            PatternError::NotNormal(_) => PatternError::NotNormal(path.to_owned()),
            other => other,
        })?;
        Ok(PathPattern::Template {
            source: path.to_owned(),
            segments,
        })
    }

    pub fn parse_prefix(prefix: &str) -> Result<Self, PatternError> {
        check_normal(prefix)?;
        Ok(PathPattern::Prefix(prefix.to_owned()))
    }

    /// Matches a normalised path; on success returns the template's captures.
    pub fn matches(&self, path: &str) -> Option<Vec<(Arc<str>, String)>> {
        match self {
            PathPattern::Exact(p) => (p == path).then(Vec::new),
            PathPattern::Prefix(p) => {
                let rest = path.strip_prefix(p.as_str())?;
                (p.ends_with('/') || rest.is_empty() || rest.starts_with('/')).then(Vec::new)
            }
            PathPattern::Template { segments, .. } => {
                let mut params = Vec::new();
                let mut parts = path.split('/').skip(1);
                for seg in segments {
                    let part = parts.next()?;
                    match seg {
                        Segment::Literal(l) if l == part => {}
                        Segment::Literal(_) => return None,
                        Segment::Param(_) if part.is_empty() => return None,
                        Segment::Param(name) => params.push((name.clone(), percent_decode(part))),
                    }
                }
                parts.next().is_none().then_some(params)
            }
        }
    }

    /// Higher is more specific: exact paths, then templates (more literal
    /// segments first), then prefixes (longer first).
    pub fn specificity(&self) -> (u8, usize, usize) {
        match self {
            PathPattern::Exact(p) => (3, p.len(), 0),
            PathPattern::Template { segments, .. } => {
                let literals = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                (2, literals, segments.len())
            }
            PathPattern::Prefix(p) => (1, p.len(), 0),
        }
    }

    /// The pattern as written in the config.
    pub fn as_str(&self) -> &str {
        match self {
            PathPattern::Exact(p) | PathPattern::Prefix(p) => p,
            PathPattern::Template { source, .. } => source,
        }
    }
}

/// Decodes the escapes normalisation kept (they are valid UTF-8 by then).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(((h << 4) | l) as u8);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The methods a route accepts; empty means any. `GET` also admits `HEAD`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodSet(Vec<Method>);

impl MethodSet {
    pub fn any() -> Self {
        MethodSet(Vec::new())
    }

    pub fn of(methods: Vec<Method>) -> Self {
        MethodSet(methods)
    }

    pub fn is_any(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, m: &Method) -> bool {
        self.0.is_empty()
            || self.0.contains(m)
            || (*m == Method::HEAD && self.0.contains(&Method::GET))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Method> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_template_parsing() {
        assert!(matches!(
            PathPattern::parse_path("/users"),
            Ok(PathPattern::Exact(_))
        ));
        assert!(matches!(
            PathPattern::parse_path("/users/{id}"),
            Ok(PathPattern::Template { .. })
        ));
        assert_eq!(
            PathPattern::parse_path("users"),
            Err(PatternError::NotAbsolute)
        );
        assert_eq!(
            PathPattern::parse_path("/a//b"),
            Err(PatternError::NotNormal("/a/b".into()))
        );
        assert_eq!(
            PathPattern::parse_path("/u/x{id}"),
            Err(PatternError::PartialParam)
        );
        assert_eq!(
            PathPattern::parse_path("/u/{1d}"),
            Err(PatternError::BadParamName("1d".into()))
        );
        assert_eq!(
            PathPattern::parse_path("/u/{id}/{id}"),
            Err(PatternError::DuplicateParam("id".into()))
        );
        assert!(PathPattern::parse_path("/a/../{id}").is_err());
    }

    #[test]
    fn template_matching_captures() {
        let p = PathPattern::parse_path("/users/{id}/orders/{order}").unwrap();
        let caps = p.matches("/users/42/orders/a%20b").unwrap();
        assert_eq!(caps[0].1, "42");
        assert_eq!(caps[1].1, "a b");
        assert!(p.matches("/users/42/orders").is_none());
        assert!(p.matches("/users/42/orders/7/x").is_none());
        assert!(p.matches("/users//orders/7").is_none());
        assert!(p.matches("/people/42/orders/7").is_none());
    }

    #[test]
    fn prefix_matches_on_segment_boundary() {
        let p = PathPattern::parse_prefix("/api").unwrap();
        assert!(p.matches("/api").is_some());
        assert!(p.matches("/api/x").is_some());
        assert!(p.matches("/apiary").is_none());
        let slash = PathPattern::parse_prefix("/static/").unwrap();
        assert!(slash.matches("/static/a.css").is_some());
        assert!(slash.matches("/static").is_none());
        let root = PathPattern::parse_prefix("/").unwrap();
        assert!(root.matches("/anything").is_some());
    }

    #[test]
    fn specificity_orders_kinds() {
        let exact = PathPattern::parse_path("/users/me").unwrap();
        let tmpl = PathPattern::parse_path("/users/{id}").unwrap();
        let tmpl2 = PathPattern::parse_path("/{a}/{b}").unwrap();
        let prefix = PathPattern::parse_prefix("/users").unwrap();
        assert!(exact.specificity() > tmpl.specificity());
        assert!(tmpl.specificity() > tmpl2.specificity());
        assert!(tmpl2.specificity() > prefix.specificity());
    }

    #[test]
    fn methods() {
        let m = MethodSet::of(vec![Method::GET, Method::POST]);
        assert!(m.contains(&Method::GET));
        assert!(m.contains(&Method::HEAD));
        assert!(!m.contains(&Method::DELETE));
        assert!(MethodSet::any().contains(&Method::DELETE));
    }
}
