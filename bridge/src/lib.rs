//! tmq2mqtt: publish TDengine TMQ subscriptions to MQTT.
