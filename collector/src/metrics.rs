//! The collector's own Prometheus metrics, written in the text exposition format by hand.
//!
//! The set is small and fixed (ingest requests by status, records inserted and duplicate, store
//! latency by operation, results stored), so a hand-written registry is clearer than a metrics
//! framework. The results-stored gauge is read from the store at scrape time. Event counters
//! (`POST /v1/events`) are labelled by family, with every name outside the protocol reference
//! pooled as `unknown`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::kafka_health::KafkaHealth;

/// Upper bounds of the store latency histogram buckets, in seconds.
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per-bucket counts (not cumulative); the last slot counts samples above every bound.
    buckets: [u64; LATENCY_BUCKETS_S.len() + 1],
    sum_s: f64,
    count: u64,
}

/// Counters and histograms shared by all request handlers.
#[derive(Debug, Default)]
pub struct Metrics {
    ingest_by_status: Mutex<BTreeMap<u16, u64>>,
    records_inserted: AtomicU64,
    records_duplicate: AtomicU64,
    store_latency: Mutex<BTreeMap<&'static str, Histogram>>,
    events_requests_by_status: Mutex<BTreeMap<u16, u64>>,
    /// Newly stored usable events, by family label ([`event_family_label`]).
    events_stored: Mutex<BTreeMap<&'static str, u64>>,
    /// Newly kept-aside events, by family label.
    events_kept_aside: Mutex<BTreeMap<&'static str, u64>>,
    events_duplicate: AtomicU64,
    /// Kafka messages handled by the consumer, by (kind, outcome) ([`Metrics::handle_kafka_message`]).
    kafka_messages: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Store writes of the Kafka consumer that failed and were retried.
    kafka_store_failures: AtomicU64,
    /// The Kafka consumer's last health look; `None` when no consumer runs.
    kafka_health: Mutex<Option<KafkaHealth>>,
    /// Times the stalled Kafka consumer left its group and joined it again.
    kafka_rejoins: AtomicU64,
}

/// The label a family is counted under: its name when it is one of the families of the protocol
/// reference, `unknown` otherwise, so that a sender cannot grow the label set without bound.
pub fn event_family_label(family: &str) -> &'static str {
    use lvt_schema::events::EventFamily;
    match EventFamily::from_name(family) {
        EventFamily::StreamTrace => "stream_trace",
        EventFamily::AiStreamStatus => "ai_stream_status",
        EventFamily::AiStreamEvents => "ai_stream_events",
        EventFamily::StreamIngestMetrics => "stream_ingest_metrics",
        EventFamily::NetworkCapabilities => "network_capabilities",
        EventFamily::DiscoveryResults => "discovery_results",
        EventFamily::CreateNewPayment => "create_new_payment",
        EventFamily::Unknown(_) => "unknown",
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic while counting; the counts are still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// Counts one `POST /v1/results` answered with `status`.
    pub fn handle_ingest_response(&self, status: u16) {
        let mut map = self
            .ingest_by_status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *map.entry(status).or_default() += 1;
    }

    /// Counts the records of one committed batch.
    pub fn handle_insert(&self, inserted: u64, duplicates: u64) {
        self.records_inserted.fetch_add(inserted, Ordering::Relaxed);
        self.records_duplicate
            .fetch_add(duplicates, Ordering::Relaxed);
    }

    /// Counts one `POST /v1/events` answered with `status`.
    pub fn handle_events_response(&self, status: u16) {
        *lock(&self.events_requests_by_status)
            .entry(status)
            .or_default() += 1;
    }

    /// Counts the events of one committed batch, by family name as sent.
    pub fn handle_events_insert(
        &self,
        stored: &BTreeMap<String, u64>,
        kept_aside: &BTreeMap<String, u64>,
        duplicates: u64,
    ) {
        for (counts, source) in [
            (&self.events_stored, stored),
            (&self.events_kept_aside, kept_aside),
        ] {
            let mut counts = lock(counts);
            for (family, count) in source {
                *counts.entry(event_family_label(family)).or_default() += count;
            }
        }
        self.events_duplicate
            .fetch_add(duplicates, Ordering::Relaxed);
    }

    /// Newly kept-aside events counted under `label` so far.
    pub fn events_kept_aside(&self, label: &str) -> u64 {
        lock(&self.events_kept_aside)
            .get(label)
            .copied()
            .unwrap_or(0)
    }

    /// Counts one Kafka message of `kind` (`results` or `events`) handled with `outcome`
    /// (`stored`, or why it was skipped: `malformed`, `unknown_key`, `bad_signature`).
    pub fn handle_kafka_message(&self, kind: &'static str, outcome: &'static str) {
        *lock(&self.kafka_messages)
            .entry((kind, outcome))
            .or_default() += 1;
    }

    /// Kafka messages of `kind` handled with `outcome` so far.
    pub fn kafka_messages(&self, kind: &str, outcome: &str) -> u64 {
        lock(&self.kafka_messages)
            .iter()
            .filter(|((k, o), _)| *k == kind && *o == outcome)
            .map(|(_, count)| count)
            .sum()
    }

    /// Counts one failed store write of the Kafka consumer (it is retried after a back-off).
    pub fn handle_kafka_store_failure(&self) {
        self.kafka_store_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed store writes of the Kafka consumer so far.
    pub fn kafka_store_failures(&self) -> u64 {
        self.kafka_store_failures.load(Ordering::Relaxed)
    }

    /// Records how long one store operation took.
    pub fn handle_store_latency(&self, operation: &'static str, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut map = self
            .store_latency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let histogram = map.entry(operation).or_default();
        let slot = LATENCY_BUCKETS_S
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        histogram.buckets[slot] += 1;
        histogram.sum_s += seconds;
        histogram.count += 1;
    }

    /// The number of ingest requests answered with `status` so far.
    pub fn ingest_responses(&self, status: u16) -> u64 {
        let map = self
            .ingest_by_status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(&status).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition of every metric; `results_stored` is the current count.
    pub fn render(&self, results_stored: Option<u64>) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, so the results of `writeln!` are ignored.
        let _ = writeln!(
            out,
            "# HELP lvt_collector_ingest_requests_total Result batches received, by HTTP status answered."
        );
        let _ = writeln!(out, "# TYPE lvt_collector_ingest_requests_total counter");
        {
            let map = self
                .ingest_by_status
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (status, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "lvt_collector_ingest_requests_total{{status=\"{status}\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP lvt_collector_records_inserted_total Result records newly stored."
        );
        let _ = writeln!(out, "# TYPE lvt_collector_records_inserted_total counter");
        let _ = writeln!(
            out,
            "lvt_collector_records_inserted_total {}",
            self.records_inserted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lvt_collector_records_duplicate_total Result records received again and not stored twice."
        );
        let _ = writeln!(out, "# TYPE lvt_collector_records_duplicate_total counter");
        let _ = writeln!(
            out,
            "lvt_collector_records_duplicate_total {}",
            self.records_duplicate.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lvt_collector_store_latency_seconds Time taken by store operations."
        );
        let _ = writeln!(out, "# TYPE lvt_collector_store_latency_seconds histogram");
        {
            let map = self
                .store_latency
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (operation, histogram) in map.iter() {
                let mut cumulative = 0;
                for (bound, count) in LATENCY_BUCKETS_S.iter().zip(histogram.buckets.iter()) {
                    cumulative += count;
                    let _ = writeln!(
                        out,
                        "lvt_collector_store_latency_seconds_bucket{{operation=\"{operation}\",le=\"{bound}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "lvt_collector_store_latency_seconds_bucket{{operation=\"{operation}\",le=\"+Inf\"}} {}",
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "lvt_collector_store_latency_seconds_sum{{operation=\"{operation}\"}} {}",
                    histogram.sum_s
                );
                let _ = writeln!(
                    out,
                    "lvt_collector_store_latency_seconds_count{{operation=\"{operation}\"}} {}",
                    histogram.count
                );
            }
        }
        self.render_events(&mut out);
        self.render_kafka(&mut out);
        if let Some(stored) = results_stored {
            let _ = writeln!(
                out,
                "# HELP lvt_collector_results_stored Result records currently stored."
            );
            let _ = writeln!(out, "# TYPE lvt_collector_results_stored gauge");
            let _ = writeln!(out, "lvt_collector_results_stored {stored}");
        }
        out
    }
}

impl Metrics {
    /// Counts one rejoin of the stalled Kafka consumer.
    pub fn handle_kafka_rejoin(&self) {
        self.kafka_rejoins.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the Kafka consumer's latest health look ([`crate::kafka_health`]).
    pub fn set_kafka_health(&self, health: KafkaHealth) {
        *lock(&self.kafka_health) = Some(health);
    }

    /// The Kafka consumer's latest health look; `None` when no consumer runs.
    pub fn kafka_health(&self) -> Option<KafkaHealth> {
        lock(&self.kafka_health).clone()
    }

    fn render_kafka(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP lvt_collector_kafka_messages_total Kafka messages consumed, by kind (results, events) and outcome (stored, or why skipped)."
        );
        let _ = writeln!(out, "# TYPE lvt_collector_kafka_messages_total counter");
        for ((kind, outcome), count) in lock(&self.kafka_messages).iter() {
            let _ = writeln!(
                out,
                "lvt_collector_kafka_messages_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP lvt_collector_kafka_store_failures_total Store writes of the Kafka consumer that failed; their offsets stay uncommitted and the write is retried."
        );
        let _ = writeln!(
            out,
            "# TYPE lvt_collector_kafka_store_failures_total counter"
        );
        let _ = writeln!(
            out,
            "lvt_collector_kafka_store_failures_total {}",
            self.kafka_store_failures.load(Ordering::Relaxed)
        );
        if let Some(health) = lock(&self.kafka_health).as_ref() {
            let _ = writeln!(
                out,
                "# HELP lvt_collector_kafka_rejoins_total Times the stalled Kafka consumer left its group and joined it again."
            );
            let _ = writeln!(out, "# TYPE lvt_collector_kafka_rejoins_total counter");
            let _ = writeln!(
                out,
                "lvt_collector_kafka_rejoins_total {}",
                self.kafka_rejoins.load(Ordering::Relaxed)
            );
            render_kafka_health(out, health);
        }
    }

    fn render_events(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP lvt_collector_events_requests_total Event batches received, by HTTP status answered."
        );
        let _ = writeln!(out, "# TYPE lvt_collector_events_requests_total counter");
        for (status, count) in lock(&self.events_requests_by_status).iter() {
            let _ = writeln!(
                out,
                "lvt_collector_events_requests_total{{status=\"{status}\"}} {count}"
            );
        }
        for (name, help, counts) in [
            (
                "lvt_collector_events_stored_total",
                "Usable go-livepeer events newly stored, by family.",
                &self.events_stored,
            ),
            (
                "lvt_collector_events_kept_aside_total",
                "Events newly kept aside (unknown family, or a payload of the wrong shape), by family.",
                &self.events_kept_aside,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (family, count) in lock(counts).iter() {
                let _ = writeln!(out, "{name}{{family=\"{family}\"}} {count}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP lvt_collector_events_duplicate_total Events received again and not stored twice."
        );
        let _ = writeln!(out, "# TYPE lvt_collector_events_duplicate_total counter");
        let _ = writeln!(
            out,
            "lvt_collector_events_duplicate_total {}",
            self.events_duplicate.load(Ordering::Relaxed)
        );
    }
}

/// The consumer's health gauges: what it holds, the group's lag per partition, and the stall
/// verdict (docs/collector.md, "A stalled consumer").
fn render_kafka_health(out: &mut String, health: &KafkaHealth) {
    gauge_header(
        out,
        "lvt_collector_kafka_stalled",
        "1 when the consumer has held no partition for longer than the session timeout while its topics have unread messages and the group's offsets do not move.",
    );
    let _ = writeln!(
        out,
        "lvt_collector_kafka_stalled {}",
        u8::from(health.stalled)
    );
    let Some(observation) = &health.observation else {
        return;
    };
    gauge_header(
        out,
        "lvt_collector_kafka_assigned_partitions",
        "Partitions the consumer group has assigned to this collector.",
    );
    let _ = writeln!(
        out,
        "lvt_collector_kafka_assigned_partitions {}",
        observation.assigned.len()
    );
    gauge_header(
        out,
        "lvt_collector_kafka_unassigned_seconds",
        "How long this collector has held no partition (0 while it holds one).",
    );
    let _ = writeln!(
        out,
        "lvt_collector_kafka_unassigned_seconds {}",
        health.unassigned_for.map_or(0, |held| held.as_secs())
    );
    gauge_header(
        out,
        "lvt_collector_kafka_lag",
        "Messages retained on a partition and not yet committed by the consumer group.",
    );
    for partition in &observation.partitions {
        let _ = writeln!(
            out,
            "lvt_collector_kafka_lag{{topic=\"{}\",partition=\"{}\"}} {}",
            partition.topic,
            partition.partition,
            partition.lag()
        );
    }
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_cumulative_and_labelled() {
        let metrics = Metrics::default();
        metrics.handle_ingest_response(200);
        metrics.handle_ingest_response(200);
        metrics.handle_ingest_response(413);
        metrics.handle_insert(3, 1);
        metrics.handle_store_latency("insert_batch", Duration::from_micros(700));
        metrics.handle_store_latency("insert_batch", Duration::from_secs(9));
        let text = metrics.render(Some(3));
        assert!(text.contains("lvt_collector_ingest_requests_total{status=\"200\"} 2\n"));
        assert!(text.contains("lvt_collector_ingest_requests_total{status=\"413\"} 1\n"));
        assert!(text.contains("lvt_collector_records_inserted_total 3\n"));
        assert!(text.contains("lvt_collector_records_duplicate_total 1\n"));
        assert!(text.contains(
            "lvt_collector_store_latency_seconds_bucket{operation=\"insert_batch\",le=\"0.0005\"} 0\n"
        ));
        assert!(text.contains(
            "lvt_collector_store_latency_seconds_bucket{operation=\"insert_batch\",le=\"0.001\"} 1\n"
        ));
        assert!(text.contains(
            "lvt_collector_store_latency_seconds_bucket{operation=\"insert_batch\",le=\"2.5\"} 1\n"
        ));
        assert!(text.contains(
            "lvt_collector_store_latency_seconds_bucket{operation=\"insert_batch\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains("lvt_collector_results_stored 3\n"));
    }

    #[test]
    fn event_counters_are_per_family_with_unknown_names_pooled() {
        let metrics = Metrics::default();
        metrics.handle_events_response(200);
        let stored = BTreeMap::from([("stream_trace".to_owned(), 2)]);
        let aside = BTreeMap::from([
            ("made_up_a".to_owned(), 1),
            ("made_up_b".to_owned(), 2),
            ("ai_stream_status".to_owned(), 1),
        ]);
        metrics.handle_events_insert(&stored, &aside, 4);
        let text = metrics.render(None);
        assert!(text.contains("lvt_collector_events_requests_total{status=\"200\"} 1\n"));
        assert!(text.contains("lvt_collector_events_stored_total{family=\"stream_trace\"} 2\n"));
        assert!(text.contains("lvt_collector_events_kept_aside_total{family=\"unknown\"} 3\n"));
        assert!(
            text.contains("lvt_collector_events_kept_aside_total{family=\"ai_stream_status\"} 1\n")
        );
        assert!(text.contains("lvt_collector_events_duplicate_total 4\n"));
        assert!(!text.contains("made_up"));
        assert_eq!(metrics.events_kept_aside("unknown"), 3);
    }

    #[test]
    fn kafka_counters_are_by_kind_and_outcome() {
        let metrics = Metrics::default();
        metrics.handle_kafka_message("results", "stored");
        metrics.handle_kafka_message("results", "bad_signature");
        metrics.handle_kafka_message("results", "bad_signature");
        metrics.handle_kafka_message("events", "malformed");
        metrics.handle_kafka_store_failure();
        let text = metrics.render(None);
        assert!(text.contains(
            "lvt_collector_kafka_messages_total{kind=\"results\",outcome=\"bad_signature\"} 2\n"
        ));
        assert!(text.contains(
            "lvt_collector_kafka_messages_total{kind=\"events\",outcome=\"malformed\"} 1\n"
        ));
        assert!(text.contains("lvt_collector_kafka_store_failures_total 1\n"));
        assert_eq!(metrics.kafka_messages("results", "bad_signature"), 2);
        assert_eq!(metrics.kafka_messages("events", "stored"), 0);
        assert_eq!(metrics.kafka_store_failures(), 1);
    }
}
