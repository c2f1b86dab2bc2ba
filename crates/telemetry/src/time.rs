//! RFC 3339 timestamps without a calendar dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats a time as `2026-11-22T10:00:00.123Z` (UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the RFC 3339 form of `t` to `out`.
pub(crate) fn write_rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    // Log lines come many to a second: format the date and time once per
    // second per thread.
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_empty() {
            *c = (secs, seconds_prefix(secs));
        }
        out.extend_from_slice(c.1.as_bytes());
    });
    out.push(b'.');
    out.push(b'0' + (millis / 100) as u8);
    out.push(b'0' + ((millis / 10) % 10) as u8);
    out.push(b'0' + (millis % 10) as u8);
    out.push(b'Z');
}

thread_local! {
    static CACHE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

fn seconds_prefix(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_348_800_123);
        assert_eq!(rfc3339(t), "2026-11-22T12:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
