//! When an agent starts its runs: cron schedules with a per-agent jitter, and what happens to a
//! run that comes due while the previous one still runs or while the agent was down.
//!
//! [`Scheduler`] is sans-IO: time enters as milliseconds since the Unix epoch (UTC) and
//! decisions leave through [`Scheduler::poll`], so a day of schedules is tested in
//! milliseconds. The driver starts a run for every [`Action::Start`], reports its end with
//! [`Scheduler::handle_run_finished`], and sleeps until [`Scheduler::poll_timeout`].

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use sha2::{Digest, Sha256};

/// What to do with a run that comes due while the schedule's previous run still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip it (recorded as skipped).
    Skip,
    /// Run it as soon as the previous run ends. At most one run waits: a schedule that keeps
    /// falling behind skips the others rather than building a backlog.
    Queue,
}

/// What to do after downtime with the occurrences that passed while the agent was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Wait for the next occurrence.
    Skip,
    /// Run once at start for all of them, then go on with the schedule.
    RunOnce,
}

/// One schedule as the agent's configuration gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// The scenario id it runs; also its key in the agent's state.
    pub scenario: String,
    /// Five fields (minute hour day-of-month month day-of-week) or six with seconds first, UTC.
    pub cron: String,
    /// The largest start offset; each agent draws its own, the same at every start.
    pub jitter_ms: u64,
    pub overlap: Overlap,
    pub missed: Missed,
}

/// Why a schedule is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("cron {cron:?}: {detail}")]
    Cron { cron: String, detail: String },
    #[error(
        "cron {cron:?} has {fields} fields; give 5 (minute to day of week) or 6 (seconds first)"
    )]
    Fields { cron: String, fields: usize },
}

/// A parsed schedule with this agent's jitter.
#[derive(Debug, Clone)]
pub struct Schedule {
    spec: ScheduleSpec,
    cron: Cron,
    offset_ms: u64,
}

impl Schedule {
    /// Parses `spec` for the agent `agent_id`.
    pub fn parse(spec: ScheduleSpec, agent_id: &str) -> Result<Self, ScheduleError> {
        let fields = spec.cron.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(ScheduleError::Fields {
                cron: spec.cron.clone(),
                fields,
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(&spec.cron)
            .map_err(|e| ScheduleError::Cron {
                cron: spec.cron.clone(),
                detail: e.to_string(),
            })?;
        let offset_ms = jitter_offset_ms(agent_id, &spec);
        Ok(Self {
            spec,
            cron,
            offset_ms,
        })
    }

    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }

    /// This agent's start offset within the jitter.
    pub fn offset_ms(&self) -> u64 {
        self.offset_ms
    }

    /// The first jittered start strictly after `after_ms`, or `None` when the pattern has no
    /// later occurrence.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        // A jittered start after `after_ms` belongs to an occurrence after `after_ms - offset`.
        let offset = i64::try_from(self.offset_ms).unwrap_or(i64::MAX);
        let base = naive(after_ms.saturating_sub(offset))?;
        let next = self.cron.find_next_occurrence(&base, false).ok()?;
        Some(next.and_utc().timestamp_millis().saturating_add(offset))
    }
}

/// The offset of `spec` for `agent_id`: drawn from a hash of both, so that the agents of one
/// region spread over the jitter instead of starting together, and each keeps its offset
/// across restarts.
fn jitter_offset_ms(agent_id: &str, spec: &ScheduleSpec) -> u64 {
    if spec.jitter_ms == 0 {
        return 0;
    }
    let mut h = Sha256::new();
    h.update(agent_id.as_bytes());
    h.update([0]);
    h.update(spec.scenario.as_bytes());
    h.update([0]);
    h.update(spec.cron.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % (spec.jitter_ms + 1)
}

fn naive(unix_ms: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_millis(unix_ms).map(|t| t.naive_utc())
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a run of schedule `schedule`; it was due at `due_ms`.
    Start { schedule: usize, due_ms: i64 },
    /// A run of `schedule` due at `due_ms` does not happen.
    Skipped {
        schedule: usize,
        due_ms: i64,
        reason: SkipReason,
    },
}

/// Why a run was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The previous run still ran (`overlap = "skip"`, or a queued run already waits).
    Overlap,
    /// It passed while the agent was down (`missed = "skip"`, or more than the one run
    /// `missed = "run_once"` makes up).
    Missed,
}

struct Entry {
    schedule: Schedule,
    next_ms: Option<i64>,
    running: bool,
    queued: Option<i64>,
}

/// The schedules of one agent; see the module documentation.
pub struct Scheduler {
    entries: Vec<Entry>,
    actions: std::collections::VecDeque<Action>,
}

impl Scheduler {
    /// The schedules at `now_ms`. `last_starts` (by scenario id, from the agent's state) tells
    /// which occurrences passed while the agent was down; a schedule never started before has
    /// missed nothing.
    pub fn new(schedules: Vec<Schedule>, now_ms: i64, last_starts: &HashMap<String, i64>) -> Self {
        let mut actions = std::collections::VecDeque::new();
        let entries = schedules
            .into_iter()
            .enumerate()
            .map(|(i, schedule)| {
                let missed_due = last_starts
                    .get(&schedule.spec.scenario)
                    .and_then(|last| schedule.next_after(*last))
                    .filter(|due| *due <= now_ms);
                if let Some(due_ms) = missed_due {
                    actions.push_back(match schedule.spec.missed {
                        Missed::RunOnce => Action::Start {
                            schedule: i,
                            due_ms,
                        },
                        Missed::Skip => Action::Skipped {
                            schedule: i,
                            due_ms,
                            reason: SkipReason::Missed,
                        },
                    });
                }
                let running = matches!(
                    actions.back(),
                    Some(Action::Start { schedule, .. }) if *schedule == i
                );
                Entry {
                    next_ms: schedule.next_after(now_ms),
                    schedule,
                    running,
                    queued: None,
                }
            })
            .collect();
        Self { entries, actions }
    }

    /// The next start of each schedule, for the agent's status.
    pub fn next_starts(&self) -> impl Iterator<Item = (&str, Option<i64>)> {
        self.entries
            .iter()
            .map(|e| (e.schedule.spec.scenario.as_str(), e.next_ms))
    }

    /// The run of `schedule` ended; a queued run starts now.
    pub fn handle_run_finished(&mut self, schedule: usize) {
        let Some(e) = self.entries.get_mut(schedule) else {
            return;
        };
        e.running = false;
        if let Some(due_ms) = e.queued.take() {
            e.running = true;
            self.actions.push_back(Action::Start { schedule, due_ms });
        }
    }

    /// The next action due by `now_ms`, if any.
    pub fn poll(&mut self, now_ms: i64) -> Option<Action> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        for (i, e) in self.entries.iter_mut().enumerate() {
            let Some(due_ms) = e.next_ms.filter(|d| *d <= now_ms) else {
                continue;
            };
            e.next_ms = e.schedule.next_after(due_ms.max(now_ms));
            // Occurrences between this one and now (the driver woke late) are not made up.
            if !e.running {
                e.running = true;
                return Some(Action::Start {
                    schedule: i,
                    due_ms,
                });
            }
            let queue = e.schedule.spec.overlap == Overlap::Queue && e.queued.is_none();
            if queue {
                e.queued = Some(due_ms);
                continue;
            }
            return Some(Action::Skipped {
                schedule: i,
                due_ms,
                reason: SkipReason::Overlap,
            });
        }
        None
    }

    /// When [`Scheduler::poll`] has something next, if ever.
    pub fn poll_timeout(&self) -> Option<i64> {
        if !self.actions.is_empty() {
            return Some(i64::MIN);
        }
        self.entries.iter().filter_map(|e| e.next_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-05T00:00:00Z.
    const T0: i64 = 1_796_428_800_000;
    const MIN: i64 = 60_000;

    fn spec(scenario: &str, cron: &str) -> ScheduleSpec {
        ScheduleSpec {
            scenario: scenario.into(),
            cron: cron.into(),
            jitter_ms: 0,
            overlap: Overlap::Skip,
            missed: Missed::Skip,
        }
    }

    fn drain(s: &mut Scheduler, now_ms: i64) -> Vec<Action> {
        std::iter::from_fn(|| s.poll(now_ms)).collect()
    }

    #[test]
    fn five_and_six_field_patterns_give_the_next_start() {
        let hourly = Schedule::parse(spec("a", "0 * * * *"), "agent").unwrap();
        assert_eq!(hourly.next_after(T0), Some(T0 + 60 * MIN));
        assert_eq!(hourly.next_after(T0 - 1), Some(T0));
        let every_20_s = Schedule::parse(spec("a", "*/20 * * * * *"), "agent").unwrap();
        assert_eq!(every_20_s.next_after(T0), Some(T0 + 20_000));
        assert_eq!(every_20_s.next_after(T0 + 20_000), Some(T0 + 40_000));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        let e = Schedule::parse(spec("a", "* * *"), "agent").unwrap_err();
        assert_eq!(
            e,
            ScheduleError::Fields {
                cron: "* * *".into(),
                fields: 3
            }
        );
        let e = Schedule::parse(spec("a", "61 * * * *"), "agent").unwrap_err();
        assert!(matches!(e, ScheduleError::Cron { .. }), "{e}");
        let e = Schedule::parse(spec("a", "0 0 * * * * 2027"), "agent").unwrap_err();
        assert!(matches!(e, ScheduleError::Fields { fields: 7, .. }), "{e}");
    }

    #[test]
    fn jitter_spreads_agents_and_each_keeps_its_offset() {
        let mut s = spec("sla-hourly", "0 * * * *");
        s.jitter_ms = 300_000;
        let offsets: Vec<u64> = (0..20)
            .map(|i| {
                Schedule::parse(s.clone(), &format!("agent-{i}"))
                    .unwrap()
                    .offset_ms()
            })
            .collect();
        assert!(offsets.iter().all(|o| *o <= 300_000));
        let mut distinct = offsets.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 18, "agents collide: {offsets:?}");
        // The same agent draws the same offset at every start.
        let again = Schedule::parse(s.clone(), "agent-3").unwrap();
        assert_eq!(again.offset_ms(), offsets[3]);
        let o = i64::try_from(offsets[3]).unwrap();
        // The jittered start of the 00:00 occurrence lies after 00:00; once it passed, the next
        // is the 01:00 occurrence's.
        assert_eq!(again.next_after(T0), Some(T0 + o));
        assert_eq!(again.next_after(T0 + o - 1), Some(T0 + o));
        assert_eq!(again.next_after(T0 + o), Some(T0 + 60 * MIN + o));
    }

    #[test]
    fn a_run_still_running_skips_or_queues_the_next() {
        let mut skip = spec("a", "*/20 * * * * *");
        skip.overlap = Overlap::Skip;
        let mut queue = spec("b", "*/20 * * * * *");
        queue.overlap = Overlap::Queue;
        let schedules = vec![
            Schedule::parse(skip, "x").unwrap(),
            Schedule::parse(queue, "x").unwrap(),
        ];
        let mut s = Scheduler::new(schedules, T0 + 1, &HashMap::new());
        assert_eq!(s.poll_timeout(), Some(T0 + 20_000));
        assert!(drain(&mut s, T0 + 19_999).is_empty());
        assert_eq!(
            drain(&mut s, T0 + 20_000),
            vec![
                Action::Start {
                    schedule: 0,
                    due_ms: T0 + 20_000
                },
                Action::Start {
                    schedule: 1,
                    due_ms: T0 + 20_000
                },
            ]
        );
        // Both runs last 50 s: the next two occurrences find them running.
        assert_eq!(
            drain(&mut s, T0 + 40_000),
            vec![Action::Skipped {
                schedule: 0,
                due_ms: T0 + 40_000,
                reason: SkipReason::Overlap
            }]
        );
        assert_eq!(
            drain(&mut s, T0 + 60_000),
            vec![
                Action::Skipped {
                    schedule: 0,
                    due_ms: T0 + 60_000,
                    reason: SkipReason::Overlap
                },
                Action::Skipped {
                    schedule: 1,
                    due_ms: T0 + 60_000,
                    reason: SkipReason::Overlap
                },
            ],
            "one run waits at most"
        );
        s.handle_run_finished(0);
        s.handle_run_finished(1);
        assert_eq!(
            drain(&mut s, T0 + 70_000),
            vec![Action::Start {
                schedule: 1,
                due_ms: T0 + 40_000
            }],
            "the queued run starts when the previous one ends"
        );
    }

    #[test]
    fn downtime_skips_or_runs_once() {
        let mut skip = spec("a", "0 * * * *");
        skip.missed = Missed::Skip;
        let mut once = spec("b", "0 * * * *");
        once.missed = Missed::RunOnce;
        let fresh = spec("c", "0 * * * *");
        let schedules = vec![
            Schedule::parse(skip, "x").unwrap(),
            Schedule::parse(once, "x").unwrap(),
            Schedule::parse(fresh, "x").unwrap(),
        ];
        // Down from 00:00 until 03:30: three occurrences passed.
        let last: HashMap<String, i64> = [("a".to_string(), T0), ("b".to_string(), T0)].into();
        let now = T0 + 210 * MIN;
        let mut s = Scheduler::new(schedules, now, &last);
        assert_eq!(
            drain(&mut s, now),
            vec![
                Action::Skipped {
                    schedule: 0,
                    due_ms: T0 + 60 * MIN,
                    reason: SkipReason::Missed
                },
                Action::Start {
                    schedule: 1,
                    due_ms: T0 + 60 * MIN
                },
            ]
        );
        // Every schedule goes on at 04:00.
        let next: Vec<_> = s.next_starts().map(|(_, t)| t).collect();
        assert_eq!(next, vec![Some(T0 + 240 * MIN); 3]);
    }

    #[test]
    fn a_late_wakeup_does_not_make_up_occurrences() {
        let schedules = vec![Schedule::parse(spec("a", "*/20 * * * * *"), "x").unwrap()];
        let mut s = Scheduler::new(schedules, T0 + 1, &HashMap::new());
        // The driver wakes 70 s late: one start, then the schedule goes on after now.
        assert_eq!(
            drain(&mut s, T0 + 90_000),
            vec![Action::Start {
                schedule: 0,
                due_ms: T0 + 20_000
            }]
        );
        assert_eq!(s.poll_timeout(), Some(T0 + 100_000));
    }
}
