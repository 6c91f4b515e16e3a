//! failover-lab: the tool that drives a failover pair, as a library for the `failover-lab`
//! binary and the integration tests.
//!
//! - [`cluster`]: the pair as real processes on loopback (source, endpoint, arbiter, two
//!   adapters), with real faults: SIGKILL, SIGSTOP/SIGCONT, SIGTERM, restart.
//! - [`observe`]: watches the arbiter's group and the endpoint's audit into a timeline.
//! - [`demo`]: `failover-lab demo`: kill the Primary, show the takeover.
//! - [`config_client`]: `failover-lab config`: the vendor's `edgecmd ... clientfailover`.

pub mod cluster;
pub mod config_client;
pub mod demo;
pub mod observe;
