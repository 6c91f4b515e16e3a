//! A failover pair as real processes on loopback: the data source, the endpoint, the arbiter
//! and two adapters, each a binary started beside `failover-lab`, on free ports, with its log in
//! a file. Faults are real: SIGKILL, SIGSTOP/SIGCONT, SIGTERM, restart on the same ports.
//! Everything is killed when the [`Cluster`] is dropped, even on a failure.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use failover_core::timespan::format_timespan;
use serde_json::Value;

use crate::{compose::Compose, proxy::Proxy};

pub use failover_scenario::cluster::{
    ARBITER, BEARER_CLIENT_ID, BEARER_CLIENT_SECRET, CFS_ADMIN, ClusterAuth, ClusterProtocol,
    ClusterSpec, ClusterTls, ENDPOINT, LINK_SERVICES, LinkChange, SOURCE, VENDOR_EXAMPLE,
};

/// Where a cluster's failover service keeps its self-signed TLS identity, under the log folder.
pub const TLS_DIR: &str = "arbiter-tls";

/// The failover service's flags for a cluster's authentication.
pub fn auth_args(auth: ClusterAuth) -> Vec<String> {
    match auth {
        ClusterAuth::None => Vec::new(),
        ClusterAuth::Basic => {
            let doc: Value = serde_json::from_str(VENDOR_EXAMPLE).unwrap_or_default();
            let field = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
            vec![
                "--auth-username".into(),
                field("username"),
                "--auth-password".into(),
                field("password"),
            ]
        }
        ClusterAuth::Bearer { token_lifetime } => vec![
            "--oauth-client-id".into(),
            BEARER_CLIENT_ID.into(),
            "--oauth-client-secret".into(),
            BEARER_CLIENT_SECRET.into(),
            "--oauth-token-lifetime".into(),
            format_timespan(token_lifetime),
        ],
    }
}

/// Binaries of the pair, by component kind.
pub const SOURCE_BIN: &str = "fake-data-source";
/// The endpoint binary.
pub const ENDPOINT_BIN: &str = "fake-endpoint";
/// The arbiter binary.
pub const ARBITER_BIN: &str = "failover-arbiter";
/// The adapter binary.
pub const ADAPTER_BIN: &str = "adapter";

/// Where the service binaries are: `FAILOVER_LAB_BIN_DIR`, else beside this executable (or
/// one folder up, for test executables in `target/*/deps`). Started by `cargo run -p
/// failover-lab` on a fresh clone, where cargo built only this binary, it builds the others
/// first (`cargo build --workspace --bins`, in this executable's profile), saying so.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("FAILOVER_LAB_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("cannot locate this executable")?;
    if let Some(dir) = bins_beside(&exe) {
        return Ok(dir);
    }
    if let (Some(cargo), Some(crate_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) {
        let release = exe
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "release");
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--workspace", "--bins"])
            .current_dir(crate_dir);
        if release {
            build.arg("--release");
        }
        eprintln!(
            "failover-lab: the service binaries ({ADAPTER_BIN}, {ARBITER_BIN}, ...) are not built yet; \
             building them once with `cargo build --workspace --bins{}`",
            if release { " --release" } else { "" }
        );
        let status = build.status().context("cannot run cargo")?;
        if !status.success() {
            bail!("building the service binaries failed ({status})");
        }
        if let Some(dir) = bins_beside(&exe) {
            return Ok(dir);
        }
    }
    bail!(
        "cannot find the service binaries ({ADAPTER_BIN}, {ARBITER_BIN}, ...) beside {}; build them with \
         `cargo build --release --workspace` or set FAILOVER_LAB_BIN_DIR",
        exe.display()
    )
}

/// The folder holding the service binaries: the executable's, or one or two up.
fn bins_beside(exe: &Path) -> Option<PathBuf> {
    exe.ancestors()
        .skip(1)
        .take(2)
        .find(|dir| dir.join(ADAPTER_BIN).exists())
        .map(Path::to_path_buf)
}

/// A loopback address of its own for one cluster (somewhere in 127.0.0.0/8, never 127.0.0.1),
/// so clusters started side by side cannot take each other's ports.
pub fn cluster_ip() -> std::net::Ipv4Addr {
    use rand::Rng;
    let mut rng = rand::rng();
    std::net::Ipv4Addr::new(
        127,
        rng.random_range(1..=254),
        rng.random_range(0..=255),
        rng.random_range(1..=254),
    )
}

/// `n` distinct free ports on `ip`, each held by a listener: drop the listeners just before
/// the services bind, after anything else on `ip` has bound its own port 0.
pub fn hold_ports(ip: std::net::Ipv4Addr, n: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    (0..n)
        .map(|_| std::net::TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}")))
        .collect()
}

/// The failover service's flags for its vendor API: always served (plain HTTP, or HTTPS with
/// the cluster's self-signed identity when the cluster uses TLS), with the vendor example's
/// username as a member and [`CFS_ADMIN`] as administrator under basic authentication.
fn cfs_args(spec: &ClusterSpec, addrs: &Addresses, log_dir: &Path) -> anyhow::Result<Vec<String>> {
    let Some(cfs) = addrs.arbiter_cfs else {
        return Ok(Vec::new());
    };
    let mut args = vec!["--cfs-listen".to_string(), cfs.to_string()];
    match spec.tls {
        ClusterTls::Off => args.push("--cfs-plain-http".into()),
        _ => args.extend([
            "--cfs-cert-dir".into(),
            log_dir.join(TLS_DIR).display().to_string(),
        ]),
    }
    if spec.auth == ClusterAuth::Basic {
        let doc: Value = serde_json::from_str(VENDOR_EXAMPLE)?;
        let field = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
        let users = serde_json::json!({
            "members": [{"username": field("username"), "password": field("password")}],
            "administrators": [{"username": CFS_ADMIN.0, "password": CFS_ADMIN.1}],
        });
        let path = log_dir.join("cfs-users.json");
        std::fs::write(&path, users.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
        args.extend(["--cfs-users".into(), path.display().to_string()]);
    }
    Ok(args)
}

/// One running (or stopped) component.
#[derive(Debug)]
pub struct Component {
    /// Its name in the cluster.
    pub name: String,
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<tokio::process::Child>,
    /// Paused with SIGSTOP.
    pub paused: bool,
}

impl Component {
    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let child = tokio::process::Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env(
                "RUST_LOG",
                std::env::var("FAILOVER_LAB_LOG").unwrap_or_else(|_| "info".into()),
            )
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    fn signal(&self, sig: rustix::process::Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.name))?;
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid)?).context("bad pid")?;
        rustix::process::kill_process(pid, sig)
            .with_context(|| format!("signal to {}", self.name))?;
        Ok(())
    }
}

/// What part of the data source a fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceFaultTarget {
    /// Every subscription ends; every call is refused.
    WholeSource,
    /// One component's streams stop.
    Component {
        /// The component.
        component: u32,
        /// Only for this client (None: for everyone).
        for_client: Option<String>,
    },
    /// One client's connection is cut.
    Connection(String),
}

impl SourceFaultTarget {
    /// Fails (`down`) or heals this part of the source through `client`; an error carries the
    /// source's refusal.
    pub async fn inject(
        &self,
        client: &mut failover_proto::v1::data_source_client::DataSourceClient<
            tonic::transport::Channel,
        >,
        down: bool,
    ) -> anyhow::Result<()> {
        use failover_proto::v1::source_fault::Target;
        let (target, for_client) = match self {
            SourceFaultTarget::WholeSource => (Target::WholeSource(true), String::new()),
            SourceFaultTarget::Component {
                component,
                for_client,
            } => (
                Target::Component(*component),
                for_client.clone().unwrap_or_default(),
            ),
            SourceFaultTarget::Connection(client) => {
                (Target::ClientId(client.clone()), String::new())
            }
        };
        client
            .inject_fault(failover_proto::v1::SourceFault {
                target: Some(target),
                down,
                for_client,
            })
            .await
            .map_err(|s| anyhow::anyhow!("source refused the fault: {}", s.message()))?;
        Ok(())
    }
}

/// Addresses of a running pair.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// gRPC of the source.
    pub source: SocketAddr,
    /// gRPC of the endpoint.
    pub endpoint: SocketAddr,
    /// gRPC of the arbiter.
    pub arbiter: SocketAddr,
    /// REST admin of the arbiter (and its `/metrics`).
    pub arbiter_rest: SocketAddr,
    /// The arbiter's vendor API (`/api/v1/clientfailover`; None where it is not served).
    pub arbiter_cfs: Option<SocketAddr>,
    /// The endpoint's `/metrics` over HTTP.
    pub endpoint_metrics: SocketAddr,
    /// REST API of each adapter (and its `/metrics`).
    pub adapters: BTreeMap<String, SocketAddr>,
    /// How to reach the arbiter's gRPC over TLS (trusting its CA), when it serves TLS.
    pub arbiter_tls: Option<failover_proto::tls::ClientTls>,
}

impl Addresses {
    /// `http://` URL of a gRPC address.
    pub fn url(addr: SocketAddr) -> String {
        format!("http://{addr}")
    }

    /// URL of the arbiter's gRPC: `https://` when it serves TLS.
    pub fn arbiter_url(&self) -> String {
        match &self.arbiter_tls {
            Some(_) => format!("https://{}", self.arbiter),
            None => Self::url(self.arbiter),
        }
    }

    /// A connection to the arbiter's gRPC, over TLS when it serves TLS.
    pub async fn arbiter_channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        Ok(tonic::transport::Endpoint::from_shared(self.arbiter_url())?
            .connect_timeout(Duration::from_millis(500))
            .connect_with_connector(failover_proto::net::Connector::new(
                failover_proto::net::Network::tcp(),
                self.arbiter_tls.clone(),
            ))
            .await?)
    }
}

/// A running pair.
#[derive(Debug)]
pub struct Cluster {
    /// Its shape.
    pub spec: ClusterSpec,
    /// Where everything listens.
    pub addrs: Addresses,
    components: BTreeMap<String, Component>,
    /// One proxy per (adapter, service) link.
    links: BTreeMap<(String, String), Proxy>,
    log_dir: PathBuf,
    _temp: Option<TempDir>,
    http: reqwest::Client,
    /// Set for the compose target: faults go through docker compose, not signals and proxies.
    compose: Option<Compose>,
    /// Source faults injected and not yet healed (healed when the cluster shuts down).
    source_faults: Vec<SourceFaultTarget>,
    /// An endpoint outage is in force.
    endpoint_down: bool,
    /// Keep the logs (a failing scenario).
    keep: bool,
    /// The REST address of each adapter started beside the pair (twins, standalone), by key.
    extra_rest: BTreeMap<String, SocketAddr>,
}

/// A folder removed when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Cluster {
    /// Starts the source, endpoint and arbiter, waits until they serve, then the adapters, and
    /// waits until their REST APIs answer. The adapters start without a ClientFailover
    /// document, as standalone adapters (writing to the endpoint's `standalone` group, which no
    /// audit of a failover group counts): configure them next, for example with
    /// [`crate::observe::configure_in_order`].
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        let bins = bin_dir()?;
        let (log_dir, temp) = match &spec.log_dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                (d.clone(), None)
            }
            None => {
                let d = std::env::temp_dir().join(format!(
                    "failover-lab-{}-{}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                std::fs::create_dir_all(&d)?;
                (d.clone(), Some(TempDir(d)))
            }
        };
        let ip = cluster_ip();
        if spec.failover_protocol == ClusterProtocol::Rest
            && matches!(spec.auth, ClusterAuth::Bearer { .. })
        {
            bail!(
                "bearer tokens are not taken on the vendor's REST API (its on-premises service knows basic authentication); use auth = \"basic\" with the rest protocol"
            );
        }
        let held = hold_ports(ip, 6 + spec.adapters.len())?;
        let ports: Vec<u16> = held
            .iter()
            .map(|l| Ok(l.local_addr()?.port()))
            .collect::<anyhow::Result<_>>()?;
        let at = |i: usize| SocketAddr::from((ip, ports[i]));
        let addrs = Addresses {
            source: at(0),
            endpoint: at(1),
            arbiter: at(2),
            arbiter_rest: at(3),
            endpoint_metrics: at(4),
            arbiter_cfs: Some(at(5)),
            adapters: spec
                .adapters
                .iter()
                .enumerate()
                .map(|(i, a)| (a.clone(), at(6 + i)))
                .collect(),
            arbiter_tls: None,
        };
        let mut links = BTreeMap::new();
        for adapter in spec.adapters.iter().filter(|_| !spec.direct_links) {
            // REST adapters reach the service's vendor API over their link.
            let arbiter_target = match (spec.failover_protocol, addrs.arbiter_cfs) {
                (ClusterProtocol::Rest, Some(cfs)) => cfs,
                _ => addrs.arbiter,
            };
            for (service, target) in [
                (ARBITER, arbiter_target),
                (SOURCE, addrs.source),
                (ENDPOINT, addrs.endpoint),
            ] {
                let proxy = Proxy::start(ip, target)
                    .await
                    .context("cannot start a link proxy")?;
                links.insert((adapter.clone(), service.to_string()), proxy);
            }
        }
        // The proxies have their ports: release the services' for them to bind.
        drop(held);
        let mut cluster = Cluster {
            spec: spec.clone(),
            addrs: addrs.clone(),
            components: BTreeMap::new(),
            links,
            log_dir: log_dir.clone(),
            _temp: temp,
            compose: None,
            source_faults: Vec::new(),
            endpoint_down: false,
            keep: false,
            extra_rest: BTreeMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        };
        let s = |x: &dyn ToString| x.to_string();
        let mut source_args = vec![
            "--listen".into(),
            s(&addrs.source),
            "--streams".into(),
            s(&spec.streams),
            "--components".into(),
            s(&spec.components),
            "--rate".into(),
            s(&spec.rate_hz),
            "--seed".into(),
            s(&spec.seed),
            // Fixed, so a restarted source goes on with the same sequence numbers.
            "--origin-unix-ms".into(),
            s(&failover_proto::process::unix_ms()),
        ];
        if let Some(rate) = spec.history_rate {
            source_args.extend(["--history-rate".into(), s(&rate)]);
        }
        if let Some(n) = spec.max_clients {
            source_args.extend(["--max-clients".into(), s(&n)]);
        }
        cluster.add(SOURCE, bins.join(SOURCE_BIN), source_args)?;
        let mut endpoint_args = vec![
            "--listen".into(),
            s(&addrs.endpoint),
            "--metrics-listen".into(),
            s(&addrs.endpoint_metrics),
        ];
        endpoint_args.extend(break_args(&spec, ENDPOINT_BIN));
        cluster.add(ENDPOINT, bins.join(ENDPOINT_BIN), endpoint_args)?;
        cluster.add(
            ARBITER,
            bins.join(ARBITER_BIN),
            [
                "--listen".into(),
                s(&addrs.arbiter),
                "--rest-listen".into(),
                s(&addrs.arbiter_rest),
            ]
            .into_iter()
            .chain(cfs_args(&spec, &addrs, &log_dir)?)
            .chain(break_args(&spec, ARBITER_BIN))
            .chain(auth_args(spec.auth))
            .chain(match spec.tls {
                ClusterTls::Off => Vec::new(),
                _ => vec![
                    "--tls-self-signed".into(),
                    log_dir.join(TLS_DIR).display().to_string(),
                ],
            })
            .collect(),
        )?;
        if spec.tls != ClusterTls::Off {
            cluster.addrs.arbiter_tls = Some(cluster.wait_arbiter_ca().await?);
        }
        let addrs = cluster.addrs.clone();
        for name in [SOURCE, ENDPOINT, ARBITER] {
            let addr = match name {
                SOURCE => addrs.source,
                ENDPOINT => addrs.endpoint,
                _ => addrs.arbiter,
            };
            cluster
                .wait_grpc_healthy(name, addr, Duration::from_secs(10))
                .await?;
        }
        for name in &spec.adapters {
            let rest = addrs.adapters[name];
            let mut args = vec![
                "--name".into(),
                name.clone(),
                "--rest-listen".into(),
                s(&rest),
                "--source".into(),
                cluster.link_url(name, SOURCE)?,
                "--data-endpoint".into(),
                cluster.link_url(name, ENDPOINT)?,
                "--data-collection-mode".into(),
                spec.data_collection_mode.as_str().into(),
                "--warm-test-interval".into(),
                format_timespan(spec.warm_test_interval),
            ];
            if spec.tls == ClusterTls::TrustedCa {
                let ca = log_dir.join(TLS_DIR).join("ca.pem");
                args.extend(["--trusted-ca".into(), ca.display().to_string()]);
            }
            if spec.disk_buffer {
                let dir = log_dir.join(format!("{name}.buffer"));
                args.extend(["--buffer-dir".into(), dir.display().to_string()]);
            }
            args.extend(spec.adapter_args.iter().cloned());
            args.extend(break_args(&spec, ADAPTER_BIN));
            cluster.add(name, bins.join(ADAPTER_BIN), args)?;
        }
        for name in spec.adapters.clone() {
            cluster.wait_rest(&name, Duration::from_secs(10)).await?;
        }
        Ok(cluster)
    }

    /// Uses the services of the compose project in `dir` (started if they are not), instead of
    /// processes: their published ports on 127.0.0.1, as compose reports them (by default source
    /// 50051, endpoint 50052, arbiter 50053 and 5591, adapter-a 5590, adapter-b 5592; moved by
    /// `FAILOVER_LAB_<SERVICE>_PORT`). Each run uses a group of its own, so the
    /// endpoint audits it alone. The source's shape is the compose file's: 8 streams in 4
    /// components at 10 Hz.
    pub async fn start_compose(mut spec: ClusterSpec, dir: &Path) -> anyhow::Result<Cluster> {
        if !spec.broken.is_none() {
            bail!(
                "the compose services keep every rule; a file with cluster.break runs on --target processes or sim"
            );
        }
        if spec.max_clients.is_some() {
            bail!(
                "the compose source takes any number of clients; a file with cluster.max_clients runs on --target processes or sim"
            );
        }
        if spec.failover_protocol != ClusterProtocol::Grpc {
            bail!(
                "the compose adapters talk gRPC to the failover service (docker/ClientFailover.json); run failover_protocol = \"rest\" on --target processes"
            );
        }
        if spec.auth != ClusterAuth::None || spec.tls != ClusterTls::Off {
            bail!(
                "the compose failover service runs with the flags of docker-compose.yml; this \
                 scenario needs {:?} and TLS {:?} (cluster.auth, cluster.tls): run it with \
                 --target processes",
                spec.auth,
                spec.tls
            );
        }
        let compose_shape = (8, 4, 10.0, None);
        if (
            spec.streams,
            spec.components,
            spec.rate_hz,
            spec.history_rate,
        ) != compose_shape
            || spec.adapters != ["adapter-a", "adapter-b"]
        {
            bail!(
                "the compose services have adapter-a and adapter-b and a source of 8 streams in 4 \
                 components at 10 Hz with unthrottled history; this scenario needs {} streams, {} \
                 components, {} Hz, history_rate {:?}, adapters {:?}: run it with --target processes",
                spec.streams,
                spec.components,
                spec.rate_hz,
                spec.history_rate,
                spec.adapters
            );
        }
        let compose = Compose::detect(dir).await?;
        compose.run(&["up", "-d"]).await?;
        spec.group_id = format!("{}-{:08x}", spec.group_id, rand::random::<u32>());
        let (log_dir, temp) = match &spec.log_dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                (d.clone(), None)
            }
            None => {
                let d = std::env::temp_dir().join(format!(
                    "failover-lab-compose-{:08x}",
                    rand::random::<u32>()
                ));
                std::fs::create_dir_all(&d)?;
                (d.clone(), Some(TempDir(d)))
            }
        };
        let addrs = Addresses {
            source: compose.host_addr("fake-data-source", 50051).await?,
            endpoint: compose.host_addr("fake-endpoint", 50052).await?,
            arbiter: compose.host_addr("failover-arbiter", 50053).await?,
            arbiter_rest: compose.host_addr("failover-arbiter", 5591).await?,
            arbiter_cfs: None,
            endpoint_metrics: compose.host_addr("fake-endpoint", 9102).await?,
            adapters: [
                (
                    "adapter-a".to_string(),
                    compose.host_addr("adapter-a", 5590).await?,
                ),
                (
                    "adapter-b".to_string(),
                    compose.host_addr("adapter-b", 5590).await?,
                ),
            ]
            .into(),
            arbiter_tls: None,
        };
        let mut cluster = Cluster {
            spec: spec.clone(),
            addrs: addrs.clone(),
            components: BTreeMap::new(),
            links: BTreeMap::new(),
            log_dir,
            _temp: temp,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            compose: Some(compose),
            source_faults: Vec::new(),
            endpoint_down: false,
            keep: false,
            extra_rest: BTreeMap::new(),
        };
        for (name, addr) in [
            (SOURCE, addrs.source),
            (ENDPOINT, addrs.endpoint),
            (ARBITER, addrs.arbiter),
        ] {
            cluster
                .wait_grpc_healthy(name, addr, Duration::from_secs(120))
                .await?;
        }
        let ds = serde_json::json!({ "dataCollectionMode": spec.data_collection_mode.as_str() });
        for name in &spec.adapters {
            cluster.wait_rest(name, Duration::from_secs(120)).await?;
            cluster
                .adapter_rest(
                    name,
                    reqwest::Method::PUT,
                    "/configuration/Source1/DataSource",
                    Some(&ds),
                )
                .await?;
        }
        Ok(cluster)
    }

    /// True on the compose target.
    pub fn is_compose(&self) -> bool {
        self.compose.is_some()
    }

    fn add(&mut self, name: &str, binary: PathBuf, args: Vec<String>) -> anyhow::Result<()> {
        let mut c = Component {
            name: name.to_string(),
            binary,
            args,
            log: self.log_dir.join(format!("{name}.log")),
            child: None,
            paused: false,
        };
        c.spawn()?;
        self.components.insert(name.to_string(), c);
        Ok(())
    }

    /// The process id of a running component (None on compose, or when it is not running).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.components.get(name).and_then(Component::pid)
    }

    fn component(&mut self, name: &str) -> anyhow::Result<&mut Component> {
        let known: Vec<String> = self.components.keys().cloned().collect();
        self.components.get_mut(name).with_context(|| {
            format!(
                "no component {name:?}; the cluster has {}",
                known.join(", ")
            )
        })
    }

    /// Keeps the log folder when the cluster is dropped (for a failing test).
    pub fn keep_logs(&mut self) {
        self.keep = true;
        if let Some(t) = self._temp.take() {
            std::mem::forget(t);
        }
    }

    /// The folder holding every component's log.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Puts the ClientFailover document (the vendor's, adapted) to an adapter; its failover
    /// service URL goes through the adapter's link proxy to the arbiter.
    pub async fn configure(&self, adapter: &str) -> anyhow::Result<Value> {
        self.configure_with(adapter, None).await
    }

    /// [`Cluster::configure`] with `changes` merged into the document (None: as it is).
    pub async fn configure_with(
        &self,
        adapter: &str,
        changes: Option<&serde_json::Map<String, Value>>,
    ) -> anyhow::Result<Value> {
        let arbiter = if self.compose.is_some() {
            "http://failover-arbiter-control:50053".to_string()
        } else if self.spec.failover_protocol == ClusterProtocol::Rest {
            format!("{}/api/v1/clientfailover", self.link_url(adapter, ARBITER)?)
        } else {
            self.link_url(adapter, ARBITER)?
        };
        let mut doc = self.spec.client_failover_document(&arbiter)?;
        merge(&mut doc, changes);
        self.put_client_failover(adapter, &doc.to_string()).await
    }

    /// Starts an adapter beside the pair: a twin (its namesake's name and document) or a
    /// standalone adapter, on a port of its own, reaching the services directly (no link
    /// proxy), with its log beside the others; waits until it serves its REST API, and gives a
    /// twin its document. Refused on compose, whose file runs the pair's two adapters only.
    pub async fn start_extra(&mut self, extra: &crate::stage::Extra) -> anyhow::Result<()> {
        if self.compose.is_some() {
            bail!(
                "{}: the compose file runs the pair's two adapters only; run it on --target processes or sim",
                match extra {
                    crate::stage::Extra::Twin(_) => "start_twin",
                    crate::stage::Extra::Standalone(_) => "start_standalone",
                }
            );
        }
        let key = extra.key();
        if self.components.get(&key).is_some_and(|c| c.child.is_some()) {
            bail!("{key} runs already");
        }
        let rest = match self.extra_rest.get(&key) {
            Some(addr) => *addr,
            None => {
                let ip = match self.addrs.source.ip() {
                    std::net::IpAddr::V4(ip) => ip,
                    std::net::IpAddr::V6(_) => cluster_ip(),
                };
                let held = hold_ports(ip, 1)?;
                let addr = held[0].local_addr()?;
                drop(held);
                addr
            }
        };
        let s = |x: &dyn ToString| x.to_string();
        let args = vec![
            "--name".into(),
            extra.name().to_string(),
            "--rest-listen".into(),
            s(&rest),
            "--source".into(),
            Addresses::url(self.addrs.source),
            "--data-endpoint".into(),
            Addresses::url(self.addrs.endpoint),
            "--data-collection-mode".into(),
            self.spec.data_collection_mode.as_str().into(),
            "--warm-test-interval".into(),
            format_timespan(self.spec.warm_test_interval),
        ];
        self.extra_rest.insert(key.clone(), rest);
        match self.components.get_mut(&key) {
            Some(c) => c.spawn()?,
            None => self.add(&key, bin_dir()?.join(ADAPTER_BIN), args)?,
        }
        self.wait_extra_rest(&key, rest, Duration::from_secs(10))
            .await?;
        if let crate::stage::Extra::Twin(name) = extra {
            let arbiter = match (self.spec.failover_protocol, self.addrs.arbiter_cfs) {
                (ClusterProtocol::Rest, Some(cfs)) => {
                    format!("{}/api/v1/clientfailover", Addresses::url(cfs))
                }
                _ => self.addrs.arbiter_url(),
            };
            let doc = self.spec.client_failover_document(&arbiter)?;
            let url = format!("http://{rest}/api/v1/configuration/System/ClientFailover");
            self.rest(reqwest::Method::PUT, &url, Some(&doc))
                .await
                .with_context(|| format!("configuring the twin of {name}"))?;
        }
        Ok(())
    }

    async fn wait_extra_rest(
        &mut self,
        key: &str,
        rest: SocketAddr,
        within: Duration,
    ) -> anyhow::Result<()> {
        let url = format!("http://{rest}/api/v1/diagnostics/FailoverState");
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.http.get(&url).send().await.is_ok() {
                return Ok(());
            }
            self.check_alive(key)?;
            if tokio::time::Instant::now() >= deadline {
                bail!("{key} did not serve its REST API within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL an adapter reaches a service at: its link proxy, or the service itself with
    /// [`ClusterSpec::direct_links`].
    pub fn link_url(&self, adapter: &str, service: &str) -> anyhow::Result<String> {
        if !self.spec.direct_links {
            return Ok(Addresses::url(self.link(adapter, service)?.listen));
        }
        Ok(Addresses::url(match service {
            SOURCE => self.addrs.source,
            ENDPOINT => self.addrs.endpoint,
            ARBITER => match (self.spec.failover_protocol, self.addrs.arbiter_cfs) {
                (ClusterProtocol::Rest, Some(cfs)) => cfs,
                _ => self.addrs.arbiter,
            },
            other => bail!(
                "no service {other:?}; links go to {}",
                LINK_SERVICES.join(", ")
            ),
        }))
    }

    /// The proxy on the link between an adapter and a service (arbiter, source or endpoint).
    pub fn link(&self, adapter: &str, service: &str) -> anyhow::Result<&Proxy> {
        self.links
            .get(&(adapter.to_string(), service.to_string()))
            .with_context(|| {
                format!(
                    "no link between {adapter:?} and {service:?}; links join an adapter ({}) to {}",
                    self.spec.adapters.join(", "),
                    LINK_SERVICES.join(", ")
                )
            })
    }

    /// The HTTP client for REST calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// PUTs a ClientFailover document text to an adapter; errors carry the adapter's message.
    pub async fn put_client_failover(&self, adapter: &str, body: &str) -> anyhow::Result<Value> {
        let doc: Value =
            serde_json::from_str(body).context("the ClientFailover document is not JSON")?;
        self.adapter_rest(
            adapter,
            reqwest::Method::PUT,
            "/configuration/System/ClientFailover",
            Some(&doc),
        )
        .await
    }

    /// Calls an adapter's REST API (`path` after `/api/v1`) with an optional JSON body; the
    /// answer's JSON (null when empty), or an error with the status and the adapter's message.
    pub async fn adapter_rest(
        &self,
        adapter: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("http://{}/api/v1{path}", self.rest_addr(adapter)?);
        self.rest(method, &url, body)
            .await
            .with_context(|| adapter.to_string())
    }

    /// Calls a REST URL with an optional JSON body; the answer's JSON, or an error with the
    /// status and the server's message.
    pub async fn rest(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method.clone(), url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        crate::stage::rest_answer(&format!("{method} {url}"), status.as_u16(), &body)
    }

    /// An adapter's REST address.
    pub fn rest_addr(&self, adapter: &str) -> anyhow::Result<SocketAddr> {
        self.addrs
            .adapters
            .get(adapter)
            .copied()
            .with_context(|| format!("no adapter {adapter:?}"))
    }

    /// The endpoint's audit of this cluster's group: every stream, from its first point to its
    /// last.
    pub async fn audit(&self) -> anyhow::Result<failover_proto::v1::AuditReport> {
        self.audit_of(false).await
    }

    /// [`Cluster::audit`], with the coverage or without.
    async fn audit_of(
        &self,
        include_coverage: bool,
    ) -> anyhow::Result<failover_proto::v1::AuditReport> {
        crate::observe::Observer::audit(
            &self.addrs,
            failover_proto::v1::AuditRequest {
                group_id: self.spec.group_id.clone(),
                include_coverage,
                ..Default::default()
            },
        )
        .await
    }

    /// Who delivered each source tick of this cluster's group to the endpoint.
    pub async fn coverage(&self) -> anyhow::Result<Vec<failover_proto::v1::CoverageRun>> {
        Ok(self.audit_of(true).await?.coverage)
    }

    /// An adapter's FailoverState document.
    pub async fn failover_state(&self, adapter: &str) -> anyhow::Result<Value> {
        self.adapter_rest(
            adapter,
            reqwest::Method::GET,
            "/diagnostics/FailoverState",
            None,
        )
        .await
    }

    async fn wait_rest(&mut self, name: &str, within: Duration) -> anyhow::Result<()> {
        let url = format!(
            "http://{}/api/v1/diagnostics/FailoverState",
            self.rest_addr(name)?
        );
        let http = self.http.clone();
        self.wait_serving(name, within, "serve its REST API", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.is_ok() }
        })
        .await
    }

    async fn wait_grpc_healthy(
        &mut self,
        name: &str,
        addr: SocketAddr,
        within: Duration,
    ) -> anyhow::Result<()> {
        if name == ARBITER && self.addrs.arbiter_tls.is_some() {
            let addrs = self.addrs.clone();
            return self
                .wait_serving(name, within, "become healthy over TLS", || {
                    let addrs = addrs.clone();
                    async move {
                        match addrs.arbiter_channel().await {
                            Ok(channel) => channel_healthy(channel).await,
                            Err(_) => false,
                        }
                    }
                })
                .await;
        }
        self.wait_serving(name, within, "become healthy", || grpc_healthy(addr))
            .await
    }

    /// Waits for the arbiter to write its self-signed CA, and trusts it.
    async fn wait_arbiter_ca(&mut self) -> anyhow::Result<failover_proto::tls::ClientTls> {
        let ca = self.log_dir.join(TLS_DIR).join("ca.pem");
        let probe_ca = ca.clone();
        self.wait_serving(
            ARBITER,
            Duration::from_secs(10),
            "write its TLS CA",
            move || {
                let exists = probe_ca.exists();
                async move { exists }
            },
        )
        .await?;
        Ok(failover_proto::tls::ClientTls::new(true, &[ca])?)
    }

    /// Polls `probe` every 50 ms until it answers true; fails if the process exits (on the
    /// processes target) or `within` passes, naming what it waited for and where the log is.
    async fn wait_serving<F, Fut>(
        &mut self,
        name: &str,
        within: Duration,
        what: &str,
        mut probe: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + within;
        loop {
            if probe().await {
                return Ok(());
            }
            if self.compose.is_none() {
                self.check_alive(name)?;
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} did not {what} within {within:?}; see {}",
                    self.log_dir.join(format!("{name}.log")).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn check_alive(&mut self, name: &str) -> anyhow::Result<()> {
        let log = self.log_dir.join(format!("{name}.log"));
        let c = self.component(name)?;
        if let Some(child) = c.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "{name} exited ({status}); last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// SIGKILL: the process dies at once, nothing flushed.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        if let Some(c) = &self.compose {
            return c.kill(name).await;
        }
        let c = self.component(name)?;
        let mut child = c
            .child
            .take()
            .with_context(|| format!("{name} is not running"))?;
        child.start_kill()?;
        let _ = child.wait().await;
        c.paused = false;
        Ok(())
    }

    /// SIGSTOP: the process is frozen (its sockets stay open).
    pub async fn pause(&mut self, name: &str) -> anyhow::Result<()> {
        self.freeze(name, true).await
    }

    /// SIGCONT.
    pub async fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        self.freeze(name, false).await
    }

    async fn freeze(&mut self, name: &str, frozen: bool) -> anyhow::Result<()> {
        if let Some(c) = self.compose.as_mut() {
            return if frozen {
                c.pause(name).await
            } else {
                c.resume(name).await
            };
        }
        let c = self.component(name)?;
        c.signal(if frozen {
            rustix::process::Signal::STOP
        } else {
            rustix::process::Signal::CONT
        })?;
        c.paused = frozen;
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, name: &str, grace: Duration) -> anyhow::Result<()> {
        if let Some(c) = &self.compose {
            return c.stop(name, grace).await;
        }
        let c = self.component(name)?;
        if c.paused {
            c.signal(rustix::process::Signal::CONT)?;
        }
        let Some(mut child) = c.child.take() else {
            return Ok(());
        };
        c.paused = false;
        if let Some(pid) = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            child.start_kill()?;
            let _ = child.wait().await;
        }
        Ok(())
    }

    /// Starts a stopped or killed component again, on the same ports; an adapter is configured
    /// again through its REST API, as an operator's tooling would.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        self.restart_with(name, None).await
    }

    /// [`Cluster::restart`], an adapter configured with the cluster's document with `changes`
    /// merged in.
    pub async fn restart_with(
        &mut self,
        name: &str,
        changes: Option<&serde_json::Map<String, Value>>,
    ) -> anyhow::Result<()> {
        if let Some(c) = self.compose.as_mut() {
            c.restart(name).await?;
        } else {
            if self.component(name)?.child.is_some() {
                self.stop(name, Duration::from_secs(3)).await?;
            }
            self.component(name)?.spawn()?;
        }
        let within = if self.compose.is_some() {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(10)
        };
        if self.addrs.adapters.contains_key(name) {
            self.wait_rest(name, within).await?;
            if self.compose.is_some() {
                let ds = serde_json::json!({ "dataCollectionMode": self.spec.data_collection_mode.as_str() });
                self.adapter_rest(
                    name,
                    reqwest::Method::PUT,
                    "/configuration/Source1/DataSource",
                    Some(&ds),
                )
                .await?;
            }
            self.configure_with(name, changes).await?;
        } else {
            let addr = match name {
                SOURCE => self.addrs.source,
                ENDPOINT => self.addrs.endpoint,
                _ => self.addrs.arbiter,
            };
            self.wait_grpc_healthy(name, addr, within).await?;
        }
        Ok(())
    }

    /// Fails (`down` true) or heals a part of the data source: the whole source, one component
    /// (for everyone, or for one client only), or one client's connection.
    pub async fn source_fault(
        &mut self,
        fault: SourceFaultTarget,
        down: bool,
    ) -> anyhow::Result<()> {
        if down {
            self.source_faults.push(fault.clone());
        } else {
            self.source_faults.retain(|f| *f != fault);
        }
        let mut client = failover_proto::v1::data_source_client::DataSourceClient::connect(
            Addresses::url(self.addrs.source),
        )
        .await?;
        fault.inject(&mut client, down).await
    }

    /// Starts (`down` true) or ends a simulated endpoint outage.
    pub async fn endpoint_outage(&mut self, down: bool) -> anyhow::Result<()> {
        self.endpoint_down = down;
        let mut client = failover_proto::v1::data_endpoint_client::DataEndpointClient::connect(
            Addresses::url(self.addrs.endpoint),
        )
        .await?;
        client
            .set_outage(failover_proto::v1::OutageRequest { down })
            .await?;
        Ok(())
    }

    /// Stops everything: adapters first, then the services; SIGTERM with a grace period.
    pub async fn shutdown(&mut self) {
        if self.compose.is_some() {
            if let Err(e) = self.restore_compose().await {
                eprintln!("could not put the compose services back as they were: {e:#}");
            }
            return;
        }
        let mut order: Vec<String> = self.spec.adapters.clone();
        order.extend([ARBITER, SOURCE, ENDPOINT].map(String::from));
        for name in order {
            let _ = self.stop(&name, Duration::from_secs(3)).await;
        }
    }
}

impl Cluster {
    /// Changes a link between an adapter and a service (arbiter, source or endpoint).
    /// `from_adapter`: a one-way change goes from the adapter to the service (else back).
    pub async fn change_link(
        &mut self,
        adapter: &str,
        service: &str,
        change: &LinkChange,
        from_adapter: bool,
    ) -> anyhow::Result<()> {
        if let Some(c) = self.compose.as_mut() {
            return match change {
                LinkChange::Cut { one_way: false } => c.set_link(adapter, service, true).await,
                LinkChange::Heal => c.set_link(adapter, service, false).await,
                _ => bail!(
                    "one-way cuts, blackholes and latency need the link proxies of --target processes; on compose a link is cut both ways (docker network disconnect)"
                ),
            };
        }
        let proxy = self.link(adapter, service)?;
        proxy.set(|st| match change {
            LinkChange::Heal => *st = crate::proxy::LinkState::default(),
            LinkChange::Cut { one_way: false } => st.cut = true,
            LinkChange::Cut { one_way: true } if from_adapter => st.drop_forward = true,
            LinkChange::Cut { one_way: true } => st.drop_backward = true,
            LinkChange::Blackhole => {
                st.drop_forward = true;
                st.drop_backward = true;
            }
            LinkChange::Latency { ms, one_way } => {
                let d = Duration::from_millis(*ms);
                if !*one_way || from_adapter {
                    st.latency_forward = d;
                }
                if !*one_way || !from_adapter {
                    st.latency_backward = d;
                }
            }
        });
        Ok(())
    }

    /// Puts the compose services back as a scenario found them: faults healed, links and
    /// services back, adapters configured with docker/ClientFailover.json again.
    async fn restore_compose(&mut self) -> anyhow::Result<()> {
        if self.keep
            && let Some(c) = &self.compose
        {
            let _ = c.save_logs(&self.log_dir.join("compose.log")).await;
        }
        for f in std::mem::take(&mut self.source_faults) {
            let _ = self.source_fault(f, false).await;
        }
        if self.endpoint_down {
            let _ = self.endpoint_outage(false).await;
        }
        let dir = match self.compose.as_mut() {
            Some(c) => {
                c.restore().await?;
                c.dir.clone()
            }
            None => return Ok(()),
        };
        let doc = std::fs::read_to_string(dir.join("docker/ClientFailover.json"))
            .context("docker/ClientFailover.json")?;
        let ds = serde_json::json!({ "dataCollectionMode": "CurrentOnly" });
        for name in self.spec.adapters.clone() {
            self.wait_rest(&name, Duration::from_secs(60)).await?;
            self.adapter_rest(
                &name,
                reqwest::Method::PUT,
                "/configuration/Source1/DataSource",
                Some(&ds),
            )
            .await?;
            self.put_client_failover(&name, &doc).await?;
            crate::config_client::wait_for_role(
                &self.addrs.adapters[&name].ip().to_string(),
                self.addrs.adapters[&name].port(),
                Duration::from_secs(30),
            )
            .await?;
        }
        Ok(())
    }
}

/// True when the gRPC health service at `addr` answers SERVING.
pub async fn grpc_healthy(addr: SocketAddr) -> bool {
    grpc_healthy_at(&addr.to_string()).await
}

/// True when the gRPC health service at `host:port` answers SERVING.
pub async fn grpc_healthy_at(addr: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return false;
    };
    let Ok(channel) = endpoint
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
    else {
        return false;
    };
    channel_healthy(channel).await
}

/// True when the gRPC health service on `channel` answers SERVING.
async fn channel_healthy(channel: tonic::transport::Channel) -> bool {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            client.check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        )
        .await,
        Ok(Ok(r)) if r.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    )
}

/// The hidden `--break RULE` flags of the rules `binary` breaks, of those the cluster breaks.
fn break_args(spec: &ClusterSpec, binary: &str) -> Vec<String> {
    spec.broken
        .rules()
        .into_iter()
        .filter(|r| r.service() == binary)
        .flat_map(|r| ["--break".to_string(), r.name().to_string()])
        .collect()
}

/// Merges `changes` into a JSON object (each key replaced), as a ClientFailover document PATCH
/// does for these fields.
pub fn merge(doc: &mut Value, changes: Option<&serde_json::Map<String, Value>>) {
    if let (Value::Object(d), Some(c)) = (doc, changes) {
        for (k, v) in c {
            d.insert(k.clone(), v.clone());
        }
    }
}
