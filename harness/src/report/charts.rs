//! The report's pictures, drawn with plotters into SVG strings that the HTML page embeds (nothing loaded from
//! anywhere, so a report opens from disk). One function per picture; each takes plain numbers (a
//! [`Trace`], a bench result) and returns the SVG text or why it could not be drawn.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::bench::fleet::FleetRow;
use crate::trace::{Measure, Trace};

/// Width × height of every chart, in SVG pixels.
pub const SIZE: (u32, u32) = (960, 360);

const FONT: &str = "sans-serif";
const FAULT: RGBColor = RGBColor(214, 39, 40);
const RECONNECT: RGBColor = RGBColor(148, 103, 189);

/// A chart that failed to draw (plotters only fails on a broken backend, so this is rare).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {chart} chart: {reason}")]
pub struct ChartError {
    chart: &'static str,
    reason: String,
}

fn draw(
    chart: &'static str,
    f: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Drawn<()>,
) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let result = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| f(&root).map_err(|e| e.to_string()))
            .and_then(|()| root.present().map_err(|e| e.to_string()));
        result.map_err(|reason| ChartError { chart, reason })?;
    }
    Ok(svg)
}

/// How a chart is framed: caption, axis descriptions (no x axis when `x_desc` is `None`) and the room the y
/// labels need.
struct Frame<'s> {
    caption: &'s str,
    x_desc: Option<&'s str>,
    y_desc: &'s str,
    y_labels: u32,
}

/// What drawing into a chart returns.
type Drawn<T> = Result<T, Box<dyn std::error::Error>>;

/// A chart over the coordinates `X` × `Y`.
type Framed<'a, 'b, X, Y> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// The chart of `f` over `x` × `y`: caption, axes and major grid lines drawn.
fn frame<'a, 'b, X, Y>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    f: &Frame<'_>,
    x: X,
    y: Y,
) -> Drawn<Framed<'a, 'b, X, Y>>
where
    X: AsRangedCoord,
    Y: AsRangedCoord,
    X::CoordDescType: ValueFormatter<X::Value>,
    Y::CoordDescType: ValueFormatter<Y::Value>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(f.caption, (FONT, 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(f.y_labels)
        .build_cartesian_2d(x, y)?;
    let mut mesh = chart.configure_mesh();
    match f.x_desc {
        Some(d) => mesh.x_desc(d),
        None => mesh.disable_x_mesh().disable_x_axis(),
    };
    mesh.y_desc(f.y_desc).light_line_style(WHITE.mix(0.0)).draw()?;
    Ok(chart)
}

/// The legend of the series drawn so far, at `at`.
fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    at: SeriesLabelPosition,
) -> Drawn<()> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 13))
        .draw()?;
    Ok(())
}

/// Line colours of charts with a few unrelated curves.
const PALETTE: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

/// The colour of a series: one per measure, subscribers in shades of blue-green.
fn colour(measure: Measure, nth_subscriber: usize) -> RGBColor {
    match measure {
        Measure::Written => RGBColor(127, 127, 127),
        Measure::Published => RGBColor(31, 119, 180),
        Measure::Acked => RGBColor(255, 127, 14),
        Measure::Committed => RGBColor(44, 160, 44),
        Measure::Delivered => [
            RGBColor(23, 190, 207),
            RGBColor(140, 86, 75),
            RGBColor(227, 119, 194),
            RGBColor(188, 189, 34),
        ][nth_subscriber % 4],
    }
}

/// Cumulative counts over time, faults as shaded spans with their names, reconnects as vertical lines.
pub fn timeline(t: &Trace) -> Result<String, ChartError> {
    draw("timeline", |root| {
        let x_max = t.duration_s.max(0.1);
        let y_max = t.series.iter().map(|s| s.last()).max().unwrap_or(0).max(1) as f64 * 1.12;
        let mut chart = frame(
            root,
            &Frame {
                caption: "rows and messages over time",
                x_desc: Some("seconds since the run started"),
                y_desc: "count (cumulative)",
                y_labels: 64,
            },
            0f64..x_max,
            0f64..y_max,
        )?;
        draw_faults(&mut chart, t, y_max)?;
        let mut nth = 0;
        for s in &t.series {
            let c = colour(s.measure, nth);
            if s.measure == Measure::Delivered {
                nth += 1;
            }
            let width = if s.measure == Measure::Delivered { 3 } else { 2 };
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().map(|&(x, y)| (x, y as f64)),
                    c.stroke_width(width),
                ))?
                .label(format!("{} — {}", s.title(), s.last()))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Fault spans (shaded, named at the top, staggered so neighbours stay readable) and reconnect lines.
fn draw_faults(chart: &mut Chart<'_, '_>, t: &Trace, y_max: f64) -> Drawn<()> {
    // A fault that takes no time still gets a visible band.
    let min_width = t.duration_s.max(0.1) * 0.004;
    chart.draw_series(t.faults.iter().map(|f| {
        Rectangle::new(
            [(f.from_s, 0.0), (f.to_s.max(f.from_s + min_width), y_max)],
            FAULT.mix(0.18).filled(),
        )
    }))?;
    chart.draw_series(t.faults.iter().enumerate().map(|(i, f)| {
        Text::new(
            format!("⚡ {}", f.label),
            (f.from_s, y_max * (0.97 - 0.06 * (i % 4) as f64)),
            (FONT, 13).into_font().color(&FAULT),
        )
    }))?;
    chart.draw_series(t.reconnects.iter().map(|m| {
        PathElement::new(
            vec![(m.at_s, 0.0), (m.at_s, y_max * 0.75)],
            RECONNECT.mix(0.8).stroke_width(1),
        )
    }))?;
    chart.draw_series(t.reconnects.iter().map(|m| {
        Text::new(
            "↻ reconnect",
            (m.at_s, y_max * 0.77),
            (FONT, 11).into_font().color(&RECONNECT),
        )
    }))?;
    Ok(())
}

/// Nearest-rank percentile of ascending samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Bars of equal width over `0..max`: (from, to, count).
fn buckets(sorted: &[f64], n: usize) -> Vec<(f64, f64, u64)> {
    let max = sorted.last().copied().unwrap_or(0.0).max(1e-3);
    let w = max / n as f64;
    let mut out: Vec<(f64, f64, u64)> = (0..n).map(|i| (i as f64 * w, (i + 1) as f64 * w, 0)).collect();
    for &v in sorted {
        let i = ((v / w) as usize).min(n - 1);
        out[i].2 += 1;
    }
    out
}

/// Insert → receipt latency as a histogram, with p50 and p99 marked. `None` without samples.
pub fn latency(t: &Trace) -> Option<Result<String, ChartError>> {
    let sorted = &t.latency_ms;
    if sorted.is_empty() {
        return None;
    }
    Some(draw("latency", |root| {
        let bars = buckets(sorted, 40);
        let x_max = bars.last().map(|b| b.1).unwrap_or(1.0);
        let y_max = bars.iter().map(|b| b.2).max().unwrap_or(1) as f64 * 1.15;
        let caption = format!("insert → receipt latency ({} rows)", sorted.len());
        let mut chart = frame(
            root,
            &Frame {
                caption: &caption,
                x_desc: Some("ms from the INSERT to the subscriber's receipt"),
                y_desc: "rows",
                y_labels: 64,
            },
            0f64..x_max,
            0f64..y_max,
        )?;
        chart.draw_series(bars.iter().map(|&(a, b, n)| {
            Rectangle::new(
                [(a, 0.0), (b, n as f64)],
                RGBColor(31, 119, 180).mix(0.75).filled(),
            )
        }))?;
        for (name, p, c, y) in [("p50", 0.50, BLACK, 0.99), ("p99", 0.99, FAULT, 0.93)] {
            let v = percentile(sorted, p);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(v, 0.0), (v, y_max * 0.86)],
                c.stroke_width(2),
            )))?;
            // Named to the left of its line in the right half, so that it stays inside the chart.
            let side = if v > x_max / 2.0 { HPos::Right } else { HPos::Left };
            let style = (FONT, 13).into_font().color(&c).pos(Pos::new(side, VPos::Top));
            chart.draw_series(std::iter::once(Text::new(
                format!("{name} {v:.1} ms"),
                (v, y_max * y),
                style,
            )))?;
        }
        Ok(())
    }))
}

/// Messages per second received by all subscribers together, in buckets of at least 100 ms, with the faults.
pub fn rate(t: &Trace) -> Option<Result<String, ChartError>> {
    if t.receipts_s.len() < 2 {
        return None;
    }
    Some(draw("rate", |root| {
        let x_max = t.duration_s.max(0.1);
        let width = (x_max / 100.0).max(0.1);
        let n = (x_max / width).ceil() as usize;
        let mut counts = vec![0u64; n.max(1)];
        for &r in &t.receipts_s {
            let i = ((r / width) as usize).min(counts.len() - 1);
            counts[i] += 1;
        }
        let points: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .map(|(i, &c)| ((i as f64 + 0.5) * width, c as f64 / width))
            .collect();
        let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
        let x_desc = format!("seconds since the run started ({:.0} ms buckets)", width * 1000.0);
        let mut chart = frame(
            root,
            &Frame {
                caption: "messages per second received",
                x_desc: Some(&x_desc),
                y_desc: "msg/s",
                y_labels: 64,
            },
            0f64..x_max,
            0f64..y_max,
        )?;
        draw_faults(&mut chart, t, y_max)?;
        chart.draw_series(
            AreaSeries::new(points, 0.0, RGBColor(23, 190, 207).mix(0.35))
                .border_style(RGBColor(23, 190, 207).stroke_width(2)),
        )?;
        Ok(())
    }))
}

/// One QoS level of a benchmark: the bare publisher's rate and the bridge's, msg/s.
pub struct QosBars {
    pub qos: u8,
    pub limit: f64,
    pub bridge: f64,
}

/// Limit vs bridge throughput per QoS level, side by side, with the ratio above each pair.
pub fn bench_bars(rows: &[QosBars]) -> Result<String, ChartError> {
    draw("throughput", |root| {
        let y_max = rows.iter().map(|r| r.limit.max(r.bridge)).fold(1.0, f64::max) * 1.2;
        let n = rows.len().max(1) as f64;
        let mut chart = frame(
            root,
            &Frame {
                caption: "throughput: bare rumqttc publisher (limit) vs the bridge",
                x_desc: None,
                y_desc: "messages (rows) per second",
                y_labels: 80,
            },
            -0.5f64..n - 0.5,
            0f64..y_max,
        )?;
        let limit = RGBColor(127, 127, 127);
        let bridge = RGBColor(31, 119, 180);
        for (i, r) in rows.iter().enumerate() {
            let x = i as f64;
            chart.draw_series([
                Rectangle::new([(x - 0.38, 0.0), (x - 0.02, r.limit)], limit.filled()),
                Rectangle::new([(x + 0.02, 0.0), (x + 0.38, r.bridge)], bridge.filled()),
            ])?;
            let ratio = if r.limit > 0.0 { r.bridge / r.limit } else { 0.0 };
            chart.draw_series([
                Text::new(
                    format!("QoS {}: bridge = {:.2} × limit", r.qos, ratio),
                    (x - 0.38, y_max * 0.97),
                    (FONT, 14).into_font(),
                ),
                Text::new(
                    format!("{:.0}", r.limit),
                    (x - 0.36, r.limit),
                    (FONT, 12).into_font(),
                ),
                Text::new(
                    format!("{:.0}", r.bridge),
                    (x + 0.04, r.bridge),
                    (FONT, 12).into_font(),
                ),
            ])?;
        }
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label("limit (bare publisher)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], limit.filled()));
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label("bridge")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], bridge.filled()));
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// A named curve of (x, y) points, e.g. the latency percentiles or the fleet shape.
pub struct Curve<'a> {
    pub title: &'a str,
    pub points: &'a [(f64, f64)],
}

/// One or more curves on one chart (log-free linear axes from zero).
pub fn curves(caption: &str, x_desc: &str, y_desc: &str, curves: &[Curve<'_>]) -> Result<String, ChartError> {
    draw("curve", |root| {
        let all = curves.iter().flat_map(|c| c.points.iter());
        let (x_max, y_max) = all.fold((1e-9f64, 1e-9f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
        let mut chart = frame(
            root,
            &Frame {
                caption,
                x_desc: Some(x_desc),
                y_desc,
                y_labels: 72,
            },
            0f64..x_max * 1.02,
            0f64..y_max * 1.15,
        )?;
        for (i, c) in curves.iter().enumerate() {
            let colour = PALETTE[i % 3];
            chart
                .draw_series(LineSeries::new(c.points.iter().copied(), colour.stroke_width(2)))?
                .label(c.title)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(3)));
            chart.draw_series(c.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        }
        if curves.len() > 1 || !curves.iter().all(|c| c.title.is_empty()) {
            legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    })
}

/// The fleet-shape curve: rows/s against the number of tables (log scale), the bridge beside the bare
/// official client's limit and the bare MQTT publisher's, three lines per rows-per-table.
pub fn fleet(rows: &[FleetRow]) -> Result<String, ChartError> {
    draw("fleet", |root| {
        let x_min = rows.iter().map(|r| r.tables).min().unwrap_or(1).max(1) as f64;
        let x_max = rows.iter().map(|r| r.tables).max().unwrap_or(10).max(10) as f64;
        let y_max = rows
            .iter()
            .map(|r| r.rows_per_s.max(r.client_rows_per_s).max(r.publisher_rows_per_s))
            .fold(1.0f64, f64::max);
        let mut chart = frame(
            root,
            &Frame {
                caption: "fleet shape: rows/s by number of tables",
                x_desc: Some("tables (log scale)"),
                y_desc: "rows/s",
                y_labels: 72,
            },
            (x_min * 0.8..x_max * 1.25).log_scale(),
            0f64..y_max * 1.15,
        )?;
        let mut per: Vec<u64> = rows.iter().map(|r| r.rows_per_table).collect();
        per.sort_unstable();
        per.dedup();
        for (i, n) in per.iter().enumerate() {
            let colour = PALETTE[i % 3];
            let of = |f: fn(&FleetRow) -> f64| -> Vec<(f64, f64)> {
                let mut v: Vec<_> = rows
                    .iter()
                    .filter(|r| r.rows_per_table == *n)
                    .map(|r| (r.tables as f64, f(r)))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            };
            for (what, points, shade) in [
                ("tmq2mqtt", of(|r| r.rows_per_s), 1.0),
                ("official client alone", of(|r| r.client_rows_per_s), 0.5),
                ("MQTT publisher alone", of(|r| r.publisher_rows_per_s), 0.25),
            ] {
                let style = colour.mix(shade).stroke_width(2);
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), style))?
                    .label(format!("{what}, {n} row(s)/table"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// The number of points of every `<polyline>` in an SVG, in document order (for tests and checks).
pub fn polyline_lengths(svg: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|rest| {
            let points = rest.split("points=\"").nth(1)?;
            let end = points.find('"')?;
            Some(points[..end].split_whitespace().count())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{cumulative, Mark, Series, Span};

    fn trace() -> Trace {
        Trace {
            duration_s: 10.0,
            series: vec![
                Series {
                    measure: Measure::Written,
                    owner: String::new(),
                    points: cumulative((0..50).map(|i| i as f64 / 10.0).collect(), 10.0),
                },
                Series {
                    measure: Measure::Delivered,
                    owner: "all".into(),
                    points: cumulative((0..50).map(|i| 1.0 + i as f64 / 10.0).collect(), 10.0),
                },
            ],
            faults: vec![Span {
                label: "broker restart".into(),
                from_s: 2.0,
                to_s: 2.5,
            }],
            reconnects: vec![Mark {
                label: "bridge reconnects".into(),
                at_s: 3.0,
            }],
            latency_ms: (1..=100).map(|i| i as f64).collect(),
            receipts_s: (0..50).map(|i| 1.0 + i as f64 / 10.0).collect(),
        }
    }

    #[test]
    fn the_timeline_draws_every_point_of_every_series_and_names_the_faults() {
        let t = trace();
        let svg = timeline(&t).unwrap();
        let lengths = polyline_lengths(&svg);
        for s in &t.series {
            assert!(
                lengths.contains(&s.points.len()),
                "{} points in {lengths:?}",
                s.points.len()
            );
        }
        assert!(svg.contains("broker restart"), "fault named");
        assert!(svg.contains("reconnect"), "reconnect drawn");
        assert!(
            svg.contains("delivered (all) — 50"),
            "legend with the final count"
        );
    }

    #[test]
    fn the_fleet_curve_has_a_bridge_a_client_and_a_publisher_line_per_rows_per_table() {
        let row = |tables: u64, rows_per_table: u64| FleetRow {
            tables,
            rows_per_table,
            single: false,
            rows: tables * rows_per_table,
            blocks: tables,
            rows_per_block: rows_per_table as f64,
            rows_per_s: 1000.0 * rows_per_table as f64,
            us_per_block: 200.0,
            peak_rss_kb: None,
            consumers: 1,
            client_rows_per_s: 1200.0,
            client_us_per_block: 150.0,
            ratio: 0.8,
            publisher_rows_per_s: 3000.0,
            ratio_to_bound: 0.8,
            rewinds: None,
        };
        let rows: Vec<_> = [10, 1000, 100_000]
            .into_iter()
            .flat_map(|t| [row(t, 1), row(t, 2)])
            .collect();
        let svg = fleet(&rows).unwrap();
        assert_eq!(
            polyline_lengths(&svg).iter().filter(|n| **n == 3).count(),
            6,
            "6 lines of 3 shapes"
        );
        assert!(svg.contains("official client alone, 2 row(s)/table"));
        assert!(svg.contains("MQTT publisher alone, 1 row(s)/table"));
    }

    #[test]
    fn latency_and_rate_charts_need_samples() {
        let t = trace();
        let svg = latency(&t).unwrap().unwrap();
        assert!(
            svg.contains("p50 50.0 ms") && svg.contains("p99 99.0 ms"),
            "{svg}"
        );
        assert!(rate(&t).unwrap().is_ok());
        let empty = Trace::default();
        assert!(latency(&empty).is_none() && rate(&empty).is_none());
    }

    #[test]
    fn buckets_hold_every_sample() {
        let b = buckets(&[0.0, 0.5, 1.0, 2.0], 4);
        assert_eq!(b.iter().map(|b| b.2).sum::<u64>(), 4);
        assert_eq!(b[3].2, 1, "the maximum lands in the last bucket");
    }
}
