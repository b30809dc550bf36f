//! MQTT over TLS (`mqtts://`) against a real Mosquitto: the right CA (inline or from a file) over every
//! version, untrusted certificates (wrong CA, expired, wrong host name) as one clear fatal line, client
//! certificates, and the TLS settings checked at parse. Requires `mosquitto` (ci/setup.sh installs it).

mod common;

use std::time::Duration;

use common::{Running, StandIn, Subscriber};
use simulator::{
    broker::MqttVersion,
    mosquitto::{Mosquitto, TlsListener},
    tls::TestPki,
};
use tmq2mqtt::{Bridge, BridgeConfig};

const T: Duration = Duration::from_secs(30);

/// A TLS broker plus a directory for PEM files.
struct TlsWorld {
    pki: TestPki,
    dir: tempfile::TempDir,
}

impl TlsWorld {
    fn new() -> TlsWorld {
        TlsWorld {
            pki: TestPki::new("bridge test CA").unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn broker(&self, expired: bool, require_client_cert: bool) -> Mosquitto {
        let server = if expired {
            self.pki.expired_server_cert().unwrap()
        } else {
            self.pki.server_cert().unwrap()
        };
        Mosquitto::builder()
            .tls(TlsListener {
                ca_pem: self.pki.ca_pem(),
                server,
                require_client_cert,
            })
            .start()
            .unwrap()
    }

    /// Writes `pem` to a file and returns the DSN value `@path`.
    fn file(&self, name: &str, pem: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        format!("@{}", path.display())
    }

    /// A subscriber to `broker` on `filter` over TLS (trusting this CA; with a client certificate when the
    /// broker requires one), so the tests judge what arrived, not only what the bridge counted.
    async fn subscriber(&self, broker: &Mosquitto, filter: &str, client_cert: bool) -> Subscriber {
        let client = client_cert.then(|| {
            let c = self.pki.client_cert("subscriber").unwrap();
            (c.cert_pem.into_bytes(), c.key_pem.into_bytes())
        });
        let tls = rumqttc::Transport::tls(self.pki.ca_pem().into_bytes(), client, None);
        Subscriber::start_over(broker.addr(), MqttVersion::V311, filter, 1, tls).await
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_the_right_ca_delivers_over_every_version() {
    let td = StandIn::with_meters(1, "t").await;
    td.insert(2, 0..20);
    let w = TlsWorld::new();
    let broker = w.broker(false, false);
    // The CA inline (percent-encoded) once, from a file otherwise.
    let inline = enc(&w.pki.ca_pem());
    let from_file = w.file("ca.pem", &w.pki.ca_pem());
    for (version, ca) in [("3.1", &from_file), ("3.1.1", &inline), ("5.0", &from_file)] {
        let tag = format!("tls{}", version.replace('.', ""));
        let mut sub = w.subscriber(&broker, &format!("{tag}/#"), false).await;
        let run = Running::start(
            &td.earliest_dsn("t", &tag),
            &format!(
                "mqtts://127.0.0.1:{}?version={version}&qos=1&client_id={tag}&topic={tag}/{{table}}&ca={ca}",
                broker.port()
            ),
        );
        let got = sub.collect(20, T).await;
        common::assert_every_row_in_table_order(&got, &tag, 2, 20);
        run.stop_clean(&mut sub, &tag, 1, 20).await;
    }
}

/// A broker certificate the bridge cannot trust — signed by another CA, expired, or for another host name —
/// is fatal like a refused CONNACK: the run ends at once (no retry) with one line naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_wrong_ca_an_expired_or_misnamed_certificate_is_fatal_with_one_clear_line() {
    let td = StandIn::with_meters(1, "t").await;
    let w = TlsWorld::new();
    let stranger = TestPki::new("stranger CA").unwrap();
    let good = w.broker(false, false);
    let expired = w.broker(true, false);
    let misnamed = Mosquitto::builder()
        .tls(TlsListener {
            ca_pem: w.pki.ca_pem(),
            server: w.pki.server_cert_for(&["broker.invalid"]).unwrap(),
            require_client_cert: false,
        })
        .start()
        .unwrap();
    let cases = [
        (&good, stranger.ca_pem(), "UnknownIssuer"),
        (&expired, w.pki.ca_pem(), "certificate expired"),
        (&misnamed, w.pki.ca_pem(), "not valid for name"),
    ];
    for (i, (broker, ca, want)) in cases.into_iter().enumerate() {
        for version in ["3.1", "3.1.1", "5.0"] {
            let ca = w.file(&format!("ca{i}.pem"), &ca);
            let config = BridgeConfig::from_dsns(
                &td.earliest_dsn("t", "badtls"),
                &format!(
                    "mqtts://127.0.0.1:{}?version={version}&qos=1&client_id=badtls&topic=x&ca={ca}",
                    broker.port()
                ),
            )
            .unwrap();
            let bridge = Bridge::new(config);
            let stats = bridge.stats();
            let err = tokio::time::timeout(T, bridge.run(std::future::pending()))
                .await
                .expect("an untrusted certificate is fatal, not retried")
                .expect_err("must fail")
                .to_string();
            assert!(err.contains(want), "{version}: {err}");
            assert!(
                err.contains("TLS handshake with the MQTT broker") && err.contains("not retried"),
                "{version}: {err}"
            );
            assert!(!err.contains('\n'), "{version}: one line: {err}");
            let s = stats.snapshot();
            assert_eq!(
                (s.mqtt_connects, s.mqtt_failures),
                (0, 0),
                "{version}: one attempt, no retry"
            );
        }
    }
}

/// The binary: exit code 1, promptly, with the certificate problem on its `error:` line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_1_when_the_broker_certificate_is_untrusted() {
    let td = StandIn::with_meters(1, "t").await;
    let w = TlsWorld::new();
    let stranger = TestPki::new("stranger CA").unwrap();
    let broker = w.broker(false, false);
    let ca = w.file("stranger.pem", &stranger.ca_pem());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tmq2mqtt"))
        .args([
            "run",
            "-f",
            &td.earliest_dsn("t", "badtls"),
            "-t",
            &format!(
                "mqtts://127.0.0.1:{}?version=3.1.1&qos=1&client_id=badtls&topic=x&ca={ca}",
                broker.port()
            ),
        ])
        .env_remove("TMQ2MQTT_FROM")
        .env_remove("TMQ2MQTT_TO")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(T, child.wait_with_output())
        .await
        .expect("the binary exits on its own")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(line.contains("invalid peer certificate: UnknownIssuer"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_client_certificate_is_presented_when_the_broker_requires_one() {
    let td = StandIn::with_meters(1, "t").await;
    td.insert(2, 0..5);
    let w = TlsWorld::new();
    let broker = w.broker(false, true);
    let client = w.pki.client_cert("bridge").unwrap();
    let ca = w.file("ca.pem", &w.pki.ca_pem());
    let cert = w.file("client.pem", &client.cert_pem);
    let key = w.file("client.key", &client.key_pem);
    for version in ["3.1", "3.1.1", "5.0"] {
        let tag = format!("cc{}", version.replace('.', ""));
        let mut sub = w.subscriber(&broker, &format!("{tag}/#"), true).await;
        let run = Running::start(
            &td.earliest_dsn("t", &tag),
            &format!(
                "mqtts://127.0.0.1:{}?version={version}&qos=1&client_id={tag}&topic={tag}/{{table}}&ca={ca}&cert={cert}&cert_key={key}",
                broker.port()
            ),
        );
        let got = sub.collect(5, T).await;
        common::assert_every_row_in_table_order(&got, &tag, 2, 5);
        run.stop_clean(&mut sub, &tag, 1, 5).await;
    }
    // Without a certificate the broker ends the handshake.
    let run = Running::start(
        &td.earliest_dsn("t", "nocert"),
        &format!(
            "mqtts://127.0.0.1:{}?version=3.1.1&qos=1&client_id=nocert&topic=x&ca={ca}",
            broker.port()
        ),
    );
    let stats = run.stats.clone();
    common::wait_for("failed attempts", T, || {
        stats.mqtt_failures.load(std::sync::atomic::Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(run.stats.snapshot().mqtt_connects, 0);
    run.stop().await;
}

#[test]
fn tls_settings_are_validated_at_parse() {
    use tmq2mqtt::dsn::TargetDsn;
    let base = "version=3.1.1&client_id=c&topic=x";
    for (dsn, want) in [
        (format!("mqtt://h?{base}&ca=@/nonexistent.pem"), "only for TLS"),
        (
            format!("mqtts://h?{base}&ca=@/nonexistent.pem"),
            "cannot read PEM file",
        ),
        (format!("mqtts://h?{base}&ca=not-pem"), "expected PEM text"),
        (
            format!(
                "mqtts://h?{base}&ca={}",
                enc("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            ),
            "bad PEM in `ca`: a certificate in it is not valid X.509 DER (BadEncoding)",
        ),
    ] {
        let err = TargetDsn::parse(&dsn).unwrap_err().to_string();
        assert!(err.contains(want), "{dsn}: {err}");
    }
    let pki = TestPki::new("parse CA").unwrap();
    let client = pki.client_cert("c").unwrap();
    let err = TargetDsn::parse(&format!("mqtts://h?{base}&cert={}", enc(&client.cert_pem)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("both `cert` and `cert_key`"), "{err}");
    let t = TargetDsn::parse(&format!("mqtts://h?{base}&ca={}", enc(&pki.ca_pem()))).unwrap();
    assert_eq!(t.port, 8883);
    assert!(t.to_string().starts_with("mqtts://"), "{t}");
}
