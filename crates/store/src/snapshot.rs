//! The in-memory view the request path reads: consumers, keys and Basic
//! credentials by their lookup keys, swapped whole when the store changes.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::{Consumer, Dataset, Store, StoreError};

/// An API key as the request path sees it.
#[derive(Debug)]
pub struct KeyEntry {
    pub hash: [u8; 32],
    pub consumer: Arc<Consumer>,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    pub scopes: Vec<String>,
}

/// A Basic credential as the request path sees it.
#[derive(Debug)]
pub struct BasicEntry {
    /// argon2id, PHC string form.
    pub password_hash: String,
    pub consumer: Arc<Consumer>,
}

/// One consistent view of the store.
#[derive(Debug, Default)]
pub struct Snapshot {
    consumers: HashMap<String, Arc<Consumer>>,
    keys: HashMap<String, KeyEntry>,
    basic: HashMap<String, BasicEntry>,
    pub version: i64,
}

impl Snapshot {
    pub fn build(data: Dataset) -> Snapshot {
        let consumers: HashMap<String, Arc<Consumer>> = data
            .consumers
            .into_iter()
            .map(|c| (c.id.clone(), Arc::new(c)))
            .collect();
        let keys = data
            .api_keys
            .into_iter()
            .filter_map(|k| {
                let consumer = consumers.get(&k.consumer_id)?.clone();
                Some((
                    k.id,
                    KeyEntry {
                        hash: k.hash,
                        consumer,
                        expires_at: k.expires_at,
                        revoked: k.revoked_at.is_some(),
                        scopes: k.scopes,
                    },
                ))
            })
            .collect();
        let basic = data
            .basic
            .into_iter()
            .filter_map(|b| {
                let consumer = consumers.get(&b.consumer_id)?.clone();
                Some((
                    b.username,
                    BasicEntry {
                        password_hash: b.password_hash,
                        consumer,
                    },
                ))
            })
            .collect();
        Snapshot {
            consumers,
            keys,
            basic,
            version: data.version,
        }
    }

    pub fn key(&self, id: &str) -> Option<&KeyEntry> {
        self.keys.get(id)
    }

    pub fn basic(&self, username: &str) -> Option<&BasicEntry> {
        self.basic.get(username)
    }

    /// By id or by name (names are looked up by a scan: only for mapping
    /// certificates and tokens to consumers, where the map is small or the
    /// result cached).
    pub fn consumer(&self, id_or_name: &str) -> Option<&Arc<Consumer>> {
        self.consumers
            .get(id_or_name)
            .or_else(|| self.consumers.values().find(|c| c.name == id_or_name))
    }
}

/// The current snapshot and the store behind it.
pub struct SnapshotHandle {
    store: Arc<dyn Store>,
    current: ArcSwap<Snapshot>,
}

impl SnapshotHandle {
    pub fn new(store: Arc<dyn Store>) -> Result<SnapshotHandle, StoreError> {
        let first = Snapshot::build(store.load()?);
        Ok(SnapshotHandle {
            store,
            current: ArcSwap::from_pointee(first),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current view (cheap; safe to hold for a request).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Rebuilds the view now (after a change made through this process).
    pub fn reload(&self) -> Result<(), StoreError> {
        self.current
            .store(Arc::new(Snapshot::build(self.store.load()?)));
        Ok(())
    }

    /// Rebuilds the view if the store changed since; returns whether it did.
    pub fn refresh(&self) -> Result<bool, StoreError> {
        if self.store.version()? == self.current.load().version {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApiKeyRecord, SqliteStore};
    use std::collections::BTreeMap;

    #[test]
    fn changes_reach_the_view_on_reload_or_refresh() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let handle = SnapshotHandle::new(store.clone()).unwrap();
        assert!(handle.load().key("k1").is_none());
        let c = store.create_consumer("app", &[], &BTreeMap::new()).unwrap();
        store
            .insert_key(&ApiKeyRecord {
                id: "k1".into(),
                consumer_id: c.id.clone(),
                label: None,
                hash: [7; 32],
                created_at: 0,
                expires_at: None,
                revoked_at: None,
                scopes: vec![],
            })
            .unwrap();
        assert!(handle.refresh().unwrap());
        assert!(!handle.refresh().unwrap(), "unchanged store: no rebuild");
        let snap = handle.load();
        let k = snap.key("k1").unwrap();
        assert_eq!((k.consumer.name.as_str(), k.revoked), ("app", false));
        assert_eq!(snap.consumer("app").unwrap().id, c.id);
        store.revoke_key("k1", 5).unwrap();
        handle.reload().unwrap();
        assert!(handle.load().key("k1").unwrap().revoked);
        // The old view is unchanged for whoever still holds it.
        assert!(!snap.key("k1").unwrap().revoked);
    }
}
