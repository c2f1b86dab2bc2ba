//! A listener's stop signal, as its HTTP/1 connections wait on it.
//!
//! A keep-alive connection waits for its next request with the stop signal
//! in the same wait, so it closes at once when the listener stops. Polling
//! a `watch` channel's `changed()` for that takes the channel's lock on
//! every wait, that is on every request. Here each connection keeps its own
//! waker slot, registered with the listener once per connection; a wait
//! locks only that slot (which nothing but a stop ever contends), compares
//! the task's waker with the one already kept (the same, from the second
//! request on) and reads one flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A waker slot; the mutex is only ever contended by a stop.
type Slot = Mutex<Option<Waker>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing done under these locks can leave them inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The listener's side: raised once, wakes every waiting connection.
#[derive(Default)]
pub struct StopSignal {
    stopped: AtomicBool,
    slots: Mutex<Slots>,
}

/// The connections' slots; freed entries are reused.
#[derive(Default)]
struct Slots {
    entries: Vec<Option<Arc<Slot>>>,
    free: Vec<usize>,
}

impl StopSignal {
    /// Raises the signal and wakes every connection waiting on it.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let slots = lock(&self.slots);
        for slot in slots.entries.iter().flatten() {
            if let Some(w) = lock(slot).take() {
                w.wake();
            }
        }
    }

    /// A connection's handle on the signal.
    pub fn waiter(self: &Arc<Self>) -> StopWaiter {
        let slot = Arc::new(Slot::default());
        let mut slots = lock(&self.slots);
        let index = match slots.free.pop() {
            Some(i) => {
                if let Some(free) = slots.entries.get_mut(i) {
                    *free = Some(slot.clone());
                }
                i
            }
            None => {
                slots.entries.push(Some(slot.clone()));
                slots.entries.len() - 1
            }
        };
        StopWaiter {
            signal: self.clone(),
            index,
            slot,
        }
    }
}

/// A connection's handle: its slot is given back when it is dropped.
pub struct StopWaiter {
    signal: Arc<StopSignal>,
    index: usize,
    slot: Arc<Slot>,
}

impl StopWaiter {
    pub fn is_stopped(&self) -> bool {
        self.signal.stopped.load(Ordering::SeqCst)
    }

    /// Ready once the signal is raised; otherwise the task is woken when
    /// it is. The waker is kept before the flag is read, and `stop` raises
    /// the flag before it takes the wakers, so no stop goes unseen.
    pub fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut kept = lock(&self.slot);
            if !kept.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *kept = Some(cx.waker().clone());
            }
        }
        if self.is_stopped() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for StopWaiter {
    fn drop(&mut self) {
        let mut slots = lock(&self.signal.slots);
        if let Some(entry) = slots.entries.get_mut(self.index) {
            *entry = None;
            slots.free.push(self.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiting_connection_wakes_on_stop() {
        let signal = Arc::new(StopSignal::default());
        let waiter = signal.waiter();
        let waiting = tokio::spawn(async move {
            poll_fn(|cx| waiter.poll_stopped(cx)).await;
            waiter.is_stopped()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "nothing stopped it yet");
        signal.stop();
        let seen = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(seen, Ok(Ok(true))), "woken, and sees the stop");
    }

    #[tokio::test]
    async fn a_stop_before_the_wait_is_seen() {
        let signal = Arc::new(StopSignal::default());
        let waiter = signal.waiter();
        signal.stop();
        assert!(waiter.is_stopped());
        let done = tokio::time::timeout(
            Duration::from_secs(5),
            poll_fn(|cx| waiter.poll_stopped(cx)),
        )
        .await;
        assert!(done.is_ok());
    }

    #[test]
    fn slots_are_given_back_and_reused() {
        let signal = Arc::new(StopSignal::default());
        let a = signal.waiter();
        let b = signal.waiter();
        assert_eq!((a.index, b.index), (0, 1));
        drop(a);
        let c = signal.waiter();
        assert_eq!(c.index, 0, "the freed slot is taken again");
        assert_eq!(lock(&signal.slots).entries.len(), 2);
    }
}
