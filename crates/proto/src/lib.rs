//! failover-proto: the `failover.v1` wire contract and the plumbing every process shares to
//! speak it.
//!
//! - [`v1`]: prost messages and tonic clients and servers generated from
//!   `proto/failover/v1/failover.proto`. Nothing else crosses a process boundary (but the REST
//!   APIs of the adapter and the arbiter).
//! - [`etcd`]: a client of etcd's v3 API, the part failover-arbiter's etcd store speaks.
//! - [`auth`]: basic authentication on the heartbeat stream.
//! - [`convert`]: conversions between wire messages and `failover-core` types.
//! - [`metrics`]: the Prometheus text format of every server's `/metrics`.
//! - [`process`]: what every server binary does the same way: tracing setup, the gRPC health
//!   service, and shutdown on Ctrl-C or SIGTERM.
//! - [`net`]: how clients connect: TCP or a network given from outside (the simulator's),
//!   with TLS for https.
//! - [`tls`]: TLS to the failover service (rustls): the server's acceptor and the clients'
//!   connector, with the `validateEndpointCertificate` policy.

/// Generated code for package `failover.v1`.
#[allow(
    missing_debug_implementations,
    clippy::all,
    clippy::unwrap_used,
    rust_2018_idioms
)]
pub mod v1 {
    tonic::include_proto!("failover.v1");
}

/// Generated client code for the subset of etcd's v3 API (package `etcdserverpb`: KV and
/// Lease) that failover-arbiter's etcd store speaks (`crates/proto/etcd/etcd_v3_subset.proto`).
#[allow(
    missing_debug_implementations,
    clippy::all,
    clippy::unwrap_used,
    rust_2018_idioms
)]
pub mod etcd {
    tonic::include_proto!("etcdserverpb");
}

pub mod auth;
pub mod convert;
pub mod metrics;
pub mod net;
pub mod process;
pub mod testing;
pub mod tls;
pub mod wires;

pub use v1::*;
