//! The outside world of the tmq2mqtt test bench.
//!
//! - [`tdengine`]: a TDengine stand-in speaking taosAdapter's WebSocket protocol (SQL and TMQ), so that the
//!   unchanged official `taos` client works against it.

pub mod mosquitto;
pub mod tdengine;
pub mod tls;
