//! The `failover.v1` wire contract: prost messages and tonic clients and servers generated from
//! `proto/failover/v1/failover.proto`. Every process of failover-lab talks to the others only
//! through these types; nothing else crosses a process boundary (but the adapter's REST API).

#![allow(missing_debug_implementations, clippy::all, clippy::unwrap_used)]

/// Generated code for package `failover.v1`.
pub mod v1 {
    tonic::include_proto!("failover.v1");
}

pub use v1::*;
