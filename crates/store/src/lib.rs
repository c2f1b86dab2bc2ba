//! Consumers and their credentials: who may call, and how they prove it.
//!
//! The [`Store`] trait is the boundary: the embedded SQLite store
//! ([`SqliteStore`]) is the default, and a shared store for many gateway
//! instances can implement the same trait. The request path never queries
//! a store: it reads a [`Snapshot`], an in-memory view rebuilt whenever the
//! data changes (at once for changes made through this process, within a
//! poll interval for changes made by another process such as the CLI).

mod snapshot;
mod sqlite;

use std::collections::BTreeMap;

pub use snapshot::{KeyEntry, Snapshot, SnapshotHandle};
pub use sqlite::SqliteStore;

/// A calling application or user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Consumer {
    /// Stable, generated id (`c_...`); what logs and upstreams see.
    pub id: String,
    /// Unique human name, e.g. `billing-service`.
    pub name: String,
    /// Groups or roles, for authorization.
    pub groups: Vec<String>,
    /// Free-form attributes.
    pub metadata: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// An API key as stored: never the key itself, only its keyed hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyRecord {
    /// The public id embedded in the key (safe to log and show).
    pub id: String,
    pub consumer_id: String,
    pub label: Option<String>,
    /// HMAC-SHA256 of the whole key under the server secret.
    #[serde(skip)]
    pub hash: [u8; 32],
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Scopes the key grants.
    pub scopes: Vec<String>,
}

/// A username and password for HTTP Basic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicCredential {
    pub username: String,
    pub consumer_id: String,
    /// An argon2id hash in PHC string form.
    pub password_hash: String,
    pub created_at: i64,
}

/// Everything the request path needs, read in one go.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub consumers: Vec<Consumer>,
    pub api_keys: Vec<ApiKeyRecord>,
    pub basic: Vec<BasicCredential>,
    /// Changes with every write; lets readers skip an unchanged store.
    pub version: i64,
}

/// Why a store operation failed. Messages name the thing, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no consumer \"{0}\"")]
    NoSuchConsumer(String),
    #[error("no API key \"{0}\"")]
    NoSuchKey(String),
    #[error("a consumer named \"{0}\" already exists")]
    DuplicateConsumer(String),
    #[error("the username \"{0}\" is taken")]
    DuplicateUsername(String),
    #[error("the store's schema is version {found}, newer than this build reads ({supported})")]
    NewerSchema { found: i64, supported: i64 },
    #[error("store error: {0}")]
    Backend(String),
}

/// Reads and writes consumers and credentials. Every write is atomic and
/// moves the dataset's version.
pub trait Store: Send + Sync {
    fn load(&self) -> Result<Dataset, StoreError>;
    /// The current version, cheaply (polled to notice outside changes).
    fn version(&self) -> Result<i64, StoreError>;

    fn create_consumer(
        &self,
        name: &str,
        groups: &[String],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Consumer, StoreError>;
    /// By id or by name.
    fn consumer(&self, id_or_name: &str) -> Result<Consumer, StoreError>;
    fn consumers(&self) -> Result<Vec<Consumer>, StoreError>;
    /// Deletes the consumer with every credential it has.
    fn delete_consumer(&self, id_or_name: &str) -> Result<(), StoreError>;

    fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    fn keys(&self, consumer_id: Option<&str>) -> Result<Vec<ApiKeyRecord>, StoreError>;
    fn key(&self, id: &str) -> Result<ApiKeyRecord, StoreError>;
    /// Sets when a key stops working (rotation's overlap window).
    fn expire_key(&self, id: &str, at: i64) -> Result<(), StoreError>;
    fn revoke_key(&self, id: &str, at: i64) -> Result<(), StoreError>;

    fn set_basic(&self, cred: &BasicCredential) -> Result<(), StoreError>;
    fn delete_basic(&self, username: &str) -> Result<(), StoreError>;
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
