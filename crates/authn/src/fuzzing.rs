//! Entry points for the fuzz targets: every parser that reads a credential
//! from a request, fed arbitrary header values and query strings. None may
//! panic; a credential that was not issued must never verify.

use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_config::runtime::Authentication;

use crate::verify::Check;

fn settings() -> &'static Authentication {
    static S: OnceLock<Authentication> = OnceLock::new();
    S.get_or_init(|| {
        portcullis_config::load_str(
            "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\n",
            "fuzz".into(),
            std::path::Path::new("."),
        )
        .map(|c| c.authentication)
        .unwrap_or_else(|_| std::process::abort())
    })
}

/// Runs the credential parsers over `value` as an `Authorization`, an
/// `X-API-Key` header and a query string. Returns whether anything
/// verified (it never should: nothing was issued).
pub fn credentials(value: &[u8]) -> bool {
    static STATE: OnceLock<(Arc<crate::AuthServices>, tokio::runtime::Runtime)> = OnceLock::new();
    let (services, rt) = STATE.get_or_init(|| {
        let store =
            portcullis_store::SqliteStore::in_memory().unwrap_or_else(|_| std::process::abort());
        let secret =
            crate::apikey::KeySecret::new(vec![7; 32]).unwrap_or_else(|_| std::process::abort());
        let services = crate::AuthServices::with_store(Arc::new(store), secret, None)
            .unwrap_or_else(|_| std::process::abort());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|_| std::process::abort());
        (services, rt)
    });
    let mut verified = false;
    let snapshot = services.snapshot.as_ref().map(|s| s.load());
    if let Ok(v) = HeaderValue::from_bytes(value) {
        for name in [
            http::header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, v.clone());
            let key = crate::verify::api_key(&h, settings(), snapshot.as_deref(), &services.secret);
            let basic = rt.block_on(services.basic.check(&h, snapshot.as_deref()));
            verified |= matches!(key, Check::Valid(_)) || matches!(basic, Check::Valid(_));
            if let Ok(Some(token)) = crate::jwt::bearer(&h) {
                let _ = crate::jwt::looks_like_jwt(token);
                let jwt = rt.block_on(services.jwt.check(token, &[0]));
                verified |= matches!(jwt, Check::Valid(_));
            }
        }
    }
    let text = String::from_utf8_lossy(value);
    let _ = crate::verify::key_in_query(Some(&text), "pcl");
    let _ = crate::apikey::parse(&text, "pcl");
    let _ = crate::apikey::masked(&text, "pcl");
    verified
}
