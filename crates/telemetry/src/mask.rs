//! Masking: credentials and configured secrets are replaced before a value
//! can reach a log line.

use http::HeaderName;

/// What replaces a masked value.
pub const MASK: &str = "***";

/// The masking rules in force.
#[derive(Clone, Debug, Default)]
pub struct Masker {
    headers: Vec<HeaderName>,
    /// Lower-case parameter names.
    params: Vec<String>,
}

impl Masker {
    pub fn new(headers: Vec<HeaderName>, params: Vec<String>) -> Self {
        Masker {
            headers,
            params: params.into_iter().map(|p| p.to_ascii_lowercase()).collect(),
        }
    }

    pub fn is_masked_header(&self, name: &HeaderName) -> bool {
        self.headers.contains(name)
    }

    /// A header value as it may be logged.
    pub fn header_value<'a>(
        &self,
        name: &HeaderName,
        value: &'a [u8],
    ) -> std::borrow::Cow<'a, str> {
        if self.is_masked_header(name) {
            MASK.into()
        } else {
            String::from_utf8_lossy(value)
        }
    }

    /// A query string with the values of masked parameters replaced. The
    /// parameter name is compared after percent-decoding and lower-casing,
    /// so `%61pi_key` and `API_KEY` are masked like `api_key`.
    pub fn query(&self, query: &str) -> String {
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (name, value) = match pair.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (pair, None),
            };
            out.push_str(name);
            if let Some(v) = value {
                out.push('=');
                if self.params.contains(&decode_name(name)) {
                    out.push_str(MASK);
                } else {
                    out.push_str(v);
                }
            }
        }
        out
    }
}

fn decode_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from((h << 4) | l).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker() -> Masker {
        Masker::new(
            vec![HeaderName::from_static("authorization")],
            vec!["api_key".into(), "Token".into()],
        )
    }

    #[test]
    fn masks_query_values_by_decoded_name() {
        let m = masker();
        assert_eq!(m.query("a=1&api_key=s3cret&b"), "a=1&api_key=***&b");
        assert_eq!(m.query("API_KEY=s3cret"), "API_KEY=***");
        assert_eq!(m.query("%61pi_key=s3cret"), "%61pi_key=***");
        assert_eq!(m.query("token=x&token=y"), "token=***&token=***");
        assert_eq!(m.query("tokens=x"), "tokens=x");
    }

    #[test]
    fn masks_headers() {
        let m = masker();
        let auth = HeaderName::from_static("authorization");
        let ua = HeaderName::from_static("user-agent");
        assert_eq!(m.header_value(&auth, b"Bearer abc"), MASK);
        assert_eq!(m.header_value(&ua, b"curl"), "curl");
    }
}
