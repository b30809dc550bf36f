//! The source DSN: which TMQ topics to subscribe to, as taosx spells it.
//!
//! `tmq+ws://user:pass@host:port/topic[,topic2]?group.id=…&client.id=…&auto.offset.reset=…`
//! `&with.meta=…&with.meta.delete=…&with.meta.drop=…&experimental.snapshot.enable=…&timeout=…`
//! `&poll.interval.ms=…` (ours: how long one poll may wait, see `source`; default 10, 1–60000)
//! `&consumers=…` (ours: TMQ consumers the bridge runs in its group; default automatic, 1–64)
//! `&fetch.raw=…` (ours: read each data message in one request, see `source::raw`; default true)
//! (and `tmq+wss://`, with `ca=` PEM or `@file` to trust a private CA; see [`crate::wss`]). Underscore
//! spellings (`group_id`, `with_meta`, …) mean the same.

use std::{fmt, time::Duration};

use super::TlsOptions;

use super::{fmt_redacted, parse_bool, parse_duration, read_pem, DsnError, RawDsn, Side};

const SIDE: Side = Side::Source;
const ACCEPTED: &str =
    "group.id, client.id, auto.offset.reset, with.meta, with.meta.delete, with.meta.drop, \
                        experimental.snapshot.enable, timeout, poll.interval.ms, consumers, fetch.raw, ca (tmq+wss only) \
                        (underscore spellings too)";

/// How long one poll may wait by default: bounds the latency the official client's 500 ms sleep after
/// an empty poll would otherwise add.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Where a consumer group without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    None,
}

impl OffsetReset {
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::None => "none",
        }
    }
}

/// A validated source DSN. `Display`/`Debug` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceDsn {
    /// `true` for `tmq+wss://`.
    pub tls: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub topics: Vec<String>,
    pub group_id: String,
    pub client_id: Option<String>,
    pub offset_reset: Option<OffsetReset>,
    pub with_meta: bool,
    pub with_meta_delete: bool,
    pub with_meta_drop: bool,
    pub snapshot_enable: bool,
    /// Client-side timeout for requests to TDengine (taos `timeout`).
    pub timeout: Option<Duration>,
    /// How long one `recv_timeout` may wait before the source checks positions and polls again
    /// (`poll.interval.ms`, not passed to taos).
    pub poll_interval: Duration,
    /// How many TMQ consumers of the group the bridge runs (`consumers`, not passed to taos); `None`:
    /// automatic, see [`crate::source::default_consumers`].
    pub consumers: Option<usize>,
    /// Read each data message whole with one request (`fetch.raw`, default true, not passed to taos), see
    /// [`crate::source::raw`]; false: two round trips per block, as the official client's own loop.
    pub fetch_raw: bool,
    /// `tmq+wss://` only: CA certificates (PEM) to trust instead of the system's roots.
    pub ca: Option<String>,
}

/// The most TMQ consumers `consumers=` may ask for.
pub const MAX_CONSUMERS: usize = 64;

/// TDengine's limit for topic names and consumer group ids (bytes).
const MAX_NAME_LEN: usize = 192;

impl SourceDsn {
    /// Parses and validates a source DSN.
    pub fn parse(input: &str) -> Result<Self, DsnError> {
        let raw = RawDsn::parse(SIDE, input)?;
        let tls = match raw.scheme.as_str() {
            "tmq+ws" => false,
            "tmq+wss" => true,
            other => {
                return Err(DsnError::Scheme {
                    side: SIDE,
                    found: other.into(),
                    accepted: "tmq+ws, tmq+wss",
                })
            }
        };
        if raw.host.is_empty() {
            return Err(DsnError::Missing {
                side: SIDE,
                name: "host",
                hint: "e.g. tmq+ws://root:taosdata@localhost:6041/topic",
            });
        }
        let topics: Vec<String> = raw
            .path
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        if topics.is_empty() {
            return Err(DsnError::Missing {
                side: SIDE,
                name: "topic",
                hint: "the path names the TMQ topic(s): tmq+ws://host:6041/topic1,topic2",
            });
        }
        if let Some(long) = topics.iter().find(|t| t.len() > MAX_NAME_LEN) {
            return Err(DsnError::Invalid {
                side: SIDE,
                name: "topic".into(),
                message: format!(
                    "{} bytes, longer than TDengine's {MAX_NAME_LEN}-byte limit",
                    long.len()
                ),
            });
        }
        if let Some(bad) = topics.iter().find(|t| t.contains('/')) {
            return Err(DsnError::BadValue {
                side: SIDE,
                name: "topic".into(),
                value: bad.clone(),
                accepted: "TMQ topic names separated by commas".into(),
            });
        }
        let mut dsn = SourceDsn {
            tls,
            user: raw.user,
            password: raw.password,
            host: raw.host,
            port: raw.port.unwrap_or(6041),
            topics,
            group_id: String::new(),
            client_id: None,
            offset_reset: None,
            with_meta: false,
            with_meta_delete: true,
            with_meta_drop: true,
            snapshot_enable: false,
            timeout: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            consumers: None,
            fetch_raw: true,
            ca: None,
        };
        let mut seen: Vec<String> = Vec::new();
        let mut group_id = None;
        for (key, value) in raw.params {
            let name = key.replace('_', ".");
            if seen.contains(&name) {
                return Err(DsnError::Duplicate {
                    side: SIDE,
                    name: key,
                });
            }
            seen.push(name.clone());
            match name.as_str() {
                "group.id" => {
                    if value.is_empty() {
                        return Err(DsnError::Invalid {
                            side: SIDE,
                            name: key,
                            message: "must not be empty".into(),
                        });
                    }
                    if value.len() > MAX_NAME_LEN {
                        return Err(DsnError::Invalid {
                            side: SIDE,
                            name: key,
                            message: format!("longer than TDengine's {MAX_NAME_LEN}-byte limit"),
                        });
                    }
                    group_id = Some(value);
                }
                "client.id" => dsn.client_id = Some(value).filter(|v| !v.is_empty()),
                "auto.offset.reset" => {
                    dsn.offset_reset = Some(match value.to_ascii_lowercase().as_str() {
                        "earliest" | "smallest" => OffsetReset::Earliest,
                        "latest" | "largest" => OffsetReset::Latest,
                        "none" => OffsetReset::None,
                        _ => {
                            return Err(DsnError::BadValue {
                                side: SIDE,
                                name: key,
                                value,
                                accepted: "earliest, latest, none".into(),
                            })
                        }
                    })
                }
                "with.meta" => dsn.with_meta = parse_bool(SIDE, &key, &value)?,
                "with.meta.delete" => dsn.with_meta_delete = parse_bool(SIDE, &key, &value)?,
                "with.meta.drop" => dsn.with_meta_drop = parse_bool(SIDE, &key, &value)?,
                "experimental.snapshot.enable" => dsn.snapshot_enable = parse_bool(SIDE, &key, &value)?,
                "timeout" => dsn.timeout = Some(parse_duration(SIDE, &key, &value)?),
                "poll.interval.ms" => match value.parse::<u64>() {
                    Ok(ms @ 1..=60_000) => dsn.poll_interval = Duration::from_millis(ms),
                    _ => {
                        return Err(DsnError::BadValue {
                            side: SIDE,
                            name: key,
                            value,
                            accepted: "milliseconds, 1 to 60000".into(),
                        })
                    }
                },
                "consumers" => match value.parse::<usize>() {
                    Ok(n @ 1..=MAX_CONSUMERS) => dsn.consumers = Some(n),
                    _ => {
                        return Err(DsnError::BadValue {
                            side: SIDE,
                            name: key,
                            value,
                            accepted: format!("a number of consumers, 1 to {MAX_CONSUMERS}"),
                        })
                    }
                },
                "fetch.raw" => dsn.fetch_raw = parse_bool(SIDE, &key, &value)?,
                "ca" if !tls => {
                    return Err(DsnError::Invalid {
                        side: SIDE,
                        name: key,
                        message: "only for TLS: use a tmq+wss:// DSN".into(),
                    })
                }
                "ca" => dsn.ca = Some(read_pem(SIDE, &key, &value)?),
                // taosAdapter's TLS never asks for a client certificate, and the tunnel (crate::wss) is
                // a loopback endpoint that would lend one to any local process that connects to it.
                "cert" | "cert.key" => {
                    return Err(DsnError::Invalid {
                        side: SIDE,
                        name: key,
                        message: "client certificates are not supported towards TDengine (taosAdapter never asks for one; only `ca`)".into(),
                    })
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
        if tls {
            crate::tls::client_config(&dsn.tls_options()).map_err(|e| DsnError::Invalid {
                side: SIDE,
                name: "ca".into(),
                message: e.to_string(),
            })?;
        }
        dsn.group_id = group_id.ok_or(DsnError::Missing {
            side: SIDE,
            name: "group.id",
            hint: "the TMQ consumer group, e.g. ?group.id=tmq2mqtt",
        })?;
        Ok(dsn)
    }

    /// The TLS settings of a `tmq+wss://` source (the same shape as an `mqtts://` target's).
    pub fn tls_options(&self) -> TlsOptions {
        TlsOptions {
            ca: self.ca.clone(),
            cert: None,
            cert_key: None,
        }
    }

    /// The DSN in the form the official `taos` crate's `TmqBuilder::from_dsn` understands: dotted
    /// parameter names only, nothing it does not know, and auto-commit off (we commit ourselves).
    pub fn to_taos_dsn(&self) -> String {
        self.to_taos_dsn_via(None)
    }

    /// [`Self::to_taos_dsn`], but to `ws://` at `tunnel` (a [`crate::wss::Tunnel`]) when given.
    pub fn to_taos_dsn_via(&self, tunnel: Option<std::net::SocketAddr>) -> String {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let scheme = match (self.tls, tunnel) {
            (true, None) => "wss",
            _ => "ws",
        };
        let mut s = format!("{scheme}://");
        if let Some(user) = &self.user {
            s.push_str(&enc(user));
            if let Some(pass) = &self.password {
                s.push(':');
                s.push_str(&enc(pass));
            }
            s.push('@');
        }
        if let Some(tunnel) = tunnel {
            s.push_str(&tunnel.to_string());
        } else if self.host.contains(':') {
            s.push_str(&format!("[{}]:{}", self.host, self.port));
        } else {
            s.push_str(&format!("{}:{}", self.host, self.port));
        }
        s.push_str(&format!(
            "?group.id={}&enable.auto.commit=false",
            enc(&self.group_id)
        ));
        if let Some(c) = &self.client_id {
            s.push_str(&format!("&client.id={}", enc(c)));
        }
        if let Some(r) = self.offset_reset {
            s.push_str(&format!("&auto.offset.reset={}", r.as_str()));
        }
        s.push_str(&format!("&experimental.snapshot.enable={}", self.snapshot_enable));
        if let Some(t) = self.timeout {
            s.push_str(&format!("&timeout={}ms", t.as_millis()));
        }
        s
    }

    fn redacted_params(&self) -> Vec<(String, String)> {
        let mut p = vec![("group.id".to_string(), self.group_id.clone())];
        if let Some(c) = &self.client_id {
            p.push(("client.id".into(), c.clone()));
        }
        if let Some(r) = self.offset_reset {
            p.push(("auto.offset.reset".into(), r.as_str().into()));
        }
        if self.with_meta {
            p.push(("with.meta".into(), "true".into()));
            p.push(("with.meta.delete".into(), self.with_meta_delete.to_string()));
            p.push(("with.meta.drop".into(), self.with_meta_drop.to_string()));
        }
        if self.snapshot_enable {
            p.push(("experimental.snapshot.enable".into(), "true".into()));
        }
        if let Some(t) = self.timeout {
            p.push(("timeout".into(), humantime::format_duration(t).to_string()));
        }
        if self.poll_interval != DEFAULT_POLL_INTERVAL {
            p.push((
                "poll.interval.ms".into(),
                self.poll_interval.as_millis().to_string(),
            ));
        }
        if let Some(n) = self.consumers {
            p.push(("consumers".into(), n.to_string()));
        }
        if !self.fetch_raw {
            p.push(("fetch.raw".into(), "false".into()));
        }
        p
    }
}

impl fmt::Display for SourceDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_redacted(
            f,
            if self.tls { "tmq+wss" } else { "tmq+ws" },
            self.user.as_deref(),
            self.password.is_some(),
            &self.host,
            self.port,
            &self.topics.join(","),
            &self.redacted_params(),
        )
    }
}

impl fmt::Debug for SourceDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceDsn({self})")
    }
}
