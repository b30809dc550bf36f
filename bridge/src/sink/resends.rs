//! The flows a lost connection left to re-send, and the hold on a resumed session until they complete
//! (sans-IO: the event loop feeds it and opens the session when it says so).
//!
//! On a resumed session rumqttc 0.25 re-sends its open flows first, but would hand a new publish the packet
//! id of a re-sent PUBLISH still unanswered (a "collision"; for QoS 2 it then sends that publish on the
//! PUBCOMP without recording it, and the broker is left holding it under an id the client reuses) or of a
//! PUBREL whose PUBCOMP is still due (MQTT says that id is in use). So the session's `Connected` — and with
//! it every new publish — waits until every re-sent flow is complete.
//!
//! The hold is bounded: MQTT 3.1.1 re-sends only on a reconnect, so a re-sent flow whose answer is lost
//! again would hold the session for as long as the connection lives (found by `harness explore --seed 909`).
//! When no re-sent flow has ended for [`PATIENCE`], the connection is dropped and the flows go out again.

use std::time::{Duration, Instant};

/// How long a held session waits for the next re-sent flow to end before its connection is dropped.
pub(super) const PATIENCE: Duration = Duration::from_secs(5);

/// The re-sent flows still open, and the held session while one is held.
#[derive(Debug, Default)]
pub(super) struct Resends {
    open: Vec<u16>,
    held: Option<Held>,
}

/// A session held until its re-sent flows complete.
#[derive(Debug, Clone, Copy)]
struct Held {
    session_present: bool,
    /// When the session was held or a re-sent flow last ended.
    progress: Instant,
}

impl Resends {
    /// The connection failed with these flows (packet ids of PUBLISHes and PUBRELs) queued for re-sending.
    pub fn lost(&mut self, queued: Vec<u16>) {
        self.open = queued;
        self.held = None;
    }

    /// CONNACK: `Some(session_present)` when the session may open now; `None` while it is held. Without a
    /// session rumqttc dropped the re-sends (the ledger queues those rows again), so nothing is held.
    pub fn connected(&mut self, session_present: bool, now: Instant) -> Option<bool> {
        if !session_present {
            self.open.clear();
        }
        if self.open.is_empty() {
            return Some(session_present);
        }
        self.held = Some(Held {
            session_present,
            progress: now,
        });
        None
    }

    /// The flow on `pkid` ended (PUBACK, PUBCOMP or a rejection): `Some(session_present)` when that opens
    /// the held session.
    pub fn ended(&mut self, pkid: u16, now: Instant) -> Option<bool> {
        let before = self.open.len();
        self.open.retain(|p| *p != pkid);
        if self.open.is_empty() {
            return self.held.take().map(|h| h.session_present);
        }
        if let (Some(h), true) = (&mut self.held, self.open.len() < before) {
            h.progress = now;
        }
        None
    }

    /// While a session is held: when its connection is to be dropped if no re-sent flow ends before.
    pub fn give_up_at(&self) -> Option<Instant> {
        self.held.map(|h| h.progress + PATIENCE)
    }

    /// Re-sent flows still open.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_session_opens_once_every_resent_flow_has_ended() {
        let mut r = Resends::default();
        let t = Instant::now();
        assert_eq!(r.connected(false, t), Some(false), "nothing to re-send");
        r.lost(vec![3, 4]);
        assert_eq!(r.connected(true, t), None, "held");
        assert_eq!(r.open(), 2);
        assert_eq!(r.ended(9, t), None, "a flow not re-sent");
        assert_eq!(r.ended(3, t), None);
        assert_eq!(r.ended(4, t), Some(true), "the last re-sent flow opens it");
        assert_eq!(r.ended(4, t), None, "once");
    }

    #[test]
    fn a_held_session_gives_up_when_no_resent_flow_ends_for_the_patience() {
        let mut r = Resends::default();
        let t = Instant::now();
        assert_eq!(r.give_up_at(), None, "nothing held");
        r.lost(vec![1, 2, 3]);
        assert_eq!(r.give_up_at(), None, "not connected yet");
        assert_eq!(r.connected(true, t), None);
        assert_eq!(r.give_up_at(), Some(t + PATIENCE));
        let later = t + Duration::from_secs(3);
        assert_eq!(r.ended(9, later), None);
        assert_eq!(
            r.give_up_at(),
            Some(t + PATIENCE),
            "a flow not re-sent is no progress"
        );
        assert_eq!(r.ended(2, later), None);
        assert_eq!(
            r.give_up_at(),
            Some(later + PATIENCE),
            "progress restarts the wait"
        );
        r.lost(vec![1, 3]);
        assert_eq!(r.give_up_at(), None, "the connection was dropped");
        assert_eq!(r.connected(true, later), None);
        assert_eq!(r.ended(1, later), None);
        assert_eq!(r.ended(3, later), Some(true));
        assert_eq!(r.give_up_at(), None, "open again");
    }

    #[test]
    fn without_a_session_or_after_another_loss_nothing_stays_held() {
        let mut r = Resends::default();
        let t = Instant::now();
        r.lost(vec![3]);
        assert_eq!(r.connected(false, t), Some(false), "rumqttc dropped the re-sends");
        r.lost(vec![5]);
        assert_eq!(r.connected(true, t), None);
        r.lost(vec![5, 6]);
        assert_eq!(
            r.ended(5, t),
            None,
            "the held session was lost with its connection"
        );
        assert_eq!(r.ended(6, t), None);
    }
}
