//! Packet id → the publishes on the wire under it.
//!
//! rumqttc 0.25 frees a QoS 2 packet id when the PUBREC arrives, not when the PUBCOMP does, and may give it
//! to a new PUBLISH while the old flow's PUBREL still waits for its PUBCOMP (MQTT says the id is in use until
//! then). So one id carries up to two flows: one waiting for PUBACK or PUBREC (`sent`; rumqttc never sends
//! a second PUBLISH on an id it holds at that stage) and one waiting for PUBCOMP (`released`). The broker
//! reads one connection in order, so once it answers the newer PUBLISH it has processed the older PUBREL:
//! the older flow is complete even if its PUBCOMP never arrives.

use super::PubId;

/// The flows bound to one packet id.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flows {
    /// Sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    pub sent: Option<PubId>,
    /// QoS 2, PUBREC received and PUBREL sent: waiting for PUBCOMP.
    pub released: Option<PubId>,
}

/// Packet ids are small (up to the in-flight window), so a vector indexed by them replaces a map.
#[derive(Debug, Default)]
pub(super) struct PkidMap {
    slots: Vec<Flows>,
}

impl PkidMap {
    pub fn get(&self, pkid: u16) -> Flows {
        self.slots.get(usize::from(pkid)).copied().unwrap_or_default()
    }

    pub fn get_mut(&mut self, pkid: u16) -> &mut Flows {
        let i = usize::from(pkid);
        if i >= self.slots.len() {
            self.slots.resize(i + 1, Flows::default());
        }
        &mut self.slots[i]
    }

    /// Every bound publish id, in packet-id order (per id the released flow, the older, first); the map
    /// is empty afterwards.
    pub fn drain(&mut self) -> Vec<PubId> {
        self.slots
            .iter_mut()
            .flat_map(|f| [f.released.take(), f.sent.take()])
            .flatten()
            .collect()
    }
}
