//! What the fault proxy saw on the wire between a bridge and the broker: one record per MQTT packet (and
//! per connection opened or closed), in the order the proxy handled them.

use bytes::Bytes;
use serde::Serialize;

/// Which way a packet travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Bridge → broker.
    ToBroker,
    /// Broker → bridge.
    ToClient,
}

/// MQTT control packet types, plus connection events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    Connect,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    PingReq,
    PingResp,
    Disconnect,
    Auth,
    /// A packet whose type nibble is reserved (0 or 15).
    Reserved,
    /// The proxy accepted a connection.
    Opened,
    /// The connection ended (either side closed, or a fault cut it).
    Closed,
}

impl Kind {
    pub fn from_type_nibble(n: u8) -> Kind {
        match n {
            1 => Kind::Connect,
            2 => Kind::ConnAck,
            3 => Kind::Publish,
            4 => Kind::PubAck,
            5 => Kind::PubRec,
            6 => Kind::PubRel,
            7 => Kind::PubComp,
            8 => Kind::Subscribe,
            9 => Kind::SubAck,
            10 => Kind::Unsubscribe,
            11 => Kind::UnsubAck,
            12 => Kind::PingReq,
            13 => Kind::PingResp,
            14 => Kind::Disconnect,
            15 => Kind::Auth,
            _ => Kind::Reserved,
        }
    }

    /// Acknowledgements a broker sends for a client's PUBLISH flow.
    pub fn is_publish_ack(self) -> bool {
        matches!(self, Kind::PubAck | Kind::PubRec | Kind::PubComp)
    }
}

/// What the proxy did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    #[default]
    Forwarded,
    /// Held back by a delay or throttle fault, then forwarded.
    Delayed,
    /// Swallowed by a fault: the other side never saw it.
    Dropped,
}

/// Which side ended a connection, as the proxy saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    /// The bridge closed its socket, failed, or sent something unreadable.
    Bridge,
    /// The broker closed its socket, failed, sent something unreadable, or could not be reached.
    Broker,
    /// A proxy fault cut the connection.
    Fault,
}

/// One packet (or connection event) on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireRecord {
    /// Connection number, from 1, in accept order.
    pub conn: u32,
    /// Microseconds since the proxy started.
    pub at_us: u64,
    pub dir: Direction,
    pub kind: Kind,
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    /// Packet identifier (0 when the packet has none).
    pub pkid: u16,
    pub topic: Option<String>,
    /// PUBLISH payload (shared, not copied).
    #[serde(skip)]
    pub payload: Option<Bytes>,
    /// CONNACK return/reason code; protocol level for CONNECT.
    pub code: Option<u8>,
    pub fate: Fate,
    /// Why a connection closed, or why a packet could not be decoded beyond its fixed header.
    pub note: Option<String>,
    /// For [`Kind::Closed`]: who ended the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<ClosedBy>,
}

impl WireRecord {
    pub fn event(conn: u32, at_us: u64, kind: Kind) -> WireRecord {
        WireRecord {
            conn,
            at_us,
            dir: Direction::ToBroker,
            kind,
            dup: false,
            qos: 0,
            retain: false,
            pkid: 0,
            topic: None,
            payload: None,
            code: None,
            fate: Fate::Forwarded,
            note: None,
            closed_by: None,
        }
    }
}
