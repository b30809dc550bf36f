//! The proxy's fault decisions, sans-IO: fed with each packet (direction, kind, size) and the current time,
//! it answers forward / drop / delay / cut. Faults are armed with a trigger (the Nth PUBLISH towards the
//! broker) or fired at once by the runner's timeline.

use std::collections::VecDeque;
use std::time::Duration;

use crate::wire::{Direction, Kind};

/// A fault the proxy can execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFault {
    /// Close both sides now (the triggering packet is not forwarded).
    Cut,
    /// Forward the next (or triggering) PUBLISH, then close both sides before its ack can come back.
    CutAfterPublish,
    /// Swallow the next `n` publish acks (PUBACK/PUBREC/PUBCOMP) coming from the broker.
    DropAcks(u32),
    /// Hold each of the next `n` publish acks for `delay`.
    DelayAcks { n: u32, delay: Duration },
    /// Limit broker-bound traffic to `bytes_per_s` for `duration`.
    Throttle { bytes_per_s: u64, duration: Duration },
}

impl ProxyFault {
    /// How the report names it.
    pub fn label(&self) -> String {
        match self {
            ProxyFault::Cut => "cut".into(),
            ProxyFault::CutAfterPublish => "cut after publish".into(),
            ProxyFault::DropAcks(n) => format!("drop {n} ack(s)"),
            ProxyFault::DelayAcks { n, delay } => format!("delay {n} ack(s) by {delay:?}"),
            ProxyFault::Throttle { bytes_per_s, .. } => format!("throttle to {bytes_per_s} B/s"),
        }
    }
}

/// A fault the proxy fired: when, and when its effect ended (times since the proxy started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    pub fault: ProxyFault,
    pub at: Duration,
    /// When its effect ended: the cut done, the last ack dropped or released, the throttle run out.
    /// `None` while it lasts (a cut waiting for its PUBLISH, acks still to come).
    pub until: Option<Duration>,
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Forward,
    Drop,
    /// Forward after this long (order within the direction is kept: later packets wait behind it).
    Delay(Duration),
    /// Forward this packet, then cut the connection.
    ForwardThenCut,
    /// Cut the connection without forwarding this packet.
    Cut,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    at_publish: u64,
    fault: ProxyFault,
}

/// Fault state shared by every connection of one proxy (counters survive reconnects).
#[derive(Debug, Default)]
pub struct FaultEngine {
    armed: Vec<Armed>,
    /// PUBLISH packets seen towards the broker, across connections.
    published: u64,
    /// The fired `CutAfterPublish` waiting for its PUBLISH (index into `fired`).
    cut_after_next_publish: Option<usize>,
    /// Acks still to drop, per fired fault in firing order: (index into `fired`, how many).
    drop_acks: VecDeque<(usize, u32)>,
    /// Acks still to delay: (index into `fired`, how many, by how long).
    delay_acks: VecDeque<(usize, u32, Duration)>,
    throttle: Option<Throttle>,
    /// Faults that fired, with when their effect started and ended (for the report).
    fired: Vec<Fired>,
    /// When the acks held and the throttle fired so far are through at the latest (held acks queue behind
    /// each other: a run must not end while the proxy still holds some back).
    busy_until: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Throttle {
    /// Index into `fired`.
    fired: usize,
    bytes_per_s: u64,
    until: Duration,
    /// When the link is free again.
    next_free: Duration,
}

impl FaultEngine {
    pub fn new() -> FaultEngine {
        FaultEngine::default()
    }

    /// Fire `fault` when the `n`th PUBLISH towards the broker arrives (1-based).
    pub fn arm_at_publish(&mut self, n: u64, fault: ProxyFault) {
        self.armed.push(Armed { at_publish: n, fault });
    }

    /// Fire `fault` now. Returns `true` when the caller must cut the live connection at once.
    pub fn fire(&mut self, now: Duration, fault: ProxyFault) -> bool {
        let i = self.fired.len();
        self.fired.push(Fired {
            fault,
            at: now,
            until: None,
        });
        match fault {
            ProxyFault::Cut => {
                self.fired[i].until = Some(now);
                return true;
            }
            ProxyFault::CutAfterPublish => {
                // A second one before the PUBLISH came is the same cut.
                if let Some(j) = self.cut_after_next_publish.replace(i) {
                    self.fired[j].until = Some(now);
                }
            }
            ProxyFault::DropAcks(n) => self.drop_acks.push_back((i, n)),
            ProxyFault::DelayAcks { n, delay } => {
                self.delay_acks.push_back((i, n, delay));
                self.busy_until = self.busy_until.max(now) + delay * n;
            }
            ProxyFault::Throttle {
                bytes_per_s,
                duration,
            } => {
                if let Some(old) = self.throttle.take() {
                    let end = self.fired[old.fired].until.get_or_insert(now);
                    *end = (*end).min(now);
                }
                self.fired[i].until = Some(now + duration);
                self.busy_until = self.busy_until.max(now + duration);
                self.throttle = Some(Throttle {
                    fired: i,
                    bytes_per_s: bytes_per_s.max(1),
                    until: now + duration,
                    next_free: now,
                })
            }
        }
        // Nothing to wait for: its effect ends at once.
        if matches!(
            fault,
            ProxyFault::DropAcks(0) | ProxyFault::DelayAcks { n: 0, .. }
        ) {
            self.fired[i].until = Some(now);
        }
        false
    }

    pub fn published(&self) -> u64 {
        self.published
    }

    pub fn fired(&self) -> &[Fired] {
        &self.fired
    }

    /// Whether acks held or a throttle fired so far may still be holding traffic back at `now`.
    pub fn busy(&self, now: Duration) -> bool {
        now < self.busy_until
    }

    /// Decides the fate of one packet of `len` bytes.
    pub fn on_packet(&mut self, now: Duration, dir: Direction, kind: Kind, len: usize) -> Decision {
        match dir {
            Direction::ToBroker => self.toward_broker(now, kind, len),
            Direction::ToClient => self.toward_client(now, kind),
        }
    }

    fn toward_broker(&mut self, now: Duration, kind: Kind, len: usize) -> Decision {
        let mut cut_now = false;
        if kind == Kind::Publish {
            self.published += 1;
            let n = self.published;
            let due: Vec<ProxyFault> = self
                .armed
                .iter()
                .filter(|a| a.at_publish == n)
                .map(|a| a.fault)
                .collect();
            self.armed.retain(|a| a.at_publish != n);
            for fault in due {
                cut_now |= self.fire(now, fault);
            }
        }
        if cut_now {
            return Decision::Cut;
        }
        if kind == Kind::Publish {
            if let Some(i) = self.cut_after_next_publish.take() {
                self.fired[i].until = Some(now);
                return Decision::ForwardThenCut;
            }
        }
        if let Some(t) = &mut self.throttle {
            if now >= t.until {
                self.throttle = None;
            } else {
                let start = t.next_free.max(now);
                let cost = Duration::from_secs_f64(len as f64 / t.bytes_per_s as f64);
                t.next_free = start + cost;
                let wait = t.next_free.saturating_sub(now);
                if !wait.is_zero() {
                    return Decision::Delay(wait);
                }
            }
        }
        Decision::Forward
    }

    fn toward_client(&mut self, now: Duration, kind: Kind) -> Decision {
        if !kind.is_publish_ack() {
            return Decision::Forward;
        }
        self.drop_acks.retain(|(_, n)| *n > 0);
        if let Some((i, n)) = self.drop_acks.front_mut() {
            *n -= 1;
            if *n == 0 {
                self.fired[*i].until = Some(now);
            }
            return Decision::Drop;
        }
        self.delay_acks.retain(|(_, n, _)| *n > 0);
        if let Some((i, n, delay)) = self.delay_acks.front_mut() {
            *n -= 1;
            if *n == 0 {
                // The last held ack goes out `delay` from now.
                self.fired[*i].until = Some(now + *delay);
            }
            return Decision::Delay(*delay);
        }
        Decision::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::ZERO;

    fn publish(e: &mut FaultEngine) -> Decision {
        e.on_packet(T0, Direction::ToBroker, Kind::Publish, 100)
    }

    #[test]
    fn no_fault_forwards_everything() {
        let mut e = FaultEngine::new();
        assert_eq!(publish(&mut e), Decision::Forward);
        assert_eq!(
            e.on_packet(T0, Direction::ToClient, Kind::PubAck, 4),
            Decision::Forward
        );
    }

    #[test]
    fn cut_after_publish_fires_at_the_nth_publish_only() {
        let mut e = FaultEngine::new();
        e.arm_at_publish(3, ProxyFault::CutAfterPublish);
        assert_eq!(publish(&mut e), Decision::Forward);
        // Acks and pings do not count as publishes.
        assert_eq!(
            e.on_packet(T0, Direction::ToBroker, Kind::PubRel, 4),
            Decision::Forward
        );
        assert_eq!(publish(&mut e), Decision::Forward);
        assert_eq!(publish(&mut e), Decision::ForwardThenCut);
        assert_eq!(publish(&mut e), Decision::Forward, "fires once");
        assert_eq!(e.fired().len(), 1);
    }

    #[test]
    fn cut_drops_the_triggering_publish() {
        let mut e = FaultEngine::new();
        e.arm_at_publish(1, ProxyFault::Cut);
        assert_eq!(publish(&mut e), Decision::Cut);
        assert_eq!(publish(&mut e), Decision::Forward);
    }

    #[test]
    fn cut_fired_by_the_timeline_asks_for_an_immediate_cut() {
        let mut e = FaultEngine::new();
        assert!(e.fire(T0, ProxyFault::Cut));
        assert!(!e.fire(T0, ProxyFault::DropAcks(1)));
    }

    #[test]
    fn drop_acks_swallows_exactly_n_publish_acks() {
        let mut e = FaultEngine::new();
        e.arm_at_publish(1, ProxyFault::DropAcks(2));
        assert_eq!(publish(&mut e), Decision::Forward);
        let c = Direction::ToClient;
        assert_eq!(e.on_packet(T0, c, Kind::PingResp, 2), Decision::Forward);
        assert_eq!(e.on_packet(T0, c, Kind::PubAck, 4), Decision::Drop);
        assert_eq!(e.on_packet(T0, c, Kind::PubRec, 4), Decision::Drop);
        assert_eq!(e.on_packet(T0, c, Kind::PubComp, 4), Decision::Forward);
    }

    #[test]
    fn held_acks_keep_the_proxy_busy_one_after_the_other() {
        let mut e = FaultEngine::new();
        let delay = Duration::from_millis(300);
        assert!(!e.busy(T0));
        e.fire(T0, ProxyFault::DelayAcks { n: 2, delay });
        e.fire(Duration::from_millis(100), ProxyFault::DelayAcks { n: 1, delay });
        assert!(e.busy(Duration::from_millis(899)));
        assert!(!e.busy(Duration::from_millis(900)));
    }

    #[test]
    fn delay_acks_holds_the_next_n() {
        let mut e = FaultEngine::new();
        let delay = Duration::from_millis(300);
        e.fire(T0, ProxyFault::DelayAcks { n: 1, delay });
        let c = Direction::ToClient;
        assert_eq!(e.on_packet(T0, c, Kind::PubAck, 4), Decision::Delay(delay));
        assert_eq!(e.on_packet(T0, c, Kind::PubAck, 4), Decision::Forward);
    }

    #[test]
    fn throttle_paces_broker_bound_bytes_until_it_expires() {
        let mut e = FaultEngine::new();
        e.fire(
            T0,
            ProxyFault::Throttle {
                bytes_per_s: 1000,
                duration: Duration::from_secs(10),
            },
        );
        let b = Direction::ToBroker;
        // 500 bytes at 1000 B/s: each packet waits behind the previous one.
        assert_eq!(
            e.on_packet(T0, b, Kind::Publish, 500),
            Decision::Delay(Duration::from_millis(500))
        );
        assert_eq!(
            e.on_packet(T0, b, Kind::Publish, 500),
            Decision::Delay(Duration::from_millis(1000))
        );
        // After the link caught up, only the packet's own cost remains.
        let later = Duration::from_secs(5);
        assert_eq!(
            e.on_packet(later, b, Kind::Publish, 100),
            Decision::Delay(Duration::from_millis(100))
        );
        // Acks towards the client are not throttled.
        assert_eq!(
            e.on_packet(T0, Direction::ToClient, Kind::PubAck, 4),
            Decision::Forward
        );
        // Expired.
        assert_eq!(
            e.on_packet(Duration::from_secs(11), b, Kind::Publish, 100),
            Decision::Forward
        );
    }

    #[test]
    fn fired_faults_record_when_their_effect_started_and_ended() {
        let ms = Duration::from_millis;
        let mut e = FaultEngine::new();
        e.arm_at_publish(2, ProxyFault::CutAfterPublish);
        e.fire(ms(5), ProxyFault::DropAcks(2));
        e.fire(ms(6), ProxyFault::DelayAcks { n: 1, delay: ms(300) });
        e.fire(ms(7), ProxyFault::Cut);
        e.fire(
            ms(8),
            ProxyFault::Throttle {
                bytes_per_s: 1 << 50,
                duration: ms(50),
            },
        );
        let c = Direction::ToClient;
        assert_eq!(
            e.on_packet(ms(10), Direction::ToBroker, Kind::Publish, 10),
            Decision::Forward
        );
        assert_eq!(
            e.on_packet(ms(20), Direction::ToBroker, Kind::Publish, 10),
            Decision::ForwardThenCut
        );
        assert_eq!(e.on_packet(ms(30), c, Kind::PubAck, 4), Decision::Drop);
        assert_eq!(e.fired()[0].until, None, "one ack still to drop");
        assert_eq!(e.on_packet(ms(40), c, Kind::PubAck, 4), Decision::Drop);
        assert_eq!(e.on_packet(ms(60), c, Kind::PubAck, 4), Decision::Delay(ms(300)));
        assert_eq!(e.on_packet(ms(70), c, Kind::PubAck, 4), Decision::Forward);
        let spans: Vec<(ProxyFault, Duration, Option<Duration>)> =
            e.fired().iter().map(|f| (f.fault, f.at, f.until)).collect();
        assert_eq!(
            spans.iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(),
            [
                (ms(5), Some(ms(40))),
                (ms(6), Some(ms(360))),
                (ms(7), Some(ms(7))),
                (ms(8), Some(ms(58))),
                (ms(20), Some(ms(20))),
            ]
        );
        assert_eq!(spans[4].0, ProxyFault::CutAfterPublish, "fired by its PUBLISH");
    }

    #[test]
    fn counters_survive_reconnects() {
        let mut e = FaultEngine::new();
        e.arm_at_publish(2, ProxyFault::Cut);
        assert_eq!(publish(&mut e), Decision::Forward);
        // A new connection is just more packets to the engine.
        assert_eq!(
            e.on_packet(T0, Direction::ToBroker, Kind::Connect, 20),
            Decision::Forward
        );
        assert_eq!(publish(&mut e), Decision::Cut);
        assert_eq!(e.published(), 2);
    }
}
