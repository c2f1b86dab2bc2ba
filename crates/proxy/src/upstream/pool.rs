//! Idle keep-alive connections to one target. Most recently used first (so
//! a few connections stay hot and the rest age out), bounded in number and
//! idle time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::h1::Conn;

/// Connections idle for longer than this are checked before reuse: a
/// connection reused within this window was just working.
const CHECK_AFTER: Duration = Duration::from_secs(1);

pub struct Pool {
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// A reusable connection, if one is idle and alive. `now` is the
    /// caller's clock reading (a request reads it once).
    pub fn take(&self, now: Instant) -> Option<Conn> {
        loop {
            let mut conn = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                // The oldest are at the front: drop those past the timeout.
                let expired = idle
                    .iter()
                    .take_while(|c| now.duration_since(c.idle_since) > self.idle_timeout)
                    .count();
                idle.drain(..expired);
                idle.pop()?
            };
            if now.saturating_duration_since(conn.idle_since) < CHECK_AFTER || conn.is_alive() {
                return Some(conn);
            }
        }
    }

    pub fn put(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}
