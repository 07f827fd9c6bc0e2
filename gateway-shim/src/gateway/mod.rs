//! The gateway's decision core: which orchestrator to try at start, and when to leave it.
//!
//! Everything here is sans-IO: no sockets, no clocks, no tasks. Time enters as `now_ms`
//! (milliseconds on a monotonic clock whose origin the driver chooses), and decisions leave
//! through `poll_*` methods, so every timing rule of go-livepeer's live video gateway is tested
//! to the millisecond without sleeping. The session core ([`crate::session`]) feeds them: its
//! start loop runs [`StartAttempts`] over a strategy's order, and in network mode it owns the
//! [`SwapMonitor`]; docs/gateway.md says how.
//!
//! - [`select`]: the candidate view, the [`SelectionStrategy`] trait with go-livepeer's default
//!   order ([`GoLivepeerDefault`]) and an SLA score weighted draw ([`ScoreWeightedRandom`]), and
//!   [`StartAttempts`], the "up to 20 tries within 2 s" loop.
//! - [`observe`]: [`Observation`](observe::Observation), what a session driver reports (the
//!   seam to the go-livepeer-compatible analytics events).
//! - [`events`]: those observations as go-livepeer's analytics envelopes, and the emitter task
//!   that ships them to a collector (signed) or to Kafka. Unlike the rest of this module it does
//!   IO: the translation is pure, the emitter is its thin driver.
//! - [`relay`]: the one part that does IO besides the emitter: a stream carried to
//!   orchestrators over trickle through these cores, as go-livepeer's gateway carries a WHIP
//!   stream (the simulated gateway's `--orchestrator` mode).
//! - [`swap`]: [`SwapMonitor`], the mid-stream triggers, the swap chain limit ("Too many
//!   swaps"), [`Suspensions`] and the [`SwapRecord`]s with their output freeze.

pub mod events;
pub mod interleave;
pub mod observe;
pub mod relay;
pub mod select;
pub mod swap;

pub use select::{
    Attempt, AttemptError, AttemptResult, Candidate, GiveUpCause, GoLivepeerDefault, Next,
    NoOrchestratorsAvailable, Price, ScoreWeightedRandom, SelectionStrategy, StartAttempts,
    StartLimits,
};
pub use swap::{
    Decision, EndReason, SuspendReason, Suspension, Suspensions, SwapCause, SwapConfig, SwapError,
    SwapMonitor, SwapRecord,
};
