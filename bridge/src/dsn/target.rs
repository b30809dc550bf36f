//! The target DSN: which MQTT broker to publish to and how, as taosx spells it.
//!
//! `mqtt://[user:pass@]host[:port]?version=3.1.1|5.0&qos=0|1|2&client_id=…&topic=…&meta_topic=…`
//! plus `retain`, `keep_alive`, `clean_session`, and the options taosx does not have: `inflight`,
//! `tcp_nodelay`, `window`, `max_packet_size`, `commit`, `format`, and the bridge's own status topic
//! (`status_topic`, `status_online`, `status_offline`), the dead-letter topic (`dead_letter_topic`) and the
//! MQTT 5 publish properties (`user_properties`, `message_expiry`). Dotted spellings (`client.id`) are
//! accepted too.

use std::{fmt, time::Duration};

use super::{fmt_redacted, parse_bool, parse_duration, read_pem, DsnError, RawDsn, Side, TlsOptions};
use crate::template::Template;

const SIDE: Side = Side::Target;
const ACCEPTED: &str = "version, qos, client_id, topic, meta_topic, retain, keep_alive, clean_session, \
                        inflight, tcp_nodelay, window, max_packet_size, commit, format, \
                        status_topic, status_online, status_offline, dead_letter_topic, \
                        user_properties, message_expiry, ca, cert, cert_key (mqtts only)";

/// Mosquitto's default `max_inflight_messages`: a 3.1/3.1.1 QoS 2 window above it loses acknowledged
/// messages there (see docs/compatibility.md), and 3.1/3.1.1 cannot learn the broker's limit.
pub const DEFAULT_QOS2_INFLIGHT_V3: u16 = 20;

/// The bridge's own status topic (`status_topic=`): retained `online` after every CONNACK, retained
/// `offline` on graceful shutdown and as the Last Will when the bridge vanishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusOptions {
    /// A plain topic (no template variables, no wildcards).
    pub topic: String,
    /// Payload while the bridge is connected (`status_online=`, default `online`).
    pub online: String,
    /// Payload once it is gone (`status_offline=`, default `offline`).
    pub offline: String,
}

/// MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1 (protocol `MQIsdp`, level 3), spoken through [`crate::mqtt31::Mqtt31Shim`].
    V31,
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0.
    V5,
}

impl MqttVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V31 => "3.1",
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5.0",
        }
    }
}

/// When TMQ offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Commit a vgroup's offset only once every row up to it was acknowledged by the broker (default).
    #[default]
    AfterAck,
    /// Commit right after polling, as taosx's auto-commit does. **Unsafe**: a crash loses rows in flight.
    /// Exists to compare against (the harness shows what it loses).
    BeforeAck,
}

impl CommitMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitMode::AfterAck => "after-ack",
            CommitMode::BeforeAck => "before-ack",
        }
    }
}

/// A validated target DSN. `Display`/`Debug` never show the password.
#[derive(Clone)]
pub struct TargetDsn {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub version: MqttVersion,
    /// 0, 1 or 2.
    pub qos: u8,
    pub client_id: String,
    pub topic: Template,
    pub meta_topic: Template,
    pub retain: bool,
    pub keep_alive: Duration,
    pub clean_session: bool,
    /// The MQTT client's window of unacknowledged publishes (rumqttc `inflight`).
    pub inflight: u16,
    pub tcp_nodelay: bool,
    /// Rows published but not yet acknowledged before polling TMQ pauses (backpressure).
    pub window: usize,
    pub max_packet_size: usize,
    pub commit: CommitMode,
    /// `format=row` (default, taosx's payload per row) or `format=batch` (one payload per TMQ message block set).
    pub format: PayloadFormat,
    /// `mqtts://`: TLS with these settings (the server certificate is always verified).
    pub tls: Option<TlsOptions>,
    /// `status_topic=`: the bridge's retained online/offline status and Last Will.
    pub status: Option<StatusOptions>,
    /// `dead_letter_topic=`: where rows and meta events that cannot be published go instead (a template
    /// using only `{database}`, `{tmq_topic}`, `{vgroup_id}`, which every message has).
    pub dead_letter_topic: Option<Template>,
    /// `user_properties=true` (MQTT 5 only): every row and meta publish carries its origin as user
    /// properties (`database`, `topic`, `vgroup_id`, `offset`, and `table` for rows).
    pub user_properties: bool,
    /// `message_expiry=` (MQTT 5 only): the Message Expiry Interval of row and meta publishes, whole seconds.
    pub message_expiry: Option<u32>,
}

/// Payload shape (`format=`): taosx's one message per row, or one message per TMQ message (and topic)
/// carrying `{"rows":[{…},…],"offset":{…}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadFormat {
    #[default]
    Row,
    Batch,
}

impl TargetDsn {
    /// Parses and validates a target DSN, including the topic templates.
    pub fn parse(input: &str) -> Result<Self, DsnError> {
        let raw = RawDsn::parse(SIDE, input)?;
        let mut tls = match raw.scheme.as_str() {
            "mqtt" | "tcp" => None,
            "mqtts" | "ssl" => Some(TlsOptions::default()),
            _ => {
                return Err(DsnError::Scheme {
                    side: SIDE,
                    found: raw.scheme,
                    accepted: "mqtt, mqtts",
                })
            }
        };
        if raw.host.is_empty() {
            return Err(DsnError::Missing {
                side: SIDE,
                name: "host",
                hint: "e.g. mqtt://localhost:1883?…",
            });
        }
        if !raw.path.is_empty() {
            return Err(DsnError::Invalid {
                side: SIDE,
                name: "path".into(),
                message: format!(
                    "unexpected path `/{}`; the MQTT topic goes in `?topic=`",
                    raw.path
                ),
            });
        }
        let mut seen: Vec<String> = Vec::new();
        // Parameters only MQTT 5 can carry out, as spelled: checked once the version is known.
        let mut v5_only: Vec<String> = Vec::new();
        let mut version = None;
        let mut qos = 0u8;
        let mut client_id = None;
        let mut topic = None;
        let mut meta_topic = None;
        let mut retain = false;
        let mut keep_alive = Duration::from_secs(60);
        let mut clean_session = true;
        let mut inflight = None;
        let mut tcp_nodelay = None;
        let mut window = 10_000usize;
        let mut max_packet_size = 1024 * 1024usize;
        let mut commit = CommitMode::AfterAck;
        let mut format = PayloadFormat::Row;
        let mut status_topic = None;
        let mut status_online = None;
        let mut status_offline = None;
        let mut dead_letter_topic = None;
        let mut user_properties = false;
        let mut message_expiry = None;
        for (key, value) in raw.params {
            let name = key.replace(['.', '-'], "_");
            if seen.contains(&name) {
                return Err(DsnError::Duplicate {
                    side: SIDE,
                    name: key,
                });
            }
            seen.push(name.clone());
            let bad = |accepted: &str| DsnError::BadValue {
                side: SIDE,
                name: key.clone(),
                value: value.clone(),
                accepted: accepted.into(),
            };
            match name.as_str() {
                "version" => {
                    version = Some(match value.as_str() {
                        "3.1.1" | "311" | "4" => MqttVersion::V311,
                        "5.0" | "5" => MqttVersion::V5,
                        "3.1" | "31" | "3" => MqttVersion::V31,
                        _ => return Err(bad("3.1, 3.1.1, 5.0")),
                    })
                }
                "qos" => {
                    qos = match value.as_str() {
                        "0" => 0,
                        "1" => 1,
                        "2" => 2,
                        _ => return Err(bad("0, 1, 2")),
                    }
                }
                "client_id" => {
                    if value.is_empty() {
                        return Err(DsnError::Invalid {
                            side: SIDE,
                            name: key,
                            message: "must not be empty".into(),
                        });
                    }
                    if value.len() > MAX_MQTT_STRING {
                        return Err(DsnError::Invalid {
                            side: SIDE,
                            name: key,
                            message: format!("longer than MQTT's {MAX_MQTT_STRING}-byte string limit"),
                        });
                    }
                    client_id = Some(value)
                }
                "topic" => topic = Some(parse_template(&key, &value)?),
                "meta_topic" => meta_topic = Some(parse_template(&key, &value)?),
                "retain" => retain = parse_bool(SIDE, &key, &value)?,
                "keep_alive" => {
                    keep_alive = parse_duration(SIDE, &key, &value)?;
                    if keep_alive < Duration::from_secs(5) || keep_alive > Duration::from_secs(65535) {
                        return Err(bad("5 to 65535 seconds (rumqttc's minimum is 5)"));
                    }
                }
                "clean_session" => clean_session = parse_bool(SIDE, &key, &value)?,
                "inflight" => {
                    inflight = Some(
                        value
                            .parse::<u16>()
                            .ok()
                            .filter(|v| *v > 0)
                            .ok_or_else(|| bad("1 to 65535"))?,
                    )
                }
                "tcp_nodelay" => tcp_nodelay = Some(parse_bool(SIDE, &key, &value)?),
                "window" => {
                    window = value
                        .parse::<usize>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| bad("a positive number of rows"))?
                }
                "max_packet_size" => {
                    max_packet_size = value
                        .parse::<usize>()
                        .ok()
                        .filter(|v| (1024..=268_435_455).contains(v))
                        .ok_or_else(|| bad("bytes, 1024 to 268435455"))?
                }
                "commit" => {
                    commit = match value.as_str() {
                        "after-ack" | "after_ack" => CommitMode::AfterAck,
                        "before-ack" | "before_ack" => CommitMode::BeforeAck,
                        _ => return Err(bad("after-ack (default), before-ack (unsafe, for comparison)")),
                    }
                }
                "format" => {
                    format = match value.as_str() {
                        "row" => PayloadFormat::Row,
                        "batch" => PayloadFormat::Batch,
                        _ => return Err(bad("row (default), batch")),
                    };
                }
                "status_topic" => status_topic = Some(parse_status_topic(&key, value)?),
                "status_online" => status_online = Some(parse_status_payload(&key, value)?),
                "status_offline" => status_offline = Some(parse_status_payload(&key, value)?),
                "dead_letter_topic" => dead_letter_topic = Some(parse_dead_letter_topic(&key, &value)?),
                "user_properties" => {
                    user_properties = parse_bool(SIDE, &key, &value)?;
                    v5_only.push(key.clone());
                }
                "message_expiry" => {
                    message_expiry = Some(parse_expiry(&key, &value)?);
                    v5_only.push(key.clone());
                }
                "ca" | "cert" | "cert_key" => {
                    let Some(tls) = tls.as_mut() else {
                        return Err(DsnError::Invalid {
                            side: SIDE,
                            name: key,
                            message: "only for TLS: use an mqtts:// DSN".into(),
                        });
                    };
                    let pem = read_pem(SIDE, &key, &value)?;
                    match name.as_str() {
                        "ca" => tls.ca = Some(pem),
                        "cert" => tls.cert = Some(pem),
                        _ => tls.cert_key = Some(pem),
                    }
                }
                _ => {
                    return Err(DsnError::Unknown {
                        side: SIDE,
                        name: key,
                        accepted: ACCEPTED,
                    })
                }
            }
        }
        let version = version.ok_or(DsnError::Missing {
            side: SIDE,
            name: "version",
            hint: "3.1, 3.1.1 or 5.0",
        })?;
        let client_id = client_id.ok_or(DsnError::Missing {
            side: SIDE,
            name: "client_id",
            hint: "a client id unique on the broker",
        })?;
        let topic = topic.ok_or(DsnError::Missing {
            side: SIDE,
            name: "topic",
            hint: "the MQTT topic (template) to publish to",
        })?;
        let meta_topic = meta_topic.unwrap_or_else(|| topic.clone());
        if let Some(name) = v5_only.first().filter(|_| version != MqttVersion::V5) {
            return Err(DsnError::Invalid {
                side: SIDE,
                name: name.clone(),
                message: format!(
                    "is an MQTT 5 publish property; this target speaks MQTT {} (use `version=5.0`)",
                    version.as_str()
                ),
            });
        }
        if version == MqttVersion::V31 {
            crate::mqtt31::validate_client_id(&client_id).map_err(|e| DsnError::Invalid {
                side: SIDE,
                name: "client_id".into(),
                message: e.to_string(),
            })?;
        }
        if let Some(tls) = &tls {
            if tls.cert.is_some() != tls.cert_key.is_some() {
                return Err(DsnError::Invalid {
                    side: SIDE,
                    name: "cert".into(),
                    message: "a client certificate needs both `cert` and `cert_key`".into(),
                });
            }
            crate::tls::client_config(tls).map_err(|e| DsnError::Invalid {
                side: SIDE,
                name: "ca".into(),
                message: e.to_string(),
            })?;
        }
        let status = match status_topic {
            Some(topic) => Some(StatusOptions {
                topic,
                online: status_online.unwrap_or_else(|| "online".into()),
                offline: status_offline.unwrap_or_else(|| "offline".into()),
            }),
            None if status_online.is_some() || status_offline.is_some() => {
                return Err(DsnError::Missing {
                    side: SIDE,
                    name: "status_topic",
                    hint: "`status_online`/`status_offline` are the payloads published to it",
                })
            }
            None => None,
        };
        if let Some(s) = &status {
            // The Last Will rides in the CONNECT, a status in a PUBLISH: both must fit the packet limit, or
            // the connection would fail on every attempt.
            let longest = s.online.len().max(s.offline.len());
            if !fits_packet(max_packet_size, &s.topic, longest) {
                return Err(DsnError::Invalid {
                    side: SIDE,
                    name: "status_topic".into(),
                    message: format!(
                        "the status topic and payload ({} bytes) do not fit `max_packet_size` ({max_packet_size})",
                        s.topic.len() + longest
                    ),
                });
            }
        }
        let default_port = if tls.is_some() { 8883 } else { 1883 };
        Ok(TargetDsn {
            user: raw.user,
            password: raw.password,
            host: raw.host,
            port: raw.port.unwrap_or(default_port),
            version,
            qos,
            client_id,
            topic,
            meta_topic,
            retain,
            keep_alive,
            clean_session,
            // Measured (reference notes): QoS 1 gains ~50% from a window of 1000; QoS 2 stays at 100.
            // QoS 2 over 3.1/3.1.1: Mosquitto's default window (MQTT 5 learns the broker's from CONNACK).
            inflight: inflight.unwrap_or(match (qos, version) {
                (1, _) => 1000,
                (2, MqttVersion::V31 | MqttVersion::V311) => DEFAULT_QOS2_INFLIGHT_V3,
                _ => 100,
            }),
            // QoS 2 through rumqttd stalls ~40 ms per window with Nagle on; for QoS 0/1 Nagle batches.
            tcp_nodelay: tcp_nodelay.unwrap_or(qos == 2),
            window,
            max_packet_size,
            commit,
            format,
            tls,
            status,
            dead_letter_topic,
            user_properties,
            message_expiry,
        })
    }
}

/// Whether a PUBLISH (or a CONNECT carrying it as the Will) of `payload_len` bytes to `topic` stays within
/// `max` bytes, with room for the fixed header, lengths, packet id, properties, client id and credentials.
fn fits_packet(max: usize, topic: &str, payload_len: usize) -> bool {
    topic.len() + payload_len + 512 <= max
}

/// `status_topic`: a plain topic to publish to — non-empty, no wildcards, no NUL, within MQTT's string limit.
fn parse_status_topic(key: &str, value: String) -> Result<String, DsnError> {
    let invalid = |message: &str| DsnError::Invalid {
        side: SIDE,
        name: key.into(),
        message: message.into(),
    };
    crate::template::check_topic(&value).map_err(|e| invalid(&e.to_string()))?;
    Ok(value)
}

/// `dead_letter_topic`: a topic template that every message can render — only the variables every
/// message has (`{database}`, `{tmq_topic}`, `{vgroup_id}`); a dead letter must never need a dead letter.
fn parse_dead_letter_topic(key: &str, value: &str) -> Result<Template, DsnError> {
    use crate::template::Var;
    let template = parse_template(key, value)?;
    if let Some(var) = [Var::Stable, Var::Table].into_iter().find(|v| template.uses(*v)) {
        return Err(DsnError::Invalid {
            side: SIDE,
            name: key.into(),
            message: format!(
                "`{{{}}}` is not in every message; a dead-letter topic may use only {{database}}, \
                 {{tmq_topic}}, {{vgroup_id}}",
                var.name()
            ),
        });
    }
    Ok(template)
}

/// `message_expiry`: MQTT 5's Message Expiry Interval, 1 to 4294967295 whole seconds.
fn parse_expiry(key: &str, value: &str) -> Result<u32, DsnError> {
    let d = parse_duration(SIDE, key, value)?;
    let bad = || DsnError::BadValue {
        side: SIDE,
        name: key.into(),
        value: value.into(),
        accepted: "whole seconds, 1 to 4294967295 (e.g. `60`, `10m`, `1h`)".into(),
    };
    if d.subsec_nanos() != 0 {
        return Err(bad());
    }
    u32::try_from(d.as_secs()).ok().filter(|s| *s > 0).ok_or_else(bad)
}

/// `status_online`/`status_offline`: non-empty (an empty retained message deletes the retained status).
fn parse_status_payload(key: &str, value: String) -> Result<String, DsnError> {
    let invalid = |message: &str| DsnError::Invalid {
        side: SIDE,
        name: key.into(),
        message: message.into(),
    };
    if value.is_empty() {
        return Err(invalid(
            "must not be empty (an empty retained message clears the topic)",
        ));
    }
    if value.len() > MAX_MQTT_STRING {
        return Err(invalid("longer than MQTT's 65535-byte Will message limit"));
    }
    Ok(value)
}

/// MQTT strings (client id, topic) are length-prefixed with 16 bits.
const MAX_MQTT_STRING: usize = 65_535;

fn parse_template(key: &str, value: &str) -> Result<Template, DsnError> {
    if value.len() > MAX_MQTT_STRING {
        return Err(DsnError::Invalid {
            side: SIDE,
            name: key.into(),
            message: format!("longer than MQTT's {MAX_MQTT_STRING}-byte topic limit"),
        });
    }
    Template::parse(value).map_err(|e| DsnError::Invalid {
        side: SIDE,
        name: key.into(),
        message: e.to_string(),
    })
}

impl fmt::Display for TargetDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut p = vec![
            ("version".to_string(), self.version.as_str().to_string()),
            ("qos".into(), self.qos.to_string()),
            ("client_id".into(), self.client_id.clone()),
            ("topic".into(), self.topic.as_str().into()),
        ];
        if self.meta_topic.as_str() != self.topic.as_str() {
            p.push(("meta_topic".into(), self.meta_topic.as_str().into()));
        }
        if self.commit != CommitMode::AfterAck {
            p.push(("commit".into(), self.commit.as_str().into()));
        }
        if self.format == PayloadFormat::Batch {
            p.push(("format".into(), "batch".into()));
        }
        if let Some(s) = &self.status {
            p.push(("status_topic".into(), s.topic.clone()));
        }
        if let Some(t) = &self.dead_letter_topic {
            p.push(("dead_letter_topic".into(), t.as_str().into()));
        }
        if self.user_properties {
            p.push(("user_properties".into(), "true".into()));
        }
        if let Some(secs) = self.message_expiry {
            p.push(("message_expiry".into(), secs.to_string()));
        }
        fmt_redacted(
            f,
            if self.tls.is_some() { "mqtts" } else { "mqtt" },
            self.user.as_deref(),
            self.password.is_some(),
            &self.host,
            self.port,
            "",
            &p,
        )
    }
}

impl fmt::Debug for TargetDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetDsn({self})")
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn status_topic_has_default_payloads_and_is_checked() {
        let base = "mqtt://h?version=3.1.1&client_id=c&topic=t";
        assert_eq!(TargetDsn::parse(base).unwrap().status, None);
        let t = TargetDsn::parse(&format!("{base}&status_topic=bridges/c/status")).unwrap();
        assert_eq!(
            t.status,
            Some(StatusOptions {
                topic: "bridges/c/status".into(),
                online: "online".into(),
                offline: "offline".into(),
            })
        );
        assert!(t.to_string().contains("status_topic=bridges"), "{t}");
        let t = TargetDsn::parse(&format!(
            "{base}&status.topic=s&status_online=%7B%22up%22%3Atrue%7D&status_offline=0"
        ))
        .unwrap();
        let s = t.status.unwrap();
        assert_eq!((s.online.as_str(), s.offline.as_str()), ("{\"up\":true}", "0"));
        for (extra, want) in [
            ("status_topic=", "empty topic"),
            ("status_topic=a/%2B", "wildcards"),
            ("status_topic=a/%23", "wildcards"),
            ("status_topic=a%00b", "NUL"),
            ("status_online=up", "missing required parameter `status_topic`"),
            ("status_topic=s&status_offline=", "must not be empty"),
            ("status_topic=s&status_topic=t", "given twice"),
        ] {
            let e = TargetDsn::parse(&format!("{base}&{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let long = "s".repeat(2000);
        let e = TargetDsn::parse(&format!("{base}&max_packet_size=2048&status_topic={long}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not fit `max_packet_size`"), "{e}");
    }

    #[test]
    fn format_is_row_by_default_batch_on_request_and_checked() {
        let base = "mqtt://h?version=5.0&client_id=c&topic=t";
        assert_eq!(TargetDsn::parse(base).unwrap().format, PayloadFormat::Row);
        let t = TargetDsn::parse(&format!("{base}&format=batch")).unwrap();
        assert_eq!(t.format, PayloadFormat::Batch);
        assert!(t.to_string().contains("format=batch"), "{t}");
        let e = TargetDsn::parse(&format!("{base}&format=csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("format") && e.contains("row (default), batch"), "{e}");
    }

    #[test]
    fn mqtt5_properties_need_version_5_and_sane_values() {
        let v5 = "mqtt://h?version=5.0&client_id=c&topic=t";
        let t = TargetDsn::parse(v5).unwrap();
        assert!(!t.user_properties);
        assert_eq!(t.message_expiry, None);
        let t = TargetDsn::parse(&format!("{v5}&user_properties=true&message_expiry=10m")).unwrap();
        assert!(t.user_properties);
        assert_eq!(t.message_expiry, Some(600));
        assert!(
            t.to_string().contains("user_properties=true&message_expiry=600"),
            "{t}"
        );
        assert_eq!(
            TargetDsn::parse(&format!("{v5}&message.expiry=4294967295"))
                .unwrap()
                .message_expiry,
            Some(u32::MAX)
        );
        for version in ["3.1.1", "3.1"] {
            for extra in ["user_properties=true", "message_expiry=60"] {
                let e = TargetDsn::parse(&format!("mqtt://h?version={version}&client_id=c&topic=t&{extra}"))
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.contains("MQTT 5") && e.contains(&format!("speaks MQTT {version}")),
                    "{extra}: {e}"
                );
            }
        }
        for (extra, want) in [
            ("message_expiry=0", "1 to 4294967295"),
            ("message_expiry=-1", "seconds"),
            ("message_expiry=1500ms", "whole seconds"),
            ("message_expiry=4294967296", "1 to 4294967295"),
            ("message_expiry=99999999999999999999", "seconds"),
            ("message_expiry=", "seconds"),
            ("user_properties=maybe", "user_properties"),
            ("user_properties=true&user_properties=false", "given twice"),
        ] {
            let e = TargetDsn::parse(&format!("{v5}&{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{extra}: {e}");
        }
    }

    #[test]
    fn dead_letter_topic_uses_only_variables_every_message_has() {
        let base = "mqtt://h?version=3.1.1&client_id=c&topic=t";
        assert!(TargetDsn::parse(base).unwrap().dead_letter_topic.is_none());
        let t = TargetDsn::parse(&format!(
            "{base}&dead_letter_topic=dead/%7Bdatabase%7D/%7Btmq_topic%7D/%7Bvgroup_id%7D"
        ))
        .unwrap();
        assert_eq!(
            t.dead_letter_topic.as_ref().map(|t| t.as_str()),
            Some("dead/{database}/{tmq_topic}/{vgroup_id}")
        );
        assert!(t.to_string().contains("dead_letter_topic=dead/"), "{t}");
        let long = "d".repeat(70_000);
        for (value, want) in [
            ("", "empty topic"),
            ("dead/%7Btable%7D", "`{table}` is not in every message"),
            ("dead/%7Bstable%7D", "`{stable}` is not in every message"),
            ("dead/%7Bnope%7D", "unknown variable"),
            ("dead/%7Bdatabase", "unterminated"),
            ("dead/%2B", "wildcards"),
            ("dead/%23", "wildcards"),
            ("dead%00x", "NUL"),
            (long.as_str(), "65535-byte"),
        ] {
            let e = TargetDsn::parse(&format!("{base}&dead_letter_topic={value}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("dead_letter_topic") && e.contains(want) && !e.contains('\n') && e.len() < 300,
                "{value:.20}: {e:.300}"
            );
        }
    }
}
