//! tmq2mqtt: publish TDengine TMQ subscriptions to MQTT.

pub mod mqtt31;
