//! What a phase learns about its values once and reuses for every rule:
//! each value transformed by each chain, and which rules' literals occur
//! in it (see `prefilter`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::prefilter::{self, Prefilter};
use crate::transforms::{Scratch, Transform, apply_all};
use crate::variables::Var;

/// Transformed values of one phase, by (value address, length, chain id):
/// rules sharing a chain transform each value once, and the chain's
/// literal prefilter scans it once. Only values that stay in place for the
/// whole phase (request data) are kept here, and the cache is emptied when
/// a phase starts.
#[derive(Debug, Default)]
pub struct Cache {
    index: HashMap<(usize, usize, u32), usize, BuildHasherDefault<AddrHasher>>,
    entries: Vec<CacheEntry>,
    arena: Vec<u8>,
    bits: Vec<u64>,
    /// Per (variable, XML attributes or not, chain id): where the union of
    /// the bits of all its values starts.
    var_bits: HashMap<(Var, bool, u32), usize, BuildHasherDefault<AddrHasher>>,
}

#[derive(Debug)]
struct CacheEntry {
    /// Where the transformed value is in the arena; `None`: the chain
    /// leaves the value as it is.
    value: Option<(usize, usize)>,
    /// Whether the transformed value equals the original but for letter
    /// case, so the scan of the original for every rule's literals
    /// speaks for it.
    raw: bool,
    /// Where the prefilter's bits for this value start, once scanned.
    bits: Option<usize>,
}

/// Calls back with each value of a variable.
pub type Values<'a> = dyn Fn(&mut dyn FnMut(&[u8])) + 'a;

/// The chain id under which the original value's scan is kept.
const RAW: u32 = 0;

impl Cache {
    /// Empties the cache for the next transaction; a cache grown past a
    /// megabyte by a large body is given up rather than kept.
    pub fn reset(&mut self) {
        if self.arena.capacity() > 1 << 20 || self.entries.capacity() > 1 << 14 {
            *self = Cache::default();
        } else {
            self.clear();
        }
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.arena.clear();
        self.bits.clear();
        self.var_bits.clear();
    }

    /// The entry of `value` transformed by `chain` (with id `id`), found
    /// or computed and remembered.
    pub fn entry(
        &mut self,
        chain: &[Transform],
        id: u32,
        value: &[u8],
        scratch: &mut Scratch,
    ) -> usize {
        let key = (value.as_ptr() as usize, value.len(), id);
        if let Some(e) = self.index.get(&key) {
            return *e;
        }
        let out = apply_all(chain, value, scratch);
        let entry = if std::ptr::eq(out, value) {
            CacheEntry {
                value: None,
                raw: true,
                bits: None,
            }
        } else {
            let start = self.arena.len();
            self.arena.extend_from_slice(out);
            CacheEntry {
                value: Some((start, out.len())),
                raw: out.eq_ignore_ascii_case(value),
                bits: None,
            }
        };
        let e = self.entries.len();
        self.entries.push(entry);
        self.index.insert(key, e);
        e
    }

    /// The transformed value of entry `e`, made from `value`.
    pub fn value<'v>(&'v self, e: usize, value: &'v [u8]) -> &'v [u8] {
        match self.entries.get(e).and_then(|e| e.value) {
            None => value,
            Some((start, len)) => self.arena.get(start..start + len).unwrap_or(value),
        }
    }

    /// Whether the rule in `slot` (of chain `chain`) may match entry `e`,
    /// made from `value`: false only when none of its literals occur.
    pub fn may_match(
        &mut self,
        e: usize,
        value: &[u8],
        filter: &Prefilter,
        chain: u32,
        slot: u32,
    ) -> bool {
        let start = self.scan(e, value, filter, chain);
        self.bits
            .get(start..start + filter.words)
            .is_none_or(|bits| prefilter::is_set(bits, slot))
    }

    /// Where the prefilter bits of entry `e` (made from `value`) start,
    /// scanning it first if needed.
    fn scan(&mut self, e: usize, value: &[u8], filter: &Prefilter, chain: u32) -> usize {
        let raw = self.entries.get(e).is_none_or(|x| x.raw);
        let (e, chain) = if raw {
            let key = (value.as_ptr() as usize, value.len(), RAW);
            let raw = match self.index.get(&key) {
                Some(raw) => *raw,
                None => {
                    let raw = self.entries.len();
                    self.entries.push(CacheEntry {
                        value: None,
                        raw: true,
                        bits: None,
                    });
                    self.index.insert(key, raw);
                    raw
                }
            };
            (raw, None)
        } else {
            (e, Some(chain))
        };
        if let Some(start) = self.entries.get(e).and_then(|x| x.bits) {
            return start;
        }
        let start = self.bits.len();
        self.bits.resize(start + filter.words, 0);
        let scanned = match self.entries.get(e).and_then(|x| x.value) {
            None => value,
            Some((s, len)) => self.arena.get(s..s + len).unwrap_or(value),
        };
        if let Some(bits) = self.bits.get_mut(start..) {
            filter.scan(chain, scanned, bits);
        }
        if let Some(entry) = self.entries.get_mut(e) {
            entry.bits = Some(start);
        }
        start
    }

    /// Whether the rule in `slot` may match any value of a variable: the
    /// union of its values' bits, computed once per phase with `values`
    /// (which calls back with each value).
    pub fn may_match_any(
        &mut self,
        key: (Var, bool, u32),
        chain: &[Transform],
        filter: &Prefilter,
        slot: u32,
        scratch: &mut Scratch,
        values: &Values<'_>,
    ) -> bool {
        let start = match self.var_bits.get(&key) {
            Some(start) => *start,
            None => {
                let start = self.bits.len();
                self.bits.resize(start + filter.words, 0);
                values(&mut |v| {
                    let e = self.entry(chain, key.2, v, scratch);
                    let from = self.scan(e, v, filter, key.2);
                    for i in 0..filter.words {
                        let w = self.bits.get(from + i).copied().unwrap_or(0);
                        if let Some(acc) = self.bits.get_mut(start + i) {
                            *acc |= w;
                        }
                    }
                });
                self.var_bits.insert(key, start);
                start
            }
        };
        self.bits
            .get(start..start + filter.words)
            .is_none_or(|bits| prefilter::is_set(bits, slot))
    }
}

/// Keys are an address, a length and a small id: a multiply-and-rotate
/// mix is enough, and much cheaper than the default keyed hasher.
#[derive(Debug, Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}
