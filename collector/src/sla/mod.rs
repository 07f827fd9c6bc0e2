//! SLA scoring: the pure core that turns tester sessions into SLA scores.
//!
//! It owns the grain ([`CellKey`]: hour x orchestrator x pipeline x model x GPU x region x prompt
//! complexity x test load), the additive per-cell sums ([`CellSums`], mergeable into any coarser
//! grain and into seven-day cohorts), the cohort benchmark ([`Cohort`]), the NaaP
//! "quality-benchmark-v1" formula ([`score`]) and Wilson intervals ([`wilson_interval`]).
//! Which cells a session adds to ([`contributions`]: one per serving orchestrator in network
//! mode) and the compact binary form stores keep sums in ([`codec`]) live here too, as do the
//! SLA endpoints' pure half: query parameters and the cell filter ([`query`]) and the merging
//! of cells into groups, cohorts and rankings ([`aggregate`]). It does
//! no IO and reads no clock: storage and the API feed it sums and hours. docs/sla.md is the
//! method, with worked examples that the tests check.

pub mod aggregate;
pub mod attribution;
pub mod cell;
pub mod codec;
pub mod histogram;
pub mod query;
pub mod score;
pub mod wilson;

pub use attribution::{add_session, contributions};
pub use cell::{CellKey, CellSums, MetricSum, cohort_window_unix_s, hour_floor_unix_s};
pub use histogram::{FpsHistogram, LatencyHistogram};
pub use query::SlaFilter;
pub use score::{Basis, Cohort, Formula, Rate, SlaScore, score, score_with};
pub use wilson::{Z_95, wilson_interval};

#[cfg(test)]
mod tests;
