//! A catalogue of malformed and hostile DSNs run through the `tmq2mqtt` binary: every one exits 2 with a
//! single short line on stderr naming the problem, and neither password is ever echoed. (The unit table
//! in `dsn` and `cli.rs` cover the everyday mistakes; these cases are not repeated here.)

use std::process::{Command, Output};

const PASSWORDS: [&str; 2] = ["s3cret", "hunter2"];
const FROM: &str = "tmq+ws://root:s3cret@127.0.0.1:6041/t?group.id=g";
const TO: &str = "mqtt://u:hunter2@127.0.0.1:1883?version=5.0&client_id=c&topic=t";

fn run(from: &str, to: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
        .args(["run", "-f", from, "-t", to])
        .env_remove("TMQ2MQTT_FROM")
        .env_remove("TMQ2MQTT_TO")
        .output()
        .expect("run tmq2mqtt")
}

/// A source DSN case (target stays good).
fn src(from: impl Into<String>, want: &'static str) -> (String, String, &'static str) {
    (from.into(), TO.to_string(), want)
}

/// A target DSN case (source stays good).
fn dst(to: impl Into<String>, want: &'static str) -> (String, String, &'static str) {
    (FROM.to_string(), to.into(), want)
}

fn from_with(params: &str) -> String {
    format!("{FROM}&{params}")
}

fn to_with(params: &str) -> String {
    format!("{TO}&{params}")
}

/// The target DSN without `topic=t`, for template cases.
fn to_topic(topic: &str) -> String {
    format!("mqtt://u:hunter2@127.0.0.1:1883?version=5.0&client_id=c&topic={topic}")
}

#[test]
fn hostile_dsns_give_one_clear_line_and_never_the_password() {
    let huge = "x".repeat(100_000);
    let cases = vec![
        // Schemes.
        src(FROM.replace("tmq+ws", "ws"), "unsupported scheme `ws`"),
        src(FROM.replace("tmq+ws", "TMQ+WSX"), "unsupported scheme `tmq+wsx`"),
        src(FROM.replace("://", ":/"), "missing `://` after the scheme"),
        src(FROM.replace("tmq+ws", ""), "missing scheme before `://`"),
        dst(TO.replace("mqtt", "mqtt+ws"), "unsupported scheme `mqtt+ws`"),
        dst(TO.replace("mqtt://", "\u{202e}mqtt://"), "unsupported scheme"),
        // Ports and hosts.
        src(
            FROM.replace("6041", "65536"),
            "parameter `port`: bad value `65536`",
        ),
        src(FROM.replace("6041", "-1"), "parameter `port`: bad value `-1`"),
        src(FROM.replace(":6041", ":"), "parameter `port`: bad value ``"),
        dst(
            TO.replace("1883", "1883abc"),
            "parameter `port`: bad value `1883abc`",
        ),
        dst(
            TO.replace("1883", "99999999999999999999"),
            "parameter `port`: bad value",
        ),
        src(
            FROM.replace("127.0.0.1:6041", "[::1:6041"),
            "unterminated `[` in IPv6 host",
        ),
        src(
            FROM.replace("127.0.0.1:6041", "[::1]6041"),
            "unexpected `6041` after host",
        ),
        src(
            FROM.replace("127.0.0.1:6041", "[::1]:0"),
            "parameter `port`: bad value `0`",
        ),
        // Percent-encoding.
        src(
            FROM.replace("root", "r%FFoot"),
            "parameter `user`: percent-encoding does not decode",
        ),
        src(
            FROM.replace("s3cret", "s3cret%FF"),
            "parameter `password`: bad percent-encoding",
        ),
        dst(
            TO.replace("hunter2", "hunter2%C3%28"),
            "parameter `password`: bad percent-encoding",
        ),
        src(
            FROM.replace("/t?", "/%C3%28?"),
            "parameter `path`: percent-encoding does not decode",
        ),
        src(
            from_with("%FFx=1"),
            "parameter `parameter name`: percent-encoding",
        ),
        src(
            FROM.replace("group.id=g", "group.id=%C3%28"),
            "parameter `group.id`: percent-encoding",
        ),
        src(from_with("with.meta=%0A%0Dx"), "bad value `\\n\\rx`"),
        // Passwords with reserved characters left unencoded.
        src(
            FROM.replace("s3cret", "s3cret?x"),
            "percent-encode `/`, `?`, `#` and `@`",
        ),
        dst(
            TO.replace("hunter2", "hunter2?x"),
            "percent-encode `/`, `?`, `#` and `@`",
        ),
        // Duplicate and unknown keys.
        src(from_with("group.id=h"), "parameter `group.id` given twice"),
        src(
            from_with("client.id=a&client_id=b"),
            "parameter `client_id` given twice",
        ),
        dst(to_with("version=3.1.1"), "parameter `version` given twice"),
        dst(to_with("client-id=d"), "parameter `client-id` given twice"),
        src(from_with("password=s3cret"), "unknown parameter `password`"),
        dst(to_with("qos_level=1"), "unknown parameter `qos_level`"),
        src(from_with("=x"), "empty parameter name"),
        // Bad values.
        src(
            from_with("auto.offset.reset="),
            "parameter `auto.offset.reset`: bad value ``",
        ),
        src(from_with("timeout=-5s"), "parameter `timeout`: bad value `-5s`"),
        src(
            from_with("experimental.snapshot.enable=2"),
            "bad value `2`; accepted: true or false",
        ),
        src(FROM.replace("/t?", "/a/b?"), "parameter `topic`: bad value `a/b`"),
        src(FROM.replace("/t?", "/,,?"), "missing required parameter `topic`"),
        dst(
            TO.replace("version=5.0", "version="),
            "parameter `version`: bad value ``",
        ),
        dst(to_with("qos=-1"), "parameter `qos`: bad value `-1`"),
        dst(to_with("qos=1.0"), "parameter `qos`: bad value `1.0`"),
        dst(
            TO.replace("client_id=c", "client_id="),
            "parameter `client_id`: must not be empty",
        ),
        dst(
            to_with("retain=perhaps"),
            "parameter `retain`: bad value `perhaps`",
        ),
        dst(
            to_with("clean_session=2"),
            "parameter `clean_session`: bad value `2`",
        ),
        dst(
            to_with("inflight=65536"),
            "parameter `inflight`: bad value `65536`",
        ),
        dst(to_with("window=0"), "parameter `window`: bad value `0`"),
        dst(to_with("window=-1"), "parameter `window`: bad value `-1`"),
        dst(
            to_with("max_packet_size=268435456"),
            "parameter `max_packet_size`: bad value",
        ),
        dst(to_with("keep_alive=1y"), "parameter `keep_alive`: bad value `1y`"),
        // Templates.
        dst(
            to_topic("a/{database"),
            "unterminated variable starting at byte 2",
        ),
        dst(to_topic("{Database}"), "unknown variable `{Database}`"),
        dst(to_topic("a/{}"), "unknown variable `{}`"),
        dst(to_topic("{{database}}"), "unknown variable `{{database}`"),
        dst(to_topic("a/%2B/{table}"), "wildcards `+` and `#` are not allowed"),
        dst(to_topic("a/%00"), "NUL character (U+0000) is not allowed"),
        dst(to_with("meta_topic="), "parameter `meta_topic`: empty topic"),
        // The status topic.
        dst(to_with("status_topic="), "parameter `status_topic`: empty topic"),
        dst(
            to_with("status_topic=a/%2B/b"),
            "wildcards `+` and `#` are not allowed",
        ),
        dst(
            to_with("status_topic=a/%23"),
            "wildcards `+` and `#` are not allowed",
        ),
        dst(
            to_with("status_topic=a%00b"),
            "NUL character (U+0000) is not allowed",
        ),
        dst(
            to_with("status_topic=a%FF"),
            "parameter `status_topic`: percent-encoding",
        ),
        dst(
            to_with(&format!("status_topic={huge}")),
            "parameter `status_topic`: longer than MQTT's 65535-byte topic limit",
        ),
        dst(
            to_with(&format!("max_packet_size=1024&status_topic={}", "s".repeat(1000))),
            "do not fit `max_packet_size`",
        ),
        // Dead-letter topic and MQTT 5 publish properties.
        dst(
            to_with("dead_letter_topic="),
            "parameter `dead_letter_topic`: empty topic",
        ),
        dst(
            to_with("dead_letter_topic=dead/{table}"),
            "parameter `dead_letter_topic`: `{table}` is not in every message",
        ),
        dst(
            to_with("dead_letter_topic=dead/%23"),
            "wildcards `+` and `#` are not allowed",
        ),
        dst(
            to_with(&format!("dead_letter_topic={huge}")),
            "parameter `dead_letter_topic`: longer than MQTT's 65535-byte topic limit",
        ),
        dst(
            TO.replace("version=5.0", "version=3.1.1") + "&user_properties=true",
            "parameter `user_properties`: is an MQTT 5 publish property; this target speaks MQTT 3.1.1",
        ),
        dst(
            TO.replace("version=5.0", "version=3.1") + "&message_expiry=60",
            "parameter `message_expiry`: is an MQTT 5 publish property; this target speaks MQTT 3.1",
        ),
        dst(to_with("user_properties=%FF"), "parameter `user_properties`"),
        dst(
            to_with("message_expiry=0"),
            "parameter `message_expiry`: bad value `0`",
        ),
        dst(
            to_with("message_expiry=-5s"),
            "parameter `message_expiry`: bad value `-5s`",
        ),
        dst(to_with("message_expiry=0.5s"), "parameter `message_expiry`"),
        dst(
            to_with("message_expiry=200years"),
            "parameter `message_expiry`: bad value `200years`",
        ),
        dst(
            to_with(&format!("message_expiry={huge}")),
            "parameter `message_expiry`",
        ),
        dst(
            to_with("status_online=up"),
            "missing required parameter `status_topic`",
        ),
        dst(
            to_with("status_topic=s&status_offline="),
            "parameter `status_offline`: must not be empty",
        ),
        dst(
            to_with("status_topic=s&status.topic=t"),
            "parameter `status.topic` given twice",
        ),
        // Huge values: refused by length, echoed only in part.
        src(from_with(&format!("{huge}=1")), "unknown parameter `xxxx"),
        src(
            FROM.replace("group.id=g", &format!("group.id={huge}")),
            "longer than TDengine's 192-byte limit",
        ),
        src(
            FROM.replace("/t?", &format!("/{huge}?")),
            "longer than TDengine's 192-byte limit",
        ),
        dst(
            TO.replace("client_id=c", &format!("client_id={huge}")),
            "65535-byte string limit",
        ),
        dst(to_topic(&huge), "65535-byte topic limit"),
        dst(to_with(&format!("qos={huge}")), "more bytes)"),
        // Empty and blank DSNs.
        dst("", "target DSN (-t/--to): empty DSN"),
        src("   ", "source DSN (-f/--from): empty DSN"),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (from, to, want) in &cases {
        let out = run(from, to);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let short = |s: &str| s.chars().take(120).collect::<String>();
        let problem = if out.status.code() != Some(2) {
            Some(format!("exit {:?}", out.status.code()))
        } else if stderr.lines().count() != 1 {
            Some("not exactly one line".to_string())
        } else if stderr.len() > 600 {
            Some(format!("{} bytes long", stderr.len()))
        } else if !stderr.starts_with("error: ") || !stderr.contains(want) {
            Some(format!("should contain {want:?}"))
        } else if PASSWORDS.iter().any(|p| stderr.contains(p)) {
            Some("echoes a password".to_string())
        } else if !out.stdout.is_empty() {
            Some("wrote to stdout".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!(
                "{p}: -f {} -t {} → {}",
                short(from),
                short(to),
                short(&stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
