//! Running the bridge: TMQ messages in, MQTT publishes out, offsets committed behind the broker's acks.
//!
//! The stages, in the order a row passes them: the source task ([`crate::source`]) polls TMQ; the
//! [`encode_stage`] turns each message into publishes; the [`pipeline`] — on the MQTT thread
//! (`mqtt_thread`) beside rumqttc's event loop — hands them to the client and feeds the sans-IO
//! [`Ledger`](crate::ledger::Ledger) and [`Lifecycle`](crate::lifecycle::Lifecycle); the commit task
//! (`commit`) commits the positions the ledger released. [`Bridge`] wires them together; [`Stats`]
//! counts what happens.
//!
//! Shutdown (the future passed to [`Bridge::run`] resolves): stop polling, keep serving acks until
//! nothing is unacknowledged or `shutdown_timeout` passes, commit, publish the retained `offline` status
//! (with `status_topic`) and wait up to [`STATUS_ACK_TIMEOUT`] for its ack, send DISCONNECT, close the
//! consumer.
//!
//! Status (`status_topic`): the retained `online` is queued ahead of every row on each `Connected` event
//! — after every CONNACK, fresh or resumed session — so it is the first new publish of each connection.
//! It goes through the ledger as a control publish, so the packet-id correlation of rows stays exact.
//! The Last Will (`offline`, retained, QoS 1) is in the CONNECT (see `sink`). A connection lost during
//! shutdown already made the broker publish the Will, so the explicit `offline` is then not waited for.

mod bridge;
mod commit;
mod encode_stage;
mod mqtt_thread;
mod pipeline;
mod stats;

pub use crate::lifecycle::STATUS_ACK_TIMEOUT;
pub use bridge::{run, Bridge, BridgeConfig, BridgeError};
pub use encode_stage::{encode_stage, EncodedMessage, Staged};
pub use mqtt_thread::runtime_workers;
pub use pipeline::pipeline;
pub use stats::{RunSummary, Skip, Stats};
