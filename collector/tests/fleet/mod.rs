//! A small fleet of orchestrators of clearly different quality, as signed result records, for
//! the SLA API and dashboard tests.
//!
//! Every session is built with lvt-schema types (what the tester writes) and shipped signed, so
//! the tests exercise ingest, the rollup and the read API together.

#![allow(dead_code)]

use lvt_schema::{
    Complexity, Failure, FailureClass, FpsSummary, Gpu, LatencySummary, OrchestratorRef, Outcome,
    PromptRef, SessionReport,
};

use crate::common::{TestCollector, agent_key, now_ms, post, signed};

/// One orchestrator's character: how many sessions of each kind it gets per hour and how fast
/// it is.
pub struct Profile {
    pub address: &'static str,
    pub gpu: &'static str,
    pub regions: &'static [&'static str],
    pub passed_per_hour: usize,
    pub failed_per_hour: usize,
    pub busy_per_hour: usize,
    pub startup_ms: f64,
    pub e2e_ms: f64,
    pub fps: f64,
}

/// Best first: the order the ranking must show. The last one only ever answers busy.
pub const FLEET: [Profile; 4] = [
    Profile {
        address: "0xa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
        gpu: "NVIDIA GeForce RTX 4090",
        regions: &["eu-west"],
        passed_per_hour: 4,
        failed_per_hour: 0,
        busy_per_hour: 0,
        startup_ms: 420.0,
        e2e_ms: 180.0,
        fps: 29.5,
    },
    Profile {
        address: "0xb2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
        gpu: "NVIDIA GeForce RTX 4090",
        regions: &["us-east"],
        passed_per_hour: 3,
        failed_per_hour: 1,
        busy_per_hour: 0,
        startup_ms: 900.0,
        e2e_ms: 350.0,
        fps: 22.0,
    },
    Profile {
        address: "0xc3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3",
        gpu: "NVIDIA A10G",
        regions: &["eu-west", "us-east"],
        passed_per_hour: 1,
        failed_per_hour: 2,
        busy_per_hour: 1,
        startup_ms: 2400.0,
        e2e_ms: 900.0,
        fps: 11.0,
    },
    Profile {
        address: "0xd4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4",
        gpu: "NVIDIA A100",
        regions: &["us-east"],
        passed_per_hour: 0,
        failed_per_hour: 0,
        busy_per_hour: 2,
        startup_ms: 0.0,
        e2e_ms: 0.0,
        fps: 0.0,
    },
];

/// Hours of history the fleet covers, ending with the current hour.
pub const HOURS: i64 = 4;

const HOUR_MS: i64 = 3_600_000;

fn session(
    profile: &Profile,
    id: String,
    region: &str,
    started_at_unix_ms: i64,
    outcome: Outcome,
    hour: i64,
) -> SessionReport {
    let mut report = SessionReport::new(id, "streamdiffusion", started_at_unix_ms);
    report.ended_at_unix_ms = started_at_unix_ms + 60_000;
    report.orchestrator = Some(OrchestratorRef {
        // Checksum-style upper case on the wire: the API must still find it in lower case.
        address: Some(profile.address.to_ascii_uppercase().replacen("0X", "0x", 1)),
        uri: format!("https://{}.example:8935", &profile.address[..6]),
        cert_sha256: None,
        cert_trust: None,
        address_check: Some(lvt_schema::AddressCheck::Verified),
    });
    report.gpu = Some(Gpu {
        name: profile.gpu.to_owned(),
        memory_bytes: Some(24 << 30),
    });
    report.region = Some(region.to_owned());
    report.prompt = Some(PromptRef {
        id: Some("watercolor".to_owned()),
        complexity: Some(Complexity::Medium),
        params_hash: "0123456789abcdef0123456789abcdef".to_owned(),
    });
    report.outcome = outcome;
    match outcome {
        Outcome::Passed => {
            // A little drift per hour so the charts have a shape.
            let drift = 1.0 + 0.05 * hour as f64;
            let e2e = profile.e2e_ms * drift;
            report.metrics.startup_ms = Some(profile.startup_ms * drift);
            report.metrics.e2e_latency_ms = Some(LatencySummary {
                count: 900,
                p50: e2e,
                p90: e2e * 1.3,
                p95: e2e * 1.4,
                p99: e2e * 1.6,
                max: e2e * 2.0,
                mean: e2e * 1.05,
                min: e2e * 0.7,
            });
            report.metrics.output_fps = Some(FpsSummary {
                mean: profile.fps / drift,
                p5: profile.fps * 0.8,
                p50: profile.fps,
                windows: 60,
            });
            report.metrics.fps_jitter = Some(0.05);
            report.runner.states_seen = vec!["LOADING".to_owned(), "ONLINE".to_owned()];
        }
        Outcome::Failed => {
            report.failure = Some(Failure {
                class: FailureClass::OutputTimeout,
                detail: "no output frame within the startup timeout".to_owned(),
            });
        }
        Outcome::UnscoredBusy => {
            report.failure = Some(Failure {
                class: FailureClass::Capacity,
                detail: "no capacity".to_owned(),
            });
        }
        Outcome::UnscoredIndeterminate => {}
    }
    report
}

/// Every session of the fleet over the [`HOURS`] hours ending with the hour of `now_ms`.
pub fn sessions(now_ms: i64) -> Vec<SessionReport> {
    let current_hour = now_ms - now_ms.rem_euclid(HOUR_MS);
    let mut reports = Vec::new();
    for hour in 0..HOURS {
        let hour_start = current_hour - (HOURS - 1 - hour) * HOUR_MS;
        for profile in &FLEET {
            for (r, region) in profile.regions.iter().enumerate() {
                let kinds = [
                    (Outcome::Passed, profile.passed_per_hour),
                    (Outcome::Failed, profile.failed_per_hour),
                    (Outcome::UnscoredBusy, profile.busy_per_hour),
                ];
                let mut n = 0;
                for (outcome, count) in kinds {
                    for _ in 0..count {
                        // Sessions start in the first minutes of their hour, so every one of
                        // them, even in the current hour, has started before now.
                        let started = (hour_start + (n as i64) * 1000).min(now_ms - 1);
                        let id = format!("{}-{hour_start}-{r}-{n}", &profile.address[..6]);
                        reports.push(session(profile, id, region, started, outcome, hour));
                        n += 1;
                    }
                }
            }
        }
    }
    reports
}

/// Ships `reports` to the collector as one signed batch; returns (inserted, duplicates).
pub async fn ship(
    collector: &TestCollector,
    reports: &[SessionReport],
    counter: u64,
) -> (u64, u64) {
    let records = serde_json::to_value(reports).expect("records serialize");
    let (body, headers) = signed(&agent_key(), &records, now_ms(), counter);
    let (status, answer, _) = post(
        &collector.client,
        &collector.url("/v1/results"),
        body,
        &headers,
    )
    .await
    .expect("post");
    assert_eq!(status, 200, "{answer}");
    (
        answer["inserted"].as_u64().unwrap_or_default(),
        answer["duplicates"].as_u64().unwrap_or_default(),
    )
}

/// Ships `reports` in batches small enough for the test collector's body limit; returns the
/// totals (inserted, duplicates). `counter` seeds the nonces and must differ between calls.
pub async fn ship_all(
    collector: &TestCollector,
    reports: &[SessionReport],
    counter: u64,
) -> (u64, u64) {
    let mut totals = (0, 0);
    for (index, chunk) in reports.chunks(16).enumerate() {
        let (inserted, duplicates) = ship(collector, chunk, counter * 1000 + index as u64).await;
        totals.0 += inserted;
        totals.1 += duplicates;
    }
    totals
}
