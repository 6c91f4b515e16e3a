//! failover-core: the failover rules of client-level adapter failover, with no I/O.
//!
//! Every decision the services make lives here as plain data and state machines driven by
//! events and an explicit clock, so it can be tested exhaustively without sockets or sleeps:
//!
//! - [`timespan`]: `hh:mm:ss(.fff)` timespans as the vendor's documents write them.
//! - [`config`]: the ClientFailover document and DataSource settings: validation with messages
//!   that name the field, merge patches, secrets that never show.
//! - [`modes`]: roles, what Hot/Warm/Cold adapters do in each role, and failover scores.
//! - [`group`]: the failover service's group: sessions, staleness, roles, epochs, overrides.
//! - [`points`]: data points and per-stream watermarks.
//! - [`buffer`]: the adapter's bounded egress buffer, trimmed by watermarks.
//! - [`ledger`]: the endpoint's per-stream record for audits (lost, duplicated, gaps).
//! - [`coverage`]: who delivered each source tick to the endpoint, on time or late.
//! - [`history`]: what a run observed (the service's view at each change, samples, the story,
//!   the coverage), one type on every stage.
//! - [`limits`]: the one set of limits (id lengths, timeouts, scores, batch sizes) every
//!   part enforces alike.
//! - [`retry`]: backoff with jitter capped by failoverTimeout, and repeat-limited error logs.
//! - [`clock_time`]: UTC timestamps for the REST APIs, to and from unix milliseconds.
//! - [`broken`]: rules broken on purpose, for the checks to catch (none by default).
//! - [`behaviour`]: failover-lab's design or the vendor's (a Hot queue trimmed by time, no
//!   fencing), so both can be run on the same fault.
//!
//! The service crates (`adapter`, `failover-arbiter`, `fake-endpoint`, `fake-data-source`)
//! are thin shells that feed these machines from the network and act on their answers.

pub mod behaviour;
pub mod broken;
pub mod buffer;
pub mod clock_time;
pub mod config;
pub mod coverage;
pub mod group;
pub mod history;
pub mod ledger;
pub mod limits;
pub mod modes;
pub mod points;
pub mod retry;
pub mod timespan;

pub use behaviour::Behaviour;
pub use broken::{Broken, BrokenRule};
pub use config::{ClientFailoverConfig, ConfigError, DataCollectionMode, DataSourceConfig, Mode};
pub use modes::Role;
pub use points::{Point, Watermark};
