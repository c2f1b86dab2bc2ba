//! RFC 9457 problem details: the one shape of every denial and error the
//! gateway sends.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::RequestId;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// A denial or error, before it is rendered.
///
/// `code` is stable and documented; `detail` is a short, safe explanation:
/// it never carries internals, credentials or upstream error text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: Option<Cow<'static, str>>,
    /// Extra response headers, e.g. `Allow`, `Retry-After`, `WWW-Authenticate`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    code: &'a str,
    request_id: &'a str,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Self {
        Problem {
            status,
            code,
            title,
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The `type` URI of this problem.
    pub fn type_uri(&self) -> String {
        format!("urn:portcullis:problem:{}", self.code)
    }

    /// Renders the problem as an `application/problem+json` response.
    pub fn to_response(&self, request_id: &RequestId) -> Response<Bytes> {
        let body = Body {
            kind: self.type_uri(),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            code: self.code,
            request_id: request_id.as_str(),
        };
        // Serialising a struct of strings and integers cannot fail; fall back
        // to an empty object rather than panicking if it ever did.
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = Response::new(Bytes::from(json));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        response
    }

    // The catalogue of problems raised by the gateway core. Later
    // capabilities add their own next to their code.

    pub fn route_not_found() -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "route-not-found",
            "No route matches this request",
        )
    }

    pub fn method_not_allowed(allow: HeaderValue) -> Self {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "The route does not accept this method",
        )
        .with_header(http::header::ALLOW, allow)
    }

    pub fn bad_path(detail: &'static str) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-path",
            "The request path is not acceptable",
        )
        .with_detail(detail)
    }

    pub fn bad_request(code: &'static str, detail: &'static str) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, code, "The request is malformed").with_detail(detail)
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The request body is larger than this route allows",
        )
        .with_detail(format!("the limit is {limit} bytes"))
    }

    pub fn headers_too_large(detail: &'static str) -> Self {
        Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "The request headers are too large",
        )
        .with_detail(detail)
    }

    pub fn request_timeout() -> Self {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "The client was too slow to send the request",
        )
    }

    pub fn no_healthy_upstream() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream-unavailable",
            "No healthy upstream target is available",
        )
    }

    pub fn bad_gateway() -> Self {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "upstream-failed",
            "The upstream could not be reached or failed",
        )
    }

    pub fn gateway_timeout() -> Self {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
            "The upstream did not answer in time",
        )
    }

    pub fn too_many_connections() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-connections",
            "The gateway has too many open connections",
        )
    }

    pub fn conflicting_framing() -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "conflicting-framing",
            "The request is malformed",
        )
        .with_detail("Content-Length and Transfer-Encoding cannot both be present")
    }

    pub fn bad_host() -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-host",
            "The request is malformed",
        )
        .with_detail("the Host header is missing or not a host name")
    }

    pub fn listener_closing() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "listener-closing",
            "This listener is being closed",
        )
    }

    pub fn https_required() -> Self {
        Problem::new(
            StatusCode::FORBIDDEN,
            "https-required",
            "This route is only served over HTTPS",
        )
    }

    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "The gateway failed to process the request",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_problem_json_with_request_id() {
        let id = RequestId::from_incoming(b"req-1").unwrap();
        let resp = Problem::method_not_allowed(HeaderValue::from_static("GET, HEAD"))
            .with_detail("only reads")
            .to_response(&id);
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(resp.headers()[http::header::ALLOW], "GET, HEAD");
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(body["type"], "urn:portcullis:problem:method-not-allowed");
        assert_eq!(body["status"], 405);
        assert_eq!(body["code"], "method-not-allowed");
        assert_eq!(body["detail"], "only reads");
        assert_eq!(body["request_id"], "req-1");
    }

    #[test]
    fn detail_is_omitted_when_absent() {
        let id = RequestId::generate();
        let resp = Problem::route_not_found().to_response(&id);
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert!(body.get("detail").is_none());
    }
}
