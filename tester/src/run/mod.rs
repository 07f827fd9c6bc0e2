//! `lvt run`: executes a scenario's plan, aggregates its sessions and writes the run's outputs.

pub mod executor;
pub mod html;
pub mod junit;
pub mod output;
pub mod plan;
pub mod progress;
pub mod record;
pub mod summary;
pub mod targets;
pub mod trust;
pub mod verdict;

#[cfg(test)]
mod tests;
