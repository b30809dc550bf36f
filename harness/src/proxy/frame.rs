//! Sans-IO MQTT framing for the proxy: cut a byte stream into whole packets (forwarded byte for byte) and
//! describe each one with rumqttc's own codecs — v4 (3.1.1) or v5, whichever the CONNECT announced. MQTT 3.1
//! differs from 3.1.1 only in its CONNECT (and CONNACK's reserved first byte): every other packet is read with
//! the v4 codec.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self, v4};
use rumqttc::v5::mqttbytes::v5;

use crate::wire::Kind;

/// Largest packet the proxy frames; anything bigger is a protocol error here.
pub const MAX_PACKET: usize = 256 * 1024 * 1024;

/// Protocol of a connection, from its CONNECT's protocol level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V31,
    V311,
    V5,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("malformed MQTT fixed header: {0}")]
    Malformed(String),
}

/// Accumulates bytes and yields complete packets.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
}

impl Framer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete packet's bytes, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        match mqttbytes::check(self.buf.iter(), MAX_PACKET) {
            Ok(header) => Ok(Some(self.buf.split_to(header.frame_length()).freeze())),
            Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(FrameError::Malformed(e.to_string())),
        }
    }
}

/// What a packet says, as far as the harness cares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Described {
    pub kind: Option<Kind>,
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub pkid: u16,
    pub topic: Option<String>,
    pub payload: Option<Bytes>,
    pub code: Option<u8>,
    /// Set when the codec could not decode the body.
    pub undecoded: Option<String>,
}

/// The protocol a CONNECT packet announces (`None` if the bytes are not a CONNECT).
pub fn connect_protocol(frame: &[u8]) -> Option<Protocol> {
    if frame.first()? >> 4 != 1 {
        return None;
    }
    // Skip the remaining-length varint.
    let mut i = 1;
    while *frame.get(i)? & 0x80 != 0 {
        i += 1;
    }
    i += 1;
    let name_len = u16::from_be_bytes([*frame.get(i)?, *frame.get(i + 1)?]) as usize;
    let level = *frame.get(i + 2 + name_len)?;
    Some(match level {
        3 => Protocol::V31,
        5 => Protocol::V5,
        _ => Protocol::V311,
    })
}

/// Describes one framed packet; `protocol` is the connection's (3.1.1 until a CONNECT says otherwise).
pub fn describe(frame: &Bytes, protocol: Protocol) -> Described {
    let byte1 = frame.first().copied().unwrap_or(0);
    let kind = Kind::from_type_nibble(byte1 >> 4);
    // Fixed-header facts first: they hold even when the body cannot be decoded.
    let mut d = Described {
        kind: Some(kind),
        ..Described::default()
    };
    if kind == Kind::Publish {
        d.dup = byte1 & 0b1000 != 0;
        d.qos = (byte1 >> 1) & 0b11;
        d.retain = byte1 & 1 != 0;
    }
    match protocol {
        // rumqttc's v4 codec refuses a 3.1 CONNECT (protocol name "MQIsdp", level 3); nothing else differs.
        Protocol::V31 if kind == Kind::Connect => d.code = Some(3),
        Protocol::V31 | Protocol::V311 => match v4::Packet::read(&mut BytesMut::from(&frame[..]), MAX_PACKET)
        {
            Ok(p) => fill_v4(&mut d, p),
            Err(e) => d.undecoded = Some(e.to_string()),
        },
        Protocol::V5 => match v5::Packet::read(&mut BytesMut::from(&frame[..]), Some(MAX_PACKET as u32)) {
            Ok(p) => fill_v5(&mut d, p),
            Err(e) => d.undecoded = Some(e.to_string()),
        },
    }
    d
}

fn fill_v4(d: &mut Described, p: v4::Packet) {
    match p {
        v4::Packet::Connect(_) => d.code = Some(4),
        v4::Packet::ConnAck(a) => d.code = Some(a.code as u8),
        v4::Packet::Publish(p) => {
            d.pkid = p.pkid;
            d.topic = Some(p.topic);
            d.payload = Some(p.payload);
        }
        v4::Packet::PubAck(a) => d.pkid = a.pkid,
        v4::Packet::PubRec(a) => d.pkid = a.pkid,
        v4::Packet::PubRel(a) => d.pkid = a.pkid,
        v4::Packet::PubComp(a) => d.pkid = a.pkid,
        v4::Packet::Subscribe(s) => d.pkid = s.pkid,
        v4::Packet::SubAck(s) => d.pkid = s.pkid,
        v4::Packet::Unsubscribe(u) => d.pkid = u.pkid,
        v4::Packet::UnsubAck(u) => d.pkid = u.pkid,
        v4::Packet::PingReq | v4::Packet::PingResp | v4::Packet::Disconnect => {}
    }
}

fn fill_v5(d: &mut Described, p: v5::Packet) {
    match p {
        v5::Packet::Connect(..) => d.code = Some(5),
        v5::Packet::ConnAck(a) => d.code = Some(connack_v5_code(a.code)),
        v5::Packet::Publish(p) => {
            d.pkid = p.pkid;
            d.topic = Some(String::from_utf8_lossy(&p.topic).into_owned());
            d.payload = Some(p.payload);
        }
        v5::Packet::PubAck(a) => {
            d.pkid = a.pkid;
            d.code = Some(a.reason as u8);
        }
        v5::Packet::PubRec(a) => {
            d.pkid = a.pkid;
            d.code = Some(a.reason as u8);
        }
        v5::Packet::PubRel(a) => d.pkid = a.pkid,
        v5::Packet::PubComp(a) => {
            d.pkid = a.pkid;
            d.code = Some(a.reason as u8);
        }
        v5::Packet::Subscribe(s) => d.pkid = s.pkid,
        v5::Packet::SubAck(s) => d.pkid = s.pkid,
        v5::Packet::Unsubscribe(u) => d.pkid = u.pkid,
        v5::Packet::UnsubAck(u) => d.pkid = u.pkid,
        v5::Packet::Auth(_)
        | v5::Packet::PingReq(_)
        | v5::Packet::PingResp(_)
        | v5::Packet::Disconnect(_) => {}
    }
}

/// rumqttc's v5 CONNACK reason as its wire value.
fn connack_v5_code(code: v5::ConnectReturnCode) -> u8 {
    use v5::ConnectReturnCode as C;
    match code {
        C::Success => 0x00,
        C::RefusedProtocolVersion => 0x01,
        C::BadClientId => 0x02,
        C::ServiceUnavailable => 0x03,
        C::UnspecifiedError => 0x80,
        C::MalformedPacket => 0x81,
        C::ProtocolError => 0x82,
        C::ImplementationSpecificError => 0x83,
        C::UnsupportedProtocolVersion => 0x84,
        C::ClientIdentifierNotValid => 0x85,
        C::BadUserNamePassword => 0x86,
        C::NotAuthorized => 0x87,
        C::ServerUnavailable => 0x88,
        C::ServerBusy => 0x89,
        C::Banned => 0x8A,
        C::BadAuthenticationMethod => 0x8C,
        C::TopicNameInvalid => 0x90,
        C::PacketTooLarge => 0x95,
        C::QuotaExceeded => 0x97,
        C::PayloadFormatInvalid => 0x99,
        C::RetainNotSupported => 0x9A,
        C::QoSNotSupported => 0x9B,
        C::UseAnotherServer => 0x9C,
        C::ServerMoved => 0x9D,
        C::ConnectionRateExceeded => 0x9F,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    fn v4_bytes(p: v4::Packet) -> Bytes {
        let mut buf = BytesMut::new();
        p.write(&mut buf, MAX_PACKET).unwrap();
        buf.freeze()
    }

    #[test]
    fn frames_split_and_coalesced_packets() {
        let mut publish = v4::Publish::new("a/b", QoS::AtLeastOnce, vec![7u8; 300]);
        publish.pkid = 9;
        publish.dup = true;
        let one = v4_bytes(v4::Packet::Publish(publish));
        let two = v4_bytes(v4::Packet::PubAck(v4::PubAck::new(9)));
        let mut stream = one.to_vec();
        stream.extend_from_slice(&two);

        let mut framer = Framer::default();
        // One byte at a time: nothing until a whole packet is there.
        let mut frames = Vec::new();
        for b in &stream {
            framer.push(&[*b]);
            while let Some(f) = framer.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames, vec![one.clone(), two]);

        let d = describe(&one, Protocol::V311);
        assert_eq!(d.kind, Some(Kind::Publish));
        assert_eq!((d.dup, d.qos, d.retain, d.pkid), (true, 1, false, 9));
        assert_eq!(d.topic.as_deref(), Some("a/b"));
        assert_eq!(d.payload.unwrap().len(), 300);
    }

    #[test]
    fn learns_the_protocol_from_connect() {
        let c4 = v4_bytes(v4::Packet::Connect(v4::Connect::new("c")));
        assert_eq!(connect_protocol(&c4), Some(Protocol::V311));
        let mut buf = BytesMut::new();
        let connect = v5::Connect {
            keep_alive: 10,
            client_id: "c".into(),
            clean_start: true,
            properties: None,
        };
        v5::Packet::Connect(connect, None, None)
            .write(&mut buf, None)
            .unwrap();
        assert_eq!(connect_protocol(&buf), Some(Protocol::V5));
        // MQTT 3.1: "MQIsdp", level 3.
        let mut c31 = vec![0x10, 12, 0, 6];
        c31.extend_from_slice(b"MQIsdp");
        c31.extend_from_slice(&[3, 2, 0, 60]);
        assert_eq!(connect_protocol(&c31), Some(Protocol::V31));
        assert_eq!(connect_protocol(&[0x30, 0]), None);
    }

    #[test]
    fn describes_v5_publish_and_acks() {
        let mut p = v5::Publish::new("t/1", rumqttc::v5::mqttbytes::QoS::ExactlyOnce, "x", None);
        p.pkid = 3;
        p.retain = true;
        let mut buf = BytesMut::new();
        v5::Packet::Publish(p).write(&mut buf, None).unwrap();
        let d = describe(&buf.freeze(), Protocol::V5);
        assert_eq!((d.qos, d.retain, d.pkid), (2, true, 3));
        assert_eq!(d.topic.as_deref(), Some("t/1"));

        let mut buf = BytesMut::new();
        v5::Packet::PubComp(v5::PubComp::new(3, None))
            .write(&mut buf, None)
            .unwrap();
        let d = describe(&buf.freeze(), Protocol::V5);
        assert_eq!((d.kind, d.pkid), (Some(Kind::PubComp), 3));
    }

    #[test]
    fn describes_mqtt31_publish_and_acks_with_the_v4_codec() {
        // Without packet ids and payloads every 3.1 ack is "unsolicited" and every PUBLISH a "retransmit".
        let mut p = v4::Publish::new("t/1", QoS::ExactlyOnce, "x");
        p.pkid = 7;
        let d = describe(&v4_bytes(v4::Packet::Publish(p)), Protocol::V31);
        assert_eq!((d.qos, d.pkid), (2, 7));
        assert_eq!(d.payload.as_deref(), Some(&b"x"[..]));
        assert_eq!(d.undecoded, None);
        let d = describe(&v4_bytes(v4::Packet::PubRec(v4::PubRec::new(7))), Protocol::V31);
        assert_eq!((d.kind, d.pkid), (Some(Kind::PubRec), 7));
        let mut c31 = vec![0x10, 12, 0, 6];
        c31.extend_from_slice(b"MQIsdp");
        c31.extend_from_slice(&[3, 2, 0, 60]);
        let d = describe(&Bytes::from(c31), Protocol::V31);
        assert_eq!(
            (d.kind, d.code, d.undecoded),
            (Some(Kind::Connect), Some(3), None)
        );
    }

    #[test]
    fn undecodable_bodies_keep_fixed_header_facts() {
        // A QoS 1 PUBLISH whose body is cut short inside the topic length.
        let frame = Bytes::from_static(&[0x3B, 1, 0]);
        let d = describe(&frame, Protocol::V311);
        assert_eq!(
            (d.kind, d.dup, d.qos, d.retain),
            (Some(Kind::Publish), true, 1, true)
        );
        assert!(d.undecoded.is_some());
    }

    #[test]
    fn a_malformed_length_is_an_error() {
        let mut framer = Framer::default();
        framer.push(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        assert!(framer.next_frame().is_err());
    }
}
