//! The CRS regression test format (go-ftw YAML) and the requests it
//! describes, built byte for byte the way the go-ftw client builds them.

use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use yaml_serde::Value;

#[derive(Debug, Deserialize)]
pub struct TestFile {
    pub rule_id: Option<u32>,
    #[serde(default)]
    pub tests: Vec<Test>,
}

#[derive(Debug, Deserialize)]
pub struct Test {
    pub test_id: u32,
    #[serde(default)]
    pub desc: Option<String>,
    #[serde(default)]
    pub stages: Vec<Stage>,
}

#[derive(Debug, Deserialize)]
pub struct Stage {
    pub input: Input,
    #[serde(default)]
    pub output: Output,
}

#[derive(Debug, Default, Deserialize)]
pub struct Input {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub headers: Option<yaml_serde::Mapping>,
    pub data: Option<String>,
    pub encoded_request: Option<String>,
    pub autocomplete_headers: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Output {
    pub status: Option<Value>,
    #[serde(default)]
    pub log: Log,
    pub response_contains: Option<String>,
    pub expect_error: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Log {
    #[serde(default)]
    pub expect_ids: Vec<u32>,
    #[serde(default)]
    pub no_expect_ids: Vec<u32>,
    pub match_regex: Option<String>,
    pub no_match_regex: Option<String>,
}

pub fn load(path: &Path) -> Result<TestFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    yaml_serde::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A request as the test client puts it on the wire.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: Vec<u8>,
    pub uri: Vec<u8>,
    pub version: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The whole request in bytes.
    pub raw: Vec<u8>,
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => yaml_serde::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Percent-encodes like Go's `url.QueryEscape`.
fn query_escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in s {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
    out
}

/// Go's `url.QueryUnescape`: None when an escape is malformed.
fn query_unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'%' => {
                let hex = |j: usize| s.get(j).and_then(|c| (*c as char).to_digit(16));
                out.push((hex(i + 1)? * 16 + hex(i + 2)?) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Form data the tests write unencoded is encoded pair by pair, unless
/// it already looks encoded.
fn encode_form(data: &[u8]) -> Vec<u8> {
    if query_unescape(data).as_deref() != Some(data) {
        return data.to_vec();
    }
    let mut out = Vec::new();
    for (n, token) in data.split(|&b| b == b'&').enumerate() {
        if n > 0 {
            out.push(b'&');
        }
        match memchr::memchr(b'=', token) {
            Some(eq) => {
                out.extend(query_escape(token.get(..eq).unwrap_or(&[])));
                out.push(b'=');
                out.extend(query_escape(token.get(eq + 1..).unwrap_or(&[])));
            }
            None => out.extend(query_escape(token)),
        }
    }
    out
}

impl Input {
    pub fn request(&self) -> Result<Request, String> {
        if let Some(enc) = &self.encoded_request {
            let compact: String = enc.chars().filter(|c| !c.is_whitespace()).collect();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| format!("encoded_request: {e}"))?;
            return Ok(parse_raw(raw));
        }
        let method = self
            .method
            .clone()
            .unwrap_or_else(|| "GET".into())
            .into_bytes();
        let uri = self.uri.clone().unwrap_or_else(|| "/".into()).into_bytes();
        let version = self
            .version
            .clone()
            .unwrap_or_else(|| "HTTP/1.1".into())
            .into_bytes();
        // The client keeps one value per name and writes them sorted.
        let mut headers: Vec<(String, String)> = Vec::new();
        for (k, v) in self.headers.iter().flatten() {
            let (k, v) = (scalar(k), scalar(v));
            match headers.iter_mut().find(|(hk, _)| *hk == k) {
                Some(slot) => slot.1 = v,
                None => headers.push((k, v)),
            }
        }
        let mut data = self.data.clone().unwrap_or_default().into_bytes();
        let auto = self.autocomplete_headers.unwrap_or(true);
        let has = |h: &[(String, String)], n: &str| h.iter().any(|(k, v)| k == n && !v.is_empty());
        if !data.is_empty() && auto {
            if !has(&headers, "Content-Type") {
                headers.push((
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ));
            }
            let ct = headers
                .iter()
                .find(|(k, _)| k == "Content-Type")
                .map(|(_, v)| v.as_str());
            if ct == Some("application/x-www-form-urlencoded") {
                data = encode_form(&data);
            }
        }
        let ct = headers
            .iter()
            .find(|(k, _)| k == "Content-Type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if ct.starts_with("multipart/form-data;") {
            let mut crlf = Vec::with_capacity(data.len());
            for &b in &data {
                if b == b'\n' {
                    crlf.push(b'\r');
                }
                crlf.push(b);
            }
            data = crlf;
        }
        if auto {
            if !has(&headers, "Connection") {
                headers.push(("Connection".into(), "close".into()));
            }
            let m = String::from_utf8_lossy(&method);
            let body_method = m.starts_with("POST")
                || m.contains("PUT")
                || m.contains("PATCH")
                || m.ends_with("DELETE");
            if (!data.is_empty() || body_method) && !has(&headers, "Content-Length") {
                headers.push(("Content-Length".into(), data.len().to_string()));
            }
        }
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut raw = Vec::new();
        raw.extend_from_slice(&method);
        raw.push(b' ');
        raw.extend_from_slice(&uri);
        raw.push(b' ');
        raw.extend_from_slice(&version);
        raw.extend_from_slice(b"\r\n");
        for (k, v) in &headers {
            raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&data);
        let headers: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
            .collect();
        // What a server reads of it depends on the framing headers sent.
        let body = framed_body(&headers, &data);
        Ok(Request {
            method,
            uri,
            version,
            headers,
            body,
            raw,
        })
    }
}

/// Splits a raw request into its parts, as leniently as a server would.
pub fn parse_raw(raw: Vec<u8>) -> Request {
    let (head, body) = match memchr::memmem::find(&raw, b"\r\n\r\n") {
        Some(p) => (raw.get(..p).unwrap_or(&[]), raw.get(p + 4..).unwrap_or(&[])),
        None => match memchr::memmem::find(&raw, b"\n\n") {
            Some(p) => (raw.get(..p).unwrap_or(&[]), raw.get(p + 2..).unwrap_or(&[])),
            None => (&raw[..], &[][..]),
        },
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().unwrap_or(&[]);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or(&[]).to_vec();
    let uri = parts.next().unwrap_or(&[]).to_vec();
    let version = parts.next().unwrap_or(&[]).to_vec();
    let headers: Vec<(Vec<u8>, Vec<u8>)> = lines
        .filter_map(|l| {
            let c = memchr::memchr(b':', l)?;
            Some((l.get(..c)?.to_vec(), l.get(c + 1..)?.trim_ascii().to_vec()))
        })
        .collect();
    let body = framed_body(&headers, body);
    Request {
        method,
        uri,
        version,
        headers,
        body,
        raw,
    }
}

/// The body a server reads: `Content-Length` bytes, a chunked body, or
/// nothing when neither header says there is one.
fn framed_body(headers: &[(Vec<u8>, Vec<u8>)], rest: &[u8]) -> Vec<u8> {
    let get = |name: &[u8]| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    };
    if get(b"transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
        let mut out = Vec::new();
        let mut at = rest;
        while let Some(nl) = memchr::memchr(b'\n', at) {
            let line = at.get(..nl).unwrap_or(&[]).trim_ascii();
            let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let Some(size) = std::str::from_utf8(size_text)
                .ok()
                .and_then(|t| usize::from_str_radix(t, 16).ok())
            else {
                break;
            };
            if size == 0 {
                break;
            }
            let data = at.get(nl + 1..).unwrap_or(&[]);
            out.extend_from_slice(data.get(..size.min(data.len())).unwrap_or(&[]));
            let after = data.get(size..).unwrap_or(&[]);
            at = after
                .strip_prefix(b"\r\n")
                .or_else(|| after.strip_prefix(b"\n"))
                .unwrap_or(after);
        }
        return out;
    }
    match get(b"content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
    {
        Some(n) => rest.get(..n.min(rest.len())).unwrap_or(&[]).to_vec(),
        None => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn form_data_is_encoded_once() {
        assert_eq!(encode_form(b"a=b c&d='x'"), b"a=b+c&d=%27x%27");
        assert_eq!(encode_form(b"a=b+c"), b"a=b+c");
        assert_eq!(encode_form(b"a=%zz"), b"a=%zz");
    }

    #[test]
    fn requests_are_completed_like_the_test_client_does() {
        let input: Input = yaml_serde::from_str(
            "method: POST\nuri: /x\nheaders:\n  Host: localhost\n  User-Agent: t\ndata: a=1 2\n",
        )
        .unwrap();
        let r = input.request().unwrap();
        assert_eq!(r.body, b"a=1+2");
        let text = String::from_utf8(r.raw).unwrap();
        assert_eq!(
            text,
            "POST /x HTTP/1.1\r\nConnection: close\r\nContent-Length: 5\r\nContent-Type: application/x-www-form-urlencoded\r\nHost: localhost\r\nUser-Agent: t\r\n\r\na=1+2"
        );
    }

    #[test]
    fn encoded_requests_are_split() {
        let raw = base64::engine::general_purpose::STANDARD
            .encode("GET /a?b HTTP/1.0\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody and more");
        let input = Input {
            encoded_request: Some(raw),
            ..Input::default()
        };
        let r = input.request().unwrap();
        assert_eq!(r.uri, b"/a?b");
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.body, b"body");
    }
}
