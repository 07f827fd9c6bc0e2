//! Versioned scenarios: the file format (`model`), threshold expressions (`threshold`),
//! loading with located diagnostics (`validate`) and the scenario's identity (`identity`).

pub mod identity;
pub mod model;
pub mod repo;
pub mod schema;
pub mod shipped;
pub mod threshold;
pub mod validate;

#[cfg(test)]
mod tests;

pub use model::*;
