//! The failover service's integration tests, in one test binary: its command line (`cli`), the
//! vendor's Client Failover Service API as the vendor documents it (`cfs_api`), and bad gRPC
//! messages refused with the field named (`bad_input_grpc`), and overload answered with 429
//! (`overload`). They run the service in a real
//! pair on loopback ([`failover_harness::fixture`]).
//! Run one subject with `cargo test --release -p failover-arbiter --test it cfs_api::`.

mod bad_input_grpc;
mod cfs_api;
mod cli;
mod overload;
