//! `tmq2mqtt check`: validate both DSNs, connect to both ends, subscribe, report, and leave.
//!
//! Nothing is consumed: the consumer is closed without polling, so no offset moves. On the MQTT side the
//! check is its own client (see [`check_target`]) so that it never disturbs a bridge already running.

use std::time::Duration;

use taos::AsAsyncConsumer;

use crate::{
    dsn::{MqttVersion, TargetDsn},
    mqtt31::MAX_CLIENT_ID_LEN,
    run::BridgeConfig,
    sink::{Sink, SinkEvent},
    source,
};

/// Appended to the bridge's `client_id` for the check's own connection.
const CHECK_SUFFIX: &str = "-check";

/// The target the check connects with: its own client id (a broker drops the older of two connections
/// with one id, so the bridge's would kick a running bridge off), a clean session (nothing left behind on
/// the broker), and no status topic (no Last Will: a check must never announce the bridge offline).
pub fn check_target(target: &TargetDsn) -> TargetDsn {
    let mut t = target.clone();
    let mut keep = t.client_id.len();
    if t.version == MqttVersion::V31 {
        // MQTT 3.1 ids are at most 23 bytes: keep the start of the id, on a character boundary.
        keep = keep.min(MAX_CLIENT_ID_LEN - CHECK_SUFFIX.len());
        while !t.client_id.is_char_boundary(keep) {
            keep -= 1;
        }
    }
    t.client_id = format!("{}{CHECK_SUFFIX}", &t.client_id[..keep]);
    t.clean_session = true;
    t.status = None;
    t
}

/// What `check` found, one line per finding.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub lines: Vec<String>,
    pub ok: bool,
}

/// Connects to TDengine and the broker with `config`, waiting at most `timeout` for each.
pub async fn check(config: &BridgeConfig, timeout: Duration) -> CheckReport {
    let mut r = CheckReport {
        ok: true,
        ..Default::default()
    };
    r.lines.push(format!("source: {}", config.source));
    r.lines.push(format!("target: {}", config.target));
    // The connector (for `tmq+wss://` the TLS tunnel) lives as long as the check.
    let mut connector = None;
    let connect = async {
        let c = connector.insert(source::Connector::new(&config.source).await?);
        c.connect().await
    };
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => {
            r.ok = false;
            r.lines.push(format!("TDengine: no answer within {timeout:?}"));
        }
        Ok(Err(e)) => {
            r.ok = false;
            r.lines.push(format!("TDengine: {e}"));
        }
        Ok(Ok(consumer)) => {
            r.lines.push(format!(
                "TDengine: subscribed to {}",
                config.source.topics.join(", ")
            ));
            for (topic, assignments) in consumer.assignments().await.unwrap_or_default() {
                for a in assignments {
                    r.lines.push(format!(
                        "  {topic} vgroup {}: position {}, WAL {}..{}",
                        a.vgroup_id(),
                        a.current_offset(),
                        a.begin(),
                        a.end()
                    ));
                }
            }
        }
    }
    let target = check_target(&config.target);
    let mut sink = match Sink::start(&target) {
        Ok(sink) => sink,
        Err(e) => {
            r.ok = false;
            r.lines.push(format!("MQTT: {e}"));
            return r;
        }
    };
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            match sink.next_event().await {
                Some(SinkEvent::Connected { .. }) => return Ok(()),
                Some(SinkEvent::Refused(code)) => return Err(format!("refused the connection: {code}")),
                Some(SinkEvent::Untrusted(error)) => return Err(error),
                Some(SinkEvent::Disconnected { error, .. }) => return Err(error),
                Some(SinkEvent::Stopped) | None => return Err("event loop stopped".to_string()),
                Some(_) => {}
            }
        }
    })
    .await;
    match outcome {
        Ok(Ok(())) => r.lines.push(format!(
            "MQTT: connected to {}:{} as `{}` (MQTT {})",
            target.host,
            target.port,
            target.client_id,
            target.version.as_str()
        )),
        Ok(Err(e)) => {
            r.ok = false;
            r.lines.push(format!("MQTT: {e}"));
        }
        Err(_) => {
            r.ok = false;
            r.lines.push(format!("MQTT: no CONNACK within {timeout:?}"));
        }
    }
    sink.shutdown(Duration::from_secs(2)).await;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_has_its_own_clean_client_without_a_will() {
        let t = TargetDsn::parse(
            "mqtt://h?version=5.0&client_id=plant-7&topic=t&clean_session=false&status_topic=s",
        )
        .unwrap();
        let c = check_target(&t);
        assert_eq!(c.client_id, "plant-7-check");
        assert!(c.clean_session);
        assert!(c.status.is_none());
    }

    #[test]
    fn a_3_1_check_id_stays_within_23_bytes_on_a_character_boundary() {
        let t = TargetDsn::parse("mqtt://h?version=3.1&client_id=abcdefghijklmnopqrstuvw&topic=t").unwrap();
        assert_eq!(check_target(&t).client_id, "abcdefghijklmnopq-check");
        let t = TargetDsn::parse("mqtt://h?version=3.1&client_id=abcdefghijklmnopé&topic=t").unwrap();
        let id = check_target(&t).client_id;
        assert_eq!(id, "abcdefghijklmnop-check");
        assert!(id.len() <= MAX_CLIENT_ID_LEN);
    }
}
