//! `multipart/form-data` bodies: fields become arguments, file parts
//! become FILES, every part header is kept, and the irregularities
//! attackers use to smuggle data past parsers are flagged.

use std::collections::HashMap;

use bytes::Bytes;

use crate::tx::Pair;
use crate::variables::Var;

#[derive(Debug, Default)]
pub struct Parsed {
    pub args: Vec<Pair>,
    pub files: Vec<Pair>,
    pub sizes: Vec<Pair>,
    pub part_headers: Vec<Pair>,
    pub flags: HashMap<Var, u8>,
    pub error: Option<String>,
}

impl Parsed {
    fn flag(&mut self, v: Var) {
        self.flags.insert(v, 1);
    }

    fn fail(&mut self, msg: &str) {
        if self.error.is_none() {
            self.error = Some(msg.to_string());
        }
    }
}

/// The boundary from the Content-Type, with its irregularities flagged.
fn boundary(ct: &[u8], p: &mut Parsed) -> Option<Vec<u8>> {
    let lower = ct.to_ascii_lowercase();
    let at = memchr::memmem::find(&lower, b"boundary")?;
    let mut rest = ct.get(at + 8..)?;
    let trimmed = rest.trim_ascii_start();
    if trimmed.len() != rest.len() {
        p.flag(Var::MultipartBoundaryWhitespace);
    }
    rest = trimmed.strip_prefix(b"=")?;
    let trimmed = rest.trim_ascii_start();
    if trimmed.len() != rest.len() {
        p.flag(Var::MultipartBoundaryWhitespace);
    }
    rest = trimmed;
    let value = if let Some(q) = rest.strip_prefix(b"\"") {
        p.flag(Var::MultipartBoundaryQuoted);
        let end = memchr::memchr(b'"', q)?;
        q.get(..end)?
    } else {
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        rest.get(..end)?.trim_ascii_end()
    };
    if value.is_empty() || value.len() > 70 {
        return None;
    }
    if value.iter().any(u8::is_ascii_whitespace) {
        p.flag(Var::MultipartBoundaryWhitespace);
    }
    Some(value.to_vec())
}

struct Part {
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    content: Vec<u8>,
}

pub fn parse(content_type: &[u8], body: &[u8]) -> Parsed {
    let mut p = Parsed::default();
    let Some(b) = boundary(content_type, &mut p) else {
        p.fail("no usable boundary in the Content-Type");
        return p;
    };
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(&b);

    #[derive(PartialEq)]
    enum State {
        Preamble,
        Headers,
        Content,
        Done,
    }
    let mut state = State::Preamble;
    let mut part = Part {
        headers: Vec::new(),
        content: Vec::new(),
    };
    let (mut crlf, mut lf) = (false, false);
    let mut pos = 0;
    while pos < body.len() {
        let rest = body.get(pos..).unwrap_or(&[]);
        let (line, ending, next) = match memchr::memchr(b'\n', rest) {
            Some(n) => {
                let raw = rest.get(..n).unwrap_or(&[]);
                match raw.strip_suffix(b"\r") {
                    Some(l) => (l, &b"\r\n"[..], pos + n + 1),
                    None => (raw, &b"\n"[..], pos + n + 1),
                }
            }
            None => (rest, &b""[..], body.len()),
        };
        pos = next;
        if state == State::Done {
            if !line.trim_ascii().is_empty() {
                p.flag(Var::MultipartDataAfter);
            }
            continue;
        }
        let is_delim = line.starts_with(&delim);
        let after = line.get(delim.len()..).unwrap_or(&[]);
        let close = is_delim && after.trim_ascii_end() == b"--";
        let open = is_delim && after.trim_ascii_end().is_empty();
        if open || close {
            match ending {
                b"\r\n" => crlf = true,
                b"\n" => lf = true,
                _ => {}
            }
            match state {
                State::Preamble => {}
                State::Headers => p.fail("a part ends inside its headers"),
                State::Content => {
                    // The line break before a delimiter belongs to it.
                    if part.content.ends_with(b"\r\n") {
                        part.content.truncate(part.content.len() - 2);
                    } else if part.content.ends_with(b"\n") {
                        part.content.truncate(part.content.len() - 1);
                    }
                    finish(
                        std::mem::replace(
                            &mut part,
                            Part {
                                headers: Vec::new(),
                                content: Vec::new(),
                            },
                        ),
                        &mut p,
                    );
                }
                State::Done => {}
            }
            state = if close { State::Done } else { State::Headers };
            continue;
        }
        if is_delim {
            p.flag(Var::MultipartUnmatchedBoundary);
        }
        match state {
            State::Preamble => {
                if !line.is_empty() {
                    p.flag(Var::MultipartDataBefore);
                }
            }
            State::Headers => {
                match ending {
                    b"\r\n" => crlf = true,
                    b"\n" => lf = true,
                    _ => {}
                }
                if line.is_empty() {
                    state = State::Content;
                } else if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
                    p.flag(Var::MultipartHeaderFolding);
                    match part.headers.last_mut() {
                        Some((_, v)) => {
                            v.push(b' ');
                            v.extend_from_slice(line.trim_ascii());
                        }
                        None => p.flag(Var::MultipartInvalidHeaderFolding),
                    }
                } else if let Some(colon) = memchr::memchr(b':', line) {
                    let name = line.get(..colon).unwrap_or(&[]).trim_ascii().to_vec();
                    let value = line.get(colon + 1..).unwrap_or(&[]).trim_ascii().to_vec();
                    part.headers.push((name, value));
                } else {
                    p.flag(Var::MultipartInvalidPart);
                    p.fail("a part header has no colon");
                }
            }
            State::Content => {
                part.content.extend_from_slice(line);
                part.content.extend_from_slice(ending);
            }
            State::Done => {}
        }
    }
    if lf {
        p.flag(Var::MultipartLfLine);
    }
    if lf && crlf {
        p.flag(Var::MultipartCrlfLfLines);
    }
    if state != State::Done {
        p.fail("the final boundary is missing");
    }
    p
}

/// Content-Disposition parameters: name and filename.
fn disposition(value: &[u8], p: &mut Parsed) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let lower = value.to_ascii_lowercase();
    let rest = lower.strip_prefix(b"form-data")?;
    let mut rest_raw = value.get(value.len() - rest.len()..)?;
    let mut name = None;
    let mut filename = None;
    loop {
        let trimmed = rest_raw.trim_ascii_start();
        if trimmed.is_empty() {
            break;
        }
        rest_raw = match trimmed.strip_prefix(b";") {
            Some(r) => r.trim_ascii_start(),
            None => {
                p.flag(Var::MultipartMissingSemicolon);
                trimmed
            }
        };
        let eq = memchr::memchr(b'=', rest_raw)?;
        let key = rest_raw.get(..eq)?.trim_ascii().to_ascii_lowercase();
        let after = rest_raw.get(eq + 1..)?.trim_ascii_start();
        let (val, remaining) = if let Some(q) = after.strip_prefix(b"\"") {
            let mut v = Vec::new();
            let mut i = 0;
            let mut closed = false;
            while let Some(&c) = q.get(i) {
                if c == b'\\' && matches!(q.get(i + 1), Some(b'"' | b'\\')) {
                    v.push(*q.get(i + 1).unwrap_or(&c));
                    i += 2;
                    continue;
                }
                if c == b'"' {
                    closed = true;
                    break;
                }
                v.push(c);
                i += 1;
            }
            if !closed {
                p.flag(Var::MultipartInvalidQuoting);
            }
            (v, q.get(i + 1..).unwrap_or(&[]))
        } else {
            let end = memchr::memchr(b';', after).unwrap_or(after.len());
            let v = after.get(..end)?.trim_ascii_end().to_vec();
            if v.iter().any(|c| *c == b'\'' || *c == b'"' || *c == b'\\') {
                p.flag(Var::MultipartInvalidQuoting);
            }
            (v, after.get(end..).unwrap_or(&[]))
        };
        let slot = match key.as_slice() {
            b"name" => Some(&mut name),
            b"filename" | b"filename*" => Some(&mut filename),
            _ => None,
        };
        if let Some(slot) = slot
            && slot.replace(val).is_some()
        {
            p.fail("a part repeats its name or filename");
        }
        rest_raw = remaining;
    }
    Some((name?, filename))
}

fn finish(part: Part, p: &mut Parsed) {
    let cd = part
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"content-disposition"))
        .map(|(_, v)| v.clone());
    let Some((name, filename)) = cd.as_deref().and_then(|v| disposition(v, p)) else {
        p.flag(Var::MultipartInvalidPart);
        p.fail("a part has no usable Content-Disposition");
        return;
    };
    let name = Bytes::from(name);
    for (k, v) in &part.headers {
        let mut line = k.clone();
        line.extend_from_slice(b": ");
        line.extend_from_slice(v);
        p.part_headers.push((name.clone(), Bytes::from(line)));
    }
    match filename {
        Some(f) => {
            p.files.push((name.clone(), Bytes::from(f)));
            p.sizes.push((
                name,
                Bytes::from(part.content.len().to_string().into_bytes()),
            ));
        }
        None => p.args.push((name, Bytes::from(part.content))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const CT: &[u8] = b"multipart/form-data; boundary=XyZ";

    #[test]
    fn fields_files_and_part_headers() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\nworld\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.php\"\r\nContent-Type: text/plain\r\n\r\n<?php\r\n--XyZ--\r\n";
        let p = parse(CT, body);
        assert_eq!(p.error, None);
        assert_eq!(
            p.args,
            vec![(Bytes::from("a"), Bytes::from("hello\r\nworld"))]
        );
        assert_eq!(p.files, vec![(Bytes::from("f"), Bytes::from("x.php"))]);
        assert_eq!(p.sizes, vec![(Bytes::from("f"), Bytes::from("5"))]);
        assert_eq!(p.part_headers.len(), 3);
        assert_eq!(p.part_headers[2].1, Bytes::from("Content-Type: text/plain"));
        assert!(p.flags.is_empty(), "{:?}", p.flags);
    }

    #[test]
    fn irregularities_are_flagged() {
        let body = b"junk\n--XyZ\nContent-Disposition: form-data name=\"a\"\n\nv\n--XyZ--\nafter";
        let p = parse(b"multipart/form-data; boundary=\"XyZ\"", body);
        for v in [
            Var::MultipartDataBefore,
            Var::MultipartLfLine,
            Var::MultipartMissingSemicolon,
            Var::MultipartDataAfter,
            Var::MultipartBoundaryQuoted,
        ] {
            assert_eq!(p.flags.get(&v), Some(&1), "{v:?}");
        }
        let p = parse(
            CT,
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv",
        );
        assert!(p.error.unwrap().contains("final boundary"));
        assert!(parse(b"multipart/form-data", b"").error.is_some());
    }
}
