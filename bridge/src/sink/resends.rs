//! The flows a lost connection left to re-send, and the hold on a resumed session until they complete
//! (sans-IO: the event loop feeds it and opens the session when it says so).
//!
//! On a resumed session rumqttc 0.25 re-sends its open flows first, but would hand a new publish the packet
//! id of a re-sent PUBLISH still unanswered (a "collision"; for QoS 2 it then sends that publish on the
//! PUBCOMP without recording it, and the broker is left holding it under an id the client reuses) or of a
//! PUBREL whose PUBCOMP is still due (MQTT says that id is in use). So the session's `Connected` — and with
//! it every new publish — waits until every re-sent flow is complete.

/// The re-sent flows still open, and the held session's `session_present` while one is held.
#[derive(Debug, Default)]
pub(super) struct Resends {
    open: Vec<u16>,
    held: Option<bool>,
}

impl Resends {
    /// The connection failed with these flows (packet ids of PUBLISHes and PUBRELs) queued for re-sending.
    pub fn lost(&mut self, queued: Vec<u16>) {
        self.open = queued;
        self.held = None;
    }

    /// CONNACK: `Some(session_present)` when the session may open now; `None` while it is held. Without a
    /// session rumqttc dropped the re-sends (the ledger queues those rows again), so nothing is held.
    pub fn connected(&mut self, session_present: bool) -> Option<bool> {
        if !session_present {
            self.open.clear();
        }
        if self.open.is_empty() {
            return Some(session_present);
        }
        self.held = Some(session_present);
        None
    }

    /// The flow on `pkid` ended (PUBACK, PUBCOMP or a rejection): `Some(session_present)` when that opens
    /// the held session.
    pub fn ended(&mut self, pkid: u16) -> Option<bool> {
        self.open.retain(|p| *p != pkid);
        if self.open.is_empty() {
            self.held.take()
        } else {
            None
        }
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
        assert_eq!(r.connected(false), Some(false), "nothing to re-send");
        r.lost(vec![3, 4]);
        assert_eq!(r.connected(true), None, "held");
        assert_eq!(r.open(), 2);
        assert_eq!(r.ended(9), None, "a flow not re-sent");
        assert_eq!(r.ended(3), None);
        assert_eq!(r.ended(4), Some(true), "the last re-sent flow opens it");
        assert_eq!(r.ended(4), None, "once");
    }

    #[test]
    fn without_a_session_or_after_another_loss_nothing_stays_held() {
        let mut r = Resends::default();
        r.lost(vec![3]);
        assert_eq!(r.connected(false), Some(false), "rumqttc dropped the re-sends");
        r.lost(vec![5]);
        assert_eq!(r.connected(true), None);
        r.lost(vec![5, 6]);
        assert_eq!(r.ended(5), None, "the held session was lost with its connection");
        assert_eq!(r.ended(6), None);
    }
}
