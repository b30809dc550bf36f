//! DSN parsing shared by the source (`tmq+ws://…`) and target (`mqtt://…`) sides.
//!
//! Both DSNs have the taosx shape `scheme://[user[:pass]@]host[:port][/path][?k=v&…]`. This module splits
//! that shape and owns the one error type; `source` and `target` give the parameters their meaning.
//! Every error is one line that names the offending part and what is accepted, and never contains the
//! password.

pub mod source;
pub mod target;

use std::fmt;

use percent_encoding::percent_decode_str;

pub use crate::tls::TlsOptions;
pub use source::{OffsetReset, SourceDsn};
pub use target::{CommitMode, MqttVersion, PayloadFormat, StatusOptions, TargetDsn};

/// Which of the two DSNs an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source DSN (-f/--from)",
            Side::Target => "target DSN (-t/--to)",
        })
    }
}

/// A DSN that could not be accepted. `Display` is the one line shown to the user: echoed input has its
/// control characters escaped and is cut short (see [`shown`]), so a hostile DSN cannot break the line
/// or flood the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("{side}: {}", shown(.message, MAX_MESSAGE_SHOWN))]
    Syntax { side: Side, message: String },
    #[error("{side}: unsupported scheme `{}`; accepted: {accepted}", shown(.found, MAX_VALUE_SHOWN))]
    Scheme {
        side: Side,
        found: String,
        accepted: &'static str,
    },
    #[error("{side}: missing required parameter `{name}` ({hint})")]
    Missing {
        side: Side,
        name: &'static str,
        hint: &'static str,
    },
    #[error("{side}: unknown parameter `{}`; accepted: {accepted}", shown(.name, MAX_VALUE_SHOWN))]
    Unknown {
        side: Side,
        name: String,
        accepted: &'static str,
    },
    #[error("{side}: parameter `{}` given twice", shown(.name, MAX_VALUE_SHOWN))]
    Duplicate { side: Side, name: String },
    #[error(
        "{side}: parameter `{}`: bad value `{}`; accepted: {accepted}",
        shown(.name, MAX_VALUE_SHOWN),
        shown(.value, MAX_VALUE_SHOWN)
    )]
    BadValue {
        side: Side,
        name: String,
        value: String,
        accepted: String,
    },
    #[error(
        "{side}: parameter `{}`: {}",
        shown(.name, MAX_VALUE_SHOWN),
        shown(.message, MAX_MESSAGE_SHOWN)
    )]
    Invalid {
        side: Side,
        name: String,
        message: String,
    },
}

/// Characters of an echoed name or value kept in an error line.
const MAX_VALUE_SHOWN: usize = 64;
/// Characters of a composed message (which may quote input) kept in an error line.
const MAX_MESSAGE_SHOWN: usize = 300;

/// Input as an error line may echo it: control characters escaped (`\n`, `\u{7f}`) so the error stays
/// one line, and at most `max` characters, the rest summarised as `…(N more bytes)`.
pub(crate) fn shown(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 24));
    for (count, (i, c)) in s.char_indices().enumerate() {
        if count == max {
            out.push_str(&format!("…({} more bytes)", s.len() - i));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The pieces of `scheme://[user[:pass]@]host[:port][/path][?query]`, percent-decoded.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RawDsn {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub path: String,
    /// Parameters in the order given, keys as written (callers normalise spellings).
    pub params: Vec<(String, String)>,
}

impl RawDsn {
    pub(crate) fn parse(side: Side, input: &str) -> Result<Self, DsnError> {
        let syntax = |message: String| DsnError::Syntax { side, message };
        let input = input.trim();
        if input.is_empty() {
            return Err(syntax("empty DSN".into()));
        }
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| syntax("missing `://` after the scheme".into()))?;
        if scheme.is_empty() {
            return Err(syntax("missing scheme before `://`".into()));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        // A '/' in an unencoded password must not end the authority: it ends at the first '/' after
        // the last '@' (topic names never contain '@').
        let host_start = before_query.rfind('@').map_or(0, |at| at + 1);
        let (authority, path) = match before_query[host_start..].find('/') {
            Some(slash) => (
                &before_query[..host_start + slash],
                &before_query[host_start + slash + 1..],
            ),
            None => (before_query, ""),
        };
        // The password may contain '@' when not percent-encoded: the last '@' ends the user info.
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (u, None),
                };
                let user = decode(side, "user", user)?;
                let pass = match pass {
                    // Never echo the password, even when it fails to decode.
                    Some(p) => Some(decode(side, "password", p).map_err(|_| DsnError::Invalid {
                        side,
                        name: "password".into(),
                        message: "bad percent-encoding".into(),
                    })?),
                    None => None,
                };
                (Some(user), pass)
            }
        };
        // No user info, yet an '@' further on: most likely a password with an unencoded '?' whose tail
        // ended up in the query. Then the "port" may be part of the password: never echo it.
        let misplaced_at = userinfo.is_none() && rest[authority.len()..].contains('@');
        let (host, port) = split_host_port(side, hostport, misplaced_at)?;
        let path = decode(side, "path", path)?;
        let mut params = Vec::new();
        if let Some(query) = query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let k = decode(side, "parameter name", k)?;
                let v = decode(side, &k, v)?;
                if k.is_empty() {
                    return Err(syntax(format!("empty parameter name in `{pair}`")));
                }
                params.push((k, v));
            }
        }
        Ok(RawDsn {
            scheme: scheme.to_ascii_lowercase(),
            user,
            password,
            host,
            port,
            path,
            params,
        })
    }
}

fn decode(side: Side, what: &str, s: &str) -> Result<String, DsnError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| DsnError::Invalid {
            side,
            name: what.to_string(),
            message: "percent-encoding does not decode to UTF-8".into(),
        })
}

fn split_host_port(side: Side, s: &str, misplaced_at: bool) -> Result<(String, Option<u16>), DsnError> {
    let bad_port = |p: &str| {
        if misplaced_at {
            DsnError::Invalid {
                side,
                name: "port".into(),
                message: "not a number 1-65535 (percent-encode `/`, `?`, `#` and `@` in the password: \
                          %2F, %3F, %23, %40)"
                    .into(),
            }
        } else {
            DsnError::BadValue {
                side,
                name: "port".into(),
                value: p.into(),
                accepted: "a number 1-65535".into(),
            }
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        // IPv6 literal: [::1]:port
        let (host, after) = rest.split_once(']').ok_or_else(|| DsnError::Syntax {
            side,
            message: "unterminated `[` in IPv6 host".into(),
        })?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad_port(p))?,
            ),
            None if after.is_empty() => None,
            None => {
                return Err(DsnError::Syntax {
                    side,
                    message: if misplaced_at {
                        "unexpected text after host".into()
                    } else {
                        format!("unexpected `{after}` after host")
                    },
                })
            }
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad_port(p))?;
            Ok((h.to_string(), Some(port)))
        }
        None => Ok((s.to_string(), None)),
    }
}

/// Parses a boolean parameter the way taosx does (`true`/`false`, also `1`/`0`, `yes`/`no`, `on`/`off`).
pub(crate) fn parse_bool(side: Side, name: &str, value: &str) -> Result<bool, DsnError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(DsnError::BadValue {
            side,
            name: name.into(),
            value: value.into(),
            accepted: "true or false".into(),
        }),
    }
}

/// Parses a duration given as plain seconds (`30`) or humantime (`500ms`, `1m`).
pub(crate) fn parse_duration(side: Side, name: &str, value: &str) -> Result<std::time::Duration, DsnError> {
    if let Ok(secs) = value.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(value).map_err(|_| DsnError::BadValue {
        side,
        name: name.into(),
        value: value.into(),
        accepted: "seconds (`30`) or a duration like `500ms`, `10s`, `1m`".into(),
    })
}

/// Writes a DSN back with the password replaced by `***`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fmt_redacted(
    f: &mut fmt::Formatter<'_>,
    scheme: &str,
    user: Option<&str>,
    has_password: bool,
    host: &str,
    port: u16,
    path: &str,
    params: &[(String, String)],
) -> fmt::Result {
    write!(f, "{scheme}://")?;
    if let Some(user) = user {
        f.write_str(user)?;
        if has_password {
            f.write_str(":***")?;
        }
        f.write_str("@")?;
    }
    if host.contains(':') {
        write!(f, "[{host}]:{port}")?;
    } else {
        write!(f, "{host}:{port}")?;
    }
    if !path.is_empty() {
        write!(f, "/{path}")?;
    }
    for (i, (k, v)) in params.iter().enumerate() {
        write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
    }
    Ok(())
}

/// `ca`/`cert`/`cert_key` values (both sides): inline PEM, or `@path` to a PEM file (as taosx).
pub(crate) fn read_pem(side: Side, key: &str, value: &str) -> Result<String, DsnError> {
    let invalid = |message: String| DsnError::Invalid {
        side,
        name: key.into(),
        message,
    };
    let pem = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read PEM file `{path}`: {e}")))?,
        None => value.to_string(),
    };
    if !pem.contains("-----BEGIN ") {
        return Err(invalid(
            "expected PEM text (-----BEGIN …) or @path to a PEM file".into(),
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_FROM: &str =
        "tmq+ws://root:taosdata@localhost:6041/topic_meters?group.id=taosx-pub-test&auto.offset.reset=earliest";
    const SEED_TO: &str =
        "mqtt://mqtt.tdengine.com:1883?topic=test/topic_meters&qos=1&version=5.0&client_id=taosx-pub-meters";

    #[test]
    fn seed_dsns_parse() {
        let s = SourceDsn::parse(SEED_FROM).unwrap();
        assert_eq!(s.topics, vec!["topic_meters"]);
        assert_eq!(s.group_id, "taosx-pub-test");
        assert_eq!(s.offset_reset, Some(OffsetReset::Earliest));
        assert_eq!((s.host.as_str(), s.port), ("localhost", 6041));
        assert!(!s.with_meta);
        let t = TargetDsn::parse(SEED_TO).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.qos), ("mqtt.tdengine.com", 1883, 1));
        assert_eq!(t.version, MqttVersion::V5);
        assert_eq!(t.client_id, "taosx-pub-meters");
        assert_eq!(t.topic.as_str(), "test/topic_meters");
        assert_eq!(t.meta_topic.as_str(), "test/topic_meters");
        assert_eq!(t.commit, CommitMode::AfterAck);
        assert_eq!((t.inflight, t.tcp_nodelay), (1000, false));
    }

    #[test]
    fn underscore_spellings_and_options() {
        let s = SourceDsn::parse(
            "tmq+wss://u:p@h/a,b?group_id=g&client_id=c&auto_offset_reset=latest&with_meta=true\
             &with_meta_delete=false&with_meta_drop=0&experimental_snapshot_enable=true&timeout=10s&poll_interval_ms=25\
             &fetch_raw=false",
        )
        .unwrap();
        assert_eq!(s.poll_interval, std::time::Duration::from_millis(25));
        assert!(!s.to_taos_dsn().contains("poll"), "ours, not taos's");
        assert!(
            !s.fetch_raw && !s.to_taos_dsn().contains("fetch"),
            "ours, not taos's"
        );
        assert!(s.to_string().contains("fetch.raw=false"), "{s}");
        assert!(
            SourceDsn::parse("tmq+ws://h/t?group.id=g").unwrap().fetch_raw,
            "the default"
        );
        assert!(s.tls && s.with_meta && !s.with_meta_delete && !s.with_meta_drop && s.snapshot_enable);
        assert_eq!(s.topics, vec!["a", "b"]);
        assert_eq!(s.client_id.as_deref(), Some("c"));
        assert_eq!(s.timeout, Some(std::time::Duration::from_secs(10)));
        let taos = s.to_taos_dsn();
        assert!(taos.starts_with("wss://u:p@h:6041?group.id=g"), "{taos}");
        assert!(
            taos.contains("auto.offset.reset=latest") && taos.contains("client.id=c"),
            "{taos}"
        );

        let t = TargetDsn::parse(
            "mqtt://h?version=3.1.1&qos=2&client.id=c&topic=a/{table}&meta_topic=m/{stable}&retain=true\
             &keep_alive=30&clean_session=false&inflight=20&window=5&max_packet_size=4096&commit=before-ack",
        )
        .unwrap();
        assert_eq!(t.version, MqttVersion::V311);
        assert_eq!(
            (t.qos, t.inflight, t.tcp_nodelay, t.window, t.max_packet_size),
            (2, 20, true, 5, 4096)
        );
        assert!(t.retain && !t.clean_session);
        assert_eq!(t.commit, CommitMode::BeforeAck);
        assert_eq!(t.keep_alive, std::time::Duration::from_secs(30));
        let t = TargetDsn::parse("mqtt://h?version=5&client_id=c&topic=t&tcp_nodelay=true").unwrap();
        assert_eq!((t.qos, t.inflight, t.tcp_nodelay, t.port), (0, 100, true, 1883));
    }

    #[test]
    fn passwords_never_shown() {
        let s = SourceDsn::parse("tmq+ws://root:s3cr%40t@h:6041/t?group.id=g").unwrap();
        assert_eq!(s.password.as_deref(), Some("s3cr@t"));
        for text in [s.to_string(), format!("{s:?}")] {
            assert!(!text.contains("s3cr"), "{text}");
            assert!(text.contains("root:***@h:6041/t"), "{text}");
        }
        let t = TargetDsn::parse("mqtt://u:hunter2@h:1883?version=5.0&client_id=c&topic=t").unwrap();
        for text in [t.to_string(), format!("{t:?}")] {
            assert!(
                !text.contains("hunter2") && text.contains("u:***@h:1883"),
                "{text}"
            );
        }
        // Even a password that fails to decode is not echoed.
        let e = SourceDsn::parse("tmq+ws://root:%ff%fe@h/t?group.id=g")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("%ff"), "{e}");
    }

    /// Every bad DSN with the exact one-line error the user sees.
    #[test]
    fn bad_dsns_table() {
        let src = |s: &str| {
            SourceDsn::parse(s)
                .map(|d| panic!("accepted {s}: {d}"))
                .unwrap_err()
                .to_string()
        };
        let dst = |s: &str| {
            TargetDsn::parse(s)
                .map(|d| panic!("accepted {s}: {d}"))
                .unwrap_err()
                .to_string()
        };
        let base = "mqtt://h:1883?version=5.0&client_id=c";
        let cases: Vec<(String, &str)> = vec![
            (src(""), "source DSN (-f/--from): empty DSN"),
            (src("localhost:6041/t"), "source DSN (-f/--from): missing `://` after the scheme"),
            (src("taos://h/t?group.id=g"), "source DSN (-f/--from): unsupported scheme `taos`; accepted: tmq+ws, tmq+wss"),
            (src("tmq+ws://h:6041?group.id=g"), "source DSN (-f/--from): missing required parameter `topic` (the path names the TMQ topic(s): tmq+ws://host:6041/topic1,topic2)"),
            (src("tmq+ws://h:6041/t"), "source DSN (-f/--from): missing required parameter `group.id` (the TMQ consumer group, e.g. ?group.id=tmq2mqtt)"),
            (src("tmq+ws://h:604100/t?group.id=g"), "source DSN (-f/--from): parameter `port`: bad value `604100`; accepted: a number 1-65535"),
            (src("tmq+ws://h:abc/t?group.id=g"), "source DSN (-f/--from): parameter `port`: bad value `abc`; accepted: a number 1-65535"),
            (src("tmq+ws://h/t?group.id=g&auto.offset.reset=first"), "source DSN (-f/--from): parameter `auto.offset.reset`: bad value `first`; accepted: earliest, latest, none"),
            (src("tmq+ws://h/t?group.id=g&with.meta=maybe"), "source DSN (-f/--from): parameter `with.meta`: bad value `maybe`; accepted: true or false"),
            (src("tmq+ws://h/t?group.id=g&fetch.raw=maybe"), "source DSN (-f/--from): parameter `fetch.raw`: bad value `maybe`; accepted: true or false"),
            (src("tmq+ws://h/t?group.id=g&group_id=h"), "source DSN (-f/--from): parameter `group_id` given twice"),
            (src("tmq+ws://h/t?group.id="), "source DSN (-f/--from): parameter `group.id`: must not be empty"),
            (src("tmq+ws://h/t?group.id=g&enable.auto.commit=true"), "source DSN (-f/--from): unknown parameter `enable.auto.commit`; accepted: group.id, client.id, auto.offset.reset, with.meta, with.meta.delete, with.meta.drop, experimental.snapshot.enable, timeout, poll.interval.ms, consumers, fetch.raw, ca (tmq+wss only) (underscore spellings too)"),
            (src("tmq+ws://h/t?group.id=g&ca=-----BEGIN%20CERTIFICATE-----"), "source DSN (-f/--from): parameter `ca`: only for TLS: use a tmq+wss:// DSN"),
            (src("tmq+wss://h/t?group.id=g&cert_key=@/k.pem"), "source DSN (-f/--from): parameter `cert_key`: client certificates are not supported towards TDengine (taosAdapter never asks for one; only `ca`)"),
            (src("tmq+wss://h/t?group.id=g&ca=nope"), "source DSN (-f/--from): parameter `ca`: expected PEM text (-----BEGIN …) or @path to a PEM file"),
            (src("tmq+wss://h/t?group.id=g&ca=-----BEGIN%20CERTIFICATE-----%0Agarbage%0A-----END%20CERTIFICATE-----"), "source DSN (-f/--from): parameter `ca`: bad PEM in `ca`: a certificate in it is not valid X.509 DER (BadEncoding)"),
            (src("tmq+ws://h/t?group.id=g&poll.interval.ms=0"), "source DSN (-f/--from): parameter `poll.interval.ms`: bad value `0`; accepted: milliseconds, 1 to 60000"),
            (src("tmq+ws://h/t?group.id=g&timeout=soon"), "source DSN (-f/--from): parameter `timeout`: bad value `soon`; accepted: seconds (`30`) or a duration like `500ms`, `10s`, `1m`"),
            (src("tmq+ws://:6041/t?group.id=g"), "source DSN (-f/--from): missing required parameter `host` (e.g. tmq+ws://root:taosdata@localhost:6041/topic)"),
            (dst("http://h?version=5.0"), "target DSN (-t/--to): unsupported scheme `http`; accepted: mqtt, mqtts"),
            (dst("mqtt://h?version=5.0&client_id=c&topic=t&ca=@/x.pem"), "target DSN (-t/--to): parameter `ca`: only for TLS: use an mqtts:// DSN"),
            (dst("mqtt://h?client_id=c&topic=t"), "target DSN (-t/--to): missing required parameter `version` (3.1, 3.1.1 or 5.0)"),
            (dst("mqtt://h?version=5.0&topic=t"), "target DSN (-t/--to): missing required parameter `client_id` (a client id unique on the broker)"),
            (dst(base), "target DSN (-t/--to): missing required parameter `topic` (the MQTT topic (template) to publish to)"),
            (dst("mqtt://h?version=4.0&client_id=c&topic=t"), "target DSN (-t/--to): parameter `version`: bad value `4.0`; accepted: 3.1, 3.1.1, 5.0"),
            (dst("mqtt://h?version=3.1&client_id=abcdefghijklmnopqrstuvwxyz&topic=t"), "target DSN (-t/--to): parameter `client_id`: MQTT 3.1 client ids are 1 to 23 bytes long, `abcdefghijklmnopqrstuvwxyz` has 26"),
            (dst(&format!("{base}&topic=t&qos=3")), "target DSN (-t/--to): parameter `qos`: bad value `3`; accepted: 0, 1, 2"),
            (dst(&format!("{base}&topic=a/{{db}}")), "target DSN (-t/--to): parameter `topic`: unknown variable `{db}`; accepted: {database}, {tmq_topic}, {vgroup_id}, {stable}, {table}"),
            (dst(&format!("{base}&topic=a/{{table")), "target DSN (-t/--to): parameter `topic`: unterminated variable starting at byte 2 (missing `}`)"),
            (dst(&format!("{base}&topic=t&meta_topic=m/{{x}}")), "target DSN (-t/--to): parameter `meta_topic`: unknown variable `{x}`; accepted: {database}, {tmq_topic}, {vgroup_id}, {stable}, {table}"),
            (dst(&format!("{base}&topic=a/%23")), "target DSN (-t/--to): parameter `topic`: wildcards `+` and `#` are not allowed in a topic to publish to"),
            (dst(&format!("{base}&topic=")), "target DSN (-t/--to): parameter `topic`: empty topic"),
            (dst(&format!("{base}&topic=t&qos=1&qos=2")), "target DSN (-t/--to): parameter `qos` given twice"),
            (dst(&format!("{base}&topic=t&colour=red")), "target DSN (-t/--to): unknown parameter `colour`; accepted: version, qos, client_id, topic, meta_topic, retain, keep_alive, clean_session, inflight, tcp_nodelay, window, max_packet_size, commit, format, status_topic, status_online, status_offline, dead_letter_topic, user_properties, message_expiry, ca, cert, cert_key (mqtts only)"),
            (dst(&format!("{base}&topic=t&inflight=0")), "target DSN (-t/--to): parameter `inflight`: bad value `0`; accepted: 1 to 65535"),
            (dst(&format!("{base}&topic=t&commit=never")), "target DSN (-t/--to): parameter `commit`: bad value `never`; accepted: after-ack (default), before-ack (unsafe, for comparison)"),
            (dst(&format!("{base}&topic=t&keep_alive=0")), "target DSN (-t/--to): parameter `keep_alive`: bad value `0`; accepted: 5 to 65535 seconds (rumqttc's minimum is 5)"),
            (dst(&format!("{base}&topic=t&keep_alive=2s")), "target DSN (-t/--to): parameter `keep_alive`: bad value `2s`; accepted: 5 to 65535 seconds (rumqttc's minimum is 5)"),
            (dst(&format!("{base}&topic=t&max_packet_size=10")), "target DSN (-t/--to): parameter `max_packet_size`: bad value `10`; accepted: bytes, 1024 to 268435455"),
            (dst("mqtt://h/x?version=5.0&client_id=c&topic=t"), "target DSN (-t/--to): parameter `path`: unexpected path `/x`; the MQTT topic goes in `?topic=`"),
            (dst("mqtt://h:0?version=5.0&client_id=c&topic=t"), "target DSN (-t/--to): parameter `port`: bad value `0`; accepted: a number 1-65535"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
            assert!(!got.contains('\n'));
        }
    }

    #[test]
    fn echoed_input_stays_one_short_line() {
        let e = SourceDsn::parse("tmq+ws://h/t?group.id=g&with.meta=a%0Ab")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("bad value `a\\nb`; accepted: true or false"), "{e}");
        let huge = "x".repeat(100_000);
        let e = TargetDsn::parse(&format!("mqtt://h?version=5.0&{huge}=1"))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 450 && e.contains("…(99936 more bytes)"), "{e}");
        assert_eq!(shown("北京\u{7f}", 64), "北京\\u{7f}");
    }

    #[test]
    fn password_with_reserved_characters_is_parsed_or_never_echoed() {
        // '/' in the password: the authority ends after the last '@'.
        let s = SourceDsn::parse("tmq+ws://root:s3/cr/et@h:6041/t?group.id=g").unwrap();
        assert_eq!(
            (s.password.as_deref(), s.host.as_str(), s.port),
            (Some("s3/cr/et"), "h", 6041)
        );
        assert_eq!(s.topics, ["t"]);
        // '?' in the password cannot be told apart from the query: the error must not show its head.
        let e = SourceDsn::parse("tmq+ws://root:s3?cret@h:6041/t?group.id=g")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3") && e.contains("percent-encode"), "{e}");
        let e = TargetDsn::parse("mqtt://u:[pw?x@h?version=5.0")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn names_and_strings_beyond_protocol_limits_are_refused() {
        let long = "g".repeat(193);
        let e = SourceDsn::parse(&format!("tmq+ws://h/t?group.id={long}")).unwrap_err();
        assert!(
            e.to_string()
                .contains("group.id`: longer than TDengine's 192-byte limit"),
            "{e}"
        );
        let e = SourceDsn::parse(&format!("tmq+ws://h/{long}?group.id=g")).unwrap_err();
        assert!(e.to_string().contains("192-byte limit"), "{e}");
        let huge = "c".repeat(65_536);
        let base = "mqtt://h?version=5.0&client_id=c";
        let e = TargetDsn::parse(&format!("mqtt://h?version=5.0&topic=t&client_id={huge}")).unwrap_err();
        assert!(e.to_string().contains("65535-byte string limit"), "{e}");
        let e = TargetDsn::parse(&format!("{base}&topic={huge}")).unwrap_err();
        assert!(e.to_string().contains("65535-byte topic limit"), "{e}");
    }
}
