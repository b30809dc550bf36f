//! The fault timeline: arms the proxy's packet-count faults up front, then fires every other fault when its
//! trigger is reached, and reports which fired (and when) and which never did — the verdict judges both.

use std::time::{Duration, Instant};

use crate::proxy::ProxyFault;
use crate::recorder::Recorder;
use crate::scenario::{FaultAction, FaultDef, Scenario, Trigger};
use crate::verdict::FaultLog;

use super::sql::Sql;
use super::world::{Broker, Tdengine};
use super::{BridgeSlot, FleetRun};

/// The proxy's own form of a fault, for the faults the proxy executes.
pub(super) fn proxy_fault(f: &FaultDef) -> Option<ProxyFault> {
    Some(match f.action {
        FaultAction::Cut => ProxyFault::Cut,
        FaultAction::CutAfterPublish => ProxyFault::CutAfterPublish,
        FaultAction::DropAcks => ProxyFault::DropAcks(f.count.unwrap_or(1)),
        FaultAction::DelayAcks => ProxyFault::DelayAcks {
            n: f.count.unwrap_or(1),
            delay: f.duration.unwrap_or(Duration::from_millis(100)),
        },
        FaultAction::Throttle => ProxyFault::Throttle {
            bytes_per_s: f.bytes_per_s.unwrap_or(10_000),
            duration: f.duration.unwrap_or(Duration::from_secs(1)),
        },
        _ => return None,
    })
}

/// A fault's name as scenario files write it (`broker-restart`).
fn action_name(a: FaultAction) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{a:?}"))
}

/// Whether the proxy counts this fault's trigger itself (armed at start, fired by the proxy).
fn armed_in_proxy(f: &FaultDef) -> bool {
    matches!(f.at, Trigger::Published(_)) && proxy_fault(f).is_some()
}

/// The bridge a fault hits: the one it names, else the first.
fn target_of<'a>(s: &'a Scenario, f: &'a FaultDef) -> &'a str {
    f.bridge.as_deref().unwrap_or(&s.bridges[0].name)
}

/// Proxy faults that fire after the bridge's `n`th PUBLISH, armed on `bridge`'s proxy before it starts.
pub(super) fn armed_for<'a>(
    s: &'a Scenario,
    bridge: &'a str,
) -> impl Iterator<Item = (u64, ProxyFault)> + 'a {
    s.faults
        .iter()
        .filter_map(move |f| match (&f.at, proxy_fault(f)) {
            (Trigger::Published(n), Some(pf)) if target_of(s, f) == bridge => Some((*n, pf)),
            _ => None,
        })
}

/// What the timeline reads to decide whether a trigger is reached.
pub(super) struct Progress<'a> {
    pub fleet: Option<&'a FleetRun>,
    pub recorders: &'a [Recorder],
    pub started: Instant,
}

/// The faults of one run and which of them fired.
pub(super) struct Timeline<'a> {
    s: &'a Scenario,
    fired: Vec<bool>,
    log: Vec<String>,
    /// The faults the timeline fired, as time spans for the report's pictures.
    spans: Vec<crate::trace::Span>,
}

impl<'a> Timeline<'a> {
    pub fn new(s: &'a Scenario) -> Timeline<'a> {
        Timeline {
            s,
            fired: s.faults.iter().map(armed_in_proxy).collect(),
            log: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Whether every fault fired (or was armed in its proxy).
    pub fn done(&self) -> bool {
        self.fired.iter().all(|f| *f)
    }

    /// Starts delayed bridges whose time came and fires every fault whose trigger is reached.
    pub async fn step(
        &mut self,
        progress: &Progress<'_>,
        slots: &mut [BridgeSlot],
        broker: &mut Broker,
        td: &Tdengine,
        sql: &Sql,
    ) -> Result<(), String> {
        let elapsed = progress.started.elapsed();
        for slot in slots.iter_mut().filter(|x| x.running.is_none()) {
            if slot.start_after.is_some_and(|d| elapsed >= d) {
                slot.start()?;
            }
        }
        let written = progress
            .fleet
            .map(|f| f.write_log.lock().rows_written())
            .unwrap_or(0);
        let delivered = progress.recorders.first().map(|r| r.count() as u64).unwrap_or(0);
        for (i, f) in self.s.faults.iter().enumerate() {
            if self.fired[i] {
                continue;
            }
            let slot = slots
                .iter()
                .position(|x| x.name == target_of(self.s, f))
                .unwrap_or(0);
            let due = match f.at {
                Trigger::Published(n) => slots[slot].proxy.as_ref().is_some_and(|p| p.published() >= n),
                Trigger::Written(n) => written >= n,
                Trigger::Delivered(n) => delivered >= n,
                Trigger::After(d) => elapsed >= d,
            };
            if due {
                self.fired[i] = true;
                self.log.push(format!("{} at {elapsed:?}", action_name(f.action)));
                let from = progress.started.elapsed();
                fire(f, &mut slots[slot], broker, td, sql).await?;
                // The proxy records its own faults with the moments it acted; the rest last until
                // `fire` returned (a restart done) or for their duration (a stall), whichever is later.
                if proxy_fault(f).is_none() {
                    let to = progress
                        .started
                        .elapsed()
                        .max(from + f.duration.unwrap_or_default());
                    self.spans.push(crate::trace::Span {
                        label: action_name(f.action),
                        from_s: from.as_secs_f64(),
                        to_s: to.as_secs_f64(),
                    });
                }
            }
        }
        Ok(())
    }

    /// What fired and what never did (for the verdict), and the fired faults' spans (for the report).
    pub fn into_log(self) -> (FaultLog, Vec<crate::trace::Span>) {
        let unfired = self
            .s
            .faults
            .iter()
            .zip(&self.fired)
            .filter(|(_, fired)| !**fired)
            .map(|(f, _)| format!("{} at {:?}", action_name(f.action), f.at))
            .collect();
        (
            FaultLog {
                fired: self.log,
                unfired,
            },
            self.spans,
        )
    }
}

async fn fire(
    f: &FaultDef,
    slot: &mut BridgeSlot,
    broker: &mut Broker,
    td: &Tdengine,
    sql: &Sql,
) -> Result<(), String> {
    if let Some(pf) = proxy_fault(f) {
        if let Some(p) = &slot.proxy {
            p.fire(pf);
        }
        return Ok(());
    }
    match f.action {
        FaultAction::BrokerRestart => broker.restart().await.map_err(|e| e.to_string()),
        FaultAction::BridgeKill | FaultAction::BridgeKillNoRestart => {
            if let Some(r) = slot.running.as_mut() {
                r.kill9().await;
                if f.action == FaultAction::BridgeKill {
                    r.restart().map_err(|e| e.to_string())?;
                } else {
                    slot.killed_for_good = true;
                }
            }
            Ok(())
        }
        FaultAction::StandinDrop => {
            if let Some(s) = td.standin() {
                s.drop_connections();
            }
            Ok(())
        }
        FaultAction::StandinStall => {
            if let Some(s) = td.standin() {
                s.stall_replies(f.duration.unwrap_or(Duration::from_secs(1)));
            }
            Ok(())
        }
        FaultAction::BridgeStop => {
            if let Some(r) = slot.running.take() {
                slot.stopped = Some(r.stop(Duration::from_secs(15)).await);
            }
            Ok(())
        }
        FaultAction::Sql => {
            for stmt in &f.sql {
                sql.exec(stmt)
                    .await
                    .map_err(|e| format!("fault sql {stmt:?}: {e}"))?;
            }
            Ok(())
        }
        FaultAction::StandinFailCalls => {
            if let Some(s) = td.standin() {
                s.fail_next(f.count.unwrap_or(1), f.code.unwrap_or(0xFFFF) as i32);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
