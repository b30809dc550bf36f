//! The HTML report of `harness run --report DIR` and `harness bench --report DIR`: one self-contained
//! `index.html` (styles inline, charts as inline SVG from [`super::charts`], no script, nothing fetched), so
//! it opens from disk and can be attached to a CI run as it is.
//!
//! A run's page starts with an overview (the summary table linking to each scenario, the seed, versions and
//! the command), then one section per scenario: what it does, the verdict with every failure and deviation,
//! the timeline, latency and rate charts, per-subscriber counts, the loss table with each missing row's
//! attribution, and the replay command.

use std::fmt::Write as _;

use super::charts::{self, ChartError, Curve, QosBars};
use super::{Outcome, Status};
use crate::bench::BenchReport;
use crate::scenario::LossCause;
use crate::trace::Trace;

/// One scenario on the page.
pub struct ScenarioPage<'a> {
    pub outcome: &'a Outcome,
    pub trace: Option<&'a Trace>,
    /// The scenario file's description (empty when the file could not be read).
    pub description: &'a str,
}

/// What the page says about the run as a whole.
pub struct RunInfo {
    /// The command that produced the report.
    pub command: String,
    /// `--seed`, when every scenario ran with it.
    pub seed: Option<u64>,
}

/// How many missing rows the loss table lists by name per cause.
const LOSS_ROWS: usize = 50;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The anchor of a scenario's section.
pub fn anchor(scenario: &str) -> String {
    let id: String = scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("s-{id}")
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1010px;
       padding: 16px 24px 48px; color: #1d1d1f; background: #fafafa; line-height: 1.45; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 20px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 18px 0 6px; color: #444; }
section { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 16px 20px; margin: 22px 0; }
table { border-collapse: collapse; margin: 6px 0; font-size: 14px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 4px 10px; text-align: right; vertical-align: top; }
th:first-child, td:first-child, td.l, th.l { text-align: left; }
th { background: #f2f2f2; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 13px; }
pre { background: #f4f4f4; padding: 8px 10px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; font-weight: 600; font-size: 13px; color: #fff; }
.pass { background: #2ca02c; } .fail { background: #d62728; } .skip { background: #8c8c8c; }
.muted { color: #666; font-size: 13px; } .desc { white-space: pre-line; }
ul.failures li { color: #b01d1e; } ul.deviations li { color: #8a5a00; }
.chart svg { max-width: 100%; height: auto; display: block; margin: 6px 0; }
.chart p.muted { margin: 0 0 10px; }
"#;

fn badge(status: Status) -> &'static str {
    match status {
        Status::Passed => r#"<span class="badge pass">pass</span>"#,
        Status::Failed => r#"<span class="badge fail">FAIL</span>"#,
        Status::Skipped => r#"<span class="badge skip">skipped</span>"#,
    }
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    );
}

fn versions(out: &mut String) {
    let _ = writeln!(
        out,
        "<p class=\"muted\">harness {} · tmq2mqtt {} · generated {}</p>",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
}

fn chart(out: &mut String, svg: Result<String, ChartError>, caption: &str) {
    out.push_str("<div class=\"chart\">");
    match svg {
        Ok(svg) => out.push_str(&svg),
        Err(e) => {
            let _ = write!(out, "<p>{}</p>", esc(&e.to_string()));
        }
    }
    if !caption.is_empty() {
        let _ = write!(out, "<p class=\"muted\">{caption}</p>");
    }
    out.push_str("</div>\n");
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

/// The page of a scenario run.
pub fn run_page(info: &RunInfo, scenarios: &[ScenarioPage<'_>]) -> String {
    let mut out = String::new();
    head(&mut out, "tmq2mqtt scenario run");
    let _ = write!(
        out,
        "<h1>tmq2mqtt scenario run</h1>\n<p><b>{}</b></p>\n",
        super::counts(scenarios.iter().map(|p| p.outcome))
    );
    versions(&mut out);
    let _ = writeln!(
        out,
        "<p class=\"muted\">seed: {} · command: <code>{}</code></p>",
        info.seed
            .map(|s| s.to_string())
            .unwrap_or_else(|| "each scenario's own (shown per scenario)".into()),
        esc(&info.command)
    );
    overview(&mut out, scenarios);
    for p in scenarios {
        scenario_section(&mut out, p);
    }
    out.push_str("</body></html>\n");
    out
}

fn overview(out: &mut String, scenarios: &[ScenarioPage<'_>]) {
    out.push_str(
        "<section id=\"overview\"><h2>Overview</h2><table><tr><th>scenario</th><th>result</th>\
         <th>rows</th><th>duplicates</th><th>lost</th><th>p50 ms</th><th>p99 ms</th><th>msg/s</th>\
         <th>seed</th><th>time</th></tr>\n",
    );
    for p in scenarios {
        let o = p.outcome;
        let _ = write!(
            out,
            "<tr><td><a href=\"#{}\">{}</a></td><td class=\"l\">{}</td>",
            anchor(&o.scenario),
            esc(&o.scenario),
            badge(o.status())
        );
        match &o.verdict {
            Some(v) => {
                let super::Totals {
                    expected,
                    distinct,
                    dups,
                    lost,
                } = super::Totals::of(v);
                let _ = write!(
                    out,
                    "<td>{distinct}/{expected}</td><td>{dups}</td><td>{lost}</td><td>{}</td><td>{}</td><td>{}</td>",
                    ms(v.latency.map(|l| l.p50_ms)),
                    ms(v.latency.map(|l| l.p99_ms)),
                    v.throughput_msg_s
                        .map(|t| format!("{t:.0}"))
                        .unwrap_or_else(|| "-".into())
                );
            }
            None => out.push_str("<td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td>"),
        }
        let _ = writeln!(
            out,
            "<td>{}</td><td>{:.1} s</td></tr>",
            o.seed,
            o.elapsed_ms as f64 / 1000.0
        );
    }
    out.push_str("</table></section>\n");
}

fn cause_text(c: LossCause) -> &'static str {
    match c {
        LossCause::NeverPublished => "never published by the bridge",
        LossCause::NeverAcked => "published, never acknowledged by the broker",
        LossCause::Broker => "acknowledged by the broker, never delivered: the broker's loss",
        LossCause::Unknown => "lost (no wire recording to attribute it)",
    }
}

fn scenario_section(out: &mut String, p: &ScenarioPage<'_>) {
    let o = p.outcome;
    let _ = write!(
        out,
        "<section id=\"{}\"><h2>{} {}</h2>\n<p class=\"muted\"><code>{}</code> · seed {} · {:.1} s{}</p>\n",
        anchor(&o.scenario),
        esc(&o.scenario),
        badge(o.status()),
        esc(&o.file),
        o.seed,
        o.elapsed_ms as f64 / 1000.0,
        match &o.verdict {
            Some(v) => match v.ending {
                crate::recorder::Ending::Deadline => " · ended at the deadline",
                crate::recorder::Ending::Accounted => {
                    " · ended when every missing row was the broker's loss and nothing moved"
                }
                crate::recorder::Ending::Quiescent => " · ended when nothing more came",
            },
            None => "",
        }
    );
    if !p.description.is_empty() {
        let _ = writeln!(out, "<p class=\"desc\">{}</p>", esc(p.description.trim()));
    }
    if let Some(skip) = &o.skipped {
        let _ = writeln!(
            out,
            "<p>Not run: {}. Install it with <code>{}</code> and run again.</p></section>",
            esc(&skip.reason),
            esc(&skip.install)
        );
        return;
    }
    if let Some(e) = &o.error {
        let _ = writeln!(out, "<h3>Error</h3><pre>{}</pre>", esc(e));
    }
    if let Some(v) = &o.verdict {
        list(out, "failures", "Why it failed", &v.failures);
        list(
            out,
            "deviations",
            "Deviations (seen, tolerated by the scenario)",
            &v.deviations,
        );
    }
    if let Some(t) = p.trace {
        out.push_str("<h3>Timeline</h3>\n");
        chart(
            out,
            charts::timeline(t),
            "Each line counts from the start of the run. The gap between two lines is work in flight at that \
             stage: written but not yet published, published but not acknowledged, acknowledged but not yet \
             delivered. Red bands are faults (from the moment one fired until its effect ended); purple lines \
             are the bridge opening a new broker connection.",
        );
        if let Some(svg) = charts::latency(t) {
            chart(
                out,
                svg,
                "Time from each row's INSERT to its first receipt by each subscriber.",
            );
        }
        if let Some(svg) = charts::rate(t) {
            chart(out, svg, "");
        }
    }
    if let Some(v) = &o.verdict {
        if !v.subscribers.is_empty() {
            table_head(
                out,
                "Subscribers",
                &[
                    "subscriber",
                    "expected",
                    "received (distinct)",
                    "messages",
                    "duplicates",
                    "missing",
                    "out of order",
                    "unexpected",
                ],
            );
            for s in &v.subscribers {
                let counts = [s.expected, s.distinct, s.received, s.duplicates as usize];
                let more = [s.missing.len(), s.out_of_order.len(), s.extra as usize];
                row(out, esc(&s.name), counts.iter().chain(&more));
            }
            out.push_str("</table>\n");
        }
        out.push_str("<h3>Losses</h3>");
        if v.losses.is_empty() {
            out.push_str("<p>No expected row is missing.</p>\n");
        } else {
            out.push_str("<table><tr><th>attribution</th><th>rows</th><th class=\"l\">which (table@ts, write log #)</th></tr>\n");
            for (cause, rows) in &v.losses {
                let mut names: Vec<String> =
                    rows.iter().take(LOSS_ROWS).map(|r| esc(&r.to_string())).collect();
                if rows.len() > LOSS_ROWS {
                    names.push(format!("… and {} more", rows.len() - LOSS_ROWS));
                }
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td class=\"l\"><code>{}</code></td></tr>",
                    cause_text(*cause),
                    rows.len(),
                    names.join(", ")
                );
            }
            out.push_str("</table>\n");
        }
        if !v.wire.is_empty() {
            table_head(
                out,
                "On the wire (bridge ↔ broker)",
                &[
                    "bridge",
                    "connections",
                    "PUBLISH",
                    "PUBACK",
                    "PUBCOMP",
                    "retransmits",
                    "dropped by faults",
                ],
            );
            for w in &v.wire {
                let counts = [
                    w.publishes,
                    w.puback,
                    w.pubcomp,
                    w.retransmits,
                    w.dropped_by_fault,
                ];
                row(
                    out,
                    esc(&w.bridge),
                    std::iter::once(&(w.connections as u64)).chain(&counts),
                );
            }
            out.push_str("</table>\n");
        }
    }
    let _ = writeln!(out, "<h3>Replay</h3><pre>{}</pre></section>", esc(&o.replay));
}

/// A table's title and header row.
fn table_head(out: &mut String, title: &str, headers: &[&str]) {
    let _ = write!(out, "<h3>{title}</h3><table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr>\n");
}

/// A table row: a name (escaped already), then numbers.
fn row<T: std::fmt::Display>(out: &mut String, name: String, numbers: impl IntoIterator<Item = T>) {
    let _ = write!(out, "<tr><td>{name}</td>");
    for n in numbers {
        let _ = write!(out, "<td>{n}</td>");
    }
    out.push_str("</tr>\n");
}

fn list(out: &mut String, class: &str, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    if !title.is_empty() {
        let _ = write!(out, "<h3>{title}</h3>");
    }
    let _ = write!(out, "<ul class=\"{class}\">");
    for i in items {
        let _ = write!(out, "<li>{}</li>", esc(i));
    }
    out.push_str("</ul>\n");
}

/// The page of a benchmark: the sections of the phases that ran.
pub fn bench_page(command: &str, r: &BenchReport) -> String {
    let mut out = String::new();
    head(&mut out, "tmq2mqtt benchmark");
    out.push_str("<h1>tmq2mqtt benchmark</h1>\n");
    versions(&mut out);
    let _ = writeln!(
        out,
        "<p class=\"muted\">machine: {} · command: <code>{}</code></p>",
        esc(&r.machine),
        esc(command)
    );
    if !r.qos.is_empty() {
        qos_section(&mut out, r);
    }
    if !r.fleet.is_empty() {
        fleet_section(&mut out, r);
    }
    if let Some(l) = &r.latency {
        out.push_str("<section><h2>Latency</h2>");
        if !l.percentiles.is_empty() {
            chart(
                &mut out,
                charts::curves(
                    "insert → receipt latency by percentile",
                    "percentile",
                    "ms",
                    &[Curve {
                        title: "",
                        points: &l.percentiles,
                    }],
                ),
                "",
            );
        }
        let _ = writeln!(
            out,
            "<p>{} rows/s offered, {} sent, {} received: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms.</p></section>",
            l.rate, l.sent, l.received, l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    let mut other = Vec::new();
    if let Some(b) = r.batch_rows_per_s {
        other.push(format!("format=batch: {b:.0} rows/s"));
    }
    if let Some(c) = r.child_rows_per_s {
        other.push(format!("tmq2mqtt as a child process: {c:.0} rows/s"));
    }
    if let Some(kb) = r.peak_rss_kb {
        other.push(format!(
            "peak RSS of the child process: {:.1} MiB",
            kb as f64 / 1024.0
        ));
    }
    other.extend(r.notes.iter().cloned());
    if !other.is_empty() {
        out.push_str("<section><h2>Other measurements</h2>");
        list(&mut out, "", "", &other);
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// The 8-table backlog per QoS: the bridge beside the bare publisher.
fn qos_section(out: &mut String, r: &BenchReport) {
    out.push_str("<section><h2>Throughput per QoS</h2>");
    let _ = writeln!(
        out,
        "<p class=\"muted\">backlog {} rows · limit {} messages · payload {} bytes</p>",
        r.rows, r.limit_messages, r.payload_bytes
    );
    let bars: Vec<QosBars> = r
        .qos
        .iter()
        .map(|q| QosBars {
            qos: q.qos,
            limit: q.limit,
            bridge: q.bridge,
        })
        .collect();
    chart(
        out,
        charts::bench_bars(&bars),
        "The limit is a bare rumqttc publisher against the same broker in the same run; the bridge drains a \
         TDengine backlog of the same rows. Medians of the repeated pairs.",
    );
    out.push_str("<table><tr><th>QoS</th><th>limit msg/s</th><th>bridge rows/s</th><th>bridge / limit</th><th class=\"l\">every pair (limit, bridge)</th></tr>\n");
    for q in &r.qos {
        let pairs: Vec<String> = q.runs.iter().map(|(l, b)| format!("({l:.0}, {b:.0})")).collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.2}</td><td class=\"l\">{}</td></tr>",
            q.qos,
            q.limit,
            q.bridge,
            q.ratio,
            pairs.join(" ")
        );
    }
    out.push_str("</table></section>\n");
}

/// The fleet-shape phase: its curve and table.
fn fleet_section(out: &mut String, r: &BenchReport) {
    out.push_str("<section><h2>Fleet shape</h2>");
    chart(
        out,
        charts::fleet(&r.fleet),
        "Many tables, a row or two each: the bridge's rows/s beside bare official <code>taos</code> consumers that \
         poll, fetch every message as the bridge does (whole, or block by block) and drop it (as many as the bridge uses), and a bare rumqttc publisher sending as many \
         QoS 1 messages to a topic per table, same backlog, same run. The bridge can outrun neither: the ratio to \
         the bound is to the slower of the two.",
    );
    out.push_str("<table><tr><th>tables</th><th>rows/table</th><th>rows/s</th><th>client limit rows/s</th><th>ratio</th><th>publisher rows/s</th><th>ratio to bound</th><th>µs/block</th><th>rows/block</th><th>peak RSS MiB</th></tr>\n");
    for f in &r.fleet {
        let rss = f
            .peak_rss_kb
            .map_or("–".to_string(), |kb| format!("{:.1}", kb as f64 / 1024.0));
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.2}</td><td>{:.0}</td><td>{:.2}</td><td>{:.0}</td><td>{:.1}</td><td>{}</td></tr>",
            f.tables, f.rows_per_table, f.rows_per_s, f.client_rows_per_s, f.ratio, f.publisher_rows_per_s,
            f.ratio_to_bound, f.us_per_block, f.rows_per_block, rss
        );
    }
    out.push_str("</table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_anchors_are_plain() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(anchor("cut-mid qos1"), "s-cut-mid-qos1");
    }

    #[test]
    fn a_bench_page_shows_only_the_phases_that_ran() {
        let mut r = BenchReport {
            machine: "m".into(),
            rows: 10,
            limit_messages: 10,
            payload_bytes: 200,
            qos: Vec::new(),
            batch_rows_per_s: None,
            latency: None,
            peak_rss_kb: None,
            child_rows_per_s: None,
            fleet: Vec::new(),
            notes: Vec::new(),
        };
        let fleet_only = bench_page("harness bench --tables 10", &r);
        assert!(!fleet_only.contains("Throughput per QoS"), "{fleet_only}");
        assert!(!fleet_only.contains("payload 200 bytes"), "{fleet_only}");
        r.qos.push(crate::bench::QosRow {
            qos: 1,
            limit: 2.0,
            bridge: 1.0,
            ratio: 0.5,
            runs: vec![(2.0, 1.0)],
        });
        let page = bench_page("harness bench --qos 1", &r);
        assert!(
            page.contains("Throughput per QoS") && page.contains("payload 200 bytes"),
            "{page}"
        );
        assert!(page.contains("<td>0.50</td>"), "{page}");
    }
}
