//! Spare buffers and header maps, per thread, for what every request
//! builds and drops: the upstream request head, the response the client is
//! sent, and the header maps of the request and of the upstream response.
//! Taking one back from the pool saves allocations and their release per
//! use, and lands on memory that is still in cache.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::thread::LocalKey;

use http::HeaderMap;

/// Buffers (and maps) kept per thread: about one per connection in flight.
const KEEP: usize = 64;
/// A buffer grown past this (a large streamed body) is released, not kept.
const MAX_KEPT_CAPACITY: usize = 64 * 1024;

/// A header map that held more fields than this is released, not kept
/// (clearing it costs in proportion to its capacity).
const MAX_KEPT_FIELDS: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static MAPS: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

type Pool<T> = LocalKey<RefCell<Vec<T>>>;

/// A spare from `pool`, if it has one. Never panics, also while the
/// thread is ending.
fn pop<T: 'static>(pool: &'static Pool<T>) -> Option<T> {
    pool.try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
}

/// Keeps `item` in `pool` unless the pool is full.
fn push<T: 'static>(pool: &'static Pool<T>, item: T) {
    let _ = pool.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut()
            && s.len() < KEEP
        {
            s.push(item);
        }
    });
}

/// An empty header map with room for at least `capacity` fields.
pub fn header_map(capacity: usize) -> HeaderMap {
    match pop(&MAPS) {
        Some(mut m) => {
            m.reserve(capacity);
            m
        }
        None => HeaderMap::with_capacity(capacity),
    }
}

/// Gives a header map that is done with back to the pool, emptied.
pub fn give_header_map(mut m: HeaderMap) {
    if m.capacity() > MAX_KEPT_FIELDS {
        return;
    }
    m.clear();
    push(&MAPS, m);
}

/// A buffer that goes back to its thread's pool when dropped.
pub struct Buf(Vec<u8>);

/// An empty buffer with room for at least `capacity` bytes.
pub fn take(capacity: usize) -> Buf {
    match pop(&SPARE) {
        Some(mut v) => {
            v.reserve(capacity);
            Buf(v)
        }
        None => Buf(Vec::with_capacity(capacity)),
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if self.0.capacity() > MAX_KEPT_CAPACITY {
            return;
        }
        let mut v = std::mem::take(&mut self.0);
        v.clear();
        push(&SPARE, v);
    }
}

impl Deref for Buf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_empty_with_its_capacity() {
        let mut b = take(100);
        b.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let ptr = b.as_ptr();
        drop(b);
        let again = take(10);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the spare buffer is reused");
        assert!(again.capacity() >= 100);
    }

    #[test]
    fn a_header_map_comes_back_empty() {
        let mut m = header_map(4);
        m.insert("x-one", http::HeaderValue::from_static("1"));
        m.append("x-one", http::HeaderValue::from_static("2"));
        give_header_map(m);
        let again = header_map(2);
        assert!(again.is_empty());
        assert!(again.get("x-one").is_none());
        assert!(again.capacity() >= 4);
    }

    #[test]
    fn a_large_buffer_is_not_kept() {
        let mut b = take(MAX_KEPT_CAPACITY + 1);
        b.push(1);
        drop(b);
        assert!(take(1).capacity() <= MAX_KEPT_CAPACITY);
    }
}
