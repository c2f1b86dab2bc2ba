//! Credential management: the operations behind `portcullis keys`,
//! `portcullis consumers` and the admin API, written once.
//!
//! Keys are generated here and their text returned exactly once; the store
//! only ever sees the keyed hash.

use std::collections::BTreeMap;

use portcullis_store::{ApiKeyRecord, Consumer, Store, StoreError, now};
use serde::Serialize;

use crate::apikey::{self, KeySecret};

/// Why a management operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// A key just created: `key` is shown once and never stored.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub record: KeyView,
}

/// A key as listings show it: never the secret or its hash.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub consumer_id: String,
    pub label: Option<String>,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// active, expired or revoked.
    pub status: &'static str,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(k: &ApiKeyRecord) -> Self {
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.expires_at.is_some_and(|t| t <= now()) {
            "expired"
        } else {
            "active"
        };
        KeyView {
            id: k.id.clone(),
            consumer_id: k.consumer_id.clone(),
            label: k.label.clone(),
            scopes: k.scopes.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            status,
        }
    }
}

/// Names of consumers and groups, and scopes: printable, safe in headers
/// and logs.
fn check_word(what: &str, s: &str, extra: &[u8]) -> Result<(), ManageError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b) || extra.contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ManageError::Invalid(format!(
            "\"{s}\" is not a valid {what}: use 1 to 128 letters, digits, '-', '_', '.', '@'{}",
            if extra.is_empty() { "" } else { " or ':'/'/'" }
        )))
    }
}

pub fn create_consumer(
    store: &dyn Store,
    name: &str,
    groups: &[String],
    metadata: &BTreeMap<String, String>,
) -> Result<Consumer, ManageError> {
    check_word("consumer name", name, &[])?;
    for g in groups {
        check_word("group", g, b":/")?;
    }
    Ok(store.create_consumer(name, groups, metadata)?)
}

/// What a new key should be.
#[derive(Debug, Default)]
pub struct KeyRequest {
    pub label: Option<String>,
    pub scopes: Vec<String>,
    /// Seconds from now until the key stops working.
    pub expires_in: Option<i64>,
}

pub fn create_key(
    store: &dyn Store,
    secret: &KeySecret,
    prefix: &str,
    consumer: &str,
    req: &KeyRequest,
) -> Result<CreatedKey, ManageError> {
    for s in &req.scopes {
        check_word("scope", s, b":/")?;
    }
    if req.expires_in.is_some_and(|s| s <= 0) {
        return Err(ManageError::Invalid(
            "the expiry must be in the future".into(),
        ));
    }
    if let Some(l) = &req.label
        && (l.len() > 200 || l.chars().any(char::is_control))
    {
        return Err(ManageError::Invalid(
            "a label is at most 200 printable characters".into(),
        ));
    }
    let consumer = store.consumer(consumer)?;
    let key = apikey::generate(prefix).map_err(|e| ManageError::Random(e.to_string()))?;
    let created_at = now();
    let record = ApiKeyRecord {
        id: key.id,
        consumer_id: consumer.id,
        label: req.label.clone(),
        hash: secret.hash(&key.text),
        created_at,
        expires_at: req.expires_in.map(|s| created_at.saturating_add(s)),
        revoked_at: None,
        scopes: req.scopes.clone(),
    };
    store.insert_key(&record)?;
    Ok(CreatedKey {
        key: key.text,
        record: KeyView::from(&record),
    })
}

/// Replaces a key: a new key for the same consumer with the same label and
/// scopes, while the old one keeps working for `overlap` seconds (0: it
/// stops now) so clients can switch without failed requests.
pub fn rotate_key(
    store: &dyn Store,
    secret: &KeySecret,
    prefix: &str,
    key_id: &str,
    overlap: i64,
) -> Result<CreatedKey, ManageError> {
    if overlap < 0 {
        return Err(ManageError::Invalid(
            "the overlap cannot be negative".into(),
        ));
    }
    let old = store.key(key_id)?;
    if old.revoked_at.is_some() {
        return Err(ManageError::Invalid(format!(
            "the key \"{key_id}\" is revoked; create a new one instead"
        )));
    }
    let created = create_key(
        store,
        secret,
        prefix,
        &old.consumer_id,
        &KeyRequest {
            label: old.label.clone(),
            scopes: old.scopes.clone(),
            expires_in: old.expires_at.map(|t| (t - old.created_at).max(1)),
        },
    )?;
    store.expire_key(key_id, now().saturating_add(overlap))?;
    Ok(created)
}

/// Sets (or replaces) a consumer's Basic username and password. The
/// password is stored only as an argon2id hash.
pub fn set_password(
    store: &dyn Store,
    consumer: &str,
    username: &str,
    password: &str,
) -> Result<(), ManageError> {
    check_word("username", username, &[])?;
    if password.chars().count() < 12 {
        return Err(ManageError::Invalid(
            "a password has at least 12 characters".into(),
        ));
    }
    let consumer = store.consumer(consumer)?;
    let password_hash = crate::basic::hash_password(password).map_err(ManageError::Invalid)?;
    store.set_basic(&portcullis_store::BasicCredential {
        username: username.to_owned(),
        consumer_id: consumer.id,
        password_hash,
        created_at: now(),
    })?;
    Ok(())
}

pub fn revoke_key(store: &dyn Store, key_id: &str) -> Result<KeyView, ManageError> {
    store.revoke_key(key_id, now())?;
    Ok(KeyView::from(&store.key(key_id)?))
}

pub fn list_keys(store: &dyn Store, consumer: Option<&str>) -> Result<Vec<KeyView>, ManageError> {
    let consumer_id = match consumer {
        Some(c) => Some(store.consumer(c)?.id),
        None => None,
    };
    Ok(store
        .keys(consumer_id.as_deref())?
        .iter()
        .map(KeyView::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{self, Check};
    use portcullis_store::{Snapshot, SqliteStore};

    fn settings() -> portcullis_config::runtime::Authentication {
        let c = portcullis_config::load_str(
            "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\nauthentication: {store: {sqlite: \":memory:\"}}\n",
            "t".into(),
            std::path::Path::new("."),
        )
        .unwrap();
        c.authentication
    }

    fn check(store: &SqliteStore, secret: &KeySecret, key: &str) -> &'static str {
        let settings = settings();
        let mut h = http::HeaderMap::new();
        h.insert("x-api-key", key.parse().unwrap());
        let snap = Snapshot::build(store.load().unwrap());
        match verify::api_key(&h, &settings, Some(&snap), secret) {
            Check::Valid(_) => "valid",
            Check::Invalid { reason, .. } | Check::Unavailable { reason } => reason,
            Check::Absent => "absent",
        }
    }

    #[test]
    fn create_rotate_revoke() {
        let store = SqliteStore::in_memory().unwrap();
        let secret = KeySecret::generate().unwrap();
        create_consumer(&store, "app", &["ops".into()], &BTreeMap::new()).unwrap();
        let k = create_key(
            &store,
            &secret,
            "pcl",
            "app",
            &KeyRequest {
                scopes: vec!["orders:read".into()],
                ..KeyRequest::default()
            },
        )
        .unwrap();
        assert_eq!(check(&store, &secret, &k.key), "valid");
        // The store never holds the key's text.
        let listed = serde_json::to_string(&list_keys(&store, Some("app")).unwrap()).unwrap();
        assert!(!listed.contains(&k.key[4 + 11..]), "{listed}");
        assert!(listed.contains(&k.record.id));

        // Rotation with an overlap: both work; without one the old stops.
        let k2 = rotate_key(&store, &secret, "pcl", &k.record.id, 3600).unwrap();
        assert_eq!(check(&store, &secret, &k.key), "valid");
        assert_eq!(check(&store, &secret, &k2.key), "valid");
        assert_eq!(k2.record.scopes, ["orders:read"]);
        let k3 = rotate_key(&store, &secret, "pcl", &k2.record.id, 0).unwrap();
        assert_eq!(check(&store, &secret, &k2.key), "key-expired");
        assert_eq!(check(&store, &secret, &k3.key), "valid");

        let v = revoke_key(&store, &k3.record.id).unwrap();
        assert_eq!(v.status, "revoked");
        assert_eq!(check(&store, &secret, &k3.key), "key-revoked");
        assert!(rotate_key(&store, &secret, "pcl", &k3.record.id, 0).is_err());

        // A key hashed under another secret does not verify.
        let other = KeySecret::generate().unwrap();
        assert_eq!(check(&store, &other, &k.key), "key-mismatch");
    }

    #[test]
    fn names_and_scopes_are_checked() {
        let store = SqliteStore::in_memory().unwrap();
        let secret = KeySecret::generate().unwrap();
        assert!(create_consumer(&store, "bad name", &[], &BTreeMap::new()).is_err());
        assert!(create_consumer(&store, "ok", &["a\r\nb".into()], &BTreeMap::new()).is_err());
        create_consumer(&store, "ok", &[], &BTreeMap::new()).unwrap();
        let req = KeyRequest {
            scopes: vec!["two words".into()],
            ..KeyRequest::default()
        };
        assert!(create_key(&store, &secret, "pcl", "ok", &req).is_err());
        let req = KeyRequest {
            expires_in: Some(0),
            ..KeyRequest::default()
        };
        assert!(create_key(&store, &secret, "pcl", "ok", &req).is_err());
        assert!(matches!(
            create_key(&store, &secret, "pcl", "nobody", &KeyRequest::default()),
            Err(ManageError::Store(StoreError::NoSuchConsumer(_)))
        ));
    }
}
