//! XML bodies: the text content (`XML:/*`, each non-blank text node) and
//! every attribute value (`XML://@*`). A lenient reader, as a WAF must see
//! what a forgiving application parser would accept; only markup that
//! never closes is an error.

use bytes::Bytes;

/// (text nodes, attribute values), entities decoded.
pub fn parse(body: &[u8]) -> Result<(Vec<Bytes>, Vec<Bytes>), String> {
    let mut text = Vec::new();
    let mut attrs = Vec::new();
    let mut i = 0;
    let find = |from: usize, pat: &[u8]| -> Result<usize, String> {
        memchr::memmem::find(body.get(from..).unwrap_or(&[]), pat)
            .map(|p| from + p)
            .ok_or_else(|| format!("unterminated markup at byte {from}"))
    };
    while i < body.len() {
        let Some(lt) = memchr::memchr(b'<', body.get(i..).unwrap_or(&[])).map(|p| i + p) else {
            push_text(body.get(i..).unwrap_or(&[]), &mut text);
            break;
        };
        push_text(body.get(i..lt).unwrap_or(&[]), &mut text);
        let rest = body.get(lt..).unwrap_or(&[]);
        if rest.starts_with(b"<!--") {
            i = find(lt + 4, b"-->")? + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            let end = find(lt + 9, b"]]>")?;
            let data = body.get(lt + 9..end).unwrap_or(&[]);
            if !data.trim_ascii().is_empty() {
                text.push(Bytes::copy_from_slice(data.trim_ascii()));
            }
            i = end + 3;
        } else if rest.starts_with(b"<?") {
            i = find(lt + 2, b"?>")? + 2;
        } else if rest.starts_with(b"<!") {
            // A DOCTYPE, possibly with an internal subset in brackets.
            let mut j = lt + 2;
            let mut depth = 0i32;
            loop {
                match body.get(j) {
                    None => return Err(format!("unterminated declaration at byte {lt}")),
                    Some(b'[') => depth += 1,
                    Some(b']') => depth -= 1,
                    Some(b'>') if depth <= 0 => break,
                    _ => {}
                }
                j += 1;
            }
            i = j + 1;
        } else {
            let end = tag_end(body, lt)?;
            let inner = body.get(lt + 1..end).unwrap_or(&[]);
            if !inner.starts_with(b"/") {
                tag_attributes(inner, &mut attrs);
            }
            i = end + 1;
        }
    }
    Ok((text, attrs))
}

/// The `>` closing the tag at `lt`, skipping quoted attribute values.
fn tag_end(body: &[u8], lt: usize) -> Result<usize, String> {
    let mut quote = None;
    let mut j = lt + 1;
    while let Some(&c) = body.get(j) {
        match (quote, c) {
            (None, b'"' | b'\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => return Ok(j),
            _ => {}
        }
        j += 1;
    }
    Err(format!("unterminated tag at byte {lt}"))
}

fn tag_attributes(inner: &[u8], out: &mut Vec<Bytes>) {
    let mut i = 0;
    while i < inner.len() {
        let Some(eq) = memchr::memchr(b'=', inner.get(i..).unwrap_or(&[])).map(|p| i + p) else {
            break;
        };
        let mut j = eq + 1;
        while inner.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        match inner.get(j) {
            Some(&q @ (b'"' | b'\'')) => {
                let start = j + 1;
                let end = memchr::memchr(q, inner.get(start..).unwrap_or(&[]))
                    .map_or(inner.len(), |p| start + p);
                out.push(Bytes::from(decode_entities(
                    inner.get(start..end).unwrap_or(&[]),
                )));
                i = end + 1;
            }
            _ => {
                let start = j;
                let end = inner
                    .get(start..)
                    .unwrap_or(&[])
                    .iter()
                    .position(|b| b.is_ascii_whitespace() || *b == b'/')
                    .map_or(inner.len(), |p| start + p);
                out.push(Bytes::from(decode_entities(
                    inner.get(start..end).unwrap_or(&[]),
                )));
                i = end + 1;
            }
        }
    }
}

fn push_text(raw: &[u8], out: &mut Vec<Bytes>) {
    let t = raw.trim_ascii();
    if !t.is_empty() {
        out.push(Bytes::from(decode_entities(t)));
    }
}

fn decode_entities(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if crate::transforms::Transform::HtmlEntityDecode.apply(s, &mut out) {
        out
    } else {
        s.to_vec()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes() {
        let (text, attrs) = parse(
            br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><a href='1 &amp; 2' id=x><!-- c --><b>hi &lt;there</b> <![CDATA[<raw>]]></a>"#,
        )
        .unwrap();
        assert_eq!(text, vec![Bytes::from("hi <there"), Bytes::from("<raw>")]);
        assert_eq!(attrs, vec![Bytes::from("1 & 2"), Bytes::from("x")]);
    }

    #[test]
    fn unterminated_markup_is_an_error() {
        assert!(parse(b"<a><b").is_err());
        assert!(parse(b"<a><!-- x").is_err());
        assert!(parse(b"plain text").is_ok());
    }
}
