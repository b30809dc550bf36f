//! A TDengine stand-in: an in-memory store with vgroups and per-vgroup write-ahead logs, served over
//! taosAdapter's WebSocket protocol (`/ws` and `/rest/ws` for SQL, `/rest/tmq` for subscriptions).

pub mod faults;
pub mod tmq;
pub mod types;
pub mod wal;
