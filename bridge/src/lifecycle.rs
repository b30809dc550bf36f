//! The run's lifecycle: a sans-IO state machine that decides when the pipeline polls, stops polling,
//! announces its status and ends.
//!
//! Like the [`ledger`](crate::ledger) it owns no socket and no clock: the pipeline feeds it events — a
//! connection came up or went down, shutdown was requested, the armed deadline passed, the ledger's
//! unacknowledged counts after a turn — and carries out the [`Action`]s it answers with (queue a status
//! publish, close the source and arm a deadline, end the run).
//!
//! ```text
//! Running ──shutdown──▶ Draining ──all acked / deadline──▶ Offline ──offline acked / deadline /
//!                                        │                             connection lost──▶ Done
//!                                        └── no status topic or not connected ─────────────▶ Done
//! ```
//!
//! Status (`status_topic`): the retained `online` is queued on every connection (after every CONNACK,
//! fresh or resumed session) until the `offline` went out. `offline` is sent once the rows are drained,
//! and only while connected: without a connection the broker has already published the Last Will. A
//! connection lost while `offline` waits for its ack ends the run too — the broker publishes the Will.

use std::time::Duration;

/// How long graceful shutdown waits for the broker to acknowledge the `offline` status.
pub const STATUS_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Polling TMQ and publishing.
    Running,
    /// Shutdown requested: polling stopped, waiting for acks until the shutdown deadline.
    Draining,
    /// The shutdown deadline passed with publishes unacknowledged: stop waiting for them.
    Drained,
    /// The `offline` status is queued: waiting for its ack until [`STATUS_ACK_TIMEOUT`].
    Offline,
    /// The run is over.
    Done,
}

/// Why the run ended cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Rows drained, and no `offline` to send (no status topic, or not connected: the Will stands in).
    Drained,
    /// The broker acknowledged the `offline` status.
    OfflineAcked,
    /// The broker did not acknowledge the `offline` status within [`STATUS_ACK_TIMEOUT`].
    OfflineUnacked,
    /// The connection dropped while `offline` waited for its ack: the broker publishes the Will.
    WillStandsIn,
}

/// What the lifecycle asks the pipeline to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Queue the retained `online` status ahead of every row.
    PublishOnline,
    /// Stop polling (close the source) and arm the deadline to pass after `deadline_in`.
    StopPolling { deadline_in: Duration },
    /// The shutdown deadline passed with publishes unacknowledged; they are given up.
    GiveUpUnacked,
    /// Queue the retained `offline` status and arm the deadline to pass after `deadline_in`.
    PublishOffline { deadline_in: Duration },
    /// Leave the run loop.
    Exit(Exit),
}

/// The lifecycle of one run.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    phase: Phase,
    connected: bool,
    /// A status topic is configured (`online`/`offline` are published).
    status: bool,
    shutdown_timeout: Duration,
}

impl Lifecycle {
    /// A running lifecycle; `status`: a status topic is configured; `shutdown_timeout`: how long
    /// shutdown waits for outstanding acks.
    pub fn new(status: bool, shutdown_timeout: Duration) -> Self {
        Lifecycle {
            phase: Phase::Running,
            connected: false,
            status,
            shutdown_timeout,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether to poll the source (until shutdown is requested).
    pub fn polling(&self) -> bool {
        self.phase == Phase::Running
    }

    /// Whether the armed deadline counts (waiting for acks of rows or of the `offline` status).
    pub fn deadline_armed(&self) -> bool {
        matches!(self.phase, Phase::Draining | Phase::Offline)
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The broker accepted a connection (CONNACK).
    pub fn on_connected(&mut self) -> Option<Action> {
        self.connected = true;
        let announce = self.status && !matches!(self.phase, Phase::Offline | Phase::Done);
        announce.then_some(Action::PublishOnline)
    }

    /// The connection to the broker is lost.
    pub fn on_disconnected(&mut self) -> Option<Action> {
        self.connected = false;
        (self.phase == Phase::Offline).then(|| self.exit(Exit::WillStandsIn))
    }

    /// Shutdown was requested.
    pub fn on_shutdown(&mut self) -> Option<Action> {
        (self.phase == Phase::Running).then(|| {
            self.phase = Phase::Draining;
            Action::StopPolling {
                deadline_in: self.shutdown_timeout,
            }
        })
    }

    /// The armed deadline passed.
    pub fn on_deadline(&mut self) -> Option<Action> {
        match self.phase {
            Phase::Draining => {
                self.phase = Phase::Drained;
                Some(Action::GiveUpUnacked)
            }
            Phase::Offline => Some(self.exit(Exit::OfflineUnacked)),
            _ => None,
        }
    }

    /// After each turn of the loop: `unacked` rows and `control_unacked` status publishes are still
    /// waiting for their acks.
    pub fn on_progress(&mut self, unacked: usize, control_unacked: usize) -> Option<Action> {
        match self.phase {
            Phase::Draining if unacked == 0 => Some(self.drained()),
            Phase::Drained => Some(self.drained()),
            Phase::Offline if control_unacked == 0 => Some(self.exit(Exit::OfflineAcked)),
            _ => None,
        }
    }

    fn drained(&mut self) -> Action {
        if self.status && self.connected {
            self.phase = Phase::Offline;
            Action::PublishOffline {
                deadline_in: STATUS_ACK_TIMEOUT,
            }
        } else {
            self.exit(Exit::Drained)
        }
    }

    fn exit(&mut self, why: Exit) -> Action {
        self.phase = Phase::Done;
        Action::Exit(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    fn connected(status: bool) -> Lifecycle {
        let mut l = Lifecycle::new(status, T);
        let announced = l.on_connected();
        assert_eq!(announced, status.then_some(Action::PublishOnline));
        l
    }

    #[test]
    fn polls_until_shutdown_then_drains_and_exits_without_a_status_topic() {
        let mut l = connected(false);
        assert!(l.polling() && !l.deadline_armed());
        assert_eq!(l.on_progress(0, 0), None, "running: nothing to do");
        assert_eq!(l.on_shutdown(), Some(Action::StopPolling { deadline_in: T }));
        assert!(!l.polling() && l.deadline_armed());
        assert_eq!(l.on_shutdown(), None, "a second request changes nothing");
        assert_eq!(l.on_progress(3, 0), None, "acks outstanding");
        assert_eq!(l.on_progress(0, 0), Some(Action::Exit(Exit::Drained)));
        assert!(l.is_done());
    }

    #[test]
    fn online_on_every_connection_offline_once_drained() {
        let mut l = connected(true);
        assert_eq!(l.on_disconnected(), None, "a drop while running is retried");
        assert_eq!(l.on_connected(), Some(Action::PublishOnline));
        l.on_shutdown();
        assert_eq!(
            l.on_connected(),
            Some(Action::PublishOnline),
            "reconnected while draining: still online"
        );
        assert_eq!(
            l.on_progress(0, 1),
            Some(Action::PublishOffline {
                deadline_in: STATUS_ACK_TIMEOUT
            })
        );
        assert_eq!(l.phase(), Phase::Offline);
        assert!(l.deadline_armed());
        assert_eq!(l.on_connected(), None, "no online after the offline");
        assert_eq!(l.on_progress(0, 1), None, "offline not acknowledged yet");
        assert_eq!(l.on_progress(0, 0), Some(Action::Exit(Exit::OfflineAcked)));
    }

    #[test]
    fn the_shutdown_deadline_gives_up_unacked_rows_then_says_offline() {
        let mut l = connected(true);
        l.on_shutdown();
        assert_eq!(l.on_progress(5, 0), None);
        assert_eq!(l.on_deadline(), Some(Action::GiveUpUnacked));
        assert!(!l.deadline_armed(), "the drain deadline is spent");
        assert_eq!(
            l.on_progress(5, 0),
            Some(Action::PublishOffline {
                deadline_in: STATUS_ACK_TIMEOUT
            })
        );
        assert_eq!(l.on_deadline(), Some(Action::Exit(Exit::OfflineUnacked)));
        assert!(l.is_done());
    }

    #[test]
    fn without_a_connection_the_will_stands_in_for_offline() {
        let mut l = connected(true);
        l.on_disconnected();
        l.on_shutdown();
        assert_eq!(l.on_progress(2, 0), None);
        assert_eq!(l.on_progress(0, 0), Some(Action::Exit(Exit::Drained)));
    }

    #[test]
    fn a_connection_lost_while_offline_waits_ends_the_run() {
        let mut l = connected(true);
        l.on_shutdown();
        l.on_progress(0, 0);
        assert_eq!(l.on_disconnected(), Some(Action::Exit(Exit::WillStandsIn)));
        assert!(l.is_done());
    }

    #[test]
    fn deadline_and_disconnects_outside_shutdown_change_nothing() {
        let mut l = connected(true);
        assert_eq!(l.on_deadline(), None);
        assert_eq!(l.on_disconnected(), None);
        assert_eq!(l.phase(), Phase::Running);
        assert!(l.polling());
    }
}
