//! A connection's timer, re-armed lazily.
//!
//! A keep-alive connection moves its deadline forward on every request.
//! Resetting a tokio timer each time would cost a lock and a wheel update
//! per request; instead the deadline is a plain field, and the underlying
//! timer is only moved when it would fire *later* than the deadline. When
//! it fires early (the deadline has moved on since), it is re-armed for the
//! real deadline. So the timer is touched about once per timeout period,
//! and a timeout still fires at its exact deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::time::{Instant, Sleep};

pub struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
    deadline: Instant,
}

impl LazyTimer {
    pub fn new(deadline: Instant) -> Self {
        LazyTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            deadline,
        }
    }

    pub fn set(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Ready once the deadline has passed.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sleep.deadline() > self.deadline {
                self.sleep.as_mut().reset(self.deadline);
            }
            ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= self.deadline {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(self.deadline);
        }
    }

    /// Runs `fut` until it finishes or the deadline passes (`None`).
    pub fn run<F: Future>(&mut self, fut: F) -> Within<'_, F> {
        Within { timer: self, fut }
    }
}

pin_project_lite::pin_project! {
    /// A future bounded by a [`LazyTimer`]. A plain struct rather than an
    /// `async fn`, so the inner future is stored once, not copied into a
    /// second slot (it sits on every proxied request's path).
    pub struct Within<'a, F> {
        timer: &'a mut LazyTimer,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        this.timer.poll(cx).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_even_after_it_moved_later() {
        let start = Instant::now();
        let mut t = LazyTimer::new(start + Duration::from_secs(1));
        // Moved later before anything waited: fires at the new deadline.
        t.set(start + Duration::from_secs(5));
        let out = t.run(std::future::pending::<()>()).await;
        assert!(out.is_none());
        assert_eq!(Instant::now() - start, Duration::from_secs(5));

        // Moved earlier: fires at the earlier deadline.
        let now = Instant::now();
        t.set(now + Duration::from_secs(10));
        t.set(now + Duration::from_secs(2));
        t.run(std::future::pending::<()>()).await;
        assert_eq!(Instant::now() - now, Duration::from_secs(2));

        // A future that finishes first wins.
        t.set(Instant::now() + Duration::from_secs(1));
        let out = t.run(async { 7 }).await;
        assert_eq!(out, Some(7));
    }
}
