//! The real-process tests of failover-lab, in one test binary (one link instead of one per
//! subject; the scenario library keeps its own harness, `crates/harness/tests/scenarios.rs`).
//! Each module is one subject, and every test starts its own processes on its own loopback
//! ports. The adapter's REST API and disk buffer, and the failover service's vendor API and
//! gRPC validation, are tested in their own crates (`crates/adapter/tests`,
//! `crates/failover-arbiter/tests`).
//! Run one subject with `cargo test --release -p failover-lab --test it liveness::`.

mod common;

mod architecture;
mod auth;
mod bench_cli;
mod dashboard_api;
mod dashboard_browser;
mod demo_cli;
mod determinism;
mod docs_links;
mod failover_pair;
mod liveness;
mod metrics;
mod scenario_language;
mod secrets;
mod tls;
mod vendor_behaviour;
