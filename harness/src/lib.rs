//! Scenario harness for tmq2mqtt: scenario files, a recording MQTT fault proxy, recording subscribers and
//! a verdict that proves delivery and QoS semantics from what subscribers and the wire saw.

pub mod bench;
pub mod bridge_bin;
pub mod explore;
pub mod proxy;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod trace;
pub mod verdict;
pub mod wire;
