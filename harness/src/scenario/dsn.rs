//! Just enough DSN reading for the harness to know what a bridge was told: QoS, protocol version, topic
//! templates, group id. The bridge owns the real parser; this one only reads query parameters.

use std::collections::BTreeMap;

/// Query parameters of a DSN (`scheme://…?a=1&b=2`), later keys winning.
pub fn query_params(dsn: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some((_, query)) = dsn.split_once('?') {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.insert(decode(k), decode(v));
        }
    }
    out
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The scheme before `://`.
pub fn scheme(dsn: &str) -> Option<&str> {
    dsn.split_once("://").map(|(s, _)| s)
}

/// The path part after the authority (`tmq+ws://host/topic_a,topic_b` → `topic_a,topic_b`).
pub fn path(dsn: &str) -> &str {
    let rest = dsn.split_once("://").map(|(_, r)| r).unwrap_or(dsn);
    let rest = rest.split_once('?').map(|(r, _)| r).unwrap_or(rest);
    rest.split_once('/').map(|(_, p)| p).unwrap_or("")
}

/// A DSN with its password replaced by `***` (never print passwords).
pub fn redact(dsn: &str) -> String {
    let Some((scheme, rest)) = dsn.split_once("://") else {
        return dsn.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map(|(u, _)| u).unwrap_or(userinfo);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => dsn.to_string(),
    }
}

/// What the harness needs to know about a bridge's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    pub qos: u8,
    pub version: String,
    pub topic: String,
    pub meta_topic: String,
    pub client_id: String,
}

impl TargetInfo {
    pub fn from_dsn(dsn: &str) -> Result<TargetInfo, String> {
        let q = query_params(dsn);
        let qos = match q.get("qos").map(String::as_str) {
            None => 0,
            Some("0") => 0,
            Some("1") => 1,
            Some("2") => 2,
            Some(other) => return Err(format!("qos={other:?} is not 0, 1 or 2")),
        };
        let topic = q.get("topic").cloned().ok_or("missing topic=")?;
        Ok(TargetInfo {
            qos,
            version: q.get("version").cloned().unwrap_or_default(),
            meta_topic: q.get("meta_topic").cloned().unwrap_or_else(|| topic.clone()),
            topic,
            client_id: q.get("client_id").cloned().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_query_and_path() {
        let dsn = "tmq+ws://root:taosdata@{tdengine}/topic_meters?group.id=g&auto.offset.reset=earliest";
        assert_eq!(scheme(dsn), Some("tmq+ws"));
        assert_eq!(path(dsn), "topic_meters");
        assert_eq!(query_params(dsn)["group.id"], "g");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("tmq+ws://root:taosdata@h:6041/t?x=1"),
            "tmq+ws://root:***@h:6041/t?x=1"
        );
        assert_eq!(redact("mqtt://h:1883?qos=1"), "mqtt://h:1883?qos=1");
        assert_eq!(redact("mqtt://u@h"), "mqtt://u@h");
    }

    #[test]
    fn target_info_defaults_and_errors() {
        let t = TargetInfo::from_dsn("mqtt://h?topic=a/{table}&qos=2&version=5.0").unwrap();
        assert_eq!((t.qos, t.meta_topic.as_str()), (2, "a/{table}"));
        assert!(TargetInfo::from_dsn("mqtt://h?topic=a&qos=3").is_err());
        assert!(TargetInfo::from_dsn("mqtt://h?qos=1").is_err());
    }
}
