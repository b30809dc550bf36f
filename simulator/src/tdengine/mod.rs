//! A TDengine stand-in: an in-memory store with vgroups and per-vgroup write-ahead logs, served over
//! taosAdapter's WebSocket protocol (`/ws` and `/rest/ws` for SQL, `/rest/tmq` for subscriptions).
//!
//! Layers, each using only those before it: [`types`], [`sql`] (lexer, AST, parser), [`eval`], [`wal`],
//! [`topic`] → [`catalog`] (what exists) → [`store`] (the shared, locked state) → [`exec`] (SQL against
//! the store; it defines `Store::execute`) → [`tmq`] and [`server`] (the protocols).

pub mod block;
pub mod catalog;
pub mod error;
pub mod eval;
pub mod exec;
pub mod faults;
pub mod fixture;
pub mod server;
pub mod sql;
pub mod store;
pub mod tmq;
pub mod topic;
pub mod types;
pub mod wal;
pub mod wkt;

pub use catalog::{DbInfo, StableInfo, TableInfo};
pub use error::{TdError, TdResult};
pub use server::{ServerCtx, TdConfig, TdServer};
pub use store::{QueryResult, Store, TmqInfo};
pub use topic::{ProjectedRows, TopicDef, TopicKind};
