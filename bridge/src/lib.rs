//! tmq2mqtt: publish TDengine TMQ subscriptions to MQTT, committing offsets only after the broker
//! acknowledged.
//!
//! Layers, outermost first: [`run`] (the pipeline and its shutdown) drives [`source`] (the TMQ consumer)
//! and [`sink`] (the MQTT client), with the sans-IO [`ledger`] deciding what to commit, [`encode`] making
//! the taosx-compatible payloads and [`template`] rendering topics. [`dsn`] parses both DSNs.

pub mod dsn;
pub mod encode;
pub mod ledger;
pub mod template;
