//! TMQ, the data subscription of the stand-in, served on `/rest/tmq`: consumer groups ([`group`]), message
//! assembly from the vgroup logs ([`message`]) and the wire format ([`proto`]).

pub mod group;
pub mod message;
pub mod proto;
