//! `tmq2mqtt check`: validate both DSNs, connect to both ends, subscribe, report, and leave.
//!
//! Nothing is consumed: the consumer is closed without polling, so no offset moves.

use std::time::Duration;

use taos::AsAsyncConsumer;

use crate::{
    run::BridgeConfig,
    sink::{Sink, SinkEvent},
    source,
};

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
    let mut sink = match Sink::start(&config.target) {
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
            config.target.host,
            config.target.port,
            config.target.client_id,
            config.target.version.as_str()
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
