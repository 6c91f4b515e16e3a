//! A scenario file's pair on the simulator (`failover-lab run --target sim`).
//!
//! The same hosts as a seeded run ([`crate::run`]): the real source, endpoint, failover service
//! and adapters, shaped by the scenario's cluster, each adapter serving its REST API and the
//! failover service its admin API over turmoil's network, as the real processes do over TCP.
//! A director (the scenario runner, a turmoil client) drives the pair: it calls the services
//! as it would over TCP, and asks for what only the simulation can do (crash and start hosts,
//! hold their messages, cut and slow links) through a [`Handle`]; [`Stage::drive`] carries
//! those requests out between the steps of simulated time.

use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use failover_core::DataSourceConfig;
use failover_scenario::cluster::ClusterSpec;
use tokio::sync::{oneshot, watch};

use crate::world::{self, ARBITER, ENDPOINT, ENDPOINT_PORT, SOURCE, SOURCE_PORT, url};

/// The port of each adapter's REST API.
pub const ADAPTER_REST_PORT: u16 = 5590;
/// The port of the failover service's admin REST API.
pub const ARBITER_REST_PORT: u16 = 50054;
/// The director's host.
pub const DIRECTOR: &str = "runner";

/// The simulated pair: the scenario's [`ClusterSpec`] (the same the processes and compose
/// stages start from), and what only a simulation needs besides.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// turmoil's seed: message latencies and the runtimes' own choices (the cluster's `seed`
    /// seeds the source's values).
    pub seed: u64,
    /// The pair's shape: adapters, source, Warm test interval, data collection mode, broken
    /// rules.
    pub cluster: ClusterSpec,
    /// Adapters that run only when the director starts them: a second process with a pair
    /// member's name (a twin), a standalone adapter.
    pub extras: Vec<ExtraAdapter>,
    /// Each adapter keeps its egress buffer on disk too, in a folder of its own under this one
    /// (None: in memory only; the cluster's `disk_buffer` asks for one).
    pub buffer_root: Option<PathBuf>,
    /// The longest the run may last in simulated time.
    pub limit: Duration,
}

/// An adapter host that runs only when the director starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraAdapter {
    /// Its host (unique).
    pub host: String,
    /// The name its adapter takes (a twin's is a pair member's).
    pub name: String,
}

impl ExtraAdapter {
    /// The host of the twin of `adapter`.
    pub fn twin(adapter: &str) -> ExtraAdapter {
        ExtraAdapter {
            host: format!("twin-{adapter}"),
            name: adapter.to_string(),
        }
    }

    /// The host of a standalone adapter named `name`.
    pub fn standalone(name: &str) -> ExtraAdapter {
        ExtraAdapter {
            host: name.to_string(),
            name: name.to_string(),
        }
    }
}

/// What the director asks of the simulation.
#[derive(Debug, Clone)]
pub enum HostChange {
    /// The host stops at once, nothing flushed (a SIGKILL).
    Crash(String),
    /// The host's software starts again.
    Start(String),
    /// Every message to and from the host waits (a frozen process: its peers' bytes queue up).
    Hold(String),
    /// The held messages go on.
    Release(String),
    /// Every byte between the two hosts is dropped, one way (`a` to `b`) or both; connections
    /// stay open (a real partition).
    Partition {
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// Only from `a` to `b`.
        one_way: bool,
    },
    /// The link carries bytes again, and at the usual latency.
    Repair {
        /// One end.
        a: String,
        /// The other end.
        b: String,
    },
    /// Every message between the two hosts takes this long.
    Latency {
        /// One end.
        a: String,
        /// The other end.
        b: String,
        /// The delay.
        delay: Duration,
    },
}

/// A change asked for, and whom to tell once it is made.
type Asked = (HostChange, oneshot::Sender<()>);

/// The director's handle on the simulation: host and link changes, and each adapter's life.
#[derive(Debug, Clone)]
pub struct Handle {
    changes: Arc<Mutex<VecDeque<Asked>>>,
    life: Arc<BTreeMap<String, Life>>,
}

/// Whether an adapter host's adapter should run, and whether it does.
#[derive(Debug)]
struct Life {
    running: watch::Sender<bool>,
    alive: watch::Sender<bool>,
}

impl Handle {
    /// Asks for a change and waits until the simulation has made it.
    pub async fn change(&self, change: HostChange) {
        let (done, made) = oneshot::channel();
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back((change, done));
        let _ = made.await;
    }

    /// Starts (true) or gracefully stops (false) an adapter host's adapter; a stop waits until
    /// it has left (at most `grace`).
    pub async fn set_running(&self, adapter: &str, run: bool, grace: Duration) {
        let Some(life) = self.life.get(adapter) else {
            return;
        };
        life.running.send_replace(run);
        if !run {
            let mut alive = life.alive.subscribe();
            let _ = tokio::time::timeout(grace, alive.wait_for(|a| !*a)).await;
        }
    }

    /// True when the simulation has an adapter host by this name.
    pub fn has_host(&self, host: &str) -> bool {
        self.life.contains_key(host)
    }

    /// True when the adapter host's adapter is meant to run.
    pub fn is_running(&self, adapter: &str) -> bool {
        self.life.get(adapter).is_some_and(|l| *l.running.borrow())
    }
}

/// A simulated pair and its director.
pub struct Stage {
    sim: turmoil::Sim<'static>,
    handle: Handle,
    hosts: Vec<String>,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage").field("hosts", &self.hosts).finish()
    }
}

impl Stage {
    /// The pair, running and unconfigured (the adapters wait for their ClientFailover
    /// document, as freshly started processes do).
    pub fn new(spec: &StageSpec) -> Stage {
        world::install_wall_clock();
        let sim = world::simulation(spec.seed, spec.limit);
        let life: BTreeMap<String, Life> = spec
            .cluster
            .adapters
            .iter()
            .map(|a| (a.clone(), true))
            .chain(spec.extras.iter().map(|x| (x.host.clone(), false)))
            .map(|(host, running)| {
                (
                    host,
                    Life {
                        running: watch::Sender::new(running),
                        alive: watch::Sender::new(false),
                    },
                )
            })
            .collect();
        let mut stage = Stage {
            sim,
            handle: Handle {
                changes: Arc::default(),
                life: Arc::new(life),
            },
            hosts: [SOURCE, ENDPOINT, ARBITER, DIRECTOR]
                .map(String::from)
                .into_iter()
                .chain(spec.cluster.adapters.iter().cloned())
                .chain(spec.extras.iter().map(|x| x.host.clone()))
                .collect(),
        };
        stage.add_hosts(spec);
        stage
    }

    /// The director's handle.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    fn add_hosts(&mut self, spec: &StageSpec) {
        let source = fake_data_source::SourceSettings {
            streams: spec.cluster.streams,
            components: spec.cluster.components,
            rate_hz: spec.cluster.rate_hz,
            seed: spec.cluster.seed,
            origin_unix_ms: Some(world::EPOCH_UNIX_US / 1000),
            history_rate: spec.cluster.history_rate,
            max_clients: spec.cluster.max_clients,
        };
        world::add_source(&mut self.sim, source);
        world::add_endpoint(&mut self.sim, spec.cluster.broken);
        // The service's admin REST API, as the real process serves it.
        world::add_arbiter(&mut self.sim, spec.cluster.broken, |arbiter| async move {
            let admin = world::SimListener::bind(ARBITER_REST_PORT).await?;
            let app = failover_arbiter::rest::router(arbiter);
            tokio::spawn(async move { axum::serve(admin, app).await });
            Ok(())
        });
        let hosts = spec
            .cluster
            .adapters
            .iter()
            .map(|a| (a.clone(), a.clone()))
            .chain(spec.extras.iter().map(|x| (x.host.clone(), x.name.clone())));
        for (host, name) in hosts {
            let (spec, handle, on) = (spec.clone(), self.handle.clone(), host.clone());
            self.sim.host(host.as_str(), move || {
                adapter_host(on.clone(), name.clone(), spec.clone(), handle.clone())
            });
        }
    }

    /// Runs `director` as the simulation's client; [`Stage::drive`] runs until it ends.
    pub fn director(&mut self, director: impl Future<Output = ()> + 'static) {
        self.sim.client(DIRECTOR, async move {
            director.await;
            Ok(())
        });
    }

    /// Runs the simulation until the director has ended, carrying out its host and link
    /// changes; the simulated time it took, or why it stopped.
    pub fn drive(&mut self) -> Result<Duration, String> {
        loop {
            let asked: Vec<_> = self
                .handle
                .changes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain(..)
                .collect();
            for (change, done) in asked {
                self.apply(&change);
                let _ = done.send(());
            }
            match self.sim.step() {
                Ok(true) => return Ok(self.sim.elapsed()),
                Ok(false) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn apply(&mut self, change: &HostChange) {
        let sim = &mut self.sim;
        match change {
            HostChange::Crash(h) => {
                if sim.is_host_running(h.as_str()) {
                    sim.crash(h.as_str());
                }
            }
            HostChange::Start(h) => sim.bounce(h.as_str()),
            HostChange::Hold(h) | HostChange::Release(h) => {
                for other in self.hosts.iter().filter(|o| *o != h) {
                    if matches!(change, HostChange::Hold(_)) {
                        sim.hold(h.as_str(), other.as_str());
                    } else {
                        sim.release(h.as_str(), other.as_str());
                    }
                }
            }
            HostChange::Partition { a, b, one_way } => {
                if *one_way {
                    sim.partition_oneway(a.as_str(), b.as_str());
                } else {
                    sim.partition(a.as_str(), b.as_str());
                }
            }
            HostChange::Repair { a, b } => {
                sim.repair(a.as_str(), b.as_str());
                sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_micros(200));
            }
            HostChange::Latency { a, b, delay } => {
                sim.set_link_latency(a.as_str(), b.as_str(), *delay);
            }
        }
    }
}

/// An adapter host: runs the adapter named `name`, with its REST API, while the director wants
/// it running (a graceful stop ends it, a start begins a new process).
async fn adapter_host(
    host: String,
    name: String,
    spec: StageSpec,
    handle: Handle,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(life) = handle.life.get(&host) else {
        return Ok(());
    };
    loop {
        let mut running = life.running.subscribe();
        if running.wait_for(|r| *r).await.is_err() {
            return Ok(());
        }
        let settings = adapter::AdapterSettings {
            behaviour: failover_core::Behaviour::Lab,
            name: name.clone(),
            source_url: url(SOURCE, SOURCE_PORT),
            endpoint_url: url(ENDPOINT, ENDPOINT_PORT),
            data_source: DataSourceConfig {
                data_collection_mode: spec.cluster.data_collection_mode,
            },
            warm_test_interval: spec.cluster.warm_test_interval,
            buffer_capacity: 1_000_000,
            buffer_dir: spec.buffer_root.as_ref().map(|r| r.join(&host)),
            buffer_max_bytes: 1 << 30,
            trusted_ca: Vec::new(),
            network: world::network(),
            batch_size: 5000,
            documents: None,
            failover_protocol: adapter::FailoverProtocol::Grpc,
            health_interval: None,
            broken: spec.cluster.broken,
        };
        let rest = world::SimListener::bind(ADAPTER_REST_PORT).await?;
        let stop = async move {
            let _ = running.wait_for(|r| !*r).await;
        };
        life.alive.send_replace(true);
        let result = adapter::run(Some(rest), settings, None, stop).await;
        life.alive.send_replace(false);
        result.map_err(crate::boxed)?;
    }
}
