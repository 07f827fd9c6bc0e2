//! `lvt run`: executes a scenario's plan, aggregates its sessions and writes the run's outputs.

pub mod record;
