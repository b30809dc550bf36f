//! Shrinking a failing run: drop faults, bridges, subscribers, rows, tables and chaos one step at a time, keep
//! each step that still breaks the same invariant, stop when no step does (or the budget of runs is spent).

use crate::scenario::{validate, Chaos, FaultAction, Scenario, Trigger};

use super::generate::{contract, drop_acks_healed, pace_late_joiners};

/// The contract's expectations again, after a change to faults or bridges.
pub fn recontract(s: &mut Scenario) {
    let target = s.bridges.first().and_then(|b| b.target().ok());
    let qos = target.as_ref().map_or(0, |t| t.qos);
    let window = target.as_ref().map_or(10_000, |t| t.window as u64);
    s.expect = contract(s, qos, window);
}

/// Smaller variants of `s`, the biggest cuts first; each is valid.
pub fn candidates(s: &Scenario) -> Vec<Scenario> {
    let mut out: Vec<Scenario> = Vec::new();
    // Faults, one at a time (the last first: later faults often only pile on).
    for i in (0..s.faults.len()).rev() {
        let mut c = s.clone();
        c.faults.remove(i);
        out.push(c);
    }
    // Bridges beyond the first, with the faults aimed at them.
    for i in (1..s.bridges.len()).rev() {
        let mut c = s.clone();
        let gone = c.bridges.remove(i).name;
        c.faults.retain(|f| f.bridge.as_deref() != Some(gone.as_str()));
        if c.bridges.len() == 1 {
            c.faults.retain(|f| f.action != FaultAction::BridgeKillNoRestart);
        }
        out.push(c);
    }
    // Subscribers beyond the first.
    for i in (1..s.subscribers.len()).rev() {
        let mut c = s.clone();
        c.subscribers.remove(i);
        out.push(c);
    }
    // Rows, tables, vgroups, chaos, late joiners.
    if s.data.rows >= 20 {
        let mut c = s.clone();
        c.data.rows = s.data.rows / 2;
        for f in &mut c.faults {
            match &mut f.at {
                Trigger::Published(n) | Trigger::Written(n) | Trigger::Delivered(n) => {
                    *n = (*n).min(c.data.rows / 2).max(1)
                }
                Trigger::After(_) => {}
            }
        }
        out.push(c);
    }
    if s.data.meters > 1 {
        let mut c = s.clone();
        c.data.meters = s.data.meters / 2;
        out.push(c);
    }
    if s.data.vgroups > 1 {
        let mut c = s.clone();
        c.data.vgroups = 1;
        out.push(c);
    }
    if s.data.chaos != Chaos::default() {
        let mut c = s.clone();
        c.data.chaos = Chaos::default();
        out.push(c);
    }
    if s.bridges.iter().any(|b| b.start_after.is_some()) {
        let mut c = s.clone();
        for b in &mut c.bridges {
            b.start_after = None;
        }
        out.push(c);
    }
    for c in &mut out {
        pace_late_joiners(c);
        recontract(c);
    }
    out.retain(|c| validate(c).is_empty() && drop_acks_healed(c));
    out
}

/// Size of a scenario for "smallest": faults, bridges, subscribers, then rows.
pub fn size(s: &Scenario) -> (usize, usize, usize, u64, u32) {
    (
        s.faults.len(),
        s.bridges.len(),
        s.subscribers.len(),
        s.data.rows,
        s.data.meters,
    )
}

#[cfg(test)]
mod tests {
    use super::super::generate::{generate, GenOptions};
    use super::*;

    #[test]
    fn every_candidate_is_smaller_and_valid() {
        let opts = GenOptions::default();
        for n in 0..100 {
            let s = generate(3, n, &opts);
            for c in candidates(&s) {
                assert!(validate(&c).is_empty());
                assert!(
                    size(&c) < size(&s) || c.data != s.data || c.bridges != s.bridges,
                    "run {n}"
                );
            }
        }
    }

    #[test]
    fn recontract_keeps_the_generated_expectations() {
        let opts = GenOptions::default();
        for n in 0..100 {
            let s = generate(5, n, &opts);
            let mut c = s.clone();
            recontract(&mut c);
            assert_eq!(c.expect, s.expect, "run {n}");
        }
    }
}
