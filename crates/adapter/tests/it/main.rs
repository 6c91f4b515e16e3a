//! The adapter's integration tests, in one test binary: its command line (`cli`), its REST API
//! with the vendor's documents (`rest_api`), its disk buffer across a kill (`disk_buffer`), and
//! its source wires: the OPC UA collector on a large source, history recoveries over gRPC and
//! OPC UA (`source_wires`).
//! The REST and disk tests run the adapter in a real pair on loopback
//! ([`failover_harness::fixture`]); the stories across processes stay in failover-lab's tests.
//! Run one subject with `cargo test --release -p adapter --test it rest_api::`.

mod cli;
mod disk_buffer;
mod rest_api;
mod source_wires;
