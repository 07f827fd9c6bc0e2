//! `junit.xml`: a run's thresholds as JUnit test cases, one per threshold, so CI systems show
//! which SLO failed. Also the XML escaping `report.html` shares.

use std::fmt::Write;

use crate::run::output::RunReport;
use crate::run::record::StopReason;
use crate::run::verdict::VerdictStatus;

/// Whether XML 1.0 allows `c` at all: tab, newline, carriage return, and everything from
/// U+0020 except the non-characters U+FFFE and U+FFFF (Rust chars are never surrogates).
fn xml_char_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= '\u{20}' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Escapes `s` for XML text content: the five predefined entities are escaped and characters
/// XML 1.0 forbids (control characters from network input, for example) are dropped, since no
/// escape can represent them.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|&c| xml_char_allowed(c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `s` for an attribute value: as [`escape_xml`], and line breaks and tabs as
/// character references, because parsers turn literal ones into spaces inside attributes.
pub fn escape_attr(s: &str) -> String {
    escape_xml(s)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// The stop reason as one word or phrase.
pub(crate) fn stop_text(stop: &StopReason) -> String {
    match stop {
        StopReason::Completed => "completed".to_string(),
        StopReason::Interrupted => "interrupted".to_string(),
        StopReason::Aborted { threshold } => format!("aborted: threshold {threshold} failed"),
    }
}

/// RFC 3339 UTC time of a Unix timestamp in ms; empty if out of range.
pub(crate) fn rfc3339(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The run's thresholds as a JUnit XML document: one `<testsuite>` named `{id}@{version}`
/// with one `<testcase>` per threshold; failed and unverifiable thresholds carry a
/// `<failure type="threshold">`.
pub fn junit_xml(report: &RunReport) -> String {
    let tests = report.verdicts.len();
    let failures = report.verdicts.iter().filter(|v| v.failed()).count();
    let time_s = format!("{:.3}", report.duration_s());
    let suite = format!("{}@{}", report.scenario.id, report.scenario.version);
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"lvt run\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time_s}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{time_s}\" timestamp=\"{}\">",
        escape_attr(&suite),
        escape_attr(&rfc3339(report.started_at_unix_ms)),
    );
    out.push_str("    <properties>\n");
    let id = &report.scenario;
    let mut props: Vec<(&str, String)> = vec![
        ("scenario.id", id.id.clone()),
        ("scenario.version", id.version.clone()),
        ("scenario.sha256", id.sha256.clone()),
    ];
    if let Some(p) = &id.path {
        props.push(("scenario.path", p.clone()));
    }
    if let Some(c) = &id.git_commit {
        props.push(("scenario.git_commit", c.clone()));
    }
    if let Some(p) = &id.git_path {
        props.push(("scenario.git_path", p.clone()));
    }
    if let Some(d) = id.git_dirty {
        props.push(("scenario.git_dirty", d.to_string()));
    }
    props.push(("run.stop", stop_text(&report.stop)));
    props.push(("run.sessions", report.sessions.len().to_string()));
    props.push(("lvt.version", report.tester_version.clone()));
    for (name, value) in props {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            escape_attr(name),
            escape_attr(&value)
        );
    }
    out.push_str("    </properties>\n");
    for v in &report.verdicts {
        let _ = write!(
            out,
            "    <testcase classname=\"thresholds\" name=\"{}\" time=\"0\"",
            escape_attr(&v.name())
        );
        if v.failed() {
            let kind = match v.status {
                VerdictStatus::NoData => "no data",
                _ => "failed",
            };
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\" type=\"threshold\">threshold {}: {}</failure>\n    </testcase>",
                escape_attr(&v.message),
                kind,
                escape_xml(&v.message)
            );
        } else {
            let _ = writeln!(
                out,
                ">\n      <system-out>{}</system-out>\n    </testcase>",
                escape_xml(&v.message)
            );
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
