//! File fingerprints for change detection: modification time, size and
//! inode, read through symlinks. Always taken *before* a file is read, so a
//! change that races with the read is seen on the next look.

use std::path::Path;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint(Option<(SystemTime, u64, u64)>);

impl Fingerprint {
    pub fn of(path: &Path) -> Fingerprint {
        use std::os::unix::fs::MetadataExt;
        Fingerprint(std::fs::metadata(path).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        }))
    }
}
