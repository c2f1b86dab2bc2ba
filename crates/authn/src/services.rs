//! What authentication filters share across routes and reloads: the
//! credential store's snapshot, the key-hashing secret and the lock-out
//! table.

use std::sync::{Arc, Weak};
use std::time::Duration;

use portcullis_config::runtime::{Authentication, Lockout, SecretSource, StoreLocation};
use portcullis_store::{SnapshotHandle, SqliteStore, Store};

use crate::apikey::KeySecret;
use crate::basic::BasicAuth;
use crate::introspect::{IntrospectionAuth, Introspector};
use crate::jwt::{IssuerKeys, JwtAuth};
use crate::lockout::LockoutTable;

/// How often the store is polled for changes made by another process
/// (the CLI); one small query. Changes made through this process apply at once.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub struct AuthServices {
    store_location: Option<StoreLocation>,
    secret_source: SecretSource,
    pub snapshot: Option<Arc<SnapshotHandle>>,
    pub secret: KeySecret,
    pub lockout: Option<Arc<LockoutTable>>,
    pub jwt: JwtAuth,
    pub basic: BasicAuth,
    pub introspection: IntrospectionAuth,
}

impl std::fmt::Debug for AuthServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServices")
            .field("store", &self.store_location)
            .finish_non_exhaustive()
    }
}

/// Opens the configured store (creating and migrating it as needed).
pub fn open_store(location: &StoreLocation) -> Result<Arc<dyn Store>, String> {
    let store = match location {
        StoreLocation::Memory => SqliteStore::in_memory(),
        StoreLocation::Sqlite(p) => SqliteStore::open(p),
    };
    let store = store.map_err(|e| match location {
        StoreLocation::Sqlite(p) => format!("credential store {}: {e}", p.display()),
        StoreLocation::Memory => format!("credential store: {e}"),
    })?;
    Ok(Arc::new(store))
}

impl AuthServices {
    /// Opens what `settings` needs. Parts whose settings match `previous`
    /// are shared with it, so a reload keeps lock-outs and fetched keys
    /// and does not reopen the database.
    pub fn open(
        settings: &Authentication,
        previous: Option<&Arc<AuthServices>>,
    ) -> Result<Arc<AuthServices>, String> {
        let location = settings.store_in_use.then(|| settings.store.clone());
        let same_store = previous.filter(|p| p.store_location == location);
        let snapshot = match (&location, same_store) {
            (Some(_), Some(p)) => p.snapshot.clone(),
            (None, _) => None,
            (Some(loc), None) => {
                let handle = SnapshotHandle::new(open_store(loc)?)
                    .map_err(|e| format!("credential store: {e}"))?;
                let handle = Arc::new(handle);
                if matches!(loc, StoreLocation::Sqlite(_)) {
                    spawn_poller(Arc::downgrade(&handle));
                }
                Some(handle)
            }
        };
        // Without a store there are no keys to hash: no secret is read (or
        // created on disk).
        let secret_source = if settings.store_in_use {
            settings.key_secret.clone()
        } else {
            SecretSource::Ephemeral
        };
        let secret = match previous.filter(|p| p.secret_source == secret_source) {
            Some(p) => p.secret.clone(),
            None => {
                crate::secret::load(&secret_source).map_err(|e| format!("API key secret: {e}"))?
            }
        };
        let lockout = match previous.and_then(|p| p.lockout.as_ref()) {
            Some(l) if Some(l.policy()) == settings.lockout.as_ref() => Some(l.clone()),
            _ => settings
                .lockout
                .clone()
                .map(|l| Arc::new(LockoutTable::new(l))),
        };
        let mut issuers = Vec::with_capacity(settings.jwt.len());
        for cfg in &settings.jwt {
            let kept =
                previous.and_then(|p| p.jwt.issuers.iter().find(|k| *k.config == **cfg).cloned());
            issuers.push(match kept {
                Some(k) => k,
                None => IssuerKeys::new(cfg.clone())
                    .map_err(|e| format!("JWT issuer \"{}\": {e}", cfg.name))?,
            });
        }
        Ok(Arc::new(AuthServices {
            store_location: location,
            secret_source,
            snapshot,
            secret,
            lockout,
            jwt: JwtAuth::new(issuers),
            basic: BasicAuth::default(),
            introspection: IntrospectionAuth {
                endpoints: settings
                    .introspection
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        Introspector::new(c.clone(), i)
                            .map(Arc::new)
                            .map_err(|e| format!("introspection \"{}\": {e}", c.name))
                    })
                    .collect::<Result<_, _>>()?,
            },
        }))
    }

    /// Services for tests and benchmarks: the given store and secret.
    pub fn with_store(
        store: Arc<dyn Store>,
        secret: KeySecret,
        lockout: Option<Lockout>,
    ) -> Result<Arc<AuthServices>, String> {
        let handle = SnapshotHandle::new(store).map_err(|e| e.to_string())?;
        Ok(Arc::new(AuthServices {
            store_location: None,
            secret_source: SecretSource::Ephemeral,
            snapshot: Some(Arc::new(handle)),
            secret,
            lockout: lockout.map(|l| Arc::new(LockoutTable::new(l))),
            jwt: JwtAuth::new(Vec::new()),
            basic: BasicAuth::default(),
            introspection: IntrospectionAuth::default(),
        }))
    }
}

/// Polls the store for outside changes until the handle is dropped (the
/// services were replaced by a reload with another store).
fn spawn_poller(handle: Weak<SnapshotHandle>) {
    let spawned = std::thread::Builder::new()
        .name("portcullis-store-poll".into())
        .spawn(move || {
            let mut failing = false;
            loop {
                std::thread::sleep(POLL_INTERVAL);
                let Some(h) = handle.upgrade() else { return };
                match h.refresh() {
                    Ok(changed) => {
                        if failing {
                            tracing::info!("the credential store is readable again");
                            failing = false;
                        }
                        if changed {
                            tracing::info!(
                                version = h.load().version,
                                "credential store changed; snapshot rebuilt"
                            );
                        }
                    }
                    // The last good snapshot keeps serving.
                    Err(e) if !failing => {
                        tracing::error!(error = %e, "cannot read the credential store; serving the last snapshot");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the credential store poller");
    }
}
