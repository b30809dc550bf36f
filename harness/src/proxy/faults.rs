//! The proxy's fault decisions, sans-IO: fed with each packet (direction, kind, size) and the current time,
//! it answers forward / drop / delay / cut. Faults are armed with a trigger (the Nth PUBLISH towards the
//! broker) or fired at once by the runner's timeline.

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
    cut_after_next_publish: bool,
    drop_acks: u32,
    delay_acks: u32,
    ack_delay: Duration,
    throttle: Option<Throttle>,
    /// Faults that fired, with the time they fired (for the report).
    fired: Vec<(Duration, ProxyFault)>,
    /// When the acks held and the throttle fired so far are through at the latest (held acks queue behind
    /// each other: a run must not end while the proxy still holds some back).
    busy_until: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Throttle {
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
        self.fired.push((now, fault));
        match fault {
            ProxyFault::Cut => return true,
            ProxyFault::CutAfterPublish => self.cut_after_next_publish = true,
            ProxyFault::DropAcks(n) => self.drop_acks += n,
            ProxyFault::DelayAcks { n, delay } => {
                self.delay_acks += n;
                self.ack_delay = delay;
                self.busy_until = self.busy_until.max(now) + delay * n;
            }
            ProxyFault::Throttle {
                bytes_per_s,
                duration,
            } => {
                self.busy_until = self.busy_until.max(now + duration);
                self.throttle = Some(Throttle {
                    bytes_per_s: bytes_per_s.max(1),
                    until: now + duration,
                    next_free: now,
                })
            }
        }
        false
    }

    pub fn published(&self) -> u64 {
        self.published
    }

    pub fn fired(&self) -> &[(Duration, ProxyFault)] {
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
            Direction::ToClient => self.toward_client(kind),
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
        if kind == Kind::Publish && self.cut_after_next_publish {
            self.cut_after_next_publish = false;
            return Decision::ForwardThenCut;
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

    fn toward_client(&mut self, kind: Kind) -> Decision {
        if !kind.is_publish_ack() {
            return Decision::Forward;
        }
        if self.drop_acks > 0 {
            self.drop_acks -= 1;
            return Decision::Drop;
        }
        if self.delay_acks > 0 {
            self.delay_acks -= 1;
            return Decision::Delay(self.ack_delay);
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
