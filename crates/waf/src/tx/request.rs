//! Feeding a transaction: connection, request line, headers, bodies, and
//! the calls that run each phase.

use std::net::SocketAddr;

use bytes::Bytes;

use super::{Intervention, Transaction};
use crate::body;
use crate::rule::BodyProcessor;
use crate::ruleset::LimitAction;

fn percent_decode_path(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        if c == b'%'
            && let (Some(h), Some(l)) = (hex(s.get(i + 1)), hex(s.get(i + 2)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

impl Transaction<'_> {
    pub fn connection(&mut self, client: SocketAddr, server: SocketAddr) {
        self.data.remote_addr = Some(client.ip());
        self.data.remote_port = client.port();
        self.data.server_addr = Some(server.ip());
        self.data.server_port = server.port();
    }

    /// An id for this transaction (`UNIQUE_ID`), e.g. the request id.
    pub fn unique_id(&mut self, id: &str) {
        self.data.unique_id = Bytes::copy_from_slice(id.as_bytes());
    }

    pub fn request_line(&mut self, method: &[u8], uri: &[u8], protocol: &[u8]) {
        self.head_cached = false;
        let d = &mut self.data;
        d.method = Bytes::copy_from_slice(method);
        d.uri = Bytes::copy_from_slice(uri);
        d.protocol = Bytes::copy_from_slice(protocol);
        // An absolute URI's path starts after the authority.
        let mut path_and_query = uri;
        let absolute = !uri.starts_with(b"/");
        if let Some(p) = memchr::memmem::find(uri, b"://").filter(|_| absolute) {
            let rest = uri.get(p + 3..).unwrap_or(&[]);
            path_and_query = match memchr::memchr(b'/', rest) {
                Some(s) => rest.get(s..).unwrap_or(&[]),
                None => &[],
            };
        }
        let (path, query) = match memchr::memchr(b'?', path_and_query) {
            Some(q) => (
                path_and_query.get(..q).unwrap_or(&[]),
                path_and_query.get(q + 1..).unwrap_or(&[]),
            ),
            None => (path_and_query, &[][..]),
        };
        // A fragment is never part of what the server sees.
        let path = match memchr::memchr(b'#', path) {
            Some(f) => path.get(..f).unwrap_or(&[]),
            None => path,
        };
        let filename = percent_decode_path(path);
        let base = match memchr::memrchr(b'/', &filename) {
            Some(s) => filename.get(s + 1..).unwrap_or(&[]).to_vec(),
            None => filename.clone(),
        };
        d.filename = Bytes::from(filename);
        d.basename = Bytes::from(base);
        d.query = Bytes::copy_from_slice(query);
        d.args_get = body::urlencoded::parse(query, self.rules.settings.argument_separator);
    }

    pub fn request_header(&mut self, name: &[u8], value: &[u8]) {
        self.head_cached = false;
        if name.eq_ignore_ascii_case(b"cookie") {
            self.data.cookies.extend(body::cookies(value));
        }
        self.data
            .request_headers
            .push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.data
            .request_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// The body processor in force: `ctl` first, then the Content-Type.
    pub(crate) fn body_processor(&self) -> Option<BodyProcessor> {
        if let Some(p) = self.overrides.body_processor {
            return Some(p);
        }
        let ct = self.header(b"content-type")?;
        let ct = ct.trim_ascii_start();
        let starts = |p: &[u8]| {
            ct.len() >= p.len() && ct.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
        };
        if starts(b"application/x-www-form-urlencoded") {
            Some(BodyProcessor::UrlEncoded)
        } else if starts(b"multipart/form-data") {
            Some(BodyProcessor::Multipart)
        } else {
            None
        }
    }

    /// Phase 1.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        self.phase(1)
    }

    fn request_body_access(&self) -> bool {
        self.overrides
            .request_body_access
            .unwrap_or(self.rules.settings.request_body_access)
    }

    /// Adds request body bytes. Returns an interruption when the body
    /// passes the limit and the rule set says to reject it.
    pub fn request_body(&mut self, chunk: &[u8]) -> Option<Intervention> {
        if !self.request_body_access() {
            return None;
        }
        let s = &self.rules.settings;
        let room = s
            .request_body_limit
            .saturating_sub(self.data.request_body.len());
        if chunk.len() > room {
            self.data
                .request_body
                .extend_from_slice(chunk.get(..room).unwrap_or(&[]));
            if s.request_body_limit_action == LimitAction::Reject
                && self.engine() == crate::rule::EngineMode::On
            {
                let iv = Intervention {
                    status: 413,
                    rule_id: 0,
                    drop: false,
                };
                self.interruption = Some(iv.clone());
                return Some(iv);
            }
            return None;
        }
        self.data.request_body.extend_from_slice(chunk);
        None
    }

    /// Parses the body with its processor, then runs phase 2.
    pub fn process_request_body(&mut self) -> Option<Intervention> {
        if self.interruption.is_some() {
            return None;
        }
        if self.request_body_access() {
            self.parse_request_body();
        }
        self.phase(2)
    }

    fn parse_request_body(&mut self) {
        let processor = self.body_processor();
        let body = std::mem::take(&mut self.data.request_body);
        let settings = &self.rules.settings;
        let mut flags = super::BodyFlags::default();
        match processor {
            Some(BodyProcessor::UrlEncoded) => {
                self.data.args_post = body::urlencoded::parse(&body, settings.argument_separator);
            }
            Some(BodyProcessor::Json) => {
                let room = settings
                    .arguments_limit
                    .saturating_sub(self.data.args_get.len());
                match body::json::parse(&body, settings.json_depth_limit, room) {
                    Ok(args) => self.data.args_post = args,
                    Err(e) => flags.error = Some(format!("JSON parsing error: {e}")),
                }
            }
            Some(BodyProcessor::Xml) => match body::xml::parse(&body) {
                Ok((text, attrs)) => {
                    self.data.xml_text = text;
                    self.data.xml_attrs = attrs;
                }
                Err(e) => flags.error = Some(format!("XML parsing error: {e}")),
            },
            Some(BodyProcessor::Multipart) => {
                let ct = self.header(b"content-type").unwrap_or(&[]).to_vec();
                let parsed = body::multipart::parse(&ct, &body);
                self.data.args_post = parsed.args;
                self.data.files = parsed.files;
                self.data.file_sizes = parsed.sizes;
                self.data.part_headers = parsed.part_headers;
                flags.multipart = parsed.flags;
                if let Some(e) = parsed.error {
                    flags.processor_error = Some(e.clone());
                    flags.error = Some(format!("Multipart parsing error: {e}"));
                }
            }
            None => {}
        }
        let force = self.overrides.force_body_variable;
        if processor == Some(BodyProcessor::UrlEncoded) || force {
            self.data.request_body_var = Some(Bytes::copy_from_slice(&body));
        }
        if self.data.args_get.len() + self.data.args_post.len() > settings.arguments_limit {
            let keep = settings
                .arguments_limit
                .saturating_sub(self.data.args_get.len());
            self.data.args_post.truncate(keep);
        }
        self.data.request_body = body;
        self.data.body_flags = flags;
    }

    /// Phases 1 and 2 once the head is fed: the request headers, then the
    /// body (up to the limit) and its phase. Stops at an interruption.
    pub fn process_request(&mut self, body: &[u8]) -> Option<Intervention> {
        self.process_request_headers()
            .or_else(|| self.request_body(body))
            .or_else(|| self.process_request_body())
    }

    pub fn response_status(&mut self, status: u16, protocol: &[u8]) {
        self.data.response_status = Some(status);
        self.data.response_protocol = Bytes::copy_from_slice(protocol);
    }

    pub fn response_header(&mut self, name: &[u8], value: &[u8]) {
        self.data
            .response_headers
            .push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
    }

    /// Phase 3.
    pub fn process_response_headers(&mut self) -> Option<Intervention> {
        self.phase(3)
    }

    /// Whether the response body will be inspected (access on and a
    /// listed media type).
    pub fn wants_response_body(&self) -> bool {
        let access = self
            .overrides
            .response_body_access
            .unwrap_or(self.rules.settings.response_body_access);
        if !access {
            return false;
        }
        let ct = self
            .data
            .response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
            .map(|(_, v)| v.as_ref())
            .unwrap_or(b"");
        let media = ct.split(|&b| b == b';').next().unwrap_or(&[]).trim_ascii();
        self.rules
            .settings
            .response_mime_types
            .iter()
            .any(|m| m.as_bytes().eq_ignore_ascii_case(media))
    }

    pub fn response_body(&mut self, chunk: &[u8]) -> Option<Intervention> {
        if !self.wants_response_body() {
            return None;
        }
        let s = &self.rules.settings;
        let room = s
            .response_body_limit
            .saturating_sub(self.data.response_body.len());
        if chunk.len() > room {
            self.data
                .response_body
                .extend_from_slice(chunk.get(..room).unwrap_or(&[]));
            if s.response_body_limit_action == LimitAction::Reject
                && self.engine() == crate::rule::EngineMode::On
            {
                let iv = Intervention {
                    status: 500,
                    rule_id: 0,
                    drop: false,
                };
                self.interruption = Some(iv.clone());
                return Some(iv);
            }
            return None;
        }
        self.data.response_body.extend_from_slice(chunk);
        None
    }

    /// Phase 4.
    pub fn process_response_body(&mut self) -> Option<Intervention> {
        if self.wants_response_body() {
            self.data.response_body_var = Some(Bytes::copy_from_slice(&self.data.response_body));
        }
        self.phase(4)
    }

    /// Phase 5: runs whatever happened before.
    pub fn process_logging(&mut self) {
        // Logging rules run even after an interruption.
        let saved = self.interruption.take();
        self.phase(5);
        self.interruption = saved;
    }

    fn phase(&mut self, n: u8) -> Option<Intervention> {
        // Each phase runs once, in order; a skipped phase still runs when
        // a later one is asked for (rules there may be needed).
        let mut out = None;
        while self.phase_done < n {
            self.phase_done += 1;
            if let Some(iv) = self.run_phase(self.phase_done) {
                out = Some(iv);
            }
        }
        out
    }
}
