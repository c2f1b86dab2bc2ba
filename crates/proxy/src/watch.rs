//! Watching files: the configuration file (reload on change) and each TLS
//! listener's certificate and key files (swap certificates on change).
//!
//! Files are polled once a second by metadata (modification time, size,
//! inode) rather than through inotify: polling also sees a Kubernetes
//! ConfigMap's symlink swap, an editor's rename-over-write, and files on
//! network filesystems, at the cost of a few `stat` calls a second.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::Gateway;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint(Option<(SystemTime, u64, u64)>);

fn fingerprint(path: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    Fingerprint(
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino())),
    )
}

/// Starts the watcher; it stops when the gateway is dropped.
pub fn spawn(gateway: &Arc<Gateway>, interval: Duration) {
    let weak = Arc::downgrade(gateway);
    let mut config_fp = gateway.source.as_deref().map(fingerprint);
    tokio::spawn(async move {
        let mut certs: HashMap<usize, Vec<Fingerprint>> = HashMap::new();
        loop {
            tokio::time::sleep(interval).await;
            let Some(gw) = weak.upgrade() else { return };
            if let (Some(path), Some(last)) = (gw.source.as_deref(), config_fp.as_mut()) {
                let now = fingerprint(path);
                if now != *last {
                    *last = now;
                    tracing::info!(file = %path.display(), "configuration file changed; reloading");
                    let _ = gw.reload().await;
                }
            }
            let generation = gw.shared.current.load_full();
            let mut seen = Vec::new();
            for (name, l) in &generation.listeners {
                let Some(tls) = &l.tls else { continue };
                let key = Arc::as_ptr(tls) as usize;
                seen.push(key);
                let now: Vec<Fingerprint> = tls.files().map(fingerprint).collect();
                match certs.get(&key) {
                    None => {
                        certs.insert(key, now);
                    }
                    Some(prev) if *prev != now => {
                        certs.insert(key, now);
                        match tls.reload() {
                            Ok(()) => tracing::info!(listener = %name, "certificates reloaded"),
                            Err(e) => tracing::error!(listener = %name, error = %e, "certificate reload failed; the previous certificates stay"),
                        }
                    }
                    Some(_) => {}
                }
            }
            certs.retain(|k, _| seen.contains(k));
        }
    });
}
