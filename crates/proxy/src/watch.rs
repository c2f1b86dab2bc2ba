//! Watching files: the configuration file (reload on change) and the
//! certificate and key files of each TLS listener and of the admin
//! listener (swap certificates on change).
//!
//! Files are polled once a second by metadata (see [`Fingerprint`]) rather
//! than through inotify: polling also sees a Kubernetes ConfigMap's symlink
//! swap, an editor's rename-over-write, and files on network filesystems,
//! at the cost of a few `stat` calls a second.

use std::sync::Arc;
use std::time::Duration;

use crate::Gateway;
pub use crate::files::Fingerprint;

/// Starts the watcher; it stops when the gateway is dropped. `config_read_as`
/// is the configuration file's fingerprint taken before it was loaded.
pub fn spawn(gateway: &Arc<Gateway>, interval: Duration, config_read_as: Option<Fingerprint>) {
    let weak = Arc::downgrade(gateway);
    let mut config_fp = config_read_as;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(gw) = weak.upgrade() else { return };
            if let (Some(path), Some(last)) = (gw.source.as_deref(), config_fp.as_mut()) {
                let now = Fingerprint::of(path);
                if now != *last {
                    *last = now;
                    tracing::info!(file = %path.display(), "configuration file changed; reloading");
                    let _ = gw.reload().await;
                }
            }
            let generation = gw.shared.current.load_full();
            let listeners = generation
                .listeners
                .iter()
                .filter_map(|(name, l)| Some((&**name, l.tls.as_deref()?)));
            for (name, tls) in listeners.chain(gw.admin_tls.as_deref().map(|t| ("admin", t))) {
                if tls.changed_on_disk() {
                    match tls.reload() {
                        Ok(()) => tracing::info!(listener = %name, "certificates reloaded"),
                        Err(e) => tracing::error!(
                            listener = %name,
                            error = %e,
                            "certificate reload failed; the previous certificates stay"
                        ),
                    }
                }
            }
        }
    });
}
