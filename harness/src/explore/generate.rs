//! A random but valid scenario from a seed: the fleet's shape, the topic, one to three bridges in one consumer
//! group, the MQTT version and QoS, the broker, the subscribers and a fault schedule of up to four faults of
//! every kind the harness has — with the expectations the delivery contract promises for exactly that
//! combination, so the ordinary verdict judges it and `harness run` replays it.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{
    BridgeDef, BridgeMode, BrokerKind, Chaos, Data, Delivery, Expect, FaultAction, FaultDef, LossCause,
    MqttVersion, Scenario, SubscriberDef, TopicDef, Trigger, WorldDef,
};

/// What the generator may use beyond the seed.
#[derive(Debug, Clone, Default)]
pub struct GenOptions {
    /// Mosquitto is installed: worlds may use it (and MQTT 3.1, which rumqttd does not speak).
    pub mosquitto: bool,
    /// `K=V` set on every bridge's target DSN (e.g. `commit=before-ack`).
    pub bridge_params: Vec<(String, String)>,
}

/// Every fault kind the harness can fire.
pub const FAULT_KINDS: [FaultAction; 11] = [
    FaultAction::Cut,
    FaultAction::CutAfterPublish,
    FaultAction::DropAcks,
    FaultAction::DelayAcks,
    FaultAction::Throttle,
    FaultAction::BrokerRestart,
    FaultAction::BridgeKill,
    FaultAction::BridgeKillNoRestart,
    FaultAction::StandinDrop,
    FaultAction::StandinStall,
    FaultAction::StandinFailCalls,
];

/// The seed of run `n` of an exploration seeded with `seed` (splitmix64 of both), so runs are independent of
/// how many ran before or in parallel.
pub fn run_seed(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The name of run `n`: also the file it is written to when it fails.
pub fn run_name(seed: u64, n: u64) -> String {
    format!("explore-{seed}-{n}")
}

/// Sets (or replaces) `key=value` in a DSN's query.
pub fn set_param(dsn: &str, key: &str, value: &str) -> String {
    let (base, query) = dsn.split_once('?').unwrap_or((dsn, ""));
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(key))
        .map(str::to_string)
        .collect();
    parts.push(format!("{key}={value}"));
    format!("{base}?{}", parts.join("&"))
}

/// Faults after which rows may legitimately arrive again (each re-sends at most one `window`).
pub fn redelivers(action: FaultAction) -> bool {
    !matches!(
        action,
        FaultAction::DelayAcks | FaultAction::Throttle | FaultAction::StandinStall
    )
}

/// Run `n` of the exploration seeded with `seed`.
pub fn generate(seed: u64, n: u64, opts: &GenOptions) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(run_seed(seed, n));
    let r = &mut rng;

    let mosquitto = opts.mosquitto && r.gen_bool(0.3);
    let version = match (mosquitto, r.gen_range(0..3)) {
        (true, 0) => "3.1",
        (_, 1) => "5.0",
        _ => "3.1.1",
    };
    let bridge_v = if version == "5.0" {
        MqttVersion::V5
    } else {
        MqttVersion::V311
    };
    let qos: u8 = *[0u8, 1, 1, 1, 2, 2, 2].choose(r).expect("non-empty");
    let window = *[20u64, 50, 200, 10_000].choose(r).expect("non-empty");

    // The fleet: small and quick.
    let meters = r.gen_range(1..=6u32);
    let rows = r.gen_range(40..=300u64);
    let chaos = if r.gen_bool(0.25) {
        Chaos {
            out_of_order: r.gen_range(0.0..0.1),
            repeated_ts: r.gen_range(0.0..0.1),
            nulls: r.gen_range(0.0..0.05),
            new_meters: r.gen_range(0..=2),
            ..Chaos::default()
        }
    } else {
        Chaos::default()
    };
    let data = Data {
        meters,
        rows,
        vgroups: r.gen_range(1..=4),
        batch: r.gen_range(5..=40),
        rate: r.gen_bool(0.5).then(|| r.gen_range(500..=4000)),
        chaos,
        ..Data::default()
    };

    // The topic, with or without meta, and where rows go.
    let meta = r.gen_bool(0.3);
    let topic_sql = if meta {
        "create topic explore_q with meta as stable power.meters".to_string()
    } else {
        "create topic explore_q as select ts, tbname, current, voltage, phase, groupid, location from power.meters"
            .to_string()
    };
    let (template, all_filter, one_filter) = *[
        ("meters/{table}", "meters/#", "meters/d0"),
        ("power/{vgroup_id}/{table}", "power/#", "power/+/d0"),
        ("m/{database}/{table}", "m/+/+", "m/power/d0"),
    ]
    .choose(r)
    .expect("non-empty");

    // One to three bridges in one group.
    let n_bridges = *[1usize, 1, 1, 2, 2, 3].choose(r).expect("non-empty");
    let persistent = mosquitto && r.gen_bool(0.3);
    let mut bridges: Vec<BridgeDef> = (0..n_bridges)
        .map(|i| {
            let name = format!("b{i}");
            let mut from = format!(
                "tmq+ws://root:taosdata@{{tdengine}}/explore_q?group.id=g-explore&client.id={name}&auto.offset.reset=earliest"
            );
            let mut to = format!(
                "mqtt://{{broker}}?topic={template}&qos={qos}&version={version}&client_id={name}&window={window}"
            );
            if meta {
                from.push_str("&with.meta=true");
                to.push_str("&meta_topic=meta/{database}");
            }
            if persistent {
                to.push_str("&clean_session=false");
            }
            BridgeDef {
                name,
                from,
                to,
                mode: if r.gen_bool(0.3) {
                    BridgeMode::Process
                } else {
                    BridgeMode::InProcess
                },
                proxy: true,
                // A late joiner forces a rebalance mid-stream.
                start_after: (i > 0 && r.gen_bool(0.4))
                    .then(|| Duration::from_millis(r.gen_range(200..=1500))),
                expect_error: None,
            }
        })
        .collect();

    // Subscribers: the first sees every row (the `delivered` trigger counts it).
    let n_subs = r.gen_range(1..=3usize);
    let sub_version = |r: &mut ChaCha8Rng| {
        if mosquitto && r.gen_bool(0.5) {
            if r.gen_bool(0.5) {
                MqttVersion::V5
            } else {
                MqttVersion::V311
            }
        } else {
            // rumqttd: subscribe with the publisher's protocol version.
            bridge_v
        }
    };
    let mut subscribers = Vec::new();
    for i in 0..n_subs {
        let filter = match (i, r.gen_range(0..3)) {
            (0, _) | (_, 0) => all_filter,
            (_, 1) if meta => "meta/#",
            _ => one_filter,
        };
        subscribers.push(SubscriberDef {
            name: format!("s{i}"),
            filter: filter.to_string(),
            qos: *[0u8, 1, 1, 2, 2].choose(r).expect("non-empty"),
            version: sub_version(r),
            clean_session: r.gen_bool(0.7),
            withhold_acks: false,
        });
    }

    // Zero to four faults at random triggers.
    let n_faults = *[0usize, 1, 1, 2, 2, 3, 4].choose(r).expect("non-empty");
    let mut faults = Vec::new();
    let mut dead = 0usize;
    for _ in 0..n_faults {
        let action = *FAULT_KINDS.choose(r).expect("non-empty");
        let target = r.gen_range(0..n_bridges);
        if action == FaultAction::BridgeKillNoRestart {
            // Someone must be left to take the vgroups over.
            if dead + 1 >= n_bridges {
                continue;
            }
            dead += 1;
        }
        if matches!(action, FaultAction::BridgeKill | FaultAction::BridgeKillNoRestart) {
            bridges[target].mode = BridgeMode::Process;
        }
        let at = match r.gen_range(0..4) {
            // PUBLISH counts are per bridge: with several, how many a bridge gets depends on the split.
            0 if n_bridges == 1 => Trigger::Published(r.gen_range(1..=rows / 2)),
            0 | 1 => Trigger::Written(r.gen_range(1..rows)),
            2 => Trigger::Delivered(r.gen_range(1..=rows / 2)),
            _ => Trigger::After(Duration::from_millis(r.gen_range(100..=3000))),
        };
        let mut f = FaultDef {
            at,
            action,
            bridge: (n_bridges > 1).then(|| bridges[target].name.clone()),
            count: None,
            duration: None,
            bytes_per_s: None,
            code: None,
            sql: Vec::new(),
        };
        match action {
            FaultAction::DropAcks => f.count = Some(r.gen_range(1..=5)),
            FaultAction::DelayAcks => {
                f.count = Some(r.gen_range(5..=50));
                f.duration = Some(Duration::from_millis(r.gen_range(100..=500)));
            }
            FaultAction::Throttle => {
                f.bytes_per_s = Some(r.gen_range(5_000..=50_000));
                f.duration = Some(Duration::from_millis(r.gen_range(500..=2000)));
            }
            FaultAction::StandinStall => f.duration = Some(Duration::from_millis(r.gen_range(100..=1000))),
            FaultAction::StandinFailCalls => {
                f.count = Some(r.gen_range(1..=3));
                f.code = Some(0x0B00);
            }
            _ => {}
        }
        if action == FaultAction::DropAcks {
            // A swallowed ack leaves its flow open until the connection breaks (MQTT re-sends only on
            // reconnect): a cut of the same bridge follows, after the ack was dropped.
            if matches!(f.at, Trigger::Delivered(_)) {
                f.at = Trigger::Written(r.gen_range(1..rows));
            }
            faults.push(f.clone());
            f = FaultDef {
                at: Trigger::After(HEAL_AFTER),
                action: FaultAction::Cut,
                count: None,
                ..f
            };
        }
        faults.push(f);
    }

    let mut s = Scenario {
        name: run_name(seed, n),
        description: format!(
            "Generated by `harness explore --seed {seed}` (run {n}); the expectations are the delivery contract's for this combination."
        ),
        seed: r.gen_range(0..1u64 << 31),
        deadline: Duration::from_secs(if dead > 0 { 30 } else { 15 }),
        quiet: Duration::from_millis(400),
        tags: vec!["explore".into()],
        world: WorldDef {
            broker: if mosquitto {
                BrokerKind::Mosquitto
            } else {
                BrokerKind::Embedded
            },
            ..WorldDef::default()
        },
        data,
        topics: vec![TopicDef {
            name: "explore_q".into(),
            sql: topic_sql,
        }],
        bridges,
        subscribers,
        faults,
        expect: Expect::default(),
        snapshot: false,
    };
    pace_late_joiners(&mut s);
    for b in &mut s.bridges {
        for (k, v) in &opts.bridge_params {
            b.to = set_param(&b.to, k, v);
        }
    }
    s.expect = contract(&s, qos, window);
    s
}

/// When the cut that heals a `drop-acks` fires (every other trigger fires within a few seconds).
pub const HEAL_AFTER: Duration = Duration::from_secs(5);

/// Every `drop-acks` is healed by a later cut of the same bridge (see [`generate`]).
pub fn drop_acks_healed(s: &Scenario) -> bool {
    s.faults
        .iter()
        .filter(|f| f.action == FaultAction::DropAcks)
        .all(|d| {
            s.faults.iter().any(|c| {
                c.action == FaultAction::Cut && c.bridge == d.bridge && c.at == Trigger::After(HEAL_AFTER)
            })
        })
}

/// A bridge that starts late must start while data still flows (the run ends once data and faults are
/// done): the fleet's rate is lowered so that writing lasts a second longer than the latest start.
pub fn pace_late_joiners(s: &mut Scenario) {
    let Some(latest) = s.bridges.iter().filter_map(|b| b.start_after).max() else {
        return;
    };
    let ms = latest.as_millis() as u64 + 1000;
    let pace = (s.data.rows * 1000 / ms).max(1);
    s.data.rate = Some(s.data.rate.map_or(pace, |r| r.min(pace)));
}

/// What the delivery contract promises for this scenario (docs/delivery.md, the README's table).
pub fn contract(s: &Scenario, qos: u8, window: u64) -> Expect {
    let late_joiners = s.bridges.iter().filter(|b| b.start_after.is_some()).count() as u64;
    let redelivery = s.faults.iter().filter(|f| redelivers(f.action)).count() as u64 + late_joiners;
    let broker_restart = s.faults.iter().any(|f| f.action == FaultAction::BrokerRestart);
    let mut allowed_losses = Vec::new();
    if qos == 0 {
        allowed_losses = vec![
            LossCause::NeverPublished,
            LossCause::NeverAcked,
            LossCause::Broker,
        ];
    } else if broker_restart {
        // A broker that lost its sessions loses what it acknowledged but had not delivered.
        allowed_losses.push(LossCause::Broker);
    }
    let exactly_once = qos == 2 && redelivery == 0 && s.subscribers.iter().all(|sub| sub.qos == 2);
    // After a lost TDengine connection everything not committed comes again: besides the unacknowledged
    // window, the rows polled but not yet published (docs/delivery.md) — no window bound.
    let resubscribes = s
        .faults
        .iter()
        .any(|f| matches!(f.action, FaultAction::StandinDrop | FaultAction::StandinFailCalls));
    Expect {
        delivery: if exactly_once {
            Delivery::ExactlyOnce
        } else {
            Delivery::AtLeastOnce
        },
        // Each event that re-sends re-sends at most one window.
        max_duplicates: (!exactly_once && !resubscribes).then_some(window * redelivery),
        per_table_order: true,
        allowed_losses,
        ..Expect::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_scenarios() {
        let opts = GenOptions {
            mosquitto: true,
            bridge_params: vec![],
        };
        for n in 0..50 {
            assert_eq!(generate(7, n, &opts), generate(7, n, &opts));
        }
        assert_ne!(generate(7, 0, &opts), generate(8, 0, &opts));
    }

    #[test]
    fn generated_scenarios_are_valid_and_cover_every_fault_kind() {
        let opts = GenOptions {
            mosquitto: true,
            bridge_params: vec![("commit".into(), "before-ack".into())],
        };
        let mut kinds = Vec::new();
        for n in 0..300 {
            let s = generate(1, n, &opts);
            let errs = crate::scenario::validate(&s);
            assert!(errs.is_empty(), "run {n}: {errs:?}");
            assert!(s.bridges.iter().all(|b| b.to.contains("commit=before-ack")));
            assert!(drop_acks_healed(&s), "run {n}");
            for f in &s.faults {
                if !kinds.contains(&f.action) {
                    kinds.push(f.action);
                }
            }
        }
        assert_eq!(kinds.len(), FAULT_KINDS.len(), "{kinds:?}");
    }

    #[test]
    fn set_param_replaces_or_appends() {
        assert_eq!(set_param("mqtt://h?a=1&b=2", "a", "3"), "mqtt://h?b=2&a=3");
        assert_eq!(set_param("mqtt://h", "a", "3"), "mqtt://h?a=3");
    }
}
