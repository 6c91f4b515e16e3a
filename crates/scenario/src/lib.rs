//! failover-scenario: the scenario language, one story for every stage.
//!
//! A scenario file (TOML) tells a failure story: the pair it runs on ([`cluster`]), the faults,
//! the waits and what must follow. This crate holds the model and its parser, with no I/O:
//! [`parse`] checks every name in a file, so a mistake is reported with its file, line and
//! field before anything starts; [`invariants`] holds the safety and liveness rules every run
//! must keep, shared by the scenario runner on every stage and by the simulator.
//! `failover-lab run` plays a story on real processes, on docker compose or on the
//! deterministic simulator (`failover_harness::stage`); `scenarios/README.md` is the reference.

pub mod cluster;
pub mod invariants;

mod checker;
mod model;
mod parse;
pub mod program;
mod raw;
mod store;
#[cfg(test)]
mod tests;

pub use model::*;
pub use parse::parse;
