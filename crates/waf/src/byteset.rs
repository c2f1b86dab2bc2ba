//! Sets of bytes as 256-entry tables, built at compile time: scanning
//! loops look a byte up instead of comparing it with every member.

/// The table of `bytes`.
#[allow(clippy::indexing_slicing)] // indexes are bytes, the table has 256 entries
pub const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

/// Whether `b` is in `set`.
pub fn has(set: &[bool; 256], b: u8) -> bool {
    set.get(usize::from(b)).copied().unwrap_or(false)
}
