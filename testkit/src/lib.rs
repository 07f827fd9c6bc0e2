//! lvt-testkit: the test support every crate's tests share, so that each harness is written once
//! and none of it lives in a production library. Only `[dev-dependencies]` name this crate.
//!
//! - [`kafka`] (feature `kafka`): a real Kafka-protocol broker, Tansu, on loopback;
//! - [`clickhouse`]: the ClickHouse engine (PyPI's chdb behind `ci/clickhouse-adapter`);
//! - [`store_suite`] (feature `store`): the behavioural suites every collector store backend
//!   must pass, and [`store_double`], a store behind a switch that makes it fail as one that
//!   is down, and optionally behind only the required `Store` methods;
//! - [`chain`] (feature `chain`): ganache with the stand-in Livepeer contracts;
//! - [`chromium`]: headless Chromium rendering a page;
//! - [`sim`] (feature `sim`): simulated orchestrators on loopback;
//! - [`noise`]: the scheduling noise of a test run, from which timing tolerances are derived.
//!
//! Each harness starts its service on 127.0.0.1 and stops it with the test; when a tool that
//! `ci/setup` installs is missing, the test fails and says so, it never skips.

#[cfg(feature = "chain")]
pub mod chain;
pub mod chromium;
pub mod clickhouse;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod noise;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "store")]
pub mod store_double;
#[cfg(feature = "store")]
pub mod store_suite;
