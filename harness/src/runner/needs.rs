//! What a scenario's world needs from the machine that the harness cannot bring itself: the Mosquitto
//! programs for `broker = "mosquitto"`. A scenario whose needs are missing is skipped with the command that
//! installs them rather than failed, so the main command works on a fresh machine; `--require` (and the
//! test suite, where a skip is a failure) keeps CI from leaving it out.

use simulator::mosquitto::find_program;

use crate::report::Skip;
use crate::scenario::{BrokerKind, Scenario};

/// The one command that installs Mosquitto (both programs come with the `mosquitto` package).
pub const INSTALL_MOSQUITTO: &str = "apt-get install mosquitto";

/// Why `s` cannot run on this machine, if it cannot.
pub fn missing(s: &Scenario) -> Option<Skip> {
    if s.world.broker != BrokerKind::Mosquitto {
        return None;
    }
    let mut programs = vec!["mosquitto"];
    if s.world.broker_auth.is_some() {
        programs.push("mosquitto_passwd");
    }
    programs
        .into_iter()
        .find(|p| find_program(p).is_err())
        .map(|program| Skip {
            needs: "mosquitto".into(),
            reason: format!("`{program}` is not installed"),
            install: INSTALL_MOSQUITTO.into(),
        })
}
