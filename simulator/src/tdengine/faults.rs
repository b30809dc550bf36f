//! Fault hooks the harness drives through the server handle: drop every WebSocket connection (an adapter
//! restart that keeps storage), close a TMQ connection right after its next reply, move a vgroup away and
//! back right after a message from it, stall replies for a while, fail the next N calls with a given code.
//!
//! Connection loops consult one shared [`Faults`]: they watch [`Faults::dropped`] and close when it changes,
//! call [`Faults::stall`] before each reply, and [`Faults::take_failure`] before handling each call.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Faults {
    drops: watch::Sender<u64>,
    stall_until: Mutex<Option<Instant>>,
    fail_remaining: AtomicU32,
    fail_code: AtomicI32,
    close_after_reply: AtomicBool,
    bounce_after_message: AtomicBool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            drops: watch::channel(0).0,
            stall_until: Mutex::new(None),
            fail_remaining: AtomicU32::new(0),
            fail_code: AtomicI32::new(0),
            close_after_reply: AtomicBool::new(false),
            bounce_after_message: AtomicBool::new(false),
        }
    }
}

impl Faults {
    /// Closes every open WebSocket connection (SQL and TMQ); storage, topics and committed offsets stay.
    pub fn drop_connections(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    /// A receiver that changes at every [`Faults::drop_connections`].
    pub fn dropped(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// The next TMQ reply is followed by a close of its connection: the client sees the close while no
    /// request of its own is waiting (a drop between two requests, made certain instead of left to timing).
    pub fn close_after_next_reply(&self) {
        self.close_after_reply.store(true, Ordering::SeqCst);
    }

    /// Whether the connection that just sent a reply must close now (once per [`Faults::close_after_next_reply`]).
    pub fn take_close_after_reply(&self) -> bool {
        // Read first: this runs after every reply, and a swap would write the shared flag each time.
        self.close_after_reply.load(Ordering::Relaxed) && self.close_after_reply.swap(false, Ordering::SeqCst)
    }

    /// Right after the next poll that hands out a message, its vgroup moves to another consumer and back, as
    /// two quick rebalances would: the consumer's position there is the group's commit again (or where
    /// `auto.offset.reset` starts), before the client can ask for it.
    pub fn bounce_after_next_message(&self) {
        self.bounce_after_message.store(true, Ordering::SeqCst);
    }

    /// Whether the message just handed out must bounce its vgroup (once per
    /// [`Faults::bounce_after_next_message`]).
    pub fn take_bounce_after_message(&self) -> bool {
        self.bounce_after_message.load(Ordering::Relaxed)
            && self.bounce_after_message.swap(false, Ordering::SeqCst)
    }

    /// Holds back every reply until `duration` from now has passed.
    pub fn stall_replies(&self, duration: Duration) {
        *self.stall_until.lock() = Some(Instant::now() + duration);
    }

    /// Makes the next `n` calls fail with TDengine error `code`.
    pub fn fail_next(&self, n: u32, code: i32) {
        self.fail_code.store(code, Ordering::SeqCst);
        self.fail_remaining.store(n, Ordering::SeqCst);
    }

    /// Waits out a stall, if one is in effect.
    pub async fn stall(&self) {
        let until = *self.stall_until.lock();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    /// The code this call must fail with, if a `fail_next` is pending.
    pub fn take_failure(&self) -> Option<i32> {
        self.fail_remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| self.fail_code.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down() {
        let f = Faults::default();
        assert_eq!(f.take_failure(), None);
        f.fail_next(2, 0x0357);
        assert_eq!(f.take_failure(), Some(0x0357));
        assert_eq!(f.take_failure(), Some(0x0357));
        assert_eq!(f.take_failure(), None);
    }

    #[tokio::test]
    async fn drop_connections_notifies_watchers() {
        let f = Faults::default();
        let mut rx = f.dropped();
        f.drop_connections();
        tokio::time::timeout(Duration::from_secs(1), rx.changed())
            .await
            .expect("notified")
            .expect("sender alive");
    }
}
