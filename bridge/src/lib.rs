//! tmq2mqtt: publish TDengine TMQ subscriptions to MQTT.

#[cfg(unix)]
pub mod mqtt31;
