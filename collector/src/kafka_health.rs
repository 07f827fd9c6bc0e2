//! Whether the Kafka consumer makes progress: which partitions it holds, how many messages its
//! group has not yet committed on each partition of its topics, and the stall rule.
//!
//! The rule ([`StallTracker::observe`]) is pure, with the time as an input: the consumer is
//! *stalled* when it has held no partition for longer than the session timeout while its topics
//! have unread messages and the group's committed offsets have not moved in that time. Holding no
//! partition is normal when another replica of the group holds them all; that replica then
//! commits, so the offsets move and nothing is reported. What is reported is the case of
//! issue 17: a restarted consumer that the broker never hands the partitions back to.
//!
//! A second rule covers a partition nobody reads: one this consumer does not hold, with unread
//! messages, whose committed offset has not moved for [`ORPHAN_TIMEOUTS`] session timeouts. A
//! live holder commits within seconds of a message arriving, so such a partition is held by a
//! member that is gone (Tansu 0.6.0 keeps assigning a dead member's share after it expires it);
//! the consumer is then stalled too, and its rejoin makes the group assign again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How many session timeouts a partition this consumer does not hold may keep unread messages
/// without its committed offset moving before it counts as orphaned.
pub const ORPHAN_TIMEOUTS: u32 = 3;

/// One partition of a consumed topic, as the group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (the next message it will read); `None` before its first
    /// commit.
    pub committed: Option<i64>,
    /// The oldest retained offset.
    pub low: i64,
    /// The offset the next produced message will take.
    pub high: i64,
}

impl PartitionLag {
    /// Messages retained and not yet committed by the group. Without a commit the group starts
    /// at the oldest retained message (`auto.offset.reset=earliest`).
    #[must_use]
    pub fn lag(&self) -> i64 {
        let from = self.committed.unwrap_or(self.low).max(self.low);
        (self.high - from).max(0)
    }

    /// Where the group stands on this partition, for the progress check.
    fn position(&self) -> i64 {
        self.committed.unwrap_or(self.low).max(self.low)
    }
}

/// One look at the consumer and its group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The partitions assigned to this consumer, as `(topic, partition)`.
    pub assigned: Vec<(String, i32)>,
    /// Every partition of the subscribed topics, with the group's lag on it.
    pub partitions: Vec<PartitionLag>,
}

impl Observation {
    /// Messages of the subscribed topics not yet committed by the group.
    #[must_use]
    pub fn unread(&self) -> i64 {
        self.partitions.iter().map(PartitionLag::lag).sum()
    }
}

/// What `/healthz` and `/metrics` show of the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaHealth {
    /// The last observation; `None` until the first one succeeded.
    pub observation: Option<Observation>,
    /// Why the last observation failed, when it did (the broker did not answer in time).
    pub error: Option<String>,
    /// How long the consumer has held no partition; `None` while it holds one.
    pub unassigned_for: Option<Duration>,
    /// Partitions this consumer does not hold that nobody has read for [`ORPHAN_TIMEOUTS`]
    /// session timeouts, as `(topic, partition)`.
    pub orphaned: Vec<(String, i32)>,
    /// Whether either stall rule holds ([`StallTracker`]).
    pub stalled: bool,
}

impl KafkaHealth {
    /// The state before the first observation.
    #[must_use]
    pub fn starting() -> Self {
        Self {
            observation: None,
            error: None,
            unassigned_for: None,
            orphaned: Vec::new(),
            stalled: false,
        }
    }
}

/// Follows observations over time and applies the stall rule.
#[derive(Debug)]
pub struct StallTracker {
    session_timeout: Duration,
    /// Since when the consumer holds no partition.
    unassigned_since: Option<Instant>,
    /// The group's summed positions at the last change, and when that change was seen.
    progress: Option<(i64, Instant)>,
    /// Each partition's position at its last change (or while nothing was unread), and when.
    partition_progress: HashMap<(String, i32), (i64, Instant)>,
    stalled: bool,
}

/// A change of the stall verdict, so that the caller logs transitions and not every look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The consumer has just become stalled.
    Stalled,
    /// A stalled consumer makes progress again (it holds a partition, or the offsets moved, or
    /// nothing is left to read).
    Recovered,
}

impl StallTracker {
    /// A tracker for a consumer whose group uses `session_timeout`.
    #[must_use]
    pub fn new(session_timeout: Duration) -> Self {
        Self {
            session_timeout,
            unassigned_since: None,
            progress: None,
            partition_progress: HashMap::new(),
            stalled: false,
        }
    }

    /// Takes one observation made at `now`, returns the health to show and the transition of the
    /// verdict, if any.
    pub fn observe(
        &mut self,
        now: Instant,
        observation: Observation,
    ) -> (KafkaHealth, Option<Transition>) {
        if observation.assigned.is_empty() {
            self.unassigned_since.get_or_insert(now);
        } else {
            self.unassigned_since = None;
        }
        let position: i64 = observation
            .partitions
            .iter()
            .map(PartitionLag::position)
            .sum();
        let unread = observation.unread();
        match self.progress {
            // Nothing left to read counts as progress: a message that arrives later is waited
            // for a whole timeout before anyone is blamed.
            Some((last, _)) if last == position && unread > 0 => {}
            _ => self.progress = Some((position, now)),
        }
        let unassigned_for = self
            .unassigned_since
            .map(|since| now.saturating_duration_since(since));
        let still = self.progress.map_or(Duration::ZERO, |(_, since)| {
            now.saturating_duration_since(since)
        });
        let orphan_after = self.session_timeout * ORPHAN_TIMEOUTS;
        let mut orphaned = Vec::new();
        for partition in &observation.partitions {
            let key = (partition.topic.clone(), partition.partition);
            let position = partition.position();
            let since = match self.partition_progress.get(&key) {
                Some(&(last, since)) if last == position && partition.lag() > 0 => since,
                _ => {
                    self.partition_progress.insert(key.clone(), (position, now));
                    now
                }
            };
            if partition.lag() > 0
                && now.saturating_duration_since(since) >= orphan_after
                && !observation.assigned.contains(&key)
            {
                orphaned.push(key);
            }
        }
        let stalled = (unassigned_for
            .is_some_and(|held_nothing| held_nothing >= self.session_timeout)
            && still >= self.session_timeout
            && unread > 0)
            || !orphaned.is_empty();
        let transition = match (self.stalled, stalled) {
            (false, true) => Some(Transition::Stalled),
            (true, false) => Some(Transition::Recovered),
            _ => None,
        };
        self.stalled = stalled;
        (
            KafkaHealth {
                observation: Some(observation),
                error: None,
                unassigned_for,
                orphaned,
                stalled,
            },
            transition,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn partition(partition: i32, committed: Option<i64>, high: i64) -> PartitionLag {
        PartitionLag {
            topic: "lvt-results".to_owned(),
            partition,
            committed,
            low: 0,
            high,
        }
    }

    fn seen(assigned: &[i32], partitions: Vec<PartitionLag>) -> Observation {
        Observation {
            assigned: assigned
                .iter()
                .map(|p| ("lvt-results".to_owned(), *p))
                .collect(),
            partitions,
        }
    }

    #[test]
    fn lag_counts_from_the_commit_or_from_the_oldest_retained_message() {
        assert_eq!(partition(0, Some(3), 10).lag(), 7);
        assert_eq!(partition(0, None, 10).lag(), 10);
        let trimmed = PartitionLag {
            low: 8,
            ..partition(0, Some(3), 10)
        };
        assert_eq!(
            trimmed.lag(),
            2,
            "a commit below retention counts from the oldest"
        );
        assert_eq!(partition(0, Some(10), 10).lag(), 0);
    }

    #[test]
    fn holding_nothing_with_unread_messages_and_no_progress_is_a_stall_after_the_timeout() {
        let start = Instant::now();
        let mut tracker = StallTracker::new(TIMEOUT);
        let quiet = || seen(&[], vec![partition(0, Some(3), 6), partition(1, None, 2)]);
        let (health, transition) = tracker.observe(start, quiet());
        assert!(!health.stalled);
        assert_eq!(transition, None);
        assert_eq!(health.unassigned_for, Some(Duration::ZERO));
        let (health, transition) = tracker.observe(start + Duration::from_secs(9), quiet());
        assert!(!health.stalled, "not before the session timeout");
        assert_eq!(transition, None);
        let (health, transition) = tracker.observe(start + TIMEOUT, quiet());
        assert!(health.stalled);
        assert_eq!(transition, Some(Transition::Stalled));
        assert_eq!(
            health.observation.as_ref().map(Observation::unread),
            Some(5)
        );
        let (health, transition) = tracker.observe(start + Duration::from_secs(12), quiet());
        assert!(health.stalled);
        assert_eq!(transition, None, "the transition is reported once");

        // The partitions come back: recovered at once.
        let (health, transition) = tracker.observe(
            start + Duration::from_secs(13),
            seen(
                &[0, 1],
                vec![partition(0, Some(3), 6), partition(1, None, 2)],
            ),
        );
        assert!(!health.stalled);
        assert_eq!(health.unassigned_for, None);
        assert_eq!(transition, Some(Transition::Recovered));
    }

    #[test]
    fn another_replica_committing_is_not_a_stall() {
        let start = Instant::now();
        let mut tracker = StallTracker::new(TIMEOUT);
        for second in 0..30 {
            // A busy topic: there is always some lag, and the group's offsets keep moving.
            let committed = 100 + second * 5;
            let (health, _) = tracker.observe(
                start + Duration::from_secs(u64::try_from(second).unwrap_or(0)),
                seen(&[], vec![partition(0, Some(committed), committed + 3)]),
            );
            assert!(!health.stalled, "second {second}");
        }
    }

    #[test]
    fn nothing_to_read_is_not_a_stall() {
        let start = Instant::now();
        let mut tracker = StallTracker::new(TIMEOUT);
        for second in [0, 20, 40] {
            let (health, _) = tracker.observe(
                start + Duration::from_secs(second),
                seen(&[], vec![partition(0, Some(7), 7)]),
            );
            assert!(!health.stalled);
        }
        // A message arrives and nobody reads it: a stall a whole timeout later, not at once
        // (another replica may be about to read it).
        let late = || seen(&[], vec![partition(0, Some(7), 8)]);
        let (health, _) = tracker.observe(start + Duration::from_secs(41), late());
        assert!(!health.stalled);
        let (health, _) = tracker.observe(start + Duration::from_secs(49), late());
        assert!(!health.stalled);
        // A timeout after the last look that found nothing to read.
        let (health, transition) = tracker.observe(start + Duration::from_secs(50), late());
        assert!(health.stalled);
        assert_eq!(transition, Some(Transition::Stalled));
    }

    #[test]
    fn a_consumer_holding_partitions_is_never_stalled_by_this_rule() {
        let start = Instant::now();
        let mut tracker = StallTracker::new(TIMEOUT);
        for second in [0, 20, 40] {
            let (health, _) = tracker.observe(
                start + Duration::from_secs(second),
                seen(&[0], vec![partition(0, Some(1), 9)]),
            );
            // A consumer that holds its partitions but cannot write is shown by
            // lvt_collector_kafka_store_failures_total, not by this rule.
            assert!(!health.stalled);
        }
    }

    #[test]
    fn a_partition_nobody_reads_is_orphaned_after_three_timeouts() {
        let start = Instant::now();
        let mut tracker = StallTracker::new(TIMEOUT);
        // This consumer holds and reads partition 0; partition 1 keeps its commit at 4 while
        // messages arrive.
        let at = |second: u64, read: i64, high: i64| {
            (
                start + Duration::from_secs(second),
                seen(
                    &[0],
                    vec![partition(0, Some(read), read), partition(1, Some(4), high)],
                ),
            )
        };
        for (second, read, high) in [(0, 1, 5), (10, 3, 6), (29, 5, 9)] {
            let (now, observation) = at(second, read, high);
            let (health, _) = tracker.observe(now, observation);
            assert!(!health.stalled, "second {second}");
            assert!(health.orphaned.is_empty());
        }
        let (now, observation) = at(30, 6, 9);
        let (health, transition) = tracker.observe(now, observation);
        assert!(health.stalled);
        assert_eq!(health.orphaned, vec![("lvt-results".to_owned(), 1)]);
        assert_eq!(transition, Some(Transition::Stalled));
        // Someone commits on partition 1: no longer orphaned.
        let (health, transition) = tracker.observe(
            start + Duration::from_secs(35),
            seen(
                &[0],
                vec![partition(0, Some(6), 6), partition(1, Some(7), 9)],
            ),
        );
        assert!(!health.stalled);
        assert_eq!(transition, Some(Transition::Recovered));
    }

    #[test]
    fn a_quiet_partition_or_one_this_consumer_holds_is_never_orphaned() {
        let start = Instant::now();
        let mut tracker = StallTracker::new(TIMEOUT);
        for second in [0, 20, 40, 60] {
            // Partition 1 has nothing unread; partition 0 is held here (slow, not orphaned).
            let (health, _) = tracker.observe(
                start + Duration::from_secs(second),
                seen(
                    &[0],
                    vec![partition(0, Some(1), 9), partition(1, Some(4), 4)],
                ),
            );
            assert!(!health.stalled, "second {second}");
        }
    }
}
