//! Deliberately broken bridges, switched on by `TMQ2MQTT_TEST_*=1` environment variables, that exist only to
//! prove the tests judging a promise can fail (docs/testing.md lists the commands). Not user settings: each
//! logs a warning when on.
//!
//! - `TMQ2MQTT_TEST_SKIP_COMMITS`: commits are reported done without being sent, so a restart replays from
//!   the group's start (duplicate bounds must fail).
//! - `TMQ2MQTT_TEST_ACK_ON_WRITE`: a QoS 1/2 publish counts as acknowledged once written, before the broker
//!   answered — the `acked` counter over-counts and the commit overtakes the broker (loss judged from the
//!   wire must fail).
//! - `TMQ2MQTT_TEST_OFFSET_PLUS_ONE`: payloads carry the message's offset + 1 (offset checks must fail).

use std::sync::OnceLock;

fn knob(cell: &'static OnceLock<bool>, name: &str, what: &str) -> bool {
    *cell.get_or_init(|| {
        let on = std::env::var_os(name).is_some_and(|v| v == "1");
        if on {
            tracing::warn!("{name}=1: {what} (a test-only broken bridge)");
        }
        on
    })
}

/// See the module documentation.
pub fn skip_commits() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    knob(&ON, "TMQ2MQTT_TEST_SKIP_COMMITS", "offsets are never committed")
}

/// See the module documentation.
pub fn ack_on_write() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    knob(
        &ON,
        "TMQ2MQTT_TEST_ACK_ON_WRITE",
        "publishes count as acknowledged once written",
    )
}

/// See the module documentation.
pub fn offset_plus_one() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    knob(
        &ON,
        "TMQ2MQTT_TEST_OFFSET_PLUS_ONE",
        "payload offsets are one too high",
    )
}
