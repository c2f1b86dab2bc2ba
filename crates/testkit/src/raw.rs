//! Raw HTTP/1 over TCP, for requests well-behaved clients refuse to send
//! (conflicting framing, slow heads, malformed paths).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response: status, lower-case headers, body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Parses one response from raw bytes (Content-Length bodies only).
pub fn parse(raw: &[u8]) -> Option<RawResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(rest.len());
    Some(RawResponse {
        status,
        headers,
        body: rest.chars().take(len).collect(),
    })
}

/// Sends bytes on a new connection and reads until the server closes it or
/// `timeout` passes.
pub async fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_until_close(&mut s, timeout).await
}

/// Reads until EOF, error, or timeout.
pub async fn read_until_close(s: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// Sends one request with `Connection: close` semantics and parses the answer.
pub async fn request(addr: SocketAddr, request: &str) -> RawResponse {
    let raw = exchange(addr, request.as_bytes(), Duration::from_secs(10)).await;
    parse(&raw)
        .unwrap_or_else(|| panic!("no parsable response: {:?}", String::from_utf8_lossy(&raw)))
}

/// Reads the next whole response from a connection that may carry several
/// (pipelining, keep-alive): `Content-Length` or chunked bodies, or none
/// for `HEAD` when `head` is set. Bytes after it stay in `buf`. `None` if
/// the connection closes or `timeout` passes first.
pub async fn next_response(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: bool,
    timeout: Duration,
) -> Option<RawResponse> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some((resp, used)) = split_response(buf, head) {
            buf.drain(..used);
            return Some(resp);
        }
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// One complete response at the start of `raw`, and how many bytes it took.
fn split_response(raw: &[u8], head: bool) -> Option<(RawResponse, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&raw[..end]);
    let mut lines = text.lines();
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let no_body = head || status < 200 || status == 204 || status == 304;
    let (body, used) = if no_body {
        (Vec::new(), end)
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = end;
        loop {
            let line_end = raw[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&raw[at..line_end])
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            at = line_end + 2;
            if size == 0 {
                // No trailers are expected from the gateway.
                if raw.len() < at + 2 {
                    return None;
                }
                break (body, at + 2);
            }
            if raw.len() < at + size + 2 {
                return None;
            }
            body.extend_from_slice(&raw[at..at + size]);
            at += size + 2;
        }
    } else {
        let len: usize = find("content-length")?.parse().ok()?;
        if raw.len() < end + len {
            return None;
        }
        (raw[end..end + len].to_vec(), end + len)
    };
    Some((
        RawResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        used,
    ))
}
