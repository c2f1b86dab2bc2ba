//! Which routes a lookup needs to try. Every route is filed by what each
//! request it matches must carry: its exact host name (if it names one)
//! and the first segment of the path (if its pattern fixes one). A lookup
//! merges the few lists that fit the request, in the table's order; a route
//! filed elsewhere cannot match the request, so the answer is the one
//! trying every route would give.

use std::collections::HashMap;

use crate::{HostPattern, PathPattern, Segment};

/// Positions in the table (each list ascending), by first path segment.
#[derive(Debug, Default)]
struct BySegment {
    fixed: HashMap<Box<str>, Vec<usize>>,
    /// Routes whose paths may begin with any segment.
    any: Vec<usize>,
}

impl BySegment {
    fn file(&mut self, segment: Option<&str>, pos: usize) {
        match segment {
            Some(s) => self.fixed.entry(s.into()).or_default().push(pos),
            None => self.any.push(pos),
        }
    }

    /// The two lists a path with this first segment needs.
    fn lists(&self, segment: &str) -> [&[usize]; 2] {
        // Skips hashing for tables with no fixed segment (a catch-all).
        let fixed = if self.fixed.is_empty() {
            &[][..]
        } else {
            self.fixed.get(segment).map_or(&[][..], Vec::as_slice)
        };
        [fixed, &self.any]
    }
}

/// The routes of a table, filed for lookup.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Routes for one exact host name.
    by_host: HashMap<Box<str>, BySegment>,
    /// Routes for any host or a wildcard of hosts.
    any_host: BySegment,
}

impl Index {
    /// Files the table's entry at `pos` (entries are filed in ascending
    /// order).
    pub(crate) fn file(&mut self, pos: usize, host: Option<&HostPattern>, path: &PathPattern) {
        let files = match host {
            Some(HostPattern::Exact(h)) => self.by_host.entry(h.as_str().into()).or_default(),
            _ => &mut self.any_host,
        };
        files.file(fixed_first_segment(path), pos);
    }

    /// The positions of the entries that can match a request for `host`
    /// and `path`, ascending.
    pub(crate) fn candidates(&self, host: Option<&str>, path: &str) -> Merge<'_> {
        // A table that files nothing by host or segment (one catch-all
        // route, say) needs neither looked at.
        let segment = if self.by_host.is_empty() && self.any_host.fixed.is_empty() {
            ""
        } else {
            first_segment(path)
        };
        let [a, b] = match host {
            Some(h) if !self.by_host.is_empty() => self
                .by_host
                .get(h)
                .map_or([&[][..], &[][..]], |f| f.lists(segment)),
            _ => [&[][..], &[][..]],
        };
        let [c, d] = self.any_host.lists(segment);
        Merge([a, b, c, d])
    }
}

/// Ascending lists merged into one ascending sequence.
pub(crate) struct Merge<'a>([&'a [usize]; 4]);

impl Iterator for Merge<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let mut least: Option<(usize, usize)> = None;
        for (i, list) in self.0.iter().enumerate() {
            if let Some(&v) = list.first()
                && least.is_none_or(|(_, l)| v < l)
            {
                least = Some((i, v));
            }
        }
        let (i, v) = least?;
        if let Some(list) = self.0.get_mut(i) {
            *list = list.get(1..).unwrap_or(&[]);
        }
        Some(v)
    }
}

/// The first segment of a path: `users` for `/users/7`, empty for `/`.
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    // A byte loop: segments are short, and a searcher costs more to set up
    // than this takes.
    let end = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
    rest.get(..end).unwrap_or(rest)
}

/// The first segment every path matched by `p` begins with, when there is
/// one. Prefixes match at segment boundaries, so `/api` and `/api/` both
/// fix `api`; only `/` leaves it open, as does a template that starts
/// with a parameter.
fn fixed_first_segment(p: &PathPattern) -> Option<&str> {
    match p {
        PathPattern::Exact(s) => Some(first_segment(s)),
        PathPattern::Prefix(s) if s == "/" => None,
        PathPattern::Prefix(s) => Some(first_segment(s)),
        PathPattern::Template { segments, .. } => match segments.first() {
            Some(Segment::Literal(l)) => Some(l),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_yields_every_position_once_in_order() {
        let m = Merge([&[1, 4, 9], &[], &[0, 5], &[2, 3, 10]]);
        assert_eq!(m.collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 9, 10]);
    }

    #[test]
    fn first_segments() {
        assert_eq!(first_segment("/users/7"), "users");
        assert_eq!(first_segment("/users"), "users");
        assert_eq!(first_segment("/"), "");
        let fixed = |p: PathPattern| fixed_first_segment(&p).map(str::to_owned);
        assert_eq!(
            fixed(PathPattern::parse_prefix("/api").unwrap()),
            Some("api".into())
        );
        assert_eq!(
            fixed(PathPattern::parse_prefix("/api/").unwrap()),
            Some("api".into())
        );
        assert_eq!(fixed(PathPattern::parse_prefix("/").unwrap()), None);
        assert_eq!(
            fixed(PathPattern::parse_path("/").unwrap()),
            Some(String::new())
        );
        assert_eq!(
            fixed(PathPattern::parse_path("/u/{id}").unwrap()),
            Some("u".into())
        );
        assert_eq!(fixed(PathPattern::parse_path("/{t}/orders").unwrap()), None);
    }
}
