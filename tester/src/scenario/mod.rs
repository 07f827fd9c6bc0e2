//! Versioned scenarios: the file format (`model`), threshold expressions (`threshold`),
//! loading with located diagnostics (`validate`) and the scenario's identity (`identity`).

pub mod model;
pub mod threshold;

pub use model::*;
