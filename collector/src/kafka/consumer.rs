//! The rdkafka consumer behind [`super::KafkaConsumer`] (the `kafka` feature): rounds, the
//! durable write, the commit, and the health monitor that rejoins a stalled group.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, OwnedMessage};
use sha2::{Digest as _, Sha256};

use super::decode::{
    HeaderList, MessageKind, Rejection, ResultsMessage, decode_events, decode_results,
    header_lookup,
};
use super::{ConsumerOptions, KafkaError};
use crate::config::KafkaConfig;

use crate::app::AppState;
use crate::kafka_health::{KafkaHealth, Observation, PartitionLag, StallTracker, Transition};
use crate::store::{EventBatch, StoreError, StoredEvent};

/// One consumed message, detached from the client so that it outlives the next `recv`.
struct Consumed {
    message: OwnedMessage,
    kind: MessageKind,
}

/// The decoded round: what to write, and where each partition's committed offset goes after.
#[derive(Default)]
struct Round {
    /// Verified results messages not yet written, oldest first.
    results: VecDeque<ResultsMessage>,
    /// Every envelope of the round's events messages, in order.
    events: Vec<StoredEvent>,
    /// How many events messages contributed to `events`.
    events_messages: u64,
    /// The next offset to consume, by (topic, partition).
    next_offsets: BTreeMap<(String, i32), i64>,
}

/// A consumer of the configured topics, feeding the collector's store.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer>,
    config: KafkaConfig,
    state: Arc<AppState>,
    results_topic: Option<String>,
    events_topic: Option<String>,
    options: ConsumerOptions,
}

/// Why [`KafkaConsumer::consume`] returned.
enum Exit {
    /// The collector stops.
    Shutdown,
    /// The consumer is stalled ([`crate::kafka_health`]): leave the group and join it again.
    Rejoin,
}

/// The stall verdict kept across rejoins, and when the last rejoin was asked for.
struct Watch {
    tracker: StallTracker,
    rejoined_at: Option<Instant>,
}

/// How many session timeouts a consumer that stays stalled waits between two rejoins.
const REJOIN_EVERY_TIMEOUTS: u32 = 6;

/// Creates the client and subscribes it to the configured topics.
fn client(config: &KafkaConfig, options: &ConsumerOptions) -> Result<StreamConsumer, KafkaError> {
    let client_error = |source| KafkaError::Client {
        brokers: config.brokers.clone(),
        source,
    };
    let session_timeout_ms = options.session_timeout.as_millis().to_string();
    let mut client = ClientConfig::new();
    if let Some(instance_id) = &config.instance_id {
        // Static membership: the broker keeps this member's assignment through a restart.
        client.set("group.instance.id", instance_id);
    }
    let consumer: StreamConsumer = client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        // A new group starts at the oldest retained message: with idempotent storage,
        // reading too much costs only duplicates, reading too little loses data.
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", &session_timeout_ms)
        .set("enable.partition.eof", "false")
        .create()
        .map_err(client_error)?;
    let topics: Vec<&str> = [&config.results_topic, &config.events_topic]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    consumer.subscribe(&topics).map_err(client_error)?;
    Ok(consumer)
}

/// Drops the client, which leaves the group (so its partitions move on at once rather than after
/// the session timeout) and waits for the broker, so it runs off the async workers.
async fn close(consumer: Arc<StreamConsumer>) {
    if let Err(error) = tokio::task::spawn_blocking(move || drop(consumer)).await {
        tracing::warn!(message = "Closing the Kafka consumer failed.", error = %error);
    }
}

impl KafkaConsumer {
    /// Creates the client and subscribes to the configured topics. Nothing is read until
    /// [`KafkaConsumer::run`]; a broker that cannot be reached is retried by the client, not an
    /// error here.
    pub fn new(
        state: Arc<AppState>,
        config: &KafkaConfig,
        options: ConsumerOptions,
    ) -> Result<Self, KafkaError> {
        let consumer = client(config, &options)?;
        Ok(Self {
            consumer: Arc::new(consumer),
            config: config.clone(),
            state,
            results_topic: config.results_topic.clone(),
            events_topic: config.events_topic.clone(),
            options,
        })
    }

    /// Consumes until `shutdown` completes. A round being written when it completes is not
    /// committed, so it is read again by the next consumer of the group. A stalled consumer
    /// ([`crate::kafka_health`]) leaves the group and joins it again, as a restart with SIGTERM
    /// would, and then every [`REJOIN_EVERY_TIMEOUTS`] session timeouts while it stays stalled.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let watch = Arc::new(std::sync::Mutex::new(Watch {
            tracker: StallTracker::new(self.options.session_timeout),
            rejoined_at: None,
        }));
        self.state.metrics.set_kafka_health(KafkaHealth::starting());
        let topics: Vec<String> = [&self.results_topic, &self.events_topic]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        loop {
            let rejoin = Arc::new(tokio::sync::Notify::new());
            let monitor = tokio::spawn(monitor(
                Arc::clone(&self.consumer),
                Arc::clone(&self.state),
                topics.clone(),
                self.options.clone(),
                Arc::clone(&watch),
                Arc::clone(&rejoin),
            ));
            let exit = self.consume(shutdown.as_mut(), &rejoin).await;
            monitor.abort();
            let _ = monitor.await;
            match exit {
                Exit::Shutdown => break,
                Exit::Rejoin => match client(&self.config, &self.options) {
                    Ok(fresh) => {
                        self.state.metrics.handle_kafka_rejoin();
                        let stalled = std::mem::replace(&mut self.consumer, Arc::new(fresh));
                        close(stalled).await;
                        tracing::warn!(
                            message =
                                "The stalled Kafka consumer left its group and joined it again."
                        );
                    }
                    Err(error) => {
                        tracing::warn!(message = "A new Kafka client for the rejoin could not be made; the stalled one goes on.", error = %error);
                    }
                },
            }
        }
        close(self.consumer).await;
        tracing::info!(message = "Kafka consumer stopped.");
    }

    /// Consumes rounds until `shutdown` completes or the monitor asks for a rejoin (checked
    /// between rounds only, so a round is always written and committed whole).
    async fn consume(
        &self,
        mut shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
        rejoin: &tokio::sync::Notify,
    ) -> Exit {
        loop {
            let round = tokio::select! {
                () = &mut shutdown => return Exit::Shutdown,
                () = rejoin.notified() => return Exit::Rejoin,
                round = self.next_round() => round,
            };
            if round.is_empty() {
                continue;
            }
            let mut decoded = self.decode_round(round);
            let mut delay = self.options.retry_min;
            loop {
                match self.write(&mut decoded).await {
                    Ok(()) => break,
                    Err(error) => {
                        self.state.metrics.handle_kafka_store_failure();
                        tracing::warn!(
                            message = "Storing consumed Kafka messages failed; retrying without committing.",
                            error = %error,
                            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)
                        );
                        tokio::select! {
                            () = &mut shutdown => return Exit::Shutdown,
                            () = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(self.options.retry_max);
                    }
                }
            }
            self.commit(&decoded.next_offsets).await;
        }
    }

    /// Waits for one message, then takes whatever else arrives within the batch wait, up to the
    /// batch size. A client error (broker unreachable, rebalancing) ends the round early; the
    /// client keeps retrying on its own.
    async fn next_round(&self) -> Vec<Consumed> {
        let mut round = Vec::new();
        match self.consumer.recv().await {
            Ok(message) => round.extend(self.consumed(message.detach())),
            Err(error) => {
                tracing::warn!(message = "Kafka consumer error.", error = %error);
                // The client reports a failing broker on every poll; pausing keeps the log and
                // the loop from spinning while it reconnects.
                tokio::time::sleep(self.options.retry_min).await;
                return round;
            }
        }
        let deadline = tokio::time::Instant::now() + self.options.batch_wait;
        while round.len() < self.options.max_batch_messages {
            // `recv` is cancellation safe: a message is taken from the client only when the
            // future completes, so timing out loses nothing.
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => round.extend(self.consumed(message.detach())),
                Ok(Err(error)) => {
                    tracing::warn!(message = "Kafka consumer error.", error = %error);
                    break;
                }
                Err(_elapsed) => break,
            }
        }
        round
    }

    fn consumed(&self, message: OwnedMessage) -> Option<Consumed> {
        let topic = Some(message.topic());
        let kind = if topic == self.results_topic.as_deref() {
            MessageKind::Results
        } else if topic == self.events_topic.as_deref() {
            MessageKind::Events
        } else {
            // Only subscribed topics are delivered, so this would be a client bug; the message
            // is not ours to store, and logging it is all that can be done.
            tracing::warn!(
                message = "Message from an unexpected topic.",
                topic = message.topic()
            );
            return None;
        };
        Some(Consumed { message, kind })
    }

    /// Decodes every message of a round, counting the rejected ones.
    fn decode_round(&self, round: Vec<Consumed>) -> Round {
        let now_ms = (self.state.clock)();
        let mut decoded = Round::default();
        for Consumed { message, kind } in round {
            let position = (message.topic().to_owned(), message.partition());
            let next = message.offset().saturating_add(1);
            let entry = decoded.next_offsets.entry(position).or_insert(next);
            *entry = (*entry).max(next);
            let outcome = match kind {
                MessageKind::Results => {
                    let headers: HeaderList = message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|header| {
                                    (header.key.to_owned(), header.value.map(<[u8]>::to_vec))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    decode_results(
                        &self.state.agents_by_key,
                        header_lookup(&headers),
                        message.payload(),
                        self.state.settings.time_bounds(now_ms),
                    )
                    .map(|results| decoded.results.push_back(results))
                }
                MessageKind::Events => decode_events(message.payload()).map(|events| {
                    decoded.events.extend(events);
                    decoded.events_messages += 1;
                }),
            };
            if let Err(rejection) = outcome {
                self.reject(kind, &message, &rejection);
            }
        }
        decoded
    }

    fn reject(&self, kind: MessageKind, message: &OwnedMessage, rejection: &Rejection) {
        self.state
            .metrics
            .handle_kafka_message(kind.label(), rejection.label());
        tracing::warn!(
            message = "Kafka message skipped.",
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            reason = %rejection
        );
    }

    /// Writes what is left of a round. Each results message written is removed, so a retry after
    /// a failure writes only the rest; the events go in one write.
    async fn write(&self, round: &mut Round) -> Result<(), StoreError> {
        while let Some(message) = round.results.front() {
            if !message.results.is_empty() {
                let started = Instant::now();
                let outcome = self
                    .state
                    .store
                    .insert_batch(message.batch.clone(), message.results.clone())
                    .await;
                self.state
                    .metrics
                    .handle_store_latency("insert_batch", started.elapsed());
                let outcome = outcome?;
                self.state
                    .metrics
                    .handle_insert(outcome.inserted, outcome.duplicates);
            }
            self.state.metrics.handle_kafka_message("results", "stored");
            round.results.pop_front();
        }
        if round.events_messages == 0 {
            return Ok(());
        }
        if !round.events.is_empty() {
            // As for `POST /v1/events`, the organic-load fold sees only what the store took
            // durably, and only the stream-scoped families.
            let usable: Vec<String> = round
                .events
                .iter()
                .filter(|event| event.aside_reason.is_none())
                .filter(|event| crate::organic::folds_family(&event.family))
                .map(|event| event.envelope_json.clone())
                .collect();
            let started = Instant::now();
            let outcome = self
                .state
                .store
                .insert_events(self.events_batch(&round.events), round.events.clone())
                .await;
            self.state
                .metrics
                .handle_store_latency("insert_events", started.elapsed());
            let outcome = outcome?;
            crate::app::ingest::feed_organic_load(
                &self.state,
                usable.iter().map(String::as_str),
                (self.state.clock)(),
            )
            .await;
            self.state.metrics.handle_events_insert(
                &outcome.stored,
                &outcome.kept_aside,
                outcome.duplicates,
            );
        }
        for _ in 0..round.events_messages {
            self.state.metrics.handle_kafka_message("events", "stored");
        }
        round.events.clear();
        round.events_messages = 0;
        Ok(())
    }

    /// The provenance of events read from Kafka. They are unsigned (go-livepeer signs nothing),
    /// so the signature fields are empty and the agent is named after the topic.
    fn events_batch(&self, events: &[StoredEvent]) -> EventBatch {
        let now_ms = (self.state.clock)();
        let mut digest = Sha256::new();
        for event in events {
            digest.update(event.envelope_json.as_bytes());
            digest.update(b"\n");
        }
        EventBatch {
            agent_id: format!("kafka:{}", self.events_topic.as_deref().unwrap_or_default()),
            key_id: String::new(),
            timestamp_ms: now_ms,
            nonce: String::new(),
            signature: String::new(),
            canonical_sha256: hex::encode(digest.finalize()),
            received_at_unix_ms: now_ms,
        }
    }

    /// Commits the offsets after a written round. A failed commit is logged, not retried: the
    /// round is then read again later and stored as duplicates, which changes nothing.
    async fn commit(&self, next_offsets: &BTreeMap<(String, i32), i64>) {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next_offsets {
            if let Err(error) =
                list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            {
                tracing::warn!(message = "Offset not committable.", topic, partition, error = %error);
            }
        }
        if list.count() == 0 {
            return;
        }
        let consumer = Arc::clone(&self.consumer);
        // A synchronous commit waits for the broker's answer, so it runs off the async workers.
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync)).await;
        match committed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(message = "Committing Kafka offsets failed.", error = %error);
            }
            Err(error) => {
                tracing::warn!(message = "The offset commit task was lost.", error = %error);
            }
        }
    }
}

/// Looks at the consumer every [`ConsumerOptions::health_interval`] and publishes what it sees
/// in the metrics (read by `/metrics` and `/healthz`), logging when the consumer stalls and
/// when it recovers ([`crate::kafka_health`]).
async fn monitor(
    consumer: Arc<StreamConsumer>,
    state: Arc<AppState>,
    topics: Vec<String>,
    options: ConsumerOptions,
    watch: Arc<std::sync::Mutex<Watch>>,
    rejoin: Arc<tokio::sync::Notify>,
) {
    let mut ticks = tokio::time::interval(options.health_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let looked_at = {
            let consumer = Arc::clone(&consumer);
            let topics = topics.clone();
            // Each answer is bounded by the interval, so a broker that does not answer delays
            // the next look and never piles them up.
            let timeout = options.health_interval.max(Duration::from_millis(500));
            tokio::task::spawn_blocking(move || observe(&consumer, &topics, timeout)).await
        };
        let observation = match looked_at {
            Ok(Ok(observation)) => observation,
            Ok(Err(error)) => {
                tracing::debug!(message = "Kafka health look failed.", error = %error);
                let mut health = state
                    .metrics
                    .kafka_health()
                    .unwrap_or_else(KafkaHealth::starting);
                health.error = Some(error.to_string());
                state.metrics.set_kafka_health(health);
                continue;
            }
            Err(_lost) => continue,
        };
        let now = Instant::now();
        let (health, transition, rejoin_now) = {
            let mut watch = watch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (health, transition) = watch.tracker.observe(now, observation);
            let due = watch.rejoined_at.is_none_or(|at| {
                now.saturating_duration_since(at) >= options.session_timeout * REJOIN_EVERY_TIMEOUTS
            });
            let rejoin_now = health.stalled && (transition == Some(Transition::Stalled) || due);
            if rejoin_now {
                watch.rejoined_at = Some(now);
            }
            (health, transition, rejoin_now)
        };
        match transition {
            Some(Transition::Stalled) if !health.orphaned.is_empty() => tracing::warn!(
                message = "Partitions of the consumed topics have unread messages that nobody has committed for several session timeouts; the group may still assign them to a dead member (see docs/collector.md, A stalled consumer).",
                orphaned = ?health.orphaned,
                unread = health.observation.as_ref().map_or(0, Observation::unread),
                session_timeout_s = options.session_timeout.as_secs()
            ),
            Some(Transition::Stalled) => tracing::warn!(
                message = "The Kafka consumer holds no partition while its topics have unread messages that nobody commits; the group may have lost track of a dead member (see docs/collector.md, A stalled consumer).",
                unassigned_s = health.unassigned_for.map_or(0, |held| held.as_secs()),
                unread = health.observation.as_ref().map_or(0, Observation::unread),
                session_timeout_s = options.session_timeout.as_secs()
            ),
            Some(Transition::Recovered) => {
                tracing::info!(message = "The Kafka consumer makes progress again.");
            }
            None => {}
        }
        state.metrics.set_kafka_health(health);
        if rejoin_now {
            rejoin.notify_one();
        }
    }
}

/// One look at the consumer's assignment and at its group's committed offsets and the
/// watermarks of every partition of `topics`. Blocking: each call waits for the broker.
fn observe(
    consumer: &StreamConsumer,
    topics: &[String],
    timeout: Duration,
) -> Result<Observation, rdkafka::error::KafkaError> {
    let assigned = consumer
        .assignment()?
        .elements()
        .iter()
        .map(|element| (element.topic().to_owned(), element.partition()))
        .collect();
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for found in metadata.topics() {
            for partition in found.partitions() {
                all.add_partition(found.name(), partition.id());
            }
        }
    }
    let committed = consumer.committed_offsets(all, timeout)?;
    let mut partitions = Vec::new();
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        partitions.push(PartitionLag {
            topic: element.topic().to_owned(),
            partition: element.partition(),
            committed: match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            },
            low,
            high,
        });
    }
    Ok(Observation {
        assigned,
        partitions,
    })
}
