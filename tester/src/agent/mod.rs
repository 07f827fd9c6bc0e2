//! agent: `lvt agent`, the long-running regional tester (issue 13).
//!
//! - [`driver`]: the loop behind `lvt agent` (cmd/agent.rs): schedules from the config, each run
//!   on the scenario commit adopted when it starts (or a plain folder read then), each session
//!   shipped as it ends, the spool drained every `spool_drain_s` and capped at
//!   `spool_max_bytes`, the repository pulled every `poll_s`, `state.json` kept current,
//!   SIGTERM with a grace period;
//! - [`pull`] and [`adopt`]: one fetch of the scenario repository (`scenario::repo`, gix) and
//!   the pure decision whether its commit is adopted;
//! - [`config`]: the configuration file (`agent.toml`, unknown keys refused, every error at
//!   `file:line:col`);
//! - [`schedule`]: the sans-IO core that decides when each scheduled scenario run starts (cron
//!   patterns with seconds, a deterministic per-agent jitter, the overlap and missed-run
//!   policies);
//! - [`state`]: what the agent keeps across a crash, written atomically (the adopted commit,
//!   each schedule's last start, the day's budget counters, the certificate fingerprints first
//!   seen);
//! - [`admin`]: `/healthz`, `/status` and `/metrics` on `admin_listen`.
//!
//! - [`heartbeat`]: the signed heartbeat to the collector every `heartbeat_s`.
//!
//! - [`budget`]: `[budget]`, enforced where each session starts.
//!
//! SIGHUP reloads the configuration (the driver's `reload`). docs/architecture.md ("Adding a
//! long-running command") says how they fit.

pub mod admin;
pub mod adopt;
pub mod budget;
pub mod config;
pub mod driver;
pub mod heartbeat;
pub mod pull;
pub mod schedule;
pub mod state;
