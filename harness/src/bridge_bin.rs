//! Where the `tmq2mqtt` binary is, for bridges run as child processes (scenarios) and by the bench.

use std::path::PathBuf;

/// The `tmq2mqtt` binary: `$TMQ2MQTT_BIN`, or next to the running executable (target/debug).
pub fn bridge_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TMQ2MQTT_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("tmq2mqtt"))
        .find(|p| p.is_file())
}
