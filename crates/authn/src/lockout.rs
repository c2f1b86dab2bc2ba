//! Brute-force protection: failed authentications counted per client
//! address and per credential id; past a threshold within a window the
//! source is locked out for a while.
//!
//! The table is sharded to keep workers off each other's locks and bounded
//! so that a flood of distinct sources cannot grow it without limit: when a
//! shard is full, expired entries go first, and if none has expired the
//! new source is not tracked (its failures still fail; it just cannot be
//! locked out until room frees up).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis_config::runtime::Lockout;

const SHARDS: usize = 16;
/// Entries per shard (so about 131k sources in all).
const SHARD_CAPACITY: usize = 8192;

/// What failures are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A client address; IPv6 addresses count per /64, since one host
    /// usually holds a whole /64.
    Client(IpAddr),
    /// A credential's public id (an API key id, a username).
    Credential(String),
}

impl Source {
    pub fn client(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::Client(IpAddr::V4(v4)),
                None => {
                    let masked = u128::from(v6) & !((1u128 << 64) - 1);
                    Source::Client(IpAddr::V6(masked.into()))
                }
            },
            v4 => Source::Client(v4),
        }
    }
}

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Entry {
    fn expired(&self, now: Instant, policy: &Lockout) -> bool {
        match self.locked_until {
            Some(t) => now >= t,
            None => now.duration_since(self.window_start) >= policy.window,
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Source, Entry>,
    /// A full shard is scanned for expired entries at most once a second,
    /// so a flood of new sources cannot make every failure a full scan.
    next_prune: Option<Instant>,
}

#[derive(Debug)]
pub struct LockoutTable {
    policy: Lockout,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<Shard>>,
    /// When the latest lock-out ends, in milliseconds from `epoch` (rounded
    /// up). Every request asks whether its client is locked out; past this
    /// instant none is, and the answer needs no hashing and no lock.
    locks_end: AtomicU64,
    epoch: Instant,
}

impl LockoutTable {
    pub fn new(policy: Lockout) -> LockoutTable {
        Self::with_capacity(policy, SHARD_CAPACITY)
    }

    fn with_capacity(policy: Lockout, capacity: usize) -> LockoutTable {
        LockoutTable {
            policy,
            capacity,
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            locks_end: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// `t` in milliseconds from the epoch, rounded down or up.
    fn millis(&self, t: Instant, round_up: bool) -> u64 {
        let d = t.saturating_duration_since(self.epoch);
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if round_up && !d.subsec_nanos().is_multiple_of(1_000_000) {
            ms.saturating_add(1)
        } else {
            ms
        }
    }

    pub fn policy(&self) -> &Lockout {
        &self.policy
    }

    /// The shard of `s` (always `Some`: the index is taken modulo the
    /// shard count).
    fn shard(&self, s: &Source) -> Option<&Mutex<Shard>> {
        let h = self.hasher.hash_one(s);
        self.shards
            .get(usize::try_from(h % SHARDS as u64).unwrap_or(0))
    }

    /// Whether any source has ever been locked out: until then every
    /// request skips the check, clock read included.
    pub fn ever_locked(&self) -> bool {
        self.locks_end.load(Ordering::Relaxed) != 0
    }

    /// How much longer `s` is locked out, if it is.
    pub fn locked(&self, s: &Source, now: Instant) -> Option<Duration> {
        if self.millis(now, false) >= self.locks_end.load(Ordering::Relaxed) {
            return None;
        }
        let shard = self.shard(s)?.lock().unwrap_or_else(|e| e.into_inner());
        let until = shard.entries.get(s)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns the lock-out duration when this failure
    /// locks the source out.
    pub fn fail(&self, s: &Source, now: Instant) -> Option<Duration> {
        let mut guard = self.shard(s)?.lock().unwrap_or_else(|e| e.into_inner());
        let shard = &mut *guard;
        if !shard.entries.contains_key(s) && shard.entries.len() >= self.capacity {
            if shard.next_prune.is_some_and(|t| now < t) {
                return None;
            }
            shard.entries.retain(|_, e| !e.expired(now, &self.policy));
            shard.next_prune = Some(now + Duration::from_secs(1));
            if shard.entries.len() >= self.capacity {
                return None;
            }
        }
        let e = shard.entries.entry(s.clone()).or_insert(Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if e.expired(now, &self.policy) {
            *e = Entry {
                window_start: now,
                failures: 0,
                locked_until: None,
            };
        }
        if e.locked_until.is_some() {
            return None;
        }
        e.failures += 1;
        if e.failures >= self.policy.max_failures {
            let until = now + self.policy.duration;
            e.locked_until = Some(until);
            self.locks_end
                .fetch_max(self.millis(until, true).max(1), Ordering::Relaxed);
            return Some(self.policy.duration);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> LockoutTable {
        LockoutTable::new(Lockout {
            max_failures: 3,
            window: Duration::from_secs(10),
            duration: Duration::from_secs(60),
        })
    }

    #[test]
    fn the_threshold_locks_and_the_lock_expires() {
        let t = table();
        let s = Source::client("10.0.0.1".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(t.fail(&s, t0), None);
        assert_eq!(t.fail(&s, t0), None);
        assert_eq!(t.locked(&s, t0), None);
        assert!(!t.ever_locked(), "failures alone lock nobody out");
        assert_eq!(t.fail(&s, t0), Some(Duration::from_secs(60)));
        assert!(t.ever_locked());
        assert_eq!(
            t.locked(&s, t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(59))
        );
        // Other sources are unaffected.
        let other = Source::Credential("abc".into());
        assert_eq!(t.locked(&other, t0), None);
        // After the lock-out the count starts over.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(t.locked(&s, later), None);
        assert_eq!(t.fail(&s, later), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = table();
        let s = Source::Credential("k".into());
        let t0 = Instant::now();
        t.fail(&s, t0);
        t.fail(&s, t0);
        assert_eq!(t.fail(&s, t0 + Duration::from_secs(11)), None);
        assert_eq!(t.locked(&s, t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a = Source::client("2001:db8::1".parse().unwrap());
        let b = Source::client("2001:db8::ffff:2".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, Source::client("2001:db8:0:1::1".parse().unwrap()));
        assert_eq!(
            Source::client("::ffff:10.0.0.1".parse().unwrap()),
            Source::client("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn a_full_table_makes_room_from_expired_entries_only() {
        let t = LockoutTable::with_capacity(
            Lockout {
                max_failures: 1,
                window: Duration::from_secs(10),
                duration: Duration::from_secs(5),
            },
            4,
        );
        let t0 = Instant::now();
        for i in 0..(SHARDS * 4 * 4) {
            t.fail(&Source::Credential(i.to_string()), t0);
        }
        let tracked: usize = t
            .shards
            .iter()
            .map(|s| s.lock().unwrap().entries.len())
            .sum();
        assert_eq!(tracked, SHARDS * 4, "every shard full, none over");
        let fresh = Source::Credential("fresh".into());
        let later = t0 + Duration::from_secs(6);
        assert_eq!(t.fail(&fresh, later), Some(Duration::from_secs(5)));
    }
}
