//! The embedded store: one SQLite file, created and migrated on open.
//!
//! The schema is versioned in the `meta` table; migrations run in order in
//! one transaction each, and a file written by a newer build is refused
//! rather than misread. Every write also moves `meta.data_version`, which
//! gateways poll to notice changes made by another process (the CLI).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::{ApiKeyRecord, BasicCredential, Consumer, Dataset, Store, StoreError, now};

/// Migrations, in order; entry `i` takes the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE consumers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    groups      TEXT NOT NULL DEFAULT '[]',
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    consumer_id TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    label       TEXT,
    hash        BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_consumer ON api_keys(consumer_id);
CREATE TABLE basic_credentials (
    username      TEXT PRIMARY KEY,
    consumer_id   TEXT NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
"#,
    // 2: scopes an API key grants (a JSON list), checked by routes that
    // require scopes.
    "ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';",
];

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema
    /// up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(backend)?;
        Self::init(conn)
    }

    /// A store in memory (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        // WAL lets the gateway read while the CLI writes; a busy timeout
        // rides out the other's short transactions.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .map_err(backend)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(backend)?;
        let current: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?
            .unwrap_or(0);
        let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if current > supported {
            return Err(StoreError::NewerSchema {
                found: current,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(current).unwrap_or(0))
        {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute_batch(sql).map_err(backend)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![i64::try_from(i + 1).unwrap_or(i64::MAX)],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }

    /// Runs `f` in a transaction that also moves the data version.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(backend)?;
            let out = f(&tx)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('data_version', 1)
                 ON CONFLICT(key) DO UPDATE SET value = value + 1",
                [],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
    }
}

fn consumer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Consumer> {
    let groups: String = r.get(2)?;
    let metadata: String = r.get(3)?;
    Ok(Consumer {
        id: r.get(0)?,
        name: r.get(1)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        metadata: serde_json::from_str(&metadata).unwrap_or_default(),
        created_at: r.get(4)?,
    })
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let hash: Vec<u8> = r.get(3)?;
    let scopes: String = r.get(7)?;
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        consumer_id: r.get(1)?,
        label: r.get(2)?,
        hash: <[u8; 32]>::try_from(hash.as_slice()).unwrap_or([0; 32]),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
    })
}

const CONSUMER_COLUMNS: &str = "id, name, groups, metadata, created_at";
const KEY_COLUMNS: &str =
    "id, consumer_id, label, hash, created_at, expires_at, revoked_at, scopes";

fn find_consumer(conn: &Connection, id_or_name: &str) -> Result<Consumer, StoreError> {
    conn.query_row(
        &format!("SELECT {CONSUMER_COLUMNS} FROM consumers WHERE id = ?1 OR name = ?1"),
        params![id_or_name],
        consumer_row,
    )
    .optional()
    .map_err(backend)?
    .ok_or_else(|| StoreError::NoSuchConsumer(id_or_name.to_owned()))
}

/// A fresh random id: `prefix` and 16 hex digits.
fn new_id(prefix: &str) -> Result<String, StoreError> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    for b in raw {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Dataset, StoreError> {
        self.with(|conn| {
            // One read transaction: a consistent view of all three tables.
            let tx = conn.transaction().map_err(backend)?;
            let mut consumers = Vec::new();
            {
                let mut st = tx
                    .prepare(&format!("SELECT {CONSUMER_COLUMNS} FROM consumers"))
                    .map_err(backend)?;
                for c in st.query_map([], consumer_row).map_err(backend)? {
                    consumers.push(c.map_err(backend)?);
                }
            }
            let mut api_keys = Vec::new();
            {
                let mut st = tx
                    .prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys"))
                    .map_err(backend)?;
                for k in st.query_map([], key_row).map_err(backend)? {
                    api_keys.push(k.map_err(backend)?);
                }
            }
            let mut basic = Vec::new();
            {
                let mut st = tx
                    .prepare(
                        "SELECT username, consumer_id, password_hash, created_at FROM basic_credentials",
                    )
                    .map_err(backend)?;
                let rows = st
                    .query_map([], |r| {
                        Ok(BasicCredential {
                            username: r.get(0)?,
                            consumer_id: r.get(1)?,
                            password_hash: r.get(2)?,
                            created_at: r.get(3)?,
                        })
                    })
                    .map_err(backend)?;
                for b in rows {
                    basic.push(b.map_err(backend)?);
                }
            }
            let version = data_version(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(Dataset {
                consumers,
                api_keys,
                basic,
                version,
            })
        })
    }

    fn version(&self) -> Result<i64, StoreError> {
        self.with(|conn| data_version(conn))
    }

    fn create_consumer(
        &self,
        name: &str,
        groups: &[String],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Consumer, StoreError> {
        let consumer = Consumer {
            id: new_id("c_")?,
            name: name.to_owned(),
            groups: groups.to_vec(),
            metadata: metadata.clone(),
            created_at: now(),
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO consumers (id, name, groups, metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    consumer.id,
                    consumer.name,
                    serde_json::to_string(&consumer.groups).unwrap_or_default(),
                    serde_json::to_string(&consumer.metadata).unwrap_or_default(),
                    consumer.created_at
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::DuplicateConsumer(name.to_owned())
                } else {
                    backend(e)
                }
            })?;
            Ok(())
        })?;
        Ok(consumer)
    }

    fn consumer(&self, id_or_name: &str) -> Result<Consumer, StoreError> {
        self.with(|conn| find_consumer(conn, id_or_name))
    }

    fn consumers(&self) -> Result<Vec<Consumer>, StoreError> {
        self.with(|conn| {
            let mut st = conn
                .prepare(&format!(
                    "SELECT {CONSUMER_COLUMNS} FROM consumers ORDER BY name"
                ))
                .map_err(backend)?;
            let rows = st.query_map([], consumer_row).map_err(backend)?;
            rows.map(|r| r.map_err(backend)).collect()
        })
    }

    fn delete_consumer(&self, id_or_name: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let c = find_consumer(tx, id_or_name)?;
            tx.execute("DELETE FROM consumers WHERE id = ?1", params![c.id])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            find_consumer(tx, &key.consumer_id)?;
            tx.execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    key.id,
                    key.consumer_id,
                    key.label,
                    key.hash.as_slice(),
                    key.created_at,
                    key.expires_at,
                    key.revoked_at,
                    serde_json::to_string(&key.scopes).unwrap_or_default()
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn keys(&self, consumer_id: Option<&str>) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.with(|conn| {
            let mut st = conn
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE ?1 IS NULL OR consumer_id = ?1 ORDER BY created_at, id"
                ))
                .map_err(backend)?;
            let rows = st.query_map(params![consumer_id], key_row).map_err(backend)?;
            rows.map(|r| r.map_err(backend)).collect()
        })
    }

    fn key(&self, id: &str) -> Result<ApiKeyRecord, StoreError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                params![id],
                key_row,
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::NoSuchKey(id.to_owned()))
        })
    }

    fn expire_key(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            // Never extends a key: only an earlier expiry is applied.
            let n = tx
                .execute(
                    "UPDATE api_keys SET expires_at = CASE
                        WHEN expires_at IS NULL OR expires_at > ?2 THEN ?2 ELSE expires_at END
                     WHERE id = ?1",
                    params![id, at],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NoSuchKey(id.to_owned()));
            }
            Ok(())
        })
    }

    fn revoke_key(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                    params![id, at],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NoSuchKey(id.to_owned()));
            }
            Ok(())
        })
    }

    fn set_basic(&self, cred: &BasicCredential) -> Result<(), StoreError> {
        self.write(|tx| {
            find_consumer(tx, &cred.consumer_id)?;
            let taken: Option<String> = tx
                .query_row(
                    "SELECT consumer_id FROM basic_credentials WHERE username = ?1",
                    params![cred.username],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if taken.is_some_and(|c| c != cred.consumer_id) {
                return Err(StoreError::DuplicateUsername(cred.username.clone()));
            }
            tx.execute(
                "INSERT INTO basic_credentials (username, consumer_id, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash,
                                                     created_at = excluded.created_at",
                params![
                    cred.username,
                    cred.consumer_id,
                    cred.password_hash,
                    cred.created_at
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn delete_basic(&self, username: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM basic_credentials WHERE username = ?1",
                params![username],
            )
            .map_err(backend)?;
            Ok(())
        })
    }
}

fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'data_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, consumer: &str, fill: u8) -> ApiKeyRecord {
        ApiKeyRecord {
            id: id.into(),
            consumer_id: consumer.into(),
            label: None,
            hash: [fill; 32],
            created_at: 1,
            expires_at: None,
            revoked_at: None,
            scopes: vec!["orders:read".into()],
        }
    }

    #[test]
    fn consumers_keys_and_versions() {
        let s = SqliteStore::in_memory().unwrap();
        let v0 = s.version().unwrap();
        let c = s
            .create_consumer("billing", &["ops".into()], &BTreeMap::new())
            .unwrap();
        assert!(c.id.starts_with("c_") && c.id.len() == 18);
        assert!(s.version().unwrap() > v0);
        assert!(matches!(
            s.create_consumer("billing", &[], &BTreeMap::new()),
            Err(StoreError::DuplicateConsumer(_))
        ));
        assert_eq!(s.consumer("billing").unwrap(), c);
        assert_eq!(s.consumer(&c.id).unwrap().groups, ["ops"]);

        s.insert_key(&key("k1", &c.id, 1)).unwrap();
        assert!(s.insert_key(&key("k2", "c_missing", 2)).is_err());
        s.expire_key("k1", 100).unwrap();
        // An expiry is only ever brought forward.
        s.expire_key("k1", 500).unwrap();
        assert_eq!(s.key("k1").unwrap().expires_at, Some(100));
        s.revoke_key("k1", 50).unwrap();
        s.revoke_key("k1", 60).unwrap();
        assert_eq!(s.key("k1").unwrap().revoked_at, Some(50));
        assert!(matches!(
            s.revoke_key("nope", 1),
            Err(StoreError::NoSuchKey(_))
        ));

        let d = s.load().unwrap();
        assert_eq!((d.consumers.len(), d.api_keys.len()), (1, 1));
        assert_eq!(d.api_keys[0].hash, [1; 32]);

        // Deleting a consumer takes its credentials with it.
        s.delete_consumer("billing").unwrap();
        assert!(s.keys(None).unwrap().is_empty());
    }

    #[test]
    fn basic_usernames_are_unique_across_consumers() {
        let s = SqliteStore::in_memory().unwrap();
        let a = s.create_consumer("a", &[], &BTreeMap::new()).unwrap();
        let b = s.create_consumer("b", &[], &BTreeMap::new()).unwrap();
        let cred = |c: &Consumer| BasicCredential {
            username: "legacy".into(),
            consumer_id: c.id.clone(),
            password_hash: "$argon2id$x".into(),
            created_at: 1,
        };
        s.set_basic(&cred(&a)).unwrap();
        s.set_basic(&cred(&a)).unwrap();
        assert!(matches!(
            s.set_basic(&cred(&b)),
            Err(StoreError::DuplicateUsername(_))
        ));
    }

    #[test]
    fn a_version_1_file_is_migrated_with_its_keys_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', 1);
                 INSERT INTO consumers (id, name, created_at) VALUES ('c_1', 'old', 0);
                 INSERT INTO api_keys (id, consumer_id, hash, created_at)
                     VALUES ('k1', 'c_1', x'00', 0);",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let k = s.key("k1").unwrap();
        assert_eq!((k.consumer_id.as_str(), k.scopes.len()), ("c_1", 0));
        s.insert_key(&key("k2", "c_1", 2)).unwrap();
        assert_eq!(s.key("k2").unwrap().scopes, ["orders:read"]);
    }

    #[test]
    fn files_are_migrated_once_and_newer_schemas_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/portcullis.db");
        let s = SqliteStore::open(&path).unwrap();
        s.create_consumer("kept", &[], &BTreeMap::new()).unwrap();
        drop(s);
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.consumers().unwrap().len(), 1);
        s.with(|c| {
            c.execute(
                "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
                [],
            )
            .map_err(backend)
        })
        .unwrap();
        drop(s);
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }
}
