//! The run's schedule, without IO: which session starts when, against which target, with
//! which prompt.
//!
//! A [`Plan`] is a state machine driven by the executor. Time is an input (milliseconds since
//! the run started): the executor asks [`Plan::poll_start`] for every session due by `now_ms`,
//! sleeps until [`Plan::next_due_ms`], and reports each finished session with
//! [`Plan::handle_finished`]. Because nothing here reads a clock or touches a socket, both
//! executors are tested exactly, arrival by arrival.
//!
//! - Closed: every target has `concurrency` slots; a slot starts its next session `pause_s`
//!   after its previous one ended. Each target runs every prompt `sessions_per_target` times,
//!   in one order shuffled by the seed and shared by all targets, so targets see the same
//!   sequence. A session is scheduled at the moment its slot frees up, so a closed run has
//!   (almost) no queue delay by construction.
//! - Open: sessions arrive at a rate that ramps linearly through the stages, evenly spaced or
//!   as a Poisson process (seeded), whatever happens to earlier sessions: that is what keeps a
//!   slow system from hiding its queueing. Arrivals go to targets round-robin, prompts
//!   round-robin per target. An arrival that finds `max_in_flight` sessions running is dropped
//!   and counted, never delayed.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{Load, Prompt, Stage};

/// Arrivals whose computed time lands within this much of a stage's end (rounding of the
/// integrated rate) still belong to the stage.
const EPSILON: f64 = 1e-9;

/// One session the plan wants started now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedSession {
    /// Position in the run, from 0, in the order sessions were started.
    pub index: u64,
    /// Index into the run's target list.
    pub target: usize,
    /// Index into the scenario's prompts.
    pub prompt: usize,
    /// When the session was due, ms after the run started.
    pub scheduled_at_ms: f64,
}

/// The schedule of a run: a closed or an open executor.
#[derive(Debug, Clone)]
pub enum Plan {
    Closed(ClosedPlan),
    /// Boxed: the arrival process carries its random generator, which the closed plan lacks.
    Open(Box<OpenPlan>),
}

impl Plan {
    /// The plan for `load` over `targets` targets and `prompts`. With no targets or no prompts
    /// nothing is planned and the plan is done at once.
    pub fn new(load: &Load, targets: usize, prompts: &[Prompt]) -> Plan {
        match load {
            Load::Closed {
                sessions_per_target,
                concurrency,
                pause_s,
                seed,
            } => Plan::Closed(ClosedPlan::new(
                targets,
                prompts.len(),
                *sessions_per_target,
                *concurrency,
                f64::from(*pause_s) * 1000.0,
                *seed,
            )),
            Load::Open {
                start_rate_per_min,
                stages,
                poisson,
                max_in_flight,
                stop_on_busy,
                seed,
            } => Plan::Open(Box::new(OpenPlan::new(
                targets,
                prompts.len(),
                Arrivals::new(*start_rate_per_min, stages, *poisson, *seed),
                *max_in_flight,
                *stop_on_busy,
            ))),
        }
    }

    /// The next session due at or before `now_ms`, marked as running; `None` when nothing is
    /// due. Call it until it returns `None`. Open arrivals that find the run full are dropped
    /// here (see [`Plan::dropped`]).
    pub fn poll_start(&mut self, now_ms: f64) -> Option<PlannedSession> {
        match self {
            Plan::Closed(p) => p.poll_start(now_ms),
            Plan::Open(p) => p.poll_start(now_ms),
        }
    }

    /// When the next session is due, ms after the run started; `None` when none is due until a
    /// running session finishes, or none ever will.
    pub fn next_due_ms(&self) -> Option<f64> {
        match self {
            Plan::Closed(p) => p.next_due_ms(),
            Plan::Open(p) => p.next_arrival_ms(),
        }
    }

    /// A session on `target` ended at `now_ms`; `busy` when the target refused it for
    /// capacity.
    pub fn handle_finished(&mut self, target: usize, now_ms: f64, busy: bool) {
        match self {
            Plan::Closed(p) => p.handle_finished(target, now_ms),
            Plan::Open(p) => p.handle_finished(target, busy),
        }
    }

    /// Starts nothing more (an abort or an interrupt).
    pub fn stop(&mut self) {
        match self {
            Plan::Closed(p) => p.stopped = true,
            Plan::Open(p) => p.stopped = true,
        }
    }

    /// True when no session will be started any more (sessions may still be running).
    pub fn is_done(&self) -> bool {
        match self {
            Plan::Closed(p) => p.is_done(),
            Plan::Open(p) => p.is_done(),
        }
    }

    /// Open arrivals dropped because `max_in_flight` sessions were running; 0 for closed.
    pub fn dropped(&self) -> u64 {
        match self {
            Plan::Closed(_) => 0,
            Plan::Open(p) => p.dropped,
        }
    }

    /// Sessions the plan started so far.
    pub fn started(&self) -> u64 {
        match self {
            Plan::Closed(p) => p.next_index,
            Plan::Open(p) => p.next_index,
        }
    }

    /// Total sessions a closed plan runs; `None` for open plans, whose count depends on the
    /// arrivals and drops.
    pub fn planned_total(&self) -> Option<u64> {
        match self {
            Plan::Closed(p) => Some(p.order.len() as u64 * p.targets.len() as u64),
            Plan::Open(_) => None,
        }
    }
}

/// The closed executor's state.
#[derive(Debug, Clone)]
pub struct ClosedPlan {
    /// The prompt order every target runs (prompt indices).
    order: Vec<usize>,
    targets: Vec<ClosedTarget>,
    pause_ms: f64,
    next_index: u64,
    stopped: bool,
}

#[derive(Debug, Clone)]
struct ClosedTarget {
    /// Position in `order` of this target's next session.
    next: usize,
    /// For each idle slot, when it may start its next session (ms).
    free_slots_at_ms: Vec<f64>,
}

impl ClosedPlan {
    fn new(
        targets: usize,
        prompts: usize,
        sessions_per_target: u32,
        concurrency: u32,
        pause_ms: f64,
        seed: u64,
    ) -> Self {
        let mut order: Vec<usize> = (0..prompts)
            .flat_map(|p| std::iter::repeat_n(p, sessions_per_target as usize))
            .collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        // More slots than sessions would never be used.
        let slots = (concurrency as usize).min(order.len());
        Self {
            order,
            targets: (0..targets)
                .map(|_| ClosedTarget {
                    next: 0,
                    free_slots_at_ms: vec![0.0; slots],
                })
                .collect(),
            pause_ms,
            next_index: 0,
            stopped: false,
        }
    }

    /// The earliest idle slot of a target that still has sessions to run: (target, slot, at).
    fn earliest(&self) -> Option<(usize, usize, f64)> {
        if self.stopped {
            return None;
        }
        let mut best: Option<(usize, usize, f64)> = None;
        for (t, target) in self.targets.iter().enumerate() {
            if target.next >= self.order.len() {
                continue;
            }
            for (s, &at) in target.free_slots_at_ms.iter().enumerate() {
                if best.is_none_or(|(_, _, b)| at < b) {
                    best = Some((t, s, at));
                }
            }
        }
        best
    }

    fn poll_start(&mut self, now_ms: f64) -> Option<PlannedSession> {
        let (t, s, at) = self.earliest().filter(|&(_, _, at)| at <= now_ms)?;
        let target = &mut self.targets[t];
        target.free_slots_at_ms.swap_remove(s);
        let prompt = self.order[target.next];
        target.next += 1;
        let index = self.next_index;
        self.next_index += 1;
        Some(PlannedSession {
            index,
            target: t,
            prompt,
            scheduled_at_ms: at,
        })
    }

    fn next_due_ms(&self) -> Option<f64> {
        self.earliest().map(|(_, _, at)| at)
    }

    fn handle_finished(&mut self, target: usize, now_ms: f64) {
        if let Some(t) = self.targets.get_mut(target) {
            t.free_slots_at_ms.push(now_ms + self.pause_ms);
        }
    }

    fn is_done(&self) -> bool {
        self.stopped || self.targets.iter().all(|t| t.next >= self.order.len())
    }
}

/// The open executor's state.
#[derive(Debug, Clone)]
pub struct OpenPlan {
    arrivals: Arrivals,
    /// The next arrival's time, ms; `None` once the stages are over.
    next_arrival_ms: Option<f64>,
    /// Per target: the next prompt (round-robin) and whether it answered busy.
    targets: Vec<OpenTarget>,
    prompts: usize,
    /// The round-robin position over targets.
    next_target: usize,
    max_in_flight: u64,
    in_flight: u64,
    stop_on_busy: bool,
    dropped: u64,
    next_index: u64,
    stopped: bool,
}

#[derive(Debug, Clone)]
struct OpenTarget {
    next_prompt: usize,
    refused_busy: bool,
}

impl OpenPlan {
    fn new(
        targets: usize,
        prompts: usize,
        mut arrivals: Arrivals,
        max_in_flight: u32,
        stop_on_busy: bool,
    ) -> Self {
        let next_arrival_ms = arrivals.next_ms();
        Self {
            arrivals,
            next_arrival_ms,
            targets: (0..targets)
                .map(|_| OpenTarget {
                    next_prompt: 0,
                    refused_busy: false,
                })
                .collect(),
            prompts,
            next_target: 0,
            max_in_flight: u64::from(max_in_flight),
            in_flight: 0,
            stop_on_busy,
            dropped: 0,
            next_index: 0,
            stopped: false,
        }
    }

    fn next_arrival_ms(&self) -> Option<f64> {
        if self.is_done() {
            None
        } else {
            self.next_arrival_ms
        }
    }

    /// The next target still accepting arrivals, round-robin.
    fn pick_target(&mut self) -> Option<usize> {
        let n = self.targets.len();
        for k in 0..n {
            let t = (self.next_target + k) % n;
            if !self.targets[t].refused_busy {
                self.next_target = (t + 1) % n;
                return Some(t);
            }
        }
        None
    }

    fn poll_start(&mut self, now_ms: f64) -> Option<PlannedSession> {
        loop {
            if self.is_done() {
                return None;
            }
            let at = self.next_arrival_ms.filter(|&at| at <= now_ms)?;
            self.next_arrival_ms = self.arrivals.next_ms();
            if self.in_flight >= self.max_in_flight {
                self.dropped += 1;
                continue;
            }
            let target = self.pick_target()?;
            let t = &mut self.targets[target];
            let prompt = t.next_prompt;
            t.next_prompt = (t.next_prompt + 1) % self.prompts;
            self.in_flight += 1;
            let index = self.next_index;
            self.next_index += 1;
            return Some(PlannedSession {
                index,
                target,
                prompt,
                scheduled_at_ms: at,
            });
        }
    }

    fn handle_finished(&mut self, target: usize, busy: bool) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if busy
            && self.stop_on_busy
            && let Some(t) = self.targets.get_mut(target)
        {
            t.refused_busy = true;
        }
    }

    fn is_done(&self) -> bool {
        self.stopped
            || self.prompts == 0
            || self.next_arrival_ms.is_none()
            || self.targets.iter().all(|t| t.refused_busy)
    }
}

/// The open executor's arrival process over its ramp stages.
#[derive(Debug, Clone)]
pub struct Arrivals {
    /// The stages as (start ms, duration ms, rate at start, rate at end), rates per ms.
    stages: Vec<StageSpan>,
    /// The stage the next arrival is searched in.
    stage: usize,
    kind: ArrivalKind,
}

#[derive(Debug, Clone, Copy)]
struct StageSpan {
    start_ms: f64,
    duration_ms: f64,
    rate0_per_ms: f64,
    rate1_per_ms: f64,
}

impl StageSpan {
    fn end_ms(&self) -> f64 {
        self.start_ms + self.duration_ms
    }

    /// How fast the rate changes, per ms per ms.
    fn slope(&self) -> f64 {
        (self.rate1_per_ms - self.rate0_per_ms) / self.duration_ms
    }

    /// The rate at `t_ms` (inside the stage), per ms.
    fn rate_at(&self, t_ms: f64) -> f64 {
        self.rate0_per_ms + self.slope() * (t_ms - self.start_ms)
    }

    /// Expected arrivals over the whole stage.
    fn mass(&self) -> f64 {
        (self.rate0_per_ms + self.rate1_per_ms) / 2.0 * self.duration_ms
    }

    /// How far into the stage (ms) the expected arrivals reach `need` (0 <= need <= mass):
    /// the positive root of `rate0 u + slope u^2 / 2 = need`, written so it stays exact when
    /// the slope is 0 or negative.
    fn offset_for(&self, need: f64) -> f64 {
        let r0 = self.rate0_per_ms;
        let disc = (r0 * r0 + 2.0 * self.slope() * need).max(0.0);
        let denom = r0 + disc.sqrt();
        if denom <= 0.0 {
            0.0
        } else {
            2.0 * need / denom
        }
    }
}

#[derive(Debug, Clone)]
enum ArrivalKind {
    /// Arrival `k` (from 1) comes when the expected arrivals since the start reach `k`.
    Even {
        /// Expected arrivals before the current stage.
        mass_before: f64,
        /// The next arrival's number.
        k: u64,
    },
    /// A Poisson process: candidates at the stage's peak rate, each kept with probability
    /// rate(t) / peak (thinning), which gives the linearly varying rate exactly.
    Poisson { rng: Box<ChaCha8Rng>, at_ms: f64 },
}

impl Arrivals {
    /// The arrivals of `stages` starting from `start_rate_per_min`; rates that are not finite
    /// or are negative count as 0.
    pub fn new(start_rate_per_min: f64, stages: &[Stage], poisson: bool, seed: u64) -> Self {
        let per_ms = |r: f64| {
            if r.is_finite() && r > 0.0 {
                r / 60_000.0
            } else {
                0.0
            }
        };
        let mut spans = Vec::with_capacity(stages.len());
        let mut start_ms = 0.0;
        let mut rate = per_ms(start_rate_per_min);
        for s in stages {
            let next = per_ms(s.target_rate_per_min);
            let duration_ms = f64::from(s.duration_s) * 1000.0;
            if duration_ms > 0.0 {
                spans.push(StageSpan {
                    start_ms,
                    duration_ms,
                    rate0_per_ms: rate,
                    rate1_per_ms: next,
                });
            }
            start_ms += duration_ms;
            rate = next;
        }
        let kind = if poisson {
            ArrivalKind::Poisson {
                rng: Box::new(ChaCha8Rng::seed_from_u64(seed)),
                at_ms: 0.0,
            }
        } else {
            ArrivalKind::Even {
                mass_before: 0.0,
                k: 1,
            }
        };
        Self {
            stages: spans,
            stage: 0,
            kind,
        }
    }

    /// When the stages end, ms.
    pub fn end_ms(&self) -> f64 {
        self.stages.last().map_or(0.0, StageSpan::end_ms)
    }

    /// The next arrival time, ms after the start; `None` once the stages are over.
    pub fn next_ms(&mut self) -> Option<f64> {
        loop {
            let span = *self.stages.get(self.stage)?;
            match &mut self.kind {
                ArrivalKind::Even { mass_before, k } => {
                    let need = *k as f64 - *mass_before;
                    let mass = span.mass();
                    if need <= mass + EPSILON {
                        *k += 1;
                        let at = span.start_ms + span.offset_for(need.min(mass));
                        return Some(at.min(span.end_ms()));
                    }
                    *mass_before += mass;
                    self.stage += 1;
                }
                ArrivalKind::Poisson { rng, at_ms } => {
                    let peak = span.rate0_per_ms.max(span.rate1_per_ms);
                    if peak <= 0.0 {
                        *at_ms = span.end_ms();
                        self.stage += 1;
                        continue;
                    }
                    // Inverse transform of an exponential gap; `1 - u` is in (0, 1], so the
                    // logarithm is finite.
                    let u: f64 = rng.random();
                    let candidate = at_ms.max(span.start_ms) - (1.0 - u).ln() / peak;
                    if candidate > span.end_ms() {
                        // The process is memoryless: restarting at the boundary with the next
                        // stage's peak rate keeps it exact.
                        *at_ms = span.end_ms();
                        self.stage += 1;
                        continue;
                    }
                    *at_ms = candidate;
                    let keep: f64 = rng.random();
                    if keep * peak < span.rate_at(candidate) {
                        return Some(candidate);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvt_schema::Complexity;

    fn prompts(n: usize) -> Vec<Prompt> {
        (0..n)
            .map(|i| Prompt {
                id: format!("p{i}"),
                complexity: Complexity::Low,
                params: serde_json::Map::new(),
            })
            .collect()
    }

    fn closed(sessions_per_target: u32, concurrency: u32, pause_s: u32, seed: u64) -> Load {
        Load::Closed {
            sessions_per_target,
            concurrency,
            pause_s,
            seed,
        }
    }

    fn open(start: f64, stages: &[(u32, f64)], poisson: bool, max_in_flight: u32) -> Load {
        Load::Open {
            start_rate_per_min: start,
            stages: stages
                .iter()
                .map(|&(duration_s, target_rate_per_min)| Stage {
                    duration_s,
                    target_rate_per_min,
                })
                .collect(),
            poisson,
            max_in_flight,
            stop_on_busy: false,
            seed: 42,
        }
    }

    /// Every session due by `now_ms`.
    fn drain(plan: &mut Plan, now_ms: f64) -> Vec<PlannedSession> {
        std::iter::from_fn(|| plan.poll_start(now_ms)).collect()
    }

    /// Every arrival time of an open load, with nothing ever finishing and no cap in the way.
    fn arrival_times(start: f64, stages: &[(u32, f64)], poisson: bool, seed: u64) -> Vec<f64> {
        let stages: Vec<Stage> = stages
            .iter()
            .map(|&(duration_s, target_rate_per_min)| Stage {
                duration_s,
                target_rate_per_min,
            })
            .collect();
        let mut a = Arrivals::new(start, &stages, poisson, seed);
        std::iter::from_fn(|| a.next_ms()).collect()
    }

    /// Runs a closed plan to its end with every session lasting `session_ms`, returning the
    /// sessions in start order.
    fn run_closed(plan: &mut Plan, session_ms: f64) -> Vec<PlannedSession> {
        let mut started = Vec::new();
        // (end time, target) of running sessions.
        let mut running: Vec<(f64, usize)> = Vec::new();
        let mut now = 0.0;
        loop {
            for s in drain(plan, now) {
                running.push((now + session_ms, s.target));
                started.push(s);
            }
            if plan.is_done() && running.is_empty() {
                return started;
            }
            let next_end = running.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
            let next_due = plan.next_due_ms().unwrap_or(f64::INFINITY);
            now = next_end.min(next_due);
            assert!(now.is_finite(), "the plan stalled");
            let (ended, still): (Vec<_>, Vec<_>) = running.into_iter().partition(|r| r.0 <= now);
            running = still;
            for (_, target) in ended {
                plan.handle_finished(target, now, false);
            }
        }
    }

    #[test]
    fn closed_runs_every_prompt_per_target_in_one_seeded_order() {
        let mut plan = Plan::new(&closed(3, 1, 0, 7), 2, &prompts(2));
        assert_eq!(plan.planned_total(), Some(12));
        let started = run_closed(&mut plan, 1000.0);
        assert_eq!(started.len(), 12);
        let order = |t: usize| -> Vec<usize> {
            started
                .iter()
                .filter(|s| s.target == t)
                .map(|s| s.prompt)
                .collect()
        };
        for t in 0..2 {
            let o = order(t);
            assert_eq!(o.iter().filter(|&&p| p == 0).count(), 3);
            assert_eq!(o.iter().filter(|&&p| p == 1).count(), 3);
        }
        assert_eq!(order(0), order(1), "targets share one order");
        let indices: Vec<u64> = started.iter().map(|s| s.index).collect();
        assert_eq!(indices, (0..12).collect::<Vec<_>>());
        // Concurrency 1, back to back: each target's sessions start at 0, 1000, 2000, ...
        let times: Vec<f64> = started
            .iter()
            .filter(|s| s.target == 1)
            .map(|s| s.scheduled_at_ms)
            .collect();
        assert_eq!(times, vec![0.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0]);
        assert!(plan.is_done());
    }

    #[test]
    fn closed_order_is_determined_by_the_seed() {
        let order = |seed| -> Vec<usize> {
            let mut plan = Plan::new(&closed(4, 1, 0, seed), 1, &prompts(5));
            run_closed(&mut plan, 10.0)
                .iter()
                .map(|s| s.prompt)
                .collect()
        };
        assert_eq!(order(1), order(1));
        assert_ne!(order(1), order(2));
        let mut sorted = order(1);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..5).flat_map(|p| [p; 4]).collect::<Vec<_>>());
    }

    #[test]
    fn closed_slots_pause_between_sessions() {
        let mut plan = Plan::new(&closed(2, 2, 5, 0), 1, &prompts(2));
        // Two slots start at once; nothing more is due until one ends.
        let first = drain(&mut plan, 0.0);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|s| s.scheduled_at_ms == 0.0));
        assert_eq!(plan.next_due_ms(), None);
        plan.handle_finished(0, 3000.0, false);
        // The slot's next session is due one pause after the end, and scheduled then.
        assert_eq!(plan.next_due_ms(), Some(8000.0));
        assert!(drain(&mut plan, 7999.0).is_empty());
        let next = drain(&mut plan, 8500.0);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].scheduled_at_ms, 8000.0);
        plan.handle_finished(0, 4000.0, false);
        assert_eq!(drain(&mut plan, 9000.0).len(), 1);
        assert!(plan.is_done());
        assert_eq!(plan.next_due_ms(), None);
        assert_eq!(plan.started(), 4);
    }

    #[test]
    fn closed_concurrency_beyond_the_sessions_is_not_used() {
        let mut plan = Plan::new(&closed(1, 10, 0, 0), 3, &prompts(2));
        let started = drain(&mut plan, 0.0);
        assert_eq!(started.len(), 6);
        assert!(plan.is_done());
    }

    #[test]
    fn even_arrivals_per_stage() {
        // 60/min for 10 s, then a ramp to 120/min over 10 s, then a ramp down to 0 over 10 s.
        let times = arrival_times(60.0, &[(10, 60.0), (10, 120.0), (10, 0.0)], false, 0);
        let in_stage = |a: f64, b: f64| times.iter().filter(|&&t| t > a && t <= b).count();
        assert_eq!(in_stage(0.0, 10_000.0), 10);
        assert_eq!(in_stage(10_000.0, 20_000.0), 15);
        assert_eq!(in_stage(20_000.0, 30_000.0), 10);
        assert_eq!(times.len(), 35);
        // Constant rate: one a second, exactly.
        for (k, t) in times.iter().take(10).enumerate() {
            assert!((t - 1000.0 * (k as f64 + 1.0)).abs() < 1e-6, "{t}");
        }
        // Ramping up, arrivals come closer together; ramping down, further apart.
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[10..24].windows(2).all(|g| g[1] < g[0]), "{gaps:?}");
        assert!(gaps[26..].windows(2).all(|g| g[1] > g[0]), "{gaps:?}");
        assert!(times.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn even_ramp_from_zero_follows_the_integrated_rate() {
        // 0 -> 60/min over 10 s: 5 arrivals; the k-th when t^2 / 2 * slope = k.
        let times = arrival_times(0.0, &[(10, 60.0)], false, 0);
        assert_eq!(times.len(), 5);
        let slope = 0.001 / 10_000.0;
        for (k, t) in times.iter().enumerate() {
            let expect = (2.0 * (k as f64 + 1.0) / slope).sqrt();
            assert!((t - expect).abs() < 1e-6, "{t} vs {expect}");
        }
    }

    #[test]
    fn poisson_arrivals_are_seeded() {
        let a = arrival_times(60.0, &[(60, 60.0)], true, 1);
        let b = arrival_times(60.0, &[(60, 60.0)], true, 1);
        let c = arrival_times(60.0, &[(60, 60.0)], true, 2);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[1] >= w[0]));
        assert!(a.iter().all(|&t| (0.0..=60_000.0).contains(&t)));
    }

    #[test]
    fn poisson_thinning_follows_the_ramp() {
        // 0 -> 600/min over 600 s: 3000 expected, a quarter of them in the first half.
        let times = arrival_times(0.0, &[(600, 600.0)], true, 9);
        let n = times.len() as f64;
        // Five standard deviations of a Poisson count of 3000 is about 274.
        assert!((n - 3000.0).abs() < 274.0, "{n}");
        let first_half = times.iter().filter(|&&t| t <= 300_000.0).count() as f64;
        assert!((first_half / n - 0.25).abs() < 0.05, "{first_half} of {n}");
        // A constant 600/min over 100 s after it: 1000 more expected.
        let more = arrival_times(0.0, &[(600, 600.0), (100, 600.0)], true, 9);
        let second = more.iter().filter(|&&t| t > 600_000.0).count() as f64;
        assert!((second - 1000.0).abs() < 160.0, "{second}");
    }

    #[test]
    fn open_assigns_targets_and_prompts_round_robin() {
        let mut plan = Plan::new(&open(60.0, &[(7, 60.0)], false, 100), 2, &prompts(3));
        let started = drain(&mut plan, 7000.0);
        let got: Vec<(usize, usize)> = started.iter().map(|s| (s.target, s.prompt)).collect();
        assert_eq!(
            got,
            vec![(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2), (0, 0)]
        );
        // A late poll still reports each session's own scheduled time.
        let times: Vec<f64> = started.iter().map(|s| s.scheduled_at_ms).collect();
        assert_eq!(
            times,
            vec![1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 7000.0]
        );
        assert!(plan.is_done());
        assert_eq!(plan.next_due_ms(), None);
    }

    #[test]
    fn open_drops_arrivals_beyond_max_in_flight() {
        let mut plan = Plan::new(&open(60.0, &[(6, 60.0)], false, 2), 1, &prompts(1));
        assert_eq!(plan.next_due_ms(), Some(1000.0));
        assert!(drain(&mut plan, 999.0).is_empty());
        assert_eq!(drain(&mut plan, 1000.0).len(), 1);
        assert_eq!(drain(&mut plan, 2000.0).len(), 1);
        // Full: the arrivals at 3 s and 4 s are dropped, not delayed.
        assert!(drain(&mut plan, 3000.0).is_empty());
        assert!(drain(&mut plan, 4000.0).is_empty());
        assert_eq!(plan.dropped(), 2);
        plan.handle_finished(0, 4500.0, false);
        let s = drain(&mut plan, 5000.0);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].scheduled_at_ms, 5000.0);
        assert_eq!(s[0].index, 2);
        assert!(drain(&mut plan, 6000.0).is_empty());
        assert_eq!(plan.dropped(), 3);
        assert!(plan.is_done());
    }

    #[test]
    fn open_stop_on_busy_skips_targets_that_refused() {
        let mut load = open(60.0, &[(10, 60.0)], false, 100);
        if let Load::Open { stop_on_busy, .. } = &mut load {
            *stop_on_busy = true;
        }
        let mut plan = Plan::new(&load, 2, &prompts(1));
        let first = drain(&mut plan, 2000.0);
        assert_eq!(first.iter().map(|s| s.target).collect::<Vec<_>>(), [0, 1]);
        plan.handle_finished(0, 2500.0, true);
        let next = drain(&mut plan, 5000.0);
        assert_eq!(next.iter().map(|s| s.target).collect::<Vec<_>>(), [1, 1, 1]);
        // A busy answer without stop_on_busy changes nothing; with it, once every target
        // refused, nothing more arrives.
        plan.handle_finished(1, 5500.0, true);
        assert!(plan.is_done());
        assert!(drain(&mut plan, 10_000.0).is_empty());
    }

    #[test]
    fn stopping_ends_both_executors() {
        for load in [closed(5, 1, 0, 0), open(60.0, &[(10, 60.0)], false, 100)] {
            let mut plan = Plan::new(&load, 1, &prompts(1));
            plan.stop();
            assert!(plan.is_done());
            assert!(drain(&mut plan, 100_000.0).is_empty());
            assert_eq!(plan.next_due_ms(), None);
        }
    }
}
