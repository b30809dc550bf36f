//! The outside world of the tmq2mqtt test bench.
//!
//! - [`tdengine`]: a TDengine stand-in speaking taosAdapter's WebSocket protocol (SQL and TMQ), so that the
//!   unchanged official `taos` client works against it.
//! - [`broker`]: rumqttd embedded in-process, with stop/restart for fault injection.
//! - [`meters`]: a seeded smart-meter fleet writing through the official `taos` client, with a write log.
//! - [`net`]: socket helpers (a free loopback port).
//! - [`world`]: the stand-in, the broker and the fleet started together (`simulator world`).

pub mod broker;
pub mod meters;
pub mod mosquitto;
pub mod net;
pub mod tdengine;
pub mod tls;
pub mod world;
