//! agent: the groundwork of `lvt agent`, the long-running regional tester (issue 13).
//!
//! Built so far:
//! - [`config`]: the configuration file (`agent.toml`, unknown keys refused, every error at
//!   `file:line:col`);
//! - [`schedule`]: the sans-IO core that decides when each scheduled scenario run starts (cron
//!   patterns with seconds, a deterministic per-agent jitter, the overlap and missed-run
//!   policies);
//! - [`state`]: what the agent keeps across a crash, written atomically (the adopted commit,
//!   each schedule's last start, the day's budget counters, the certificate fingerprints first
//!   seen).
//!
//! Not built yet, and so not reachable from the command line: the `lvt agent` command itself,
//! scenarios pulled from git, the unattended spool drain, the budget's enforcement, heartbeats
//! and the admin endpoints. docs/architecture.md ("Adding a long-running command") says how
//! they fit.

pub mod config;
pub mod schedule;
pub mod state;
