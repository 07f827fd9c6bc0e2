//! The `lvt` subcommands, one file per command, each owning its arguments and its `run`.

pub mod trickle;
