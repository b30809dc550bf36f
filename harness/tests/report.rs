//! The HTML report of real runs, read as a person would check it: `harness run … --report DIR` on four
//! short scenarios (the seed example; a proxy cut at the 50th PUBLISH; a broker restart; Mosquitto dropping a
//! stuck subscriber's queue, so rows are lost for certain — needs `mosquitto`, `apt-get install mosquitto`),
//! then `DIR/index.html` is taken apart and held against what the run saw (`DIR/report.json`: each
//! scenario's outcome and the trace the pictures are drawn from) and against the scenario files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// How a fault band is drawn (a translucent rectangle in the fault colour).
const BAND: &str = "opacity=\"0.18\" fill=\"#D62728\"";

const SCENARIOS: [&str; 4] = [
    "seed-example",
    "cut-mid-qos1",
    "broker-restart",
    "mosquitto-broker-loss",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The text between `from` (included) and the next `to` (included) after it.
fn between<'a>(text: &'a str, from: &str, to: &str) -> Option<&'a str> {
    let start = text.find(from)?;
    let end = text[start..].find(to)? + start + to.len();
    Some(&text[start..end])
}

/// How many points each `<polyline>` of an SVG has.
fn polylines(svg: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|p| {
            let points = &p[p.find("points=\"")? + "points=\"".len()..];
            Some(points[..points.find('"')?].split_whitespace().count())
        })
        .collect()
}

/// The SVGs of a section, in order.
fn svgs(section: &str) -> Vec<&str> {
    section
        .match_indices("<svg")
        .filter_map(|(i, _)| between(&section[i..], "<svg", "</svg>"))
        .collect()
}

/// Renders the report once for every test of this file.
fn rendered() -> &'static (String, Vec<Value>) {
    static REPORT: std::sync::OnceLock<(String, Vec<Value>)> = std::sync::OnceLock::new();
    REPORT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(workspace())
            .arg("run")
            .args(SCENARIOS)
            .arg("--report")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        let data: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
        (html, data)
    })
}

/// Scenario name → (its section of the page, its outcome, its trace).
fn sections() -> HashMap<String, (&'static str, &'static Value, &'static Value)> {
    let (html, data) = rendered();
    data.iter()
        .map(|d| {
            let name = d["outcome"]["scenario"].as_str().unwrap().to_string();
            let section = between(html, &format!("<section id=\"s-{name}\">"), "</section>")
                .unwrap_or_else(|| panic!("no section for {name}"));
            (name, (section, &d["outcome"], &d["trace"]))
        })
        .collect()
}

#[test]
fn every_scenario_has_a_section_the_overview_links_to() {
    let (html, data) = rendered();
    assert_eq!(data.len(), SCENARIOS.len());
    let overview = between(html, "<section id=\"overview\">", "</section>").expect("overview");
    for name in SCENARIOS {
        assert!(
            overview.contains(&format!("<a href=\"#s-{name}\">{name}</a>")),
            "overview links to {name}"
        );
        assert!(
            html.contains(&format!("<section id=\"s-{name}\">")),
            "section {name}"
        );
    }
    assert!(html.contains("4 scenario(s): 4 passed, 0 failed, 0 skipped"));
}

#[test]
fn the_timeline_draws_every_series_with_all_its_points() {
    for (name, (section, outcome, trace)) in sections() {
        let timeline = svgs(section)[0];
        let mut drawn = polylines(timeline);
        let series = trace["series"].as_array().unwrap();
        let measures: Vec<&str> = series.iter().map(|s| s["measure"].as_str().unwrap()).collect();
        for m in ["written", "published", "acked", "committed", "delivered"] {
            // The seed example writes its row with literal SQL: no fleet, no write times.
            if m == "written" && name == "seed-example" {
                continue;
            }
            assert!(measures.contains(&m), "{name}: no {m} series in {measures:?}");
        }
        for s in series {
            let n = s["points"].as_array().unwrap().len();
            let i = drawn
                .iter()
                .position(|d| *d == n)
                .unwrap_or_else(|| panic!("{name}: {} with {n} points not drawn ({drawn:?})", s["measure"]));
            drawn.remove(i);
            let last = s["points"].as_array().unwrap().last().unwrap()[1]
                .as_u64()
                .unwrap();
            let label = match s["measure"].as_str().unwrap() {
                "written" => "written into TDengine".to_string(),
                "published" => format!("published by the bridge ({})", s["owner"].as_str().unwrap()),
                "acked" => format!("acknowledged by the broker ({})", s["owner"].as_str().unwrap()),
                "committed" => "committed".to_string(),
                _ => format!("delivered ({})", s["owner"].as_str().unwrap()),
            };
            assert!(
                timeline.contains(&format!("{label} — {last}")),
                "{name}: legend {label} — {last}"
            );
        }
        // The counts agree with the verdict.
        let v = &outcome["verdict"];
        let last = |m: &str| {
            series
                .iter()
                .find(|s| s["measure"] == m)
                .and_then(|s| s["points"].as_array().unwrap().last().unwrap()[1].as_u64())
                .unwrap()
        };
        let sub = &v["subscribers"][0];
        assert_eq!(last("delivered"), sub["received"].as_u64().unwrap(), "{name}");
        assert_eq!(last("acked"), v["wire"][0]["puback"].as_u64().unwrap(), "{name}");
        // The bridges stopped gracefully: everything published was committed.
        let rows = sub["expected"].as_u64().unwrap();
        assert_eq!(last("committed"), rows, "{name}: committed rows");
    }
}

#[test]
fn faults_that_fired_are_drawn_as_bands_with_their_names_and_reconnects_as_lines() {
    let all = sections();
    for (name, fault) in [
        ("cut-mid-qos1", "cut after publish (bridge)"),
        ("broker-restart", "broker-restart"),
    ] {
        let (section, outcome, trace) = all[name];
        let timeline = svgs(section)[0];
        let spans = trace["faults"].as_array().unwrap();
        assert_eq!(spans.len(), 1, "{name}: {spans:?}");
        assert_eq!(spans[0]["label"], fault, "{name}");
        let (from, to) = (
            spans[0]["from_s"].as_f64().unwrap(),
            spans[0]["to_s"].as_f64().unwrap(),
        );
        assert!(0.0 < from && from <= to && to < trace["duration_s"].as_f64().unwrap());
        assert!(timeline.contains(&format!("⚡ {fault}")), "{name}: fault named");
        assert_eq!(timeline.matches(BAND).count(), 1, "{name}: one fault band");
        // The bridge reconnected after the fault, and the line is drawn.
        let connections = outcome["verdict"]["wire"][0]["connections"].as_u64().unwrap();
        let reconnects = trace["reconnects"].as_array().unwrap();
        assert_eq!(reconnects.len() as u64, connections - 1, "{name}");
        assert!(
            reconnects.iter().all(|r| r["at_s"].as_f64().unwrap() >= from),
            "{name}"
        );
        assert_eq!(
            timeline.matches("↻ reconnect").count(),
            reconnects.len(),
            "{name}"
        );
    }
    // The proxy cut at the PUBLISH it forwarded: the band starts and ends at that moment.
    let cut = &all["cut-mid-qos1"].2["faults"][0];
    assert_eq!(cut["from_s"], cut["to_s"]);
    let (section, ..) = all["seed-example"];
    assert!(!section.contains(BAND), "no fault, no band");
}

#[test]
fn the_loss_table_attributes_every_missing_row_and_each_section_has_its_replay_command() {
    for (name, (section, outcome, _)) in sections() {
        let v = &outcome["verdict"];
        let losses = v["losses"].as_object().unwrap();
        if losses.is_empty() {
            assert!(section.contains("No expected row is missing."), "{name}");
        }
        for (cause, rows) in losses {
            let text = match cause.as_str() {
                "broker" => "acknowledged by the broker, never delivered: the broker's loss",
                other => panic!("{name}: unexpected loss cause {other}"),
            };
            let n = rows.as_array().unwrap().len();
            assert!(
                section.contains(&format!("<tr><td>{text}</td><td>{n}</td>")),
                "{name}: {cause} {n}"
            );
        }
        let replay = outcome["replay"].as_str().unwrap();
        assert!(replay.contains(&format!("scenarios/{name}.toml --seed ")));
        assert!(
            section.contains(&format!("<h3>Replay</h3><pre>{replay}</pre>")),
            "{name}"
        );
    }
    let missing = sections()["mosquitto-broker-loss"].1["verdict"]["losses"]["broker"]
        .as_array()
        .unwrap()
        .len();
    assert!(missing > 0, "Mosquitto drops rows it acknowledged");
}

#[test]
fn a_run_missing_only_the_brokers_losses_ends_without_waiting_for_its_deadline() {
    let all = sections();
    // Mosquitto drops what no longer fits the stuck subscriber's queue: that subscriber never gets them all.
    let (section, outcome, _) = all["mosquitto-broker-loss"];
    assert_eq!(outcome["verdict"]["ending"], "accounted");
    assert!(section.contains("ended when every missing row was the broker's loss and nothing moved"));
    // Its deadline is 20 s.
    assert!(
        outcome["elapsed_ms"].as_u64().unwrap() < 10_000,
        "{}",
        outcome["elapsed_ms"]
    );
    // A broker restart loses rows only when some were between broker and subscriber at that moment.
    let restart = all["broker-restart"].1;
    let lost = restart["verdict"]["losses"]
        .get("broker")
        .and_then(Value::as_array)
        .is_some_and(|rows| !rows.is_empty());
    let ending = if lost { "accounted" } else { "quiescent" };
    assert_eq!(restart["verdict"]["ending"], ending);
    // Its deadline is 60 s.
    assert!(
        restart["elapsed_ms"].as_u64().unwrap() < 30_000,
        "{}",
        restart["elapsed_ms"]
    );
    assert_eq!(all["cut-mid-qos1"].1["verdict"]["ending"], "quiescent");
}
