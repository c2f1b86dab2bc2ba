//! Resolving a rule's targets to the values it inspects. Values are lent
//! straight from the transaction, so a rule that matches nothing costs no
//! allocation.

use std::borrow::Cow;

use bytes::Bytes;

use super::Transaction;
use crate::rule::{Rule, in_ranges};
use crate::variables::{Selector, Target, Var};

/// Receives (variable, key, value) for each value a target yields.
pub(crate) type ValueSink<'a> = dyn FnMut(Var, &[u8], &[u8]) + 'a;

/// `ARGS:id`, or `REQUEST_URI` for single-valued variables.
pub fn value_name(var: Var, key: &[u8]) -> Bytes {
    if var.is_collection() && !key.is_empty() {
        let mut n = Vec::with_capacity(var.name().len() + 1 + key.len());
        n.extend_from_slice(var.name().as_bytes());
        n.push(b':');
        n.extend_from_slice(key);
        Bytes::from(n)
    } else {
        Bytes::from_static(var.name().as_bytes())
    }
}

fn num(n: usize) -> Option<Cow<'static, [u8]>> {
    Some(Cow::Owned(n.to_string().into_bytes()))
}

fn flag(v: bool) -> Option<Cow<'static, [u8]>> {
    Some(Cow::Borrowed(if v { b"1" } else { b"0" }))
}

impl Transaction<'_> {
    /// The lists a collection of request data takes its values from, in
    /// order, and whether it yields their names (each name standing as
    /// its own value).
    fn lists(&self, var: Var) -> Option<([&[super::Pair]; 2], bool)> {
        let d = &self.data;
        let none: &[super::Pair] = &[];
        Some(match var {
            Var::Args => ([&d.args_get, &d.args_post], false),
            Var::ArgsGet => ([&d.args_get, none], false),
            Var::ArgsPost => ([&d.args_post, none], false),
            Var::ArgsNames => ([&d.args_get, &d.args_post], true),
            Var::ArgsGetNames => ([&d.args_get, none], true),
            Var::ArgsPostNames => ([&d.args_post, none], true),
            Var::RequestHeaders => ([&d.request_headers, none], false),
            Var::RequestHeadersNames => ([&d.request_headers, none], true),
            Var::RequestCookies => ([&d.cookies, none], false),
            Var::RequestCookiesNames => ([&d.cookies, none], true),
            Var::ResponseHeaders => ([&d.response_headers, none], false),
            Var::ResponseHeadersNames => ([&d.response_headers, none], true),
            Var::Files => ([&d.files, none], false),
            Var::FilesNames => ([&d.files, none], true),
            Var::FilesSizes => ([&d.file_sizes, none], false),
            Var::MultipartPartHeaders => ([&d.part_headers, none], false),
            Var::MatchedVars => ([&self.matched_vars, none], false),
            Var::MatchedVarsNames => ([&self.matched_vars, none], true),
            _ => return None,
        })
    }

    /// XML's values for a selector: attribute values for `//@*`, text
    /// otherwise; each goes by the selector's own text as its key.
    fn xml<'s>(&'s self, sel: &'s Selector) -> (&'s [Bytes], &'s str) {
        let key = match sel {
            Selector::XPath(x) => x.as_str(),
            _ => "/*",
        };
        let d = &self.data;
        let list = if key == "//@*" {
            &d.xml_attrs
        } else {
            &d.xml_text
        };
        (list, key)
    }

    /// Calls `f` with each (key, value) of a collection the selector may
    /// want; callers still check the key.
    pub(crate) fn each(&self, var: Var, sel: &Selector, f: &mut dyn FnMut(&[u8], &[u8])) {
        if let Some((lists, names)) = self.lists(var) {
            for (k, v) in lists.into_iter().flatten() {
                f(k, if names { k } else { v });
            }
            return;
        }
        match var {
            Var::Xml => {
                let (list, key) = self.xml(sel);
                for v in list {
                    f(key.as_bytes(), v);
                }
            }
            v if super::vars::is_writable(v) => match sel {
                // Keys are stored in lower case, and so are selectors.
                Selector::Key(k) => {
                    if let Some(value) = self.vars.get(v, k) {
                        f(k.as_bytes(), value);
                    }
                }
                _ => {
                    for (k, value) in self.vars.iter(v) {
                        f(k.as_bytes(), value);
                    }
                }
            },
            _ => {}
        }
    }

    /// The key of the `i`th value `each` calls back with, for collections
    /// of request data.
    fn key_of<'s>(&'s self, var: Var, sel: &'s Selector, i: usize) -> Option<&'s [u8]> {
        if let Some(([a, b], _)) = self.lists(var) {
            let (k, _) = match i.checked_sub(a.len()) {
                None => a.get(i)?,
                Some(j) => b.get(j)?,
            };
            return Some(k);
        }
        if var == Var::Xml {
            let (list, key) = self.xml(sel);
            return (i < list.len()).then_some(key.as_bytes());
        }
        None
    }

    /// The value of a single-valued variable, if it has one now.
    pub(crate) fn scalar(&self, var: Var) -> Option<Cow<'_, [u8]>> {
        let d = &self.data;
        fn b(v: &Bytes) -> Option<Cow<'_, [u8]>> {
            Some(Cow::Borrowed(&v[..]))
        }
        match var {
            Var::RequestUri | Var::RequestUriRaw => b(&d.uri),
            Var::RequestFilename => b(&d.filename),
            Var::RequestBasename => b(&d.basename),
            Var::RequestMethod => b(&d.method),
            Var::RequestProtocol if d.protocol.is_empty() => {
                // A request line without a version is HTTP/0.9 by definition.
                Some(Cow::Borrowed(b"HTTP/0.9"))
            }
            Var::RequestProtocol => b(&d.protocol),
            Var::QueryString => b(&d.query),
            Var::RequestLine => {
                // As sent: a request line without a version still has the
                // space before it.
                let mut l = Vec::with_capacity(d.method.len() + d.uri.len() + d.protocol.len() + 2);
                l.extend_from_slice(&d.method);
                l.push(b' ');
                l.extend_from_slice(&d.uri);
                l.push(b' ');
                l.extend_from_slice(&d.protocol);
                Some(Cow::Owned(l))
            }
            Var::RequestBody => d.request_body_var.as_ref().and_then(b),
            Var::RequestBodyLength => num(d.request_body.len()),
            // Empty rather than absent without a processor, so that a
            // negated test of it can match.
            Var::ReqbodyProcessor => Some(Cow::Borrowed(
                self.body_processor()
                    .map_or(&b""[..], |p| p.name().as_bytes()),
            )),
            Var::ReqbodyError => flag(d.body_flags.error.is_some()),
            Var::ReqbodyErrorMsg => d
                .body_flags
                .error
                .as_ref()
                .map(|e| Cow::Borrowed(e.as_bytes())),
            Var::ReqbodyProcessorError => flag(d.body_flags.processor_error.is_some()),
            Var::ReqbodyProcessorErrorMsg => d
                .body_flags
                .processor_error
                .as_ref()
                .map(|e| Cow::Borrowed(e.as_bytes())),
            Var::InboundDataError | Var::OutboundDataError | Var::UrlencodedError => flag(false),
            Var::ArgsCombinedSize => num(d
                .args_get
                .iter()
                .chain(&d.args_post)
                .map(|(k, v)| k.len() + v.len())
                .sum()),
            Var::FilesCombinedSize => num(d
                .file_sizes
                .iter()
                .map(|(_, v)| usize::try_from(crate::operators::atoi(v)).unwrap_or(0))
                .sum()),
            Var::ResponseBody => d.response_body_var.as_ref().and_then(b),
            Var::ResponseStatus => d
                .response_status
                .map(|s| Cow::Owned(s.to_string().into_bytes())),
            Var::ResponseProtocol => b(&d.response_protocol),
            Var::ResponseContentType | Var::ResponseContentLength => {
                let name: &[u8] = if var == Var::ResponseContentType {
                    b"content-type"
                } else {
                    b"content-length"
                };
                d.response_headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| b(v))
            }
            Var::RemoteAddr => d
                .remote_addr
                .map(|a| Cow::Owned(a.to_string().into_bytes())),
            Var::RemotePort => num(usize::from(d.remote_port)),
            Var::ServerAddr => d
                .server_addr
                .map(|a| Cow::Owned(a.to_string().into_bytes())),
            Var::ServerPort => num(usize::from(d.server_port)),
            Var::ServerName => d
                .request_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"host"))
                .and_then(|(_, v)| b(v)),
            Var::UniqueId => b(&d.unique_id),
            Var::MatchedVar => self.matched_var().and_then(|(_, v)| b(v)),
            Var::MatchedVarName => self.matched_var().and_then(|(n, _)| b(n)),
            Var::HighestSeverity => num(usize::from(self.highest_severity)),
            Var::MultipartStrictError => flag(
                d.body_flags.multipart.values().any(|&v| v != 0)
                    || d.body_flags.processor_error.is_some(),
            ),
            v if v.name().starts_with("MULTIPART_") => {
                Some(Cow::Borrowed(match d.body_flags.multipart.get(&v) {
                    Some(n) if *n != 0 => b"1",
                    _ => b"0",
                }))
            }
            Var::TimeEpoch => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|t| Cow::Owned(t.as_secs().to_string().into_bytes())),
            _ => None,
        }
    }

    /// Whether a value of `var` under `key` is left out for this rule.
    fn excluded(&self, rule: &Rule, head: &Rule, var: Var, key: &[u8]) -> bool {
        let o = &self.overrides;
        rule.targets
            .exclude
            .iter()
            .any(|(v, s)| *v == var && s.matches_key(key))
            || o.removed_targets_by_id
                .iter()
                .any(|(ids, v, s)| *v == var && in_ranges(ids, head.id) && s.matches_key(key))
            || o.removed_targets_by_tag
                .iter()
                .any(|(tag, v, s)| *v == var && head.tags.contains(tag) && s.matches_key(key))
    }

    /// Whether some exclusion may leave out a value of `t`'s variable for
    /// `rule`: only exclusions of that variable can, so this is asked once
    /// per target rather than for every value.
    pub(crate) fn can_exclude(&self, rule: &Rule, t: &Target) -> bool {
        let o = &self.overrides;
        rule.targets.exclude.iter().any(|(v, _)| *v == t.var)
            || o.removed_targets_by_id.iter().any(|(_, v, _)| *v == t.var)
            || o.removed_targets_by_tag.iter().any(|(_, v, _)| *v == t.var)
    }

    /// The key of the `i`th value of `t`'s collection (in `each`'s order),
    /// if `rule` inspects that value: what `values` would call back with,
    /// taken by place.
    pub(crate) fn key_at<'s>(
        &'s self,
        (rule, head): (&Rule, &Rule),
        t: &'s Target,
        i: usize,
        can_exclude: bool,
    ) -> Option<&'s [u8]> {
        let k = self.key_of(t.var, &t.selector, i)?;
        let wanted = match &t.selector {
            Selector::XPath(_) => true,
            s => s.matches_key(k),
        };
        (wanted && !(can_exclude && self.excluded(rule, head, t.var, k))).then_some(k)
    }

    /// Calls `f(var, key, value)` for every value `rule` inspects through
    /// target `t`, exclusions applied. `head` is the first rule of its
    /// chain (its id and tags govern exclusions).
    pub(crate) fn values(&self, rule: &Rule, head: &Rule, t: &Target, f: &mut ValueSink<'_>) {
        let can_exclude = self.can_exclude(rule, t);
        if !t.var.is_collection() {
            match self.scalar(t.var) {
                Some(_) if t.count => f(t.var, b"", b"1"),
                Some(v) if !can_exclude || !self.excluded(rule, head, t.var, b"") => {
                    f(t.var, b"", &v)
                }
                Some(_) => {}
                None if t.count => f(t.var, b"", b"0"),
                None => {}
            }
            return;
        }
        let mut count = 0usize;
        self.each(t.var, &t.selector, &mut |k, v| {
            let wanted = match &t.selector {
                Selector::XPath(_) => true,
                s => s.matches_key(k),
            };
            if !wanted {
                return;
            }
            if t.count {
                count += 1;
            } else if !can_exclude || !self.excluded(rule, head, t.var, k) {
                f(t.var, k, v);
            }
        });
        if t.count {
            f(t.var, b"", count.to_string().as_bytes());
        }
    }
}
