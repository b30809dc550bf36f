//! How long the next poll may wait before the source cuts the official client's empty-poll sleep short.
//!
//! A cut-short poll whose request is still being answered is dropped with its reply, and the server has
//! moved past that message: the position check then seeks back and the server assembles it again. Big
//! messages (one block per table of a large fleet) take the server longer than `poll.interval.ms` to
//! assemble, so a fixed wait would drop every one of them at least once. The wait therefore follows what
//! polls took: after a message, twice as long as that poll took (at least the interval); after a rewind,
//! twice the last wait; after a poll that found nothing, the interval again (a trickle's latency).

use std::time::Duration;

/// The longest wait a message's poll time leads to: below the client's 500 ms sleep after an empty poll,
/// so a poll that returned a message within the wait was answered by its first request and its time is
/// the server's.
pub const BUSY_MAX: Duration = Duration::from_millis(400);

/// The longest wait repeated rewinds lead to.
pub const REWIND_MAX: Duration = Duration::from_secs(5);

/// The adaptive poll wait (sans-IO: durations in, the next wait out).
#[derive(Debug, Clone, Copy)]
pub struct PollWait {
    interval: Duration,
    next: Duration,
}

impl PollWait {
    pub fn new(interval: Duration) -> Self {
        PollWait {
            interval,
            next: interval,
        }
    }

    /// How long the next poll may wait.
    pub fn next(&self) -> Duration {
        self.next
    }

    /// A poll returned a message after `took`.
    pub fn on_message(&mut self, took: Duration) {
        self.next = (took * 2).min(BUSY_MAX).max(self.interval);
    }

    /// A poll was cut short and the position check found nothing lost: back to the interval.
    pub fn on_idle(&mut self) {
        self.next = self.interval;
    }

    /// A poll was cut short while its reply was under way (the check sought back).
    pub fn on_rewind(&mut self) {
        self.next = (self.next * 2).min(REWIND_MAX).max(self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn small_messages_keep_the_interval() {
        let mut w = PollWait::new(10 * MS);
        assert_eq!(w.next(), 10 * MS);
        w.on_message(MS);
        assert_eq!(w.next(), 10 * MS);
    }

    #[test]
    fn slow_messages_lengthen_the_wait_until_the_server_is_idle() {
        let mut w = PollWait::new(10 * MS);
        w.on_message(30 * MS);
        assert_eq!(w.next(), 60 * MS);
        w.on_message(300 * MS);
        assert_eq!(
            w.next(),
            BUSY_MAX,
            "never as long as the client's empty-poll sleep"
        );
        w.on_idle();
        assert_eq!(w.next(), 10 * MS);
    }

    #[test]
    fn rewinds_double_the_wait_up_to_a_cap() {
        let mut w = PollWait::new(10 * MS);
        w.on_rewind();
        assert_eq!(w.next(), 20 * MS);
        w.on_rewind();
        assert_eq!(w.next(), 40 * MS);
        for _ in 0..20 {
            w.on_rewind();
        }
        assert_eq!(w.next(), REWIND_MAX);
        w.on_message(5 * MS);
        assert_eq!(w.next(), 10 * MS);
    }
}
