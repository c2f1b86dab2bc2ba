//! A small HTTP(S) client for the authorization servers the gateway asks:
//! key documents (JWKS, OIDC discovery) and token introspection. One
//! request per connection, bounded in time and size; certificates are
//! verified against the public web roots.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// Key documents are small; anything bigger is refused.
pub const MAX_DOCUMENT: usize = 1024 * 1024;
pub const TIMEOUT: Duration = Duration::from_secs(5);

fn tls() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| format!("TLS client: {e}"))
        })
        .clone()
}

async fn send<S>(io: S, req: Request<Full<Bytes>>) -> Result<Bytes, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if resp.status() != StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    Limited::new(resp.into_body(), MAX_DOCUMENT)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("reading the body: {e}"))
}

/// GETs `url` and returns the body of a 200 response.
pub async fn get(url: &str) -> Result<Bytes, String> {
    let req = Request::get("/").body(Full::new(Bytes::new()));
    // Boxed here, on the rare path, so that the futures of everything that
    // may fetch (every authenticated request's) stay small: a request's
    // future is moved whole into its box, fetch or not.
    Box::pin(send_to(url, req.map_err(|e| e.to_string())?, TIMEOUT)).await
}

/// POSTs a form to `url` with an `Authorization` header and returns the
/// body of a 200 response.
pub async fn post_form(
    url: &str,
    authorization: &str,
    form: String,
    timeout: Duration,
) -> Result<Bytes, String> {
    let req = Request::post("/")
        .header(http::header::AUTHORIZATION, authorization)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| e.to_string())?;
    Box::pin(send_to(url, req, timeout)).await
}

/// Sends `req` (its target and Host replaced from `url`) within `timeout`.
pub async fn send_to(
    url: &str,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Bytes, String> {
    tokio::time::timeout(timeout, send_inner(url, req))
        .await
        .map_err(|_| format!("no answer within {}ms", timeout.as_millis()))?
}

async fn send_inner(url: &str, mut req: Request<Full<Bytes>>) -> Result<Bytes, String> {
    let uri: Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    let host = uri.host().ok_or("no host")?.to_owned();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
    *req.uri_mut() = path.parse().map_err(|_| "bad path".to_owned())?;
    let h = req.headers_mut();
    h.insert(
        http::header::HOST,
        authority.parse().map_err(|_| "bad host".to_owned())?,
    );
    h.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("portcullis"),
    );
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    if https {
        let name = ServerName::try_from(bare.to_owned()).map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(stream, req).await
    } else {
        send(tcp, req).await
    }
}
