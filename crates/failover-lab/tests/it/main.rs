//! The real-process tests of failover-lab, in one test binary (one link instead of thirteen;
//! the scenario library keeps its own harness, `tests/scenarios.rs`). Each module is one
//! subject, and every test starts its own processes on its own loopback ports.
//! Run one subject with `cargo test --release -p failover-lab --test it liveness::`.

mod common;

mod auth;
mod bad_input_grpc;
mod bench_cli;
mod cfs_api;
mod dashboard_api;
mod dashboard_browser;
mod demo_cli;
mod determinism;
mod disk_buffer;
mod docs_links;
mod failover_pair;
mod liveness;
mod metrics;
mod rest_api;
mod scenario_language;
mod secrets;
mod tls;
