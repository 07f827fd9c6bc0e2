//! `report.html`: one self-contained page per run for people. Inline CSS, inline SVG charts
//! drawn here, no script and no external URL, so it opens offline, from a CI artifact store,
//! or attached to an issue. The markup is also well-formed XML (XHTML syntax) so tests and
//! tools can parse it; everything that came from input is escaped.

use std::fmt::Write;

use lvt_schema::Outcome;

use crate::run::junit::{escape_attr, escape_xml, rfc3339, stop_text};
use crate::run::output::RunReport;
use crate::run::summary::{GroupSummary, fmt_opt, summary_rows};
use crate::run::verdict::{VerdictStatus, fmt_observed};

const CSS: &str = "
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0.15em 0.6em; border-radius: 0.3em; color: #fff; font-weight: bold; }
.pass { background: #2e7d32; color: #fff; }
.fail { background: #c62828; color: #fff; }
.nodata { background: #ef6c00; color: #fff; }
.muted { color: #777; }
figure { margin: 1em 0; }
figcaption { font-weight: bold; margin-bottom: 0.3em; }
code { font-size: 0.95em; }
";

const COLOR_PASSED: &str = "#2e7d32";
const COLOR_FAILED: &str = "#c62828";
const COLOR_BUSY: &str = "#757575";
const COLOR_INDETERMINATE: &str = "#f9a825";
const COLOR_E2E: &str = "#1565c0";
const COLOR_FPS: &str = "#6a1b9a";

/// Each outcome with its colour and legend name, in stacking order.
const OUTCOMES: [(Outcome, &str, &str); 4] = [
    (Outcome::Passed, COLOR_PASSED, "passed"),
    (Outcome::Failed, COLOR_FAILED, "failed"),
    (Outcome::UnscoredBusy, COLOR_BUSY, "busy"),
    (
        Outcome::UnscoredIndeterminate,
        COLOR_INDETERMINATE,
        "indeterminate",
    ),
];

fn outcome_style(o: Outcome) -> (&'static str, &'static str) {
    OUTCOMES
        .iter()
        .find(|(x, _, _)| *x == o)
        .map_or((COLOR_INDETERMINATE, "indeterminate"), |(_, c, n)| (*c, *n))
}

/// The run's report page.
pub fn report_html(report: &RunReport) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let title = format!(
        "lvt run: {}@{}",
        report.scenario.id, report.scenario.version
    );
    out.push_str("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n");
    let _ = writeln!(
        out,
        "<head>\n<meta charset=\"utf-8\"/>\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>",
        escape_xml(&title)
    );
    let failed = report.any_threshold_failed();
    let _ = writeln!(
        out,
        "<h1>{}</h1>\n<p><span class=\"badge {}\">{}</span> {}</p>",
        escape_xml(&title),
        if failed { "fail" } else { "pass" },
        if failed {
            "THRESHOLDS FAILED"
        } else {
            "THRESHOLDS MET"
        },
        escape_xml(&report.description)
    );
    identity_section(&mut out, report);
    verdicts_section(&mut out, report);
    summary_section(&mut out, report);
    out.push_str("<h2>Charts</h2>\n");
    figure(
        &mut out,
        "Startup latency per session (from the scheduled start)",
        &startup_scatter(report),
    );
    figure(
        &mut out,
        "End-to-end latency p50 and output FPS p50 per group",
        &group_bars(report),
    );
    figure(
        &mut out,
        "Session outcomes per group",
        &outcome_bars(report),
    );
    let _ = writeln!(
        out,
        "<p class=\"muted\">Written by lvt {}.</p>\n</body>\n</html>",
        escape_xml(&report.tester_version)
    );
    out
}

fn figure(out: &mut String, caption: &str, svg: &str) {
    let _ = writeln!(
        out,
        "<figure>\n<figcaption>{}</figcaption>\n{svg}</figure>",
        escape_xml(caption)
    );
}

fn identity_section(out: &mut String, report: &RunReport) {
    let id = &report.scenario;
    let mut rows: Vec<(&str, String)> = vec![
        ("scenario", id.id.clone()),
        ("version", id.version.clone()),
        ("sha256", id.sha256.clone()),
    ];
    if let Some(p) = &id.path {
        rows.push(("file", p.clone()));
    }
    if let Some(c) = &id.git_commit {
        let dirty = match id.git_dirty {
            Some(true) => " (uncommitted changes)",
            _ => "",
        };
        rows.push(("git commit", format!("{c}{dirty}")));
    }
    if let Some(p) = &id.git_path {
        rows.push(("git path", p.clone()));
    }
    rows.push(("started", rfc3339(report.started_at_unix_ms)));
    rows.push(("ended", rfc3339(report.ended_at_unix_ms)));
    rows.push(("duration", format!("{:.1} s", report.duration_s())));
    rows.push(("stop", stop_text(&report.stop)));
    rows.push(("targets", report.targets.join(", ")));
    rows.push(("sessions", report.sessions.len().to_string()));
    rows.push(("dropped arrivals", report.dropped_arrivals.to_string()));
    rows.push(("peak in flight", report.peak_in_flight.to_string()));
    if let Some(paid) = &report.payment {
        rows.push((
            "paid on chain",
            format!(
                "{} ticket(s), {} wei expected value",
                paid.tickets, paid.expected_value_wei
            ),
        ));
    }
    rows.push(("lvt version", report.tester_version.clone()));
    out.push_str("<h2>Run</h2>\n<table>\n");
    for (k, v) in rows {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            escape_xml(k),
            escape_xml(&v)
        );
    }
    out.push_str("</table>\n");
}

fn verdicts_section(out: &mut String, report: &RunReport) {
    out.push_str("<h2>Thresholds</h2>\n");
    if report.verdicts.is_empty() {
        out.push_str("<p class=\"muted\">The scenario sets no thresholds.</p>\n");
        return;
    }
    out.push_str(
        "<table>\n<tr><th>status</th><th>threshold</th><th>observed</th><th>detail</th></tr>\n",
    );
    for v in &report.verdicts {
        let class = match v.status {
            VerdictStatus::Pass => "pass",
            VerdictStatus::Fail => "fail",
            VerdictStatus::NoData => "nodata",
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"{class}\">{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>",
            v.status.as_str(),
            escape_xml(&v.name()),
            escape_xml(&v.observed.map_or_else(|| "-".to_string(), fmt_observed)),
            escape_xml(&v.message)
        );
    }
    out.push_str("</table>\n");
}

fn html_table(out: &mut String, header: &[String], rows: &[Vec<String>], numeric_from: usize) {
    out.push_str("<table>\n<tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape_xml(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if i >= numeric_from {
                let _ = write!(out, "<td class=\"num\">{}</td>", escape_xml(cell));
            } else {
                let _ = write!(out, "<td>{}</td>", escape_xml(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn summary_section(out: &mut String, report: &RunReport) {
    out.push_str("<h2>Summary</h2>\n");
    if report.groups.is_empty() {
        out.push_str("<p class=\"muted\">No session ran.</p>\n");
    } else {
        let (header, rows) = summary_rows(&report.groups);
        let labels = report.groups.first().map_or(0, |g| g.key.len());
        html_table(out, &header, &rows, labels);
    }
    out.push_str("<h2>All sessions</h2>\n");
    let (header, rows) = summary_rows(std::slice::from_ref(&report.overall));
    html_table(out, &header, &rows, 0);
    if !report.overall.failure_classes.is_empty() {
        out.push_str("<h2>Failure classes</h2>\n");
        let rows: Vec<Vec<String>> = report
            .overall
            .failure_classes
            .iter()
            .map(|(k, n)| vec![k.clone(), n.to_string()])
            .collect();
        html_table(out, &["class".into(), "sessions".into()], &rows, 1);
    }
}

/// A round step for about `ticks` axis divisions up to `max`, and the axis top (a multiple of
/// the step at or above `max`).
fn axis(max: f64, ticks: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 1.0);
    }
    let raw = max / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = match raw / magnitude {
        n if n <= 1.0 => magnitude,
        n if n <= 2.0 => 2.0 * magnitude,
        n if n <= 5.0 => 5.0 * magnitude,
        _ => 10.0 * magnitude,
    };
    (step, (max / step).ceil().max(1.0) * step)
}

fn fmt_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Cuts a label to `max` characters so it fits its column; the full text stays in a tooltip.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('\u{2026}');
        t
    }
}

fn group_name(g: &GroupSummary) -> String {
    if g.key.is_empty() {
        "all sessions".to_string()
    } else {
        g.key
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// The groups charts draw: the report's groups, or the whole run when it has none.
fn chart_groups(report: &RunReport) -> Vec<&GroupSummary> {
    if report.groups.is_empty() {
        vec![&report.overall]
    } else {
        report.groups.iter().collect()
    }
}

fn svg_open(out: &mut String, width: f64, height: f64, label: &str) {
    let _ = writeln!(
        out,
        "<svg width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"{}\">",
        escape_attr(label)
    );
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, s: &str) {
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\">{}</text>",
        escape_xml(s)
    );
}

fn legend(out: &mut String, x: f64, y: f64, items: &[(&str, &str)]) {
    let mut x = x;
    for (color, name) in items {
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/>",
            y - 9.0
        );
        text(out, x + 14.0, y, "start", name);
        x += 26.0 + 6.5 * name.chars().count() as f64;
    }
}

/// Chart (a): each session's startup latency against its scheduled start, coloured by outcome.
/// Sessions without output have no startup latency; they are drawn in a band above the plot
/// rather than at 0, because no output is not a fast start.
fn startup_scatter(report: &RunReport) -> String {
    const W: f64 = 760.0;
    const H: f64 = 340.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 52.0;
    const BOTTOM: f64 = 44.0;
    const BAND_Y: f64 = 38.0;
    let mut out = String::new();
    svg_open(&mut out, W, H, "startup latency per session");
    let sessions = &report.sessions;
    let legend_items: Vec<(&str, &str)> = OUTCOMES.iter().map(|(_, c, n)| (*c, *n)).collect();
    legend(&mut out, LEFT, 14.0, &legend_items);
    if sessions.is_empty() {
        text(&mut out, W / 2.0, H / 2.0, "middle", "no sessions");
        out.push_str("</svg>\n");
        return out;
    }
    let x_max_s = sessions
        .iter()
        .map(|s| s.scheduled_at_ms / 1000.0)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_max = sessions
        .iter()
        .filter_map(|s| s.startup_from_schedule_ms)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let (x_step, x_top) = axis(x_max_s, 8.0);
    let (y_step, y_top) = axis(y_max, 5.0);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let px = |v: f64| LEFT + (v / x_top).clamp(0.0, 1.0) * plot_w;
    let py = |v: f64| TOP + plot_h - (v / y_top).clamp(0.0, 1.0) * plot_h;
    // Grid and y axis labels.
    let mut t = 0.0;
    while t <= y_top + y_step * 1e-9 {
        let y = py(t);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e0e0e0\"/>",
            W - RIGHT
        );
        text(&mut out, LEFT - 6.0, y + 4.0, "end", &fmt_tick(t));
        t += y_step;
    }
    let mut t = 0.0;
    while t <= x_top + x_step * 1e-9 {
        let x = px(t);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
            TOP + plot_h,
            TOP + plot_h + 4.0
        );
        text(&mut out, x, TOP + plot_h + 16.0, "middle", &fmt_tick(t));
        t += x_step;
    }
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    text(
        &mut out,
        LEFT + plot_w / 2.0,
        H - 6.0,
        "middle",
        "scheduled start (s after the run started)",
    );
    let _ = writeln!(
        out,
        "<text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">startup ms</text>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    text(&mut out, LEFT - 6.0, BAND_Y + 4.0, "end", "no output");
    for s in sessions {
        let (color, outcome) = outcome_style(s.report.outcome);
        let x = px(s.scheduled_at_ms / 1000.0);
        let (y, value) = match s.startup_from_schedule_ms.filter(|v| v.is_finite()) {
            Some(v) => (py(v), format!("{v:.0} ms")),
            None => (BAND_Y, "no output".to_string()),
        };
        let tip = format!(
            "#{} {} {}: {} ({})",
            s.index, s.target, s.prompt_id, value, outcome
        );
        let _ = writeln!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{color}\" fill-opacity=\"0.8\"><title>{}</title></circle>",
            escape_xml(&tip)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Chart (b): per group, the median session's e2e latency p50 and mean output FPS, as two
/// panels of horizontal bars sharing the group labels.
fn group_bars(report: &RunReport) -> String {
    const LABEL_W: f64 = 230.0;
    const PANEL_W: f64 = 250.0;
    const GAP: f64 = 30.0;
    const ROW_H: f64 = 22.0;
    const TOP: f64 = 30.0;
    let groups = chart_groups(report);
    let height = TOP + ROW_H * groups.len() as f64 + 10.0;
    let width = LABEL_W + 2.0 * PANEL_W + 2.0 * GAP;
    let mut out = String::new();
    svg_open(&mut out, width, height, "e2e latency and FPS per group");
    type Value = fn(&GroupSummary) -> Option<f64>;
    let panels: [(&str, &str, Value, usize); 2] = [
        ("e2e p50 ms", COLOR_E2E, |g| g.e2e_latency_ms.p50, 0),
        ("output fps p50", COLOR_FPS, |g| g.output_fps.p50, 1),
    ];
    for (i, g) in groups.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let name = group_name(g);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}<title>{}</title></text>",
            LABEL_W - 8.0,
            y + 15.0,
            escape_xml(&truncate(&name, 36)),
            escape_xml(&name)
        );
    }
    for (p, (title, color, value, decimals)) in panels.iter().enumerate() {
        let x0 = LABEL_W + p as f64 * (PANEL_W + GAP);
        text(&mut out, x0, 16.0, "start", title);
        let max = groups.iter().filter_map(|g| value(g)).fold(0.0, f64::max);
        // Leave room at the bar's end for its value.
        let bar_max = PANEL_W - 50.0;
        for (i, g) in groups.iter().enumerate() {
            let y = TOP + ROW_H * i as f64;
            match value(g).filter(|v| v.is_finite()) {
                Some(v) => {
                    let w = if max > 0.0 {
                        (v / max).clamp(0.0, 1.0) * bar_max
                    } else {
                        0.0
                    };
                    let _ = writeln!(
                        out,
                        "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>",
                        y + 4.0,
                        ROW_H - 8.0,
                        escape_xml(&group_name(g)),
                        escape_xml(&fmt_opt(Some(v), *decimals))
                    );
                    text(
                        &mut out,
                        x0 + w + 4.0,
                        y + 15.0,
                        "start",
                        &fmt_opt(Some(v), *decimals),
                    );
                }
                None => text(&mut out, x0, y + 15.0, "start", "no data"),
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Chart (c): per group, sessions stacked by outcome.
fn outcome_bars(report: &RunReport) -> String {
    const LABEL_W: f64 = 230.0;
    const BAR_W: f64 = 460.0;
    const ROW_H: f64 = 22.0;
    const TOP: f64 = 30.0;
    let groups = chart_groups(report);
    let height = TOP + ROW_H * groups.len() as f64 + 10.0;
    let width = LABEL_W + BAR_W + 60.0;
    let mut out = String::new();
    svg_open(&mut out, width, height, "session outcomes per group");
    let legend_items: Vec<(&str, &str)> = OUTCOMES.iter().map(|(_, c, n)| (*c, *n)).collect();
    legend(&mut out, LABEL_W, 16.0, &legend_items);
    let max = groups.iter().map(|g| g.sessions).max().unwrap_or(0);
    for (i, g) in groups.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let name = group_name(g);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}<title>{}</title></text>",
            LABEL_W - 8.0,
            y + 15.0,
            escape_xml(&truncate(&name, 36)),
            escape_xml(&name)
        );
        let mut x = LABEL_W;
        for (outcome, color, label) in OUTCOMES {
            let n = match outcome {
                Outcome::Passed => g.passed,
                Outcome::Failed => g.failed,
                Outcome::UnscoredBusy => g.busy,
                Outcome::UnscoredIndeterminate => g.indeterminate,
            };
            if n == 0 || max == 0 {
                continue;
            }
            let w = n as f64 / max as f64 * BAR_W;
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {n} {label}</title></rect>",
                y + 4.0,
                ROW_H - 8.0,
                escape_xml(&name)
            );
            x += w;
        }
        text(
            &mut out,
            x + 4.0,
            y + 15.0,
            "start",
            &g.sessions.to_string(),
        );
    }
    out.push_str("</svg>\n");
    out
}
