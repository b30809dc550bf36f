//! Scenario files: loading `scenarios/*.toml` into typed [`Scenario`]s and checking them, with every
//! error naming the file, the line and the key.

pub mod locate;
mod model;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;

use locate::Segment;

/// A scenario file that cannot be used, located as precisely as the TOML allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Key path such as `bridges[0].to` (empty when the problem is the whole file).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads and validates one scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_path_buf(),
        line: None,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and validates scenario text; `file` is used for messages and for the default name.
pub fn parse(file: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let de = toml::Deserializer::new(text);
    let mut scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.span().map(|s| locate::line_of(text, s.start));
        ScenarioError {
            file: file.to_path_buf(),
            line,
            key: if key == "." { String::new() } else { key },
            message: inner.message().trim().to_string(),
        }
    })?;
    if scenario.name.is_empty() {
        scenario.name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    if let Some((path, message)) = validate(&scenario).into_iter().next() {
        return Err(ScenarioError {
            file: file.to_path_buf(),
            line: locate::line_of_path(text, &path),
            key: locate::render(&path),
            message,
        });
    }
    Ok(scenario)
}

/// Every scenario file in a directory, sorted by name.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The scenarios directory of this repository (for tests and the CLI's default).
pub fn default_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    dir.canonicalize().unwrap_or(dir)
}

/// The scheme of a URL, for messages that must not echo the rest (it may hold a password).
fn scheme_of(url: &str) -> &str {
    url.split_once("://").map_or("", |(scheme, _)| scheme)
}

fn k(s: &str) -> Segment {
    Segment::Key(s.into())
}

fn at(list: &str, i: usize, key: &str) -> Vec<Segment> {
    vec![k(list), Segment::Index(i), k(key)]
}

/// Checks that need more than one field; returns (path, message) per problem, in file order.
pub fn validate(s: &Scenario) -> Vec<(Vec<Segment>, String)> {
    let mut errs: Vec<(Vec<Segment>, String)> = Vec::new();
    let mut err = |path: Vec<Segment>, msg: String| errs.push((path, msg));

    if let TdengineKind::External { dsn } = &s.world.tdengine {
        if !(dsn.starts_with("ws://") || dsn.starts_with("wss://")) {
            err(
                vec![k("world"), k("tdengine"), k("dsn")],
                format!("scheme {:?} is not ws:// or wss://", scheme_of(dsn)),
            );
        }
    }
    if let BrokerKind::External { url } = &s.world.broker {
        if !(url.starts_with("mqtt://") || url.starts_with("mqtts://")) {
            err(
                vec![k("world"), k("broker"), k("url")],
                format!("scheme {:?} is not mqtt:// or mqtts://", scheme_of(url)),
            );
        }
    }
    if s.data.vgroups == 0 {
        err(vec![k("data"), k("vgroups")], "must be at least 1".into());
    }
    if s.data.meters > 0 && s.data.rows == 0 {
        err(vec![k("data"), k("rows")], "meters are set but rows is 0".into());
    }
    if let Some(before) = s.data.before_start {
        if before > s.data.rows {
            err(
                vec![k("data"), k("before_start")],
                format!("{before} is more than data.rows ({})", s.data.rows),
            );
        }
    }
    for (name, p) in [
        ("out_of_order", s.data.chaos.out_of_order),
        ("repeated_ts", s.data.chaos.repeated_ts),
        ("nulls", s.data.chaos.nulls),
    ] {
        if !(0.0..=1.0).contains(&p) {
            err(
                vec![k("data"), k("chaos"), k(name)],
                format!("{p} is not a probability between 0 and 1"),
            );
        }
    }
    for (i, t) in s.topics.iter().enumerate() {
        if !t.sql.to_ascii_lowercase().contains("create topic") {
            err(at("topics", i, "sql"), "must be a CREATE TOPIC statement".into());
        }
    }

    if s.bridges.is_empty() {
        err(vec![k("bridges")], "at least one [[bridges]] is needed".into());
    }
    for (i, b) in s.bridges.iter().enumerate() {
        if s.bridges[..i].iter().any(|o| o.name == b.name) {
            err(
                at("bridges", i, "name"),
                format!("duplicate bridge name {:?}", b.name),
            );
        }
        // The bridge's own parser: a DSN it would refuse fails the scenario at load time.
        if let Err(e) = b.source() {
            err(at("bridges", i, "from"), e.to_string());
        }
        if let Err(e) = b.target() {
            err(at("bridges", i, "to"), e.to_string());
        }
    }

    if s.subscribers.is_empty() {
        err(
            vec![k("subscribers")],
            "at least one [[subscribers]] is needed".into(),
        );
    }
    for (i, sub) in s.subscribers.iter().enumerate() {
        if s.subscribers[..i].iter().any(|o| o.name == sub.name) {
            err(
                at("subscribers", i, "name"),
                format!("duplicate subscriber name {:?}", sub.name),
            );
        }
        if !rumqttc::valid_filter(&sub.filter) {
            err(
                at("subscribers", i, "filter"),
                format!(
                    "{:?} is not a valid topic filter ('+' must fill a whole level, '#' must be last)",
                    sub.filter
                ),
            );
        }
        if sub.qos > 2 {
            err(
                at("subscribers", i, "qos"),
                format!("{} is not 0, 1 or 2", sub.qos),
            );
        }
    }

    for (i, f) in s.faults.iter().enumerate() {
        let bridge = match &f.bridge {
            Some(name) => match s.bridges.iter().find(|b| &b.name == name) {
                Some(b) => Some(b),
                None => {
                    err(at("faults", i, "bridge"), format!("no bridge named {name:?}"));
                    continue;
                }
            },
            None => s.bridges.first(),
        };
        let needs = |field: &str, present: bool| (!present).then(|| field.to_string());
        let missing = match f.action {
            FaultAction::DropAcks => needs("count", f.count.is_some()),
            FaultAction::DelayAcks => {
                needs("count", f.count.is_some()).or(needs("duration", f.duration.is_some()))
            }
            FaultAction::Throttle => {
                needs("bytes_per_s", f.bytes_per_s.is_some()).or(needs("duration", f.duration.is_some()))
            }
            FaultAction::StandinStall => needs("duration", f.duration.is_some()),
            FaultAction::Sql => needs("sql", !f.sql.is_empty()),
            FaultAction::StandinFailCalls => {
                needs("count", f.count.is_some()).or(needs("code", f.code.is_some()))
            }
            _ => None,
        };
        if let Some(field) = missing {
            err(
                vec![k("faults"), Segment::Index(i), k("action")],
                format!("{:?} needs `{field}`", f.action),
            );
        }
        if let Some(b) = bridge {
            if f.action.is_proxy_fault() && !b.proxy {
                err(
                    at("faults", i, "action"),
                    format!("a proxy fault, but bridge {:?} has proxy = false", b.name),
                );
            }
            if matches!(
                f.action,
                FaultAction::BridgeKill | FaultAction::BridgeKillNoRestart
            ) && b.mode != BridgeMode::Process
            {
                err(
                    at("faults", i, "action"),
                    format!("kill -9 needs bridge {:?} to run with mode = \"process\"", b.name),
                );
            }
        }
        if let Trigger::Published(_) = f.at {
            if !f.action.is_proxy_fault() && bridge.is_some_and(|b| !b.proxy) {
                err(
                    vec![k("faults"), Segment::Index(i), k("at")],
                    "`published` counts on the proxy, which this bridge does not use".into(),
                );
            }
        }
    }

    for (i, name) in s.expect.subscribers.iter().enumerate() {
        if !s.subscribers.iter().any(|sub| &sub.name == name) {
            err(
                vec![k("expect"), k("subscribers"), Segment::Index(i)],
                format!("no subscriber named {name:?}"),
            );
        }
    }
    if s.expect.delivery == Delivery::ExactlyOnce && s.expect.max_duplicates.is_some_and(|d| d > 0) {
        err(
            vec![k("expect"), k("max_duplicates")],
            "exactly-once allows no duplicates".into(),
        );
    }
    let side = [
        (
            "dead_letters",
            s.expect.dead_letters.as_ref().map(|d| &d.subscriber),
        ),
        ("wal_gap", s.expect.wal_gap.as_ref().map(|g| &g.subscriber)),
    ];
    for (key, name) in side {
        if let Some(name) = name.filter(|n| !s.subscribers.iter().any(|sub| &sub.name == *n)) {
            err(
                vec![k("expect"), k(key), k("subscriber")],
                format!("no subscriber named {name:?}"),
            );
        }
    }
    if s.quiet >= s.deadline {
        err(vec![k("quiet")], "must be shorter than the deadline".into());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "x"
[data]
meters = 2
rows = 10
[[topics]]
name = "t"
sql = "create topic t as select ts, tbname, current from power.meters"
[[bridges]]
name = "b"
from = "tmq+ws://root:taosdata@{tdengine}/t?group.id=g&auto.offset.reset=earliest"
to = "mqtt://{broker}?topic=m/{table}&qos=1&version=3.1.1&client_id=b"
[[subscribers]]
name = "all"
filter = "m/#"
qos = 1
[[faults]]
at = { published = 5 }
action = "cut-after-publish"
[expect]
delivery = "at-least-once"
"#;

    fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
        parse(Path::new("scenarios/x.toml"), text)
    }

    #[test]
    fn a_good_file_parses_with_defaults() {
        let s = parse_str(GOOD).unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(s.seed, 42);
        assert_eq!(s.world.broker, BrokerKind::Embedded);
        assert_eq!(s.faults[0].at, Trigger::Published(5));
        assert_eq!(s.faults[0].action, FaultAction::CutAfterPublish);
        assert!(s.bridges[0].proxy);
        assert_eq!(s.expect.wire.unacked, Severity::Fail);
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("qos = 1\n[[faults]]", "qos = 1\nqoss = 2\n[[faults]]");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.file, Path::new("scenarios/x.toml"));
        assert_eq!(e.line, Some(17), "{e}");
        assert!(e.key.starts_with("subscribers[0]"), "{e}");
        assert!(e.message.contains("qoss"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let text = GOOD.replace("rows = 10", "rows = \"ten\"");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key, "data.rows", "{e}");
        assert_eq!(e.line, Some(5), "{e}");
    }

    #[test]
    fn a_bad_duration_is_explained() {
        let text = format!("deadline = \"soon\"\n{GOOD}");
        let e = parse_str(&text).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("deadline", Some(1)), "{e}");
        assert!(e.message.contains("500ms"), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_the_key() {
        let text = GOOD.replace("filter = \"m/#\"", "filter = \"m/#/x\"");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key, "subscribers[0].filter");
        assert_eq!(e.line, Some(15));
        assert_eq!(
            e.to_string().split(": ").next(),
            Some("scenarios/x.toml:15"),
            "{e}"
        );

        let text = GOOD.replace("action = \"cut-after-publish\"", "action = \"bridge-kill\"");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key, "faults[0].action");
        assert!(e.message.contains("mode = \"process\""), "{e}");

        let text = GOOD.replace("qos=1&", "qos=7&");
        let e = parse_str(&text).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("bridges[0].to", Some(12)), "{e}");
    }

    #[test]
    fn an_unknown_world_is_rejected_by_name() {
        let text = format!("{GOOD}\n[world]\nbroker = \"hivemq\"\n");
        let e = parse_str(&text).unwrap_err();
        assert_eq!(e.key, "world.broker", "{e}");
        assert!(e.message.contains("mosquitto"), "{e}");
        let text = format!("{GOOD}\n[world]\ntdengine = {{ dsn = \"ws://h:6041\" }}\n");
        let s = parse_str(&text).unwrap();
        assert_eq!(s.world.tdengine.label(), "external");
    }

    #[test]
    fn passwords_never_appear_in_errors() {
        let text = GOOD.replace("tmq+ws://root:taosdata@", "http://root:taosdata@");
        let e = parse_str(&text).unwrap_err();
        assert!(!e.to_string().contains("taosdata"), "{e}");
    }
}
