//! Orchestrator selection at session start: which candidates to try, in which order, and when
//! to give up.
//!
//! It owns the [`Candidate`] view a strategy sees (one per discovered orchestrator), the
//! [`SelectionStrategy`] trait with two strategies, and [`StartAttempts`], the state machine of
//! go-livepeer's start loop (`processAIRequest` in server/ai_process.go): at most 20 tries,
//! none begun 2 s or more after the first, ending in `no orchestrators available` when nobody
//! accepted. Both strategies first drop the candidates no go-livepeer gateway would consider
//! (see [`GoLivepeerDefault`]); they differ only in the order of the rest.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::swap::Suspensions;

/// go-livepeer's `maxTries`: job start requests one session start may send.
pub const MAX_START_TRIES: u32 = 20;
/// go-livepeer's default `-aiProcessingRetryTimeout`: no new try begins this long after the first.
pub const START_RETRY_TIMEOUT_MS: u64 = 2_000;
/// go-livepeer's `maxSameSessTries`: tries of one orchestrator after retryable errors.
pub const MAX_SAME_ORCHESTRATOR_TRIES: u32 = 3;
/// The weight of a candidate without an SLA score in [`ScoreWeightedRandom`]: the middle of the
/// 0..=100 scale, as the collector's SLA method scores a metric without data 0.5.
pub const DEFAULT_SLA_SCORE: f64 = 50.0;

/// An orchestrator price as go-livepeer keeps it: a rational, wei per `pixels_per_unit` pixels.
///
/// Comparisons are exact (cross multiplication in 128 bits), as go-livepeer compares `big.Rat`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    price_per_unit: i64,
    pixels_per_unit: i64,
}

impl Price {
    /// A price of `price_per_unit` wei per `pixels_per_unit` pixels; `None` when the pixel count
    /// is not positive, which go-livepeer treats as "no price" (it skips `PixelsPerUnit == 0`).
    pub fn new(price_per_unit: i64, pixels_per_unit: i64) -> Option<Self> {
        (pixels_per_unit > 0).then_some(Self {
            price_per_unit,
            pixels_per_unit,
        })
    }

    pub fn price_per_unit(&self) -> i64 {
        self.price_per_unit
    }

    pub fn pixels_per_unit(&self) -> i64 {
        self.pixels_per_unit
    }

    /// The price of one pixel in wei, for display; selection compares exactly instead.
    pub fn wei_per_pixel(&self) -> f64 {
        self.price_per_unit as f64 / self.pixels_per_unit as f64
    }

    /// Exact ordering of two prices; both denominators are positive by construction, so the
    /// cross products order the same way as the fractions.
    pub fn cmp_exact(&self, other: &Price) -> Ordering {
        let left = i128::from(self.price_per_unit) * i128::from(other.pixels_per_unit);
        let right = i128::from(other.price_per_unit) * i128::from(self.pixels_per_unit);
        left.cmp(&right)
    }
}

/// What a strategy knows about one discovered orchestrator.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The orchestrator's service URI (`OrchestratorInfo.transcoder`); suspensions key on it.
    pub uri: String,
    /// Round trip of its `GetOrchestrator` during discovery, in milliseconds.
    pub latency_ms: u64,
    /// The requested model is warm (loaded) on it.
    pub warm: bool,
    /// Idle runner containers for the model (`capacity`), when it reported them.
    pub idle_capacity: Option<u32>,
    /// Runner containers in use (`capacityInUse`), when it reported them.
    pub capacity_in_use: Option<u32>,
    /// Its live video-to-video price, when it reported one.
    pub price: Option<Price>,
    /// Its SLA score (0..=100) from the collector, when one exists.
    pub sla_score: Option<f64>,
}

impl Candidate {
    /// A cold candidate without capacity, price or score information.
    pub fn new(uri: impl Into<String>, latency_ms: u64) -> Self {
        Self {
            uri: uri.into(),
            latency_ms,
            warm: false,
            idle_capacity: None,
            capacity_in_use: None,
            price: None,
            sla_score: None,
        }
    }

    /// The candidate said it has no idle runner. go-livepeer never sees such an orchestrator:
    /// its discovery `GetOrchestrator` carries capabilities without `ignoreCapacityCheck`, so the
    /// orchestrator answers `OrchestratorCapped` and stays out of the session pool.
    pub fn is_capped(&self) -> bool {
        self.idle_capacity == Some(0)
    }
}

/// Orders the candidates of one session start; the driver tries them in that order.
pub trait SelectionStrategy {
    /// A short stable name for reports (`go-livepeer`, `score-weighted-random`).
    fn name(&self) -> &'static str;

    /// Indices into `candidates` in the order to try them; candidates left out are not tried.
    fn order(
        &mut self,
        candidates: &[Candidate],
        suspended: &Suspensions,
        now_ms: u64,
    ) -> Vec<usize>;
}

/// The candidates any strategy may try: not suspended, not capped, and within the price cap.
///
/// The price cap mirrors go-livepeer's `filterByMaxPrice` (server/selection_algorithm.go): no
/// cap, or no candidate with a price at all, means no filter; otherwise a candidate passes only
/// with a price at or below the cap, so an unpriced one is dropped. Like go-livepeer's
/// `LiveSelectionAlgorithm`, nothing relaxes the cap when every candidate is above it.
pub fn eligible(
    candidates: &[Candidate],
    suspended: &Suspensions,
    max_price: Option<&Price>,
) -> Vec<usize> {
    let open: Vec<usize> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| !suspended.is_suspended(&c.uri) && !c.is_capped())
        .map(|(i, _)| i)
        .collect();
    let Some(cap) = max_price else {
        return open;
    };
    if open.iter().all(|&i| candidates[i].price.is_none()) {
        return open;
    }
    open.into_iter()
        .filter(|&i| {
            candidates[i]
                .price
                .is_some_and(|p| p.cmp_exact(cap) != Ordering::Greater)
        })
        .collect()
}

/// go-livepeer's live video selection.
///
/// What it mirrors (go-livepeer server/ai_session.go and server/selection.go):
/// - `AISessionSelector.Select` asks the warm pool first and the cold pool only when the warm
///   one is empty, so every warm candidate comes before every cold one.
/// - Each pool's `Selector` keeps its sessions sorted by `InitialLatency`, the discovery
///   `GetOrchestrator` round trip, and `LiveSelectionAlgorithm` takes the first one under the
///   price cap. go-livepeer's `sort.Slice` is not stable; here equal latencies keep discovery
///   order so that the order is deterministic.
/// - Suspended orchestrators are skipped when the pools refresh; capped ones never enter them
///   (see [`Candidate::is_capped`]); the price cap is [`eligible`]'s.
///
/// go-livepeer applies the price cap only on-chain (off-chain its selector takes the lowest
/// latency session without looking at prices); a driver that wants that exact off-chain
/// behaviour leaves `max_price` unset.
#[derive(Debug, Clone, Default)]
pub struct GoLivepeerDefault {
    /// The highest acceptable price (`-maxPricePerUnit` / `-maxPricePerCapability`).
    pub max_price: Option<Price>,
}

impl GoLivepeerDefault {
    pub fn new(max_price: Option<Price>) -> Self {
        Self { max_price }
    }
}

impl SelectionStrategy for GoLivepeerDefault {
    fn name(&self) -> &'static str {
        "go-livepeer"
    }

    fn order(
        &mut self,
        candidates: &[Candidate],
        suspended: &Suspensions,
        _now_ms: u64,
    ) -> Vec<usize> {
        let mut order = eligible(candidates, suspended, self.max_price.as_ref());
        // A stable sort keeps discovery order among equal keys.
        order.sort_by_key(|&i| (!candidates[i].warm, candidates[i].latency_ms));
        order
    }
}

/// Draws the order at random, each candidate weighted by its SLA score.
///
/// The first candidate is drawn with probability proportional to its score among the eligible
/// ones, the second likewise among the rest, and so on (sampling without replacement). Scores
/// are clamped to 0..=100; a missing or non-finite score counts [`DEFAULT_SLA_SCORE`]. A
/// candidate scoring 0 can never win a draw against a positive one, so those come last, in
/// discovery latency order. Warmth does not matter here: that is the point of comparing the
/// two strategies. The generator is ChaCha8 seeded once, so a strategy built with the same seed
/// and asked the same questions gives the same answers.
#[derive(Debug, Clone)]
pub struct ScoreWeightedRandom {
    rng: ChaCha8Rng,
    /// The highest acceptable price, applied as in [`eligible`].
    pub max_price: Option<Price>,
}

impl ScoreWeightedRandom {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            max_price: None,
        }
    }

    pub fn with_max_price(mut self, max_price: Option<Price>) -> Self {
        self.max_price = max_price;
        self
    }

    fn weight(candidate: &Candidate) -> f64 {
        match candidate.sla_score {
            Some(score) if score.is_finite() => score.clamp(0.0, 100.0),
            _ => DEFAULT_SLA_SCORE,
        }
    }
}

impl SelectionStrategy for ScoreWeightedRandom {
    fn name(&self) -> &'static str {
        "score-weighted-random"
    }

    fn order(
        &mut self,
        candidates: &[Candidate],
        suspended: &Suspensions,
        _now_ms: u64,
    ) -> Vec<usize> {
        let open = eligible(candidates, suspended, self.max_price.as_ref());
        let (mut weighted, mut zero): (Vec<usize>, Vec<usize>) = open
            .into_iter()
            .partition(|&i| Self::weight(&candidates[i]) > 0.0);
        let mut order = Vec::with_capacity(weighted.len() + zero.len());
        while !weighted.is_empty() {
            let total: f64 = weighted.iter().map(|&i| Self::weight(&candidates[i])).sum();
            let mut target = self.rng.random::<f64>() * total;
            // Rounding can leave `target` a hair above the last cumulative sum; the last
            // candidate then takes the draw, as it owns the top of the range.
            let mut pick = weighted.len() - 1;
            for (pos, &i) in weighted.iter().enumerate() {
                let w = Self::weight(&candidates[i]);
                if target < w {
                    pick = pos;
                    break;
                }
                target -= w;
            }
            order.push(weighted.remove(pick));
        }
        zero.sort_by_key(|&i| candidates[i].latency_ms);
        order.append(&mut zero);
        order
    }
}

/// How one job start request ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// 200 with a usable response: the session runs on this orchestrator.
    Ok,
    /// No capacity (503 `insufficient capacity`, `OrchestratorCapped`/`OrchestratorBusy`).
    Busy,
    /// Any other failure: another status, a timeout, a malformed response.
    Err,
    /// A transient error go-livepeer retries on the same orchestrator (`ticketparams expired`).
    Retryable,
    /// HTTP 400 that is not about payment: go-livepeer returns it to the client at once
    /// (`parseBadRequestError`) instead of trying anyone else.
    BadRequest,
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send a job start request to this candidate.
    Try(usize),
    /// A try is in flight; report its result first.
    Wait,
    /// This candidate accepted; the session runs there.
    Started(usize),
    /// This candidate rejected the request itself (400); the session does not start.
    Rejected(usize),
    /// Nobody accepted.
    GiveUp(NoOrchestratorsAvailable),
}

/// Why a start gave up; both cases are go-livepeer's `no orchestrators available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpCause {
    /// Every candidate was tried (or there were none).
    Exhausted,
    /// [`MAX_START_TRIES`] tries were made.
    MaxTries,
    /// The retry timeout passed before the next try could begin.
    Deadline,
}

/// The end of a start that found no orchestrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoOrchestratorsAvailable {
    pub cause: GiveUpCause,
    /// Job start requests sent.
    pub tries: u32,
    /// From the start to the give-up, in milliseconds.
    pub elapsed_ms: u64,
}

impl NoOrchestratorsAvailable {
    /// go-livepeer's error text for this end.
    pub fn message(&self, retry_timeout_ms: u64) -> String {
        match self.cause {
            GiveUpCause::Deadline => {
                format!(
                    "no orchestrators available within {} timeout",
                    go_duration(retry_timeout_ms)
                )
            }
            GiveUpCause::Exhausted | GiveUpCause::MaxTries => {
                "no orchestrators available".to_string()
            }
        }
    }

    /// go-livepeer emits the `gateway_no_orchestrators_available` stream trace only when the
    /// loop runs out of candidates or tries; its deadline path returns without it.
    pub fn emits_no_orchestrators_trace(&self) -> bool {
        self.cause != GiveUpCause::Deadline
    }
}

/// Formats milliseconds as Go's `time.Duration` prints whole seconds or milliseconds.
fn go_duration(ms: u64) -> String {
    if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else if ms > 1_000 {
        format!("{}s", ms as f64 / 1_000.0)
    } else {
        format!("{ms}ms")
    }
}

/// The limits of one start; the defaults are go-livepeer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartLimits {
    pub max_tries: u32,
    pub retry_timeout_ms: u64,
    pub max_same_orchestrator_tries: u32,
}

impl Default for StartLimits {
    fn default() -> Self {
        Self {
            max_tries: MAX_START_TRIES,
            retry_timeout_ms: START_RETRY_TIMEOUT_MS,
            max_same_orchestrator_tries: MAX_SAME_ORCHESTRATOR_TRIES,
        }
    }
}

/// One finished try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub idx: usize,
    pub result: AttemptResult,
    pub at_ms: u64,
}

/// A result that does not fit the state machine: a driver bug, reported rather than panicking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    #[error("a result for candidate {idx} arrived, but no try of it is in flight")]
    NotInFlight { idx: usize },
}

/// go-livepeer's start loop over an order a [`SelectionStrategy`] produced.
///
/// Rules mirrored from `processAIRequest` (server/ai_process.go):
/// - Before each try: stop after `max_tries` tries; stop when `retry_timeout_ms` have passed
///   since the start (Go's context deadline: at exactly 2 000 ms it has passed). A try in
///   flight is not cut short by the deadline (go-livepeer sends it on the parent context); the
///   deadline only prevents the next one.
/// - `Ok` starts the session; `BadRequest` ends the start with that error.
/// - `Retryable` tries the same orchestrator again while it has had fewer than
///   `max_same_orchestrator_tries` tries; after that it is dropped like any failure.
/// - `Busy` and `Err` drop the orchestrator from this start (go-livepeer removes it from the
///   pool, which suspends it); the driver should suspend it in the session's [`Suspensions`].
/// - Out of candidates: `no orchestrators available`.
#[derive(Debug, Clone)]
pub struct StartAttempts {
    order: Vec<usize>,
    next_pos: usize,
    limits: StartLimits,
    started_at_ms: u64,
    now_ms: u64,
    tries: u32,
    tries_by_idx: BTreeMap<usize, u32>,
    retry: Option<usize>,
    in_flight: Option<usize>,
    done: Option<Next>,
    attempts: Vec<Attempt>,
}

impl StartAttempts {
    /// A start beginning at `now_ms` over `order`, with go-livepeer's limits.
    pub fn new(order: Vec<usize>, now_ms: u64) -> Self {
        Self::with_limits(order, StartLimits::default(), now_ms)
    }

    pub fn with_limits(order: Vec<usize>, limits: StartLimits, now_ms: u64) -> Self {
        Self {
            order,
            next_pos: 0,
            limits,
            started_at_ms: now_ms,
            now_ms,
            tries: 0,
            tries_by_idx: BTreeMap::new(),
            retry: None,
            in_flight: None,
            done: None,
            attempts: Vec::new(),
        }
    }

    /// The next step, decided at the latest time an input carried.
    pub fn poll_next(&mut self) -> Next {
        if let Some(done) = &self.done {
            return done.clone();
        }
        if self.in_flight.is_some() {
            return Next::Wait;
        }
        let give_up = |cause| {
            Next::GiveUp(NoOrchestratorsAvailable {
                cause,
                tries: self.tries,
                elapsed_ms: self.now_ms.saturating_sub(self.started_at_ms),
            })
        };
        if self.tries >= self.limits.max_tries {
            let end = give_up(GiveUpCause::MaxTries);
            self.done = Some(end.clone());
            return end;
        }
        if self.now_ms.saturating_sub(self.started_at_ms) >= self.limits.retry_timeout_ms {
            let end = give_up(GiveUpCause::Deadline);
            self.done = Some(end.clone());
            return end;
        }
        let idx = match self.retry.take() {
            Some(idx) => idx,
            None => match self.order.get(self.next_pos) {
                Some(&idx) => {
                    self.next_pos += 1;
                    idx
                }
                None => {
                    let end = give_up(GiveUpCause::Exhausted);
                    self.done = Some(end.clone());
                    return end;
                }
            },
        };
        self.tries += 1;
        *self.tries_by_idx.entry(idx).or_default() += 1;
        self.in_flight = Some(idx);
        Next::Try(idx)
    }

    /// The result of the try of `idx` that is in flight, known at `now_ms`.
    pub fn handle_attempt_result(
        &mut self,
        idx: usize,
        result: AttemptResult,
        now_ms: u64,
    ) -> Result<(), AttemptError> {
        if self.in_flight != Some(idx) {
            return Err(AttemptError::NotInFlight { idx });
        }
        self.in_flight = None;
        self.now_ms = self.now_ms.max(now_ms);
        self.attempts.push(Attempt {
            idx,
            result,
            at_ms: self.now_ms,
        });
        match result {
            AttemptResult::Ok => self.done = Some(Next::Started(idx)),
            AttemptResult::BadRequest => self.done = Some(Next::Rejected(idx)),
            AttemptResult::Retryable => {
                let tries = self.tries_by_idx.get(&idx).copied().unwrap_or(0);
                if tries < self.limits.max_same_orchestrator_tries {
                    self.retry = Some(idx);
                }
            }
            AttemptResult::Busy | AttemptResult::Err => {}
        }
        Ok(())
    }

    /// Every finished try, in order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Job start requests sent so far.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    pub fn limits(&self) -> &StartLimits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::swap::SuspendReason;

    fn cand(uri: &str, latency_ms: u64, warm: bool) -> Candidate {
        Candidate {
            warm,
            ..Candidate::new(uri, latency_ms)
        }
    }

    fn priced(mut c: Candidate, wei: i64, pixels: i64) -> Candidate {
        c.price = Price::new(wei, pixels);
        c
    }

    #[test]
    fn default_order_is_warm_first_then_by_latency_with_ties_in_discovery_order() {
        let candidates = vec![
            cand("https://a", 30, false),
            cand("https://b", 50, true),
            cand("https://c", 10, false),
            cand("https://d", 20, true),
            cand("https://e", 20, true),
        ];
        let order = GoLivepeerDefault::default().order(&candidates, &Suspensions::new(), 0);
        assert_eq!(order, vec![3, 4, 1, 2, 0]);
    }

    #[test]
    fn default_order_drops_suspended_and_capped_candidates() {
        let mut capped = cand("https://capped", 1, true);
        capped.idle_capacity = Some(0);
        capped.capacity_in_use = Some(2);
        let mut open = cand("https://open", 5, true);
        open.idle_capacity = Some(1);
        let candidates = vec![capped, open, cand("https://failed", 2, true)];
        let mut suspended = Suspensions::new();
        suspended.suspend("https://failed", 100, SuspendReason::StartFailed);
        let order = GoLivepeerDefault::default().order(&candidates, &suspended, 200);
        assert_eq!(order, vec![1]);
    }

    #[test]
    fn price_cap_keeps_prices_at_or_below_it_and_drops_unpriced_candidates() {
        let candidates = vec![
            priced(cand("https://cheap", 30, true), 1, 1),
            priced(cand("https://at-cap", 20, true), 10, 4), // 2.5 wei per pixel
            priced(cand("https://dear", 10, true), 26, 10),  // 2.6 wei per pixel
            cand("https://unpriced", 5, true),
        ];
        let mut strategy = GoLivepeerDefault::new(Price::new(5, 2));
        assert_eq!(
            strategy.order(&candidates, &Suspensions::new(), 0),
            vec![1, 0]
        );
    }

    #[test]
    fn price_cap_is_ignored_when_no_candidate_has_a_price() {
        let candidates = vec![cand("https://a", 30, true), cand("https://b", 10, true)];
        let mut strategy = GoLivepeerDefault::new(Price::new(1, 1));
        assert_eq!(
            strategy.order(&candidates, &Suspensions::new(), 0),
            vec![1, 0]
        );
    }

    #[test]
    fn price_cap_above_every_candidate_leaves_nobody() {
        let candidates = vec![priced(cand("https://a", 30, true), 9, 1)];
        let mut strategy = GoLivepeerDefault::new(Price::new(1, 1));
        assert!(
            strategy
                .order(&candidates, &Suspensions::new(), 0)
                .is_empty()
        );
    }

    #[test]
    fn price_needs_a_positive_pixel_count_and_compares_exactly() {
        assert!(Price::new(1, 0).is_none());
        assert!(Price::new(1, -3).is_none());
        let third = Price::new(1, 3).unwrap();
        let also_third = Price::new(1_000_000_000, 3_000_000_000).unwrap();
        assert_eq!(third.cmp_exact(&also_third), Ordering::Equal);
        assert_eq!(
            Price::new(i64::MAX, 1).unwrap().cmp_exact(&third),
            Ordering::Greater
        );
    }

    fn scored(n: usize, scores: &[Option<f64>]) -> Vec<Candidate> {
        (0..n)
            .map(|i| {
                let mut c = cand(&format!("https://o{i}"), i as u64, false);
                c.sla_score = scores[i];
                c
            })
            .collect()
    }

    #[test]
    fn score_weighted_random_is_deterministic_per_seed() {
        let candidates = scored(5, &[Some(90.0), Some(10.0), None, Some(60.0), Some(30.0)]);
        let none = Suspensions::new();
        let draw = |seed| {
            let mut s = ScoreWeightedRandom::new(seed);
            (0..20)
                .map(|_| s.order(&candidates, &none, 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        for order in draw(7) {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4], "every candidate appears once");
        }
    }

    #[test]
    fn score_weighted_random_first_picks_are_roughly_proportional_to_scores() {
        // With weights 60, 30 and 10 the first draw should pick each 60 %, 30 % and 10 % of the time.
        let candidates = scored(3, &[Some(60.0), Some(30.0), Some(10.0)]);
        let mut strategy = ScoreWeightedRandom::new(2026);
        let draws = 20_000;
        let mut firsts = [0u32; 3];
        for _ in 0..draws {
            firsts[strategy.order(&candidates, &Suspensions::new(), 0)[0]] += 1;
        }
        let share = |i: usize| f64::from(firsts[i]) / f64::from(draws);
        assert!((share(0) - 0.6).abs() < 0.02, "share 0 = {}", share(0));
        assert!((share(1) - 0.3).abs() < 0.02, "share 1 = {}", share(1));
        assert!((share(2) - 0.1).abs() < 0.02, "share 2 = {}", share(2));
    }

    #[test]
    fn score_weighted_random_counts_a_missing_score_as_the_default() {
        let candidates = scored(2, &[None, Some(DEFAULT_SLA_SCORE)]);
        let mut strategy = ScoreWeightedRandom::new(1);
        let draws = 20_000;
        let firsts = (0..draws)
            .filter(|_| strategy.order(&candidates, &Suspensions::new(), 0)[0] == 0)
            .count();
        let share = firsts as f64 / f64::from(draws);
        assert!((share - 0.5).abs() < 0.02, "share = {share}");
    }

    #[test]
    fn score_weighted_random_puts_zero_scores_last_and_respects_suspensions() {
        let candidates = scored(4, &[Some(0.0), Some(40.0), Some(f64::NAN), Some(-5.0)]);
        let mut suspended = Suspensions::new();
        suspended.suspend("https://o1", 0, SuspendReason::StartFailed);
        let mut strategy = ScoreWeightedRandom::new(3);
        for _ in 0..50 {
            // o1 is suspended; o2 (NaN) counts the default; o0 and o3 score 0 and come last,
            // by latency.
            assert_eq!(strategy.order(&candidates, &suspended, 0), vec![2, 0, 3]);
        }
    }

    fn run(attempts: &mut StartAttempts, results: &[(AttemptResult, u64)]) -> Vec<Next> {
        let mut seen = Vec::new();
        for &(result, at_ms) in results {
            let next = attempts.poll_next();
            seen.push(next.clone());
            let Next::Try(idx) = next else {
                return seen;
            };
            attempts.handle_attempt_result(idx, result, at_ms).unwrap();
        }
        seen.push(attempts.poll_next());
        seen
    }

    #[test]
    fn start_takes_the_first_candidate_that_accepts() {
        let mut start = StartAttempts::new(vec![4, 2, 7], 1_000);
        let seen = run(
            &mut start,
            &[(AttemptResult::Busy, 1_100), (AttemptResult::Ok, 1_300)],
        );
        assert_eq!(seen, vec![Next::Try(4), Next::Try(2), Next::Started(2)]);
        assert_eq!(start.attempts().len(), 2);
        assert_eq!(start.poll_next(), Next::Started(2), "the end is sticky");
    }

    #[test]
    fn start_gives_up_when_everyone_refused() {
        let mut start = StartAttempts::new(vec![0, 1], 0);
        let seen = run(
            &mut start,
            &[(AttemptResult::Busy, 10), (AttemptResult::Err, 20)],
        );
        assert_eq!(
            seen.last(),
            Some(&Next::GiveUp(NoOrchestratorsAvailable {
                cause: GiveUpCause::Exhausted,
                tries: 2,
                elapsed_ms: 20,
            }))
        );
        let Some(Next::GiveUp(end)) = seen.last() else {
            unreachable!()
        };
        assert_eq!(
            end.message(START_RETRY_TIMEOUT_MS),
            "no orchestrators available"
        );
        assert!(end.emits_no_orchestrators_trace());
    }

    #[test]
    fn start_with_no_candidates_gives_up_at_once() {
        let mut start = StartAttempts::new(Vec::new(), 5);
        assert!(matches!(
            start.poll_next(),
            Next::GiveUp(NoOrchestratorsAvailable {
                cause: GiveUpCause::Exhausted,
                tries: 0,
                ..
            })
        ));
    }

    #[test]
    fn start_makes_at_most_twenty_tries() {
        let mut start = StartAttempts::new((0..30).collect(), 0);
        let results = vec![(AttemptResult::Err, 1); 25];
        let seen = run(&mut start, &results);
        let tries = seen.iter().filter(|n| matches!(n, Next::Try(_))).count();
        assert_eq!(tries, 20);
        assert!(matches!(
            seen.last(),
            Some(Next::GiveUp(NoOrchestratorsAvailable {
                cause: GiveUpCause::MaxTries,
                tries: 20,
                ..
            }))
        ));
    }

    #[test]
    fn start_begins_no_try_at_or_after_two_seconds() {
        let mut start = StartAttempts::new(vec![0, 1, 2], 10_000);
        assert_eq!(start.poll_next(), Next::Try(0));
        start
            .handle_attempt_result(0, AttemptResult::Err, 11_999)
            .unwrap();
        assert_eq!(
            start.poll_next(),
            Next::Try(1),
            "1 ms before the deadline a try may begin"
        );
        start
            .handle_attempt_result(1, AttemptResult::Err, 12_000)
            .unwrap();
        let Next::GiveUp(end) = start.poll_next() else {
            panic!("expected a give-up at the deadline");
        };
        assert_eq!(end.cause, GiveUpCause::Deadline);
        assert_eq!(end.elapsed_ms, 2_000);
        assert_eq!(
            end.message(START_RETRY_TIMEOUT_MS),
            "no orchestrators available within 2s timeout"
        );
        assert!(!end.emits_no_orchestrators_trace());
    }

    #[test]
    fn start_lets_a_try_in_flight_finish_past_the_deadline() {
        let mut start = StartAttempts::new(vec![0], 0);
        assert_eq!(start.poll_next(), Next::Try(0));
        assert_eq!(start.poll_next(), Next::Wait);
        start
            .handle_attempt_result(0, AttemptResult::Ok, 4_500)
            .unwrap();
        assert_eq!(start.poll_next(), Next::Started(0));
    }

    #[test]
    fn retryable_errors_retry_the_same_orchestrator_three_times_in_all() {
        let mut start = StartAttempts::new(vec![5, 6], 0);
        let seen = run(
            &mut start,
            &[
                (AttemptResult::Retryable, 1),
                (AttemptResult::Retryable, 2),
                (AttemptResult::Retryable, 3),
                (AttemptResult::Ok, 4),
            ],
        );
        assert_eq!(
            seen,
            vec![
                Next::Try(5),
                Next::Try(5),
                Next::Try(5),
                Next::Try(6),
                Next::Started(6)
            ]
        );
    }

    #[test]
    fn a_bad_request_ends_the_start_without_trying_others() {
        let mut start = StartAttempts::new(vec![0, 1], 0);
        let seen = run(&mut start, &[(AttemptResult::BadRequest, 1)]);
        assert_eq!(seen, vec![Next::Try(0), Next::Rejected(0)]);
    }

    #[test]
    fn a_result_for_a_candidate_not_in_flight_is_an_error() {
        let mut start = StartAttempts::new(vec![0, 1], 0);
        assert_eq!(
            start.handle_attempt_result(0, AttemptResult::Ok, 1),
            Err(AttemptError::NotInFlight { idx: 0 })
        );
        assert_eq!(start.poll_next(), Next::Try(0));
        assert_eq!(
            start.handle_attempt_result(1, AttemptResult::Ok, 1),
            Err(AttemptError::NotInFlight { idx: 1 })
        );
    }
}
