//! Resolving a rule's targets to the values it inspects.

use bytes::Bytes;

use super::{Pair, Transaction};
use crate::rule::{Rule, in_ranges};
use crate::variables::{Selector, Target, Var};

/// One value to inspect: which variable and key it came from.
#[derive(Debug, Clone)]
pub struct Item {
    pub var: Var,
    pub key: Bytes,
    pub value: Bytes,
}

impl Item {
    /// `ARGS:id`, or `REQUEST_URI` for single-valued variables.
    pub fn name(&self) -> Bytes {
        if self.var.is_collection() && !self.key.is_empty() {
            let mut n = Vec::with_capacity(self.var.name().len() + 1 + self.key.len());
            n.extend_from_slice(self.var.name().as_bytes());
            n.push(b':');
            n.extend_from_slice(&self.key);
            Bytes::from(n)
        } else {
            Bytes::from_static(self.var.name().as_bytes())
        }
    }
}

fn from_str(s: String) -> Bytes {
    Bytes::from(s.into_bytes())
}

impl Transaction<'_> {
    /// Calls `f` with each (key, value) of a collection.
    pub(crate) fn each(&self, var: Var, sel: &Selector, f: &mut dyn FnMut(&Bytes, &Bytes)) {
        let d = &self.data;
        let pairs = |list: &[Pair], f: &mut dyn FnMut(&Bytes, &Bytes)| {
            for (k, v) in list {
                f(k, v);
            }
        };
        let names = |list: &[Pair], f: &mut dyn FnMut(&Bytes, &Bytes)| {
            for (k, _) in list {
                f(k, k);
            }
        };
        match var {
            Var::Args => {
                pairs(&d.args_get, f);
                pairs(&d.args_post, f);
            }
            Var::ArgsGet => pairs(&d.args_get, f),
            Var::ArgsPost => pairs(&d.args_post, f),
            Var::ArgsNames => {
                names(&d.args_get, f);
                names(&d.args_post, f);
            }
            Var::ArgsGetNames => names(&d.args_get, f),
            Var::ArgsPostNames => names(&d.args_post, f),
            Var::RequestHeaders => pairs(&d.request_headers, f),
            Var::RequestHeadersNames => names(&d.request_headers, f),
            Var::RequestCookies => pairs(&d.cookies, f),
            Var::RequestCookiesNames => names(&d.cookies, f),
            Var::ResponseHeaders => pairs(&d.response_headers, f),
            Var::ResponseHeadersNames => names(&d.response_headers, f),
            Var::Files => pairs(&d.files, f),
            Var::FilesNames => names(&d.files, f),
            Var::FilesSizes => pairs(&d.file_sizes, f),
            Var::MultipartPartHeaders => pairs(&d.part_headers, f),
            Var::MatchedVars => pairs(&self.matched_vars, f),
            Var::MatchedVarsNames => names(&self.matched_vars, f),
            Var::Xml => {
                let key = match sel {
                    Selector::XPath(x) => x.as_str(),
                    _ => "/*",
                };
                let k = Bytes::copy_from_slice(key.as_bytes());
                let list = if key == "//@*" {
                    &d.xml_attrs
                } else {
                    &d.xml_text
                };
                for v in list {
                    f(&k, v);
                }
            }
            Var::Tx | Var::Ip | Var::Global | Var::Session | Var::User | Var::Resource => {
                for ((v, k), value) in &self.vars {
                    if *v == var {
                        f(&Bytes::copy_from_slice(k.as_bytes()), value);
                    }
                }
            }
            _ => {}
        }
    }

    /// The value of a single-valued variable, if it has one now.
    pub(crate) fn scalar(&self, var: Var) -> Option<Bytes> {
        let d = &self.data;
        let flag = |v: bool| Some(Bytes::from_static(if v { b"1" } else { b"0" }));
        let num = |n: usize| Some(from_str(n.to_string()));
        match var {
            Var::RequestUri | Var::RequestUriRaw => Some(d.uri.clone()),
            Var::RequestFilename => Some(d.filename.clone()),
            Var::RequestBasename => Some(d.basename.clone()),
            Var::RequestMethod => Some(d.method.clone()),
            // A request line without a version is HTTP/0.9 by definition.
            Var::RequestProtocol if d.protocol.is_empty() => Some(Bytes::from_static(b"HTTP/0.9")),
            Var::RequestProtocol => Some(d.protocol.clone()),
            Var::QueryString => Some(d.query.clone()),
            Var::RequestLine => {
                let mut l = Vec::with_capacity(d.method.len() + d.uri.len() + d.protocol.len() + 2);
                l.extend_from_slice(&d.method);
                l.push(b' ');
                l.extend_from_slice(&d.uri);
                // As sent: a request line without a version still has the
                // space before it.
                l.push(b' ');
                l.extend_from_slice(&d.protocol);
                Some(Bytes::from(l))
            }
            Var::RequestBody => d.request_body_var.clone(),
            Var::RequestBodyLength => num(d.request_body.len()),
            // Empty rather than absent without a processor, so that a
            // negated test of it can match.
            Var::ReqbodyProcessor => Some(
                self.body_processor()
                    .map_or_else(Bytes::new, |p| Bytes::from_static(p.name().as_bytes())),
            ),
            Var::ReqbodyError => flag(d.body_flags.error.is_some()),
            Var::ReqbodyErrorMsg => d.body_flags.error.clone().map(from_str),
            Var::ReqbodyProcessorError => flag(d.body_flags.processor_error.is_some()),
            Var::ReqbodyProcessorErrorMsg => d.body_flags.processor_error.clone().map(from_str),
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
                .map(|(_, v)| crate::operators::atoi(v).max(0) as usize)
                .sum()),
            Var::ResponseBody => d.response_body_var.clone(),
            Var::ResponseStatus => d.response_status.map(|s| from_str(s.to_string())),
            Var::ResponseProtocol => Some(d.response_protocol.clone()),
            Var::ResponseContentType => d
                .response_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
                .map(|(_, v)| v.clone()),
            Var::ResponseContentLength => d
                .response_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"content-length"))
                .map(|(_, v)| v.clone()),
            Var::RemoteAddr => d.remote_addr.map(|a| from_str(a.to_string())),
            Var::RemotePort => num(usize::from(d.remote_port)),
            Var::ServerAddr => d.server_addr.map(|a| from_str(a.to_string())),
            Var::ServerPort => num(usize::from(d.server_port)),
            Var::ServerName => d
                .request_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"host"))
                .map(|(_, v)| v.clone()),
            Var::UniqueId => Some(d.unique_id.clone()),
            Var::MatchedVar => self.matched_var.as_ref().map(|(_, v)| v.clone()),
            Var::MatchedVarName => self.matched_var.as_ref().map(|(n, _)| n.clone()),
            Var::HighestSeverity => num(usize::from(self.highest_severity)),
            Var::MultipartStrictError => flag(
                d.body_flags.multipart.values().any(|&v| v != 0)
                    || d.body_flags.processor_error.is_some(),
            ),
            v if v.name().starts_with("MULTIPART_") => Some(from_str(
                d.body_flags
                    .multipart
                    .get(&v)
                    .copied()
                    .unwrap_or(0)
                    .to_string(),
            )),
            Var::TimeEpoch => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| from_str(d.as_secs().to_string())),
            _ => None,
        }
    }

    /// Whether a value of `var` under `key` is left out for this rule.
    fn excluded(&self, rule: &Rule, head: &Rule, var: Var, key: &[u8]) -> bool {
        rule.targets
            .exclude
            .iter()
            .any(|(v, s)| *v == var && s.matches_key(key))
            || self
                .overrides
                .removed_targets_by_id
                .iter()
                .any(|(ids, v, s)| *v == var && in_ranges(ids, head.id) && s.matches_key(key))
            || self
                .overrides
                .removed_targets_by_tag
                .iter()
                .any(|(tag, v, s)| *v == var && head.tags.contains(tag) && s.matches_key(key))
    }

    /// Every value `rule` inspects, exclusions applied. `head` is the
    /// first rule of its chain (its id and tags govern exclusions).
    pub(crate) fn collect(&self, rule: &Rule, head: &Rule, out: &mut Vec<Item>) {
        for t in &rule.targets.include {
            self.collect_target(rule, head, t, out);
        }
    }

    fn collect_target(&self, rule: &Rule, head: &Rule, t: &Target, out: &mut Vec<Item>) {
        if !t.var.is_collection() {
            if let Some(value) = self.scalar(t.var) {
                if t.count {
                    out.push(Item {
                        var: t.var,
                        key: Bytes::new(),
                        value: Bytes::from_static(b"1"),
                    });
                } else if !self.excluded(rule, head, t.var, b"") {
                    out.push(Item {
                        var: t.var,
                        key: Bytes::new(),
                        value,
                    });
                }
            } else if t.count {
                out.push(Item {
                    var: t.var,
                    key: Bytes::new(),
                    value: Bytes::from_static(b"0"),
                });
            }
            return;
        }
        let mut count = 0usize;
        let start = out.len();
        self.each(t.var, &t.selector, &mut |k, v| {
            let wanted = match &t.selector {
                Selector::XPath(_) => true,
                s => s.matches_key(k),
            };
            if wanted && (t.count || !self.excluded(rule, head, t.var, k)) {
                count += 1;
                if !t.count {
                    out.push(Item {
                        var: t.var,
                        key: k.clone(),
                        value: v.clone(),
                    });
                }
            }
        });
        if t.count {
            out.truncate(start);
            out.push(Item {
                var: t.var,
                key: Bytes::new(),
                value: from_str(count.to_string()),
            });
        }
    }
}
