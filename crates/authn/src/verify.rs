//! Finding and verifying credentials in a request, one method at a time.

use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use portcullis_config::runtime::{AuthMethod, Authentication};
use portcullis_store::{Consumer, Snapshot};

use crate::apikey::{self, FormError, KeySecret};

/// Who a credential proved the caller to be.
#[derive(Clone, Debug)]
pub struct Identity {
    pub consumer: Arc<Consumer>,
    pub method: AuthMethod,
    pub scopes: Vec<String>,
    /// When the credential stops being valid, if it says.
    pub expires_at: Option<i64>,
}

/// What one method found.
#[derive(Debug)]
pub enum Check {
    /// No credential of this kind was sent.
    Absent,
    Valid(Identity),
    /// A credential was sent and is no good. `reason` is for the log only.
    Invalid {
        reason: &'static str,
        /// The credential as it may be logged.
        masked: String,
        /// Its public id, for counting failures per credential.
        credential_id: Option<String>,
    },
    /// The credential could not be checked (the authorization server did
    /// not answer): refused, but not the client's fault.
    Unavailable {
        reason: &'static str,
    },
}

fn invalid(reason: &'static str, masked: String, credential_id: Option<String>) -> Check {
    Check::Invalid {
        reason,
        masked,
        credential_id,
    }
}

/// Whether `Authorization` uses `scheme` (lower case), by its first word.
pub fn authorization_scheme(h: &HeaderMap, scheme: &str) -> bool {
    h.get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_ascii_whitespace().next())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

/// The API key sent with the request, from the key header or
/// `Authorization: ApiKey <key>`. More than one is an error: the gateway
/// and the upstream could read different ones.
fn presented_key<'h>(h: &'h HeaderMap, settings: &Authentication) -> Result<Option<&'h str>, ()> {
    let mut found: Option<&str> = None;
    let mut count = 0usize;
    for v in h.get_all(&settings.key_header) {
        count += 1;
        found = Some(v.to_str().map_err(|_| ())?.trim());
    }
    if authorization_scheme(h, "apikey") {
        for v in h.get_all(AUTHORIZATION) {
            count += 1;
            let text = v.to_str().map_err(|_| ())?.trim();
            let mut parts = text.split_ascii_whitespace();
            parts.next();
            found = parts.next();
            if parts.next().is_some() {
                return Err(());
            }
        }
    }
    match count {
        0 => Ok(None),
        1 => Ok(found),
        _ => Err(()),
    }
}

/// Verifies an API key: form and checksum, then the stored keyed hash
/// (compared in constant time), then revocation and expiry.
pub fn api_key(
    h: &HeaderMap,
    settings: &Authentication,
    snapshot: Option<&Snapshot>,
    secret: &KeySecret,
) -> Check {
    let prefix = settings.key_prefix.as_str();
    let text = match presented_key(h, settings) {
        Ok(None) => return Check::Absent,
        Ok(Some(t)) => t,
        Err(()) => return invalid("key-ambiguous", "***".to_owned(), None),
    };
    let masked = apikey::masked(text, prefix);
    let id = apikey::parse_id(text, prefix).map(str::to_owned);
    let presented = match apikey::parse(text, prefix) {
        Ok(p) => p,
        Err(FormError::Shape) => return invalid("key-malformed", masked, id),
        Err(FormError::Checksum) => return invalid("key-checksum", masked, id),
    };
    let Some(entry) = snapshot.and_then(|s| s.key(presented.id)) else {
        return invalid("key-unknown", masked, id);
    };
    if !secret.matches(presented.text, &entry.hash) {
        return invalid("key-mismatch", masked, id);
    }
    if entry.revoked {
        return invalid("key-revoked", masked, id);
    }
    if entry
        .expires_at
        .is_some_and(|t| t <= portcullis_store::now())
    {
        return invalid("key-expired", masked, id);
    }
    Check::Valid(Identity {
        consumer: entry.consumer.clone(),
        method: AuthMethod::ApiKey,
        scopes: entry.scopes.clone(),
        expires_at: entry.expires_at,
    })
}

/// Query parameter names that carry API keys by convention.
const KEY_PARAMS: &[&str] = &["api_key", "apikey", "api-key", "x-api-key"];

/// Whether the query string carries an API key: a parameter named like
/// one, or any value shaped like one of this gateway's keys.
pub fn key_in_query(query: Option<&str>, prefix: &str) -> bool {
    let Some(q) = query else { return false };
    q.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        KEY_PARAMS.iter().any(|k| name.eq_ignore_ascii_case(k))
            || apikey::parse_id(value, prefix).is_some()
    })
}

/// Maps a client certificate the listener verified to a consumer: the
/// first subject alternative name, then the common name, that names a
/// consumer in the store.
pub fn client_certificate(
    cert: Option<&portcullis_core::ClientCertificate>,
    snapshot: Option<&Snapshot>,
) -> Check {
    let Some(cert) = cert else {
        return Check::Absent;
    };
    let masked = format!(
        "certificate serial {} cn {}",
        cert.serial,
        cert.common_name.as_deref().unwrap_or("-")
    );
    let consumer = snapshot.and_then(|s| {
        cert.names
            .iter()
            .chain(cert.common_name.iter())
            .find_map(|n| s.consumer(n))
    });
    match consumer {
        Some(c) => Check::Valid(Identity {
            consumer: c.clone(),
            method: AuthMethod::Mtls,
            scopes: Vec::new(),
            expires_at: None,
        }),
        None => invalid("unknown-certificate", masked, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_the_query_are_spotted_by_name_or_shape() {
        let k = apikey::generate("pcl").unwrap();
        assert!(key_in_query(Some("a=1&api_key=x"), "pcl"));
        assert!(key_in_query(Some("APIKEY=x"), "pcl"));
        assert!(key_in_query(Some(&format!("q=1&k={}", k.text)), "pcl"));
        assert!(!key_in_query(Some("key=sort&page=2"), "pcl"));
        assert!(!key_in_query(None, "pcl"));
    }

    #[test]
    fn the_authorization_scheme_is_matched_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "apiKEY abc".parse().unwrap());
        assert!(authorization_scheme(&h, "apikey"));
        assert!(!authorization_scheme(&h, "bearer"));
    }
}
