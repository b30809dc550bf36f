//! TMQ, the data subscription of the stand-in, served on `/rest/tmq`: consumer groups ([`group`]), message
//! assembly from the vgroup logs ([`message`], cut by the reported version's model in [`cut`]), the wire format ([`proto`], and [`raw`] for `fetch_raw_data`),
//! one connection ([`session`]),
//! and the server-wide state ([`server`]) over what the store provides ([`backend`], implemented for the
//! stand-in's store in [`store_backend`]).

pub mod backend;
pub mod cut;
pub mod group;
pub mod message;
pub mod proto;
pub mod raw;
pub mod server;
pub mod session;
pub mod store_backend;

pub use backend::TmqBackend;
pub use server::{FetchCounts, ServedMessage, SubscriptionInfo, Tmq, TmqConfig};
pub use session::serve_connection;
pub use store_backend::StoreBackend;
