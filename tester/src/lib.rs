//! lvt-tester: the `lvt` command and its engines.
//!
//! It owns the scenario-independent measurement of live video-to-video sessions: the input
//! clip (`encode`), the probe engine (the trickle driver of `lvt_gateway::session`) that
//! drives one job against one orchestrator (`probe`), and the commands built on them.

pub mod agent;
pub mod bench;
pub mod cmd;
pub mod demo;
pub mod encode;
pub mod probe;
pub mod relay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod ship;
pub mod shutdown;
