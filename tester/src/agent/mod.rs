//! agent: the groundwork of `lvt agent`, the long-running regional tester (issue 13).
//!
//! Built so far:
//! - [`driver`]: the loop behind `lvt agent` (cmd/agent.rs): schedules from the config, each run
//!   reading its scenario from a directory, each session shipped as it ends, the spool drained
//!   every 30 s, `state.json` kept current, SIGTERM with a grace period;
//! - [`config`]: the configuration file (`agent.toml`, unknown keys refused, every error at
//!   `file:line:col`);
//! - [`schedule`]: the sans-IO core that decides when each scheduled scenario run starts (cron
//!   patterns with seconds, a deterministic per-agent jitter, the overlap and missed-run
//!   policies);
//! - [`state`]: what the agent keeps across a crash, written atomically (the adopted commit,
//!   each schedule's last start, the day's budget counters, the certificate fingerprints first
//!   seen).
//!
//! - [`admin`]: `/healthz`, `/status` and `/metrics` on `admin_listen`.
//!
//! Not built yet, and refused by `lvt agent` at start with a message (docs/agent.md): scenarios
//! pulled over git, the budget's enforcement, shipping to a collector and Kafka at once. Heartbeats, SIGHUP reload and the spool's byte cap are not built either.
//! docs/architecture.md ("Adding a long-running command") says how they fit.

pub mod admin;
pub mod adopt;
pub mod config;
pub mod driver;
pub mod pull;
pub mod schedule;
pub mod state;
