//! failover-harness: what drives a failover pair from outside, as a library for the
//! `failover-lab` command line and the integration tests. Nothing here decides a role or
//! keeps a rule of the pair (that is `failover-core` and the services); this is the lab around
//! them: where the pair runs, what it is made to suffer, what is watched, and what is reported.
//!
//! - [`cluster`]: the processes stage: the pair as real processes on loopback (source,
//!   endpoint, arbiter, two adapters), with real faults: SIGKILL, SIGSTOP/SIGCONT, SIGTERM,
//!   restart, cut links.
//! - [`services`]: how to reach a running pair's services by address, on any stage.
//! - [`observe`]: watches the arbiter's group and the endpoint's audit into a timeline.
//! - [`proxy`]: a fault-injecting TCP proxy on every link between an adapter and a service.
//! - [`live`]: `failover-lab demo --dashboard`: the pair with the live dashboard and its buttons.
//! - [`demo`]: `failover-lab demo`: kill the Primary, show the takeover.
//! - [`scenario`]: scenario files (TOML): a failure story and what must follow, checked.
//! - [`timeline_svg`]: a run's timeline as an SVG picture (`--report-dir`).
//! - [`recording`]: a run's timeline as JSON lines (`--report-dir`), which the picture is drawn
//!   from and `failover-lab replay` plays back.
//! - [`runner`]: `failover-lab run`: each scenario on its own pair, with a report.
//! - [`matrix`]: `failover-lab matrix`: each fault kind on both failover designs in each mode,
//!   several runs, through the runner: what each loses and duplicates.
//! - [`stage`]: where the runner's pair runs: the [`Stage`](stage::Stage) the runner drives,
//!   implemented by processes ([`cluster`]), compose ([`stage::compose`]) and the simulator
//!   ([`stage::sim`]).
//! - [`bench`]: `failover-lab bench`: takeover latency, data-path throughput, standby cost.
//! - [`sim`]: `failover-lab sim`: seeded deterministic simulations ([`failover_sim`]) on every
//!   core, with progress, a summary and each failing seed in full.
//! - [`save_scenario`]: `failover-lab sim --seed S --save-scenario FILE`: a failing seed as a
//!   shrunk scenario file.
//! - [`fixture`]: a pair started, configured and flowing, for the integration tests of every
//!   crate.
//! - [`config_client`]: `failover-lab config`: the vendor's `edgecmd ... clientfailover`.

pub mod bench;
pub mod cluster;
pub mod config_client;
pub mod demo;
pub mod fixture;
pub mod live;
pub mod matrix;
pub mod observe;
pub mod proxy;
pub mod recording;
pub mod runner;
pub mod save_scenario;
pub mod scenario;
pub mod services;
pub mod sim;
pub mod stage;
pub mod timeline_svg;
pub mod xml;
