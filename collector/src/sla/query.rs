//! SLA query parameters: the window, grain and cell filters a request of the SLA endpoints asks
//! for ([`SlaQuery`], parsed by [`SlaQuery::parse`] with the current time as an input), the
//! [`SlaFilter`] the store reads cells by, and the RFC 3339 time forms the answers use. It reads
//! no clock and knows nothing of HTTP: a refused parameter is a [`QueryError`], which the HTTP
//! layer turns into a problem answer.

use std::collections::HashMap;

use serde_json::Value;

use super::Formula;

const HOUR_S: i64 = 3600;
const DAY_S: i64 = 86_400;
/// The window every endpoint covers when `start` is not given: the 24 hours before `end`.
pub const DEFAULT_SPAN_S: i64 = DAY_S;
/// The longest span one request may cover (a little over a year), so that one request cannot
/// make the server merge an unbounded number of buckets.
pub const MAX_SPAN_S: i64 = 400 * DAY_S;

/// How `/v1/sla/compliance` buckets time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// One bucket per hour (the stored grain).
    Hour,
    /// One bucket per UTC day.
    Day,
    /// One bucket for the whole requested window.
    Window,
}

impl Grain {
    /// The name used in the `grain` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
            Grain::Window => "window",
        }
    }
}

/// Which SLA cells a store returns (`Store::sla_cells` and its relatives). Empty fields do not
/// filter; string fields match the [`CellKey`](super::CellKey) field exactly (orchestrator
/// addresses are lowercase there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaFilter {
    /// Only cells whose hour starts at or after this time, seconds since the Unix epoch.
    pub start_unix_s: Option<i64>,
    /// Only cells whose hour starts before this time, seconds since the Unix epoch.
    pub end_unix_s: Option<i64>,
    /// Only this orchestrator ([`CellKey::orchestrator`](super::CellKey::orchestrator)).
    pub orchestrator: Option<String>,
    /// Only this tester region.
    pub region: Option<String>,
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Only this model id.
    pub model_id: Option<String>,
    /// Only this GPU name.
    pub gpu: Option<String>,
    /// Only this prompt complexity (`low`, `medium`, `high`).
    pub complexity: Option<String>,
    /// Only test load (`true`) or only organic load (`false`).
    pub test_load: Option<bool>,
}

/// The parsed parameters shared by the SLA endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaQuery {
    /// Start of the window, seconds since the Unix epoch, floored to the hour.
    pub start_unix_s: i64,
    /// End of the window (exclusive), seconds since the Unix epoch, rounded up to the hour.
    pub end_unix_s: i64,
    /// The time bucketing (only `/v1/sla/compliance` reads it).
    pub grain: Grain,
    /// The formula scores follow (`formula`, default `naap-v1`).
    pub formula: Formula,
    /// Cell filters; the time range is filled from the window.
    pub filter: SlaFilter,
}

/// A query parameter the SLA endpoints refuse: which parameter, and why. The HTTP layer answers
/// it as an invalid-query problem whose detail is this error's text (`name: detail`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {detail}")]
pub struct QueryError {
    /// The parameter at fault, as spelled in the query string.
    pub name: String,
    /// Why it was refused.
    pub detail: String,
}

fn invalid(name: &str, detail: impl std::fmt::Display) -> QueryError {
    QueryError {
        name: name.to_owned(),
        detail: detail.to_string(),
    }
}

/// Parses a time parameter: RFC 3339 (`2026-11-27T10:00:00Z`) or integer seconds since the Unix
/// epoch.
pub fn parse_time_unix_s(name: &str, text: &str) -> Result<i64, QueryError> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| at.unix_timestamp())
        .map_err(|_| {
            invalid(
                name,
                format!("{text:?} is neither RFC 3339 nor integer unix seconds"),
            )
        })
}

/// Formats seconds since the Unix epoch as RFC 3339 in UTC (`2026-11-27T10:00:00Z`).
pub fn format_rfc3339(unix_s: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

impl SlaQuery {
    /// Parses the query string of an SLA endpoint at wall-clock time `now_unix_s`.
    ///
    /// `default_test_load` applies when the request has no `test_load` parameter (`None` keeps
    /// both kinds of load, as separate rows).
    pub fn parse(
        query: &HashMap<String, String>,
        now_unix_s: i64,
        default_test_load: Option<bool>,
    ) -> Result<SlaQuery, QueryError> {
        let text = |name: &str| query.get(name).filter(|value| !value.is_empty());
        let end = match text("end") {
            Some(value) => parse_time_unix_s("end", value)?,
            None => now_unix_s,
        };
        let start = match text("start") {
            Some(value) => parse_time_unix_s("start", value)?,
            // The default window is whole hours: the 24 that end with the current one.
            None => ceil_hour(end).saturating_sub(DEFAULT_SPAN_S),
        };
        if start >= end {
            return Err(invalid("start", "start must be before end"));
        }
        let start_unix_s = start.div_euclid(HOUR_S) * HOUR_S;
        let end_unix_s = ceil_hour(end);
        if end_unix_s - start_unix_s > MAX_SPAN_S {
            return Err(invalid(
                "end",
                format!("the window may span at most {} days", MAX_SPAN_S / DAY_S),
            ));
        }
        let grain = match text("grain").map(String::as_str) {
            None | Some("hour") => Grain::Hour,
            Some("day") => Grain::Day,
            Some("window") => Grain::Window,
            Some(other) => {
                return Err(invalid(
                    "grain",
                    format!("{other:?} is not one of hour, day, window"),
                ));
            }
        };
        let formula = match text("formula") {
            None => Formula::default(),
            Some(name) => Formula::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = Formula::ALL.iter().map(|f| f.name()).collect();
                invalid(
                    "formula",
                    format!("{name:?} is not one of {}", names.join(", ")),
                )
            })?,
        };
        let test_load = match text("test_load").map(String::as_str) {
            None => default_test_load,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => return Err(invalid("test_load", format!("{other:?} is not a boolean"))),
        };
        let complexity = text("complexity").cloned();
        if let Some(value) = &complexity
            && !matches!(value.as_str(), "low" | "medium" | "high")
        {
            return Err(invalid(
                "complexity",
                format!("{value:?} is not one of low, medium, high"),
            ));
        }
        // Cells key orchestrators by lowercase address; an address given in checksum case must
        // find them.
        let orchestrator = text("orchestrator").map(|value| {
            if value.starts_with("0x") || value.starts_with("0X") {
                value.to_ascii_lowercase()
            } else {
                value.clone()
            }
        });
        Ok(SlaQuery {
            start_unix_s,
            end_unix_s,
            grain,
            formula,
            filter: SlaFilter {
                start_unix_s: Some(start_unix_s),
                end_unix_s: Some(end_unix_s),
                orchestrator,
                region: text("region").cloned(),
                pipeline: text("pipeline").cloned(),
                model_id: text("model").cloned(),
                gpu: text("gpu").cloned(),
                complexity,
                test_load,
            },
        })
    }

    /// The start of the bucket an hour belongs to. A day bucket is clipped to the window, so that
    /// no bucket claims hours the request did not cover (and its cohort starts where it does).
    pub fn bucket_start_unix_s(&self, hour_unix_s: i64) -> i64 {
        match self.grain {
            Grain::Hour => hour_unix_s,
            Grain::Day => (hour_unix_s.div_euclid(DAY_S) * DAY_S).max(self.start_unix_s),
            Grain::Window => self.start_unix_s,
        }
    }

    /// The end (exclusive) of the bucket starting at `bucket_start_unix_s`, clipped to the
    /// window.
    pub fn bucket_end_unix_s(&self, bucket_start_unix_s: i64) -> i64 {
        let end = match self.grain {
            Grain::Hour => bucket_start_unix_s + HOUR_S,
            Grain::Day => bucket_start_unix_s.div_euclid(DAY_S) * DAY_S + DAY_S,
            Grain::Window => self.end_unix_s,
        };
        end.min(self.end_unix_s)
    }
}

fn ceil_hour(unix_s: i64) -> i64 {
    let floor = unix_s.div_euclid(HOUR_S) * HOUR_S;
    if floor == unix_s {
        floor
    } else {
        floor.saturating_add(HOUR_S)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Twenty minutes into an hour.
    const NOW_UNIX_S: i64 = 1_764_001_200;

    fn parse(pairs: &[(&str, &str)]) -> Result<SlaQuery, QueryError> {
        let query = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        SlaQuery::parse(&query, NOW_UNIX_S, None)
    }

    #[test]
    fn times_parse_as_rfc3339_or_unix_seconds() {
        assert_eq!(
            parse_time_unix_s("start", "2026-11-27T10:00:00Z"),
            Ok(1_795_773_600)
        );
        assert_eq!(
            parse_time_unix_s("start", "2026-11-27T11:00:00+01:00"),
            Ok(1_795_773_600)
        );
        assert_eq!(parse_time_unix_s("start", "1795773600"), Ok(1_795_773_600));
        let error = parse_time_unix_s("start", "yesterday").expect_err("invalid");
        assert_eq!(error.name, "start");
        assert!(error.to_string().starts_with("start:"), "{error}");
        assert_eq!(format_rfc3339(1_795_773_600), json!("2026-11-27T10:00:00Z"));
    }

    #[test]
    fn windows_default_to_the_last_day_and_align_to_hours() {
        let query = parse(&[]).expect("valid");
        // The window ends at the end of the current hour.
        assert_eq!(query.end_unix_s, 1_764_003_600);
        assert_eq!(query.start_unix_s, query.end_unix_s - DAY_S);
        assert_eq!(query.grain, Grain::Hour);
        assert_eq!(query.filter.test_load, None);

        let query = parse(&[("start", "7201"), ("end", "10800"), ("grain", "day")]).expect("valid");
        assert_eq!((query.start_unix_s, query.end_unix_s), (7200, 10_800));
        assert_eq!(
            query.bucket_start_unix_s(7200),
            7200,
            "clipped to the window"
        );
        assert_eq!(
            query.bucket_end_unix_s(7200),
            10_800,
            "clipped to the window"
        );
        let query = parse(&[("start", "0"), ("end", "172800"), ("grain", "day")]).expect("valid");
        assert_eq!(query.bucket_start_unix_s(DAY_S + 3600), DAY_S);
        assert_eq!(query.bucket_end_unix_s(DAY_S), 2 * DAY_S);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let name_of = |pairs: &[(&str, &str)]| {
            let detail = parse(pairs).expect_err("invalid").to_string();
            detail.split(':').next().unwrap_or_default().to_owned()
        };
        assert_eq!(name_of(&[("grain", "week")]), "grain");
        assert_eq!(name_of(&[("start", "20"), ("end", "10")]), "start");
        assert_eq!(name_of(&[("end", "x")]), "end");
        assert_eq!(name_of(&[("test_load", "yes")]), "test_load");
        assert_eq!(name_of(&[("complexity", "extreme")]), "complexity");
        assert_eq!(name_of(&[("start", "0"), ("end", "99999999")]), "end");
        assert_eq!(name_of(&[("formula", "lvt-v2")]), "formula");
        let detail = parse(&[("formula", "lvt-v2")])
            .expect_err("invalid")
            .to_string();
        assert!(detail.contains("naap-v1, lvt-v1"), "{detail}");
    }

    #[test]
    fn the_formula_defaults_to_naap_v1() {
        assert_eq!(parse(&[]).expect("valid").formula, Formula::NaapV1);
        let query = parse(&[("formula", "lvt-v1")]).expect("valid");
        assert_eq!(query.formula, Formula::LvtV1);
    }

    #[test]
    fn orchestrator_addresses_are_matched_in_lowercase() {
        let query = parse(&[("orchestrator", "0xABC")]).expect("valid");
        assert_eq!(query.filter.orchestrator.as_deref(), Some("0xabc"));
        let query = parse(&[("orchestrator", "https://O:8935")]).expect("valid");
        assert_eq!(query.filter.orchestrator.as_deref(), Some("https://O:8935"));
    }
}
