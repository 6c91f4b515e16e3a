//! The processes stage: a failover pair as real processes on loopback. The data source, the
//! endpoint, the arbiter and the adapters are each a binary started beside `failover-lab`
//! ([`binaries`]), on free ports of a loopback address of their own, with a log file each
//! ([`component`]). Every adapter reaches every service through a link proxy
//! ([`crate::proxy`]). Faults are real: SIGKILL, SIGSTOP/SIGCONT, SIGTERM, restart on the same
//! ports, cut or slowed links. Everything is killed when the [`Cluster`] is dropped, even on a
//! failure. The runner drives it as a [`crate::stage::Stage`] ([`as_stage`]); the tests and
//! benchmarks call it directly.

mod adapters;
mod as_stage;
pub mod binaries;
pub mod component;
pub mod etcd;
mod refusal;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use failover_core::timespan::format_timespan;
use failover_scenario::program::{Configure, fill_json};
use serde_json::Value;

use crate::{
    observe::Observer,
    proxy::Proxy,
    services::{PairApi, wait_until},
    stage::Extra,
};

pub use crate::services::{
    Addresses, SourceFaultTarget, grpc_healthy, grpc_healthy_at, merge, rest_answer,
};
pub use binaries::{
    ADAPTER_BIN, ARBITER_BIN, ENDPOINT_BIN, SOURCE_BIN, TLS_DIR, auth_args, bin_dir, cluster_ip,
    hold_ports,
};
pub use component::Component;
pub use failover_scenario::cluster::{
    ARBITER, BEARER_CLIENT_ID, BEARER_CLIENT_SECRET, CFS_ADMIN, ClusterAuth, ClusterEgress,
    ClusterProtocol, ClusterSource, ClusterSpec, ClusterStore, ClusterTls, ENDPOINT, LINK_SERVICES,
    LinkChange, SOURCE, VENDOR_EXAMPLE,
};
pub use refusal::{refusal, steps_refusal};

/// A running pair of processes.
#[derive(Debug)]
pub struct Cluster {
    /// Its shape.
    pub spec: ClusterSpec,
    /// Where everything listens.
    pub addrs: Addresses,
    /// The data time of the source's tick 0 (unix ms): tick n's is this plus n periods.
    pub source_origin_unix_ms: i64,
    components: BTreeMap<String, Component>,
    /// One proxy per (adapter, service) link.
    links: BTreeMap<(String, String), Proxy>,
    log_dir: PathBuf,
    /// The log folder when the cluster made it (removed on drop unless the logs are kept).
    temp: Option<tempfile::TempDir>,
    /// The OPC UA source's certificate and key: a folder of their own, not in the logs.
    _source_pki: Option<tempfile::TempDir>,
    http: reqwest::Client,
    /// The REST address of each adapter started beside the pair (twins, standalone), by key.
    extra_rest: BTreeMap<String, SocketAddr>,
    /// With `store = "etcd"`: the etcd members, the second service and the lab's view of the
    /// leader.
    etcd: Option<etcd::EtcdFleet>,
}

/// Configures the cluster's adapters one at a time, each after the previous one has joined the
/// group, so the first configured becomes Primary (a lone member) on every run.
pub async fn configure_in_order(
    cluster: &Cluster,
    obs: &Observer,
    within: Duration,
) -> anyhow::Result<()> {
    crate::stage::configure_in_order(cluster, obs, within).await
}

/// The folder a stage keeps its logs in: `dir` when given (created), else a fresh temporary
/// folder named after `prefix`, removed when the returned guard is dropped.
pub(crate) fn log_folder(
    dir: Option<&Path>,
    prefix: &str,
) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            Ok((d.to_path_buf(), None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .context("cannot make a temporary log folder")?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
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
        let (log_dir, temp) = log_folder(spec.log_dir.as_deref(), "failover-lab-")?;
        let ip = cluster_ip();
        if let Some(why) = refusal(&spec) {
            bail!("cannot run on --target processes: {why}");
        }
        let etcd_ports = match spec.store {
            ClusterStore::Etcd { .. } => etcd::EXTRA_PORTS,
            ClusterStore::Memory => 0,
        };
        let held = hold_ports(ip, 7 + spec.adapters.len() + etcd_ports)?;
        let ports: Vec<u16> = held
            .iter()
            .map(|l| Ok(l.local_addr()?.port()))
            .collect::<anyhow::Result<_>>()?;
        let at = |i: usize| SocketAddr::from((ip, ports[i]));
        let addrs = Addresses {
            source: at(0),
            source_wire: (spec.source_protocol != ClusterSource::Grpc)
                .then(|| at(6 + spec.adapters.len())),
            endpoint: at(1),
            arbiter: at(2),
            arbiter_rest: at(3),
            endpoint_metrics: at(4),
            // Failover services sharing an etcd store are reached over gRPC only.
            arbiter_cfs: (spec.store == ClusterStore::Memory).then(|| at(5)),
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
            // OMF goes to the endpoint's HTTP side.
            let endpoint_target = match spec.egress {
                ClusterEgress::Grpc => addrs.endpoint,
                ClusterEgress::Omf => addrs.endpoint_metrics,
            };
            // MQTT and OPC UA go to the source's side for them.
            let source_target = addrs.source_wire.unwrap_or(addrs.source);
            for (service, target) in [
                (ARBITER, arbiter_target),
                (SOURCE, source_target),
                (ENDPOINT, endpoint_target),
            ] {
                let proxy = Proxy::start(ip, target)
                    .await
                    .context("cannot start a link proxy")?;
                links.insert((adapter.clone(), service.to_string()), proxy);
            }
        }
        let fleet = match spec.store {
            ClusterStore::Etcd { lease } => Some(
                etcd::EtcdFleet::plan(
                    ip,
                    &ports[7 + spec.adapters.len()..],
                    lease,
                    &spec.adapters,
                    &mut links,
                )
                .await?,
            ),
            ClusterStore::Memory => None,
        };
        // The proxies have their ports: release the services' for them to bind.
        drop(held);
        let source_pki = match spec.source_protocol {
            ClusterSource::OpcUa => Some(
                tempfile::Builder::new()
                    .prefix("failover-lab-opcua-pki-")
                    .tempdir()
                    .context("cannot make a folder for the OPC UA source's certificate")?,
            ),
            _ => None,
        };
        let origin_unix_ms = failover_proto::process::unix_ms();
        let mut cluster = Cluster {
            spec: spec.clone(),
            addrs: addrs.clone(),
            source_origin_unix_ms: origin_unix_ms,
            components: BTreeMap::new(),
            links,
            log_dir: log_dir.clone(),
            temp,
            _source_pki: None,
            extra_rest: BTreeMap::new(),
            http: crate::services::http_client()?,
            etcd: None,
        };
        let s = |x: &dyn ToString| x.to_string();
        let source_args = binaries::source_args(
            &spec,
            &addrs,
            origin_unix_ms,
            source_pki.as_ref().map(tempfile::TempDir::path),
        );
        cluster.add(SOURCE, bins.join(SOURCE_BIN), source_args)?;
        cluster._source_pki = source_pki;
        let mut endpoint_args = vec![
            "--listen".into(),
            s(&addrs.endpoint),
            "--metrics-listen".into(),
            s(&addrs.endpoint_metrics),
            // The source's tick, so OMF values (known by their timestamps) are its points.
            "--tick-origin-unix-ms".into(),
            s(&origin_unix_ms),
            "--tick-rate".into(),
            s(&spec.rate_hz),
        ];
        endpoint_args.extend(binaries::break_args(&spec, ENDPOINT_BIN));
        cluster.add(ENDPOINT, bins.join(ENDPOINT_BIN), endpoint_args)?;
        let store_args = match &fleet {
            Some(f) => {
                f.start_members(&mut cluster).await?;
                f.service_args(ARBITER, addrs.arbiter)
            }
            None => Vec::new(),
        };
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
            .chain(binaries::cfs_args(&spec, &addrs, &log_dir)?)
            .chain(binaries::break_args(&spec, ARBITER_BIN))
            .chain(store_args)
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
        if let Some(fleet) = fleet {
            etcd::start_second(&mut cluster, fleet, ip).await?;
        }
        for name in &spec.adapters {
            let (binary, args) = match spec.programs.get(name) {
                None => adapters::lab_command(&cluster, name, &bins)?,
                Some(program) => {
                    let values = adapters::placeholders(&cluster, name, &bins)?;
                    adapters::program_command(program, &values)?
                }
            };
            cluster.add(name, binary, args)?;
        }
        for name in spec.adapters.clone() {
            if spec
                .programs
                .get(&name)
                .is_some_and(|p| p.configure == Configure::CommandLine)
            {
                // It configures itself; the lab knows it by the failover service's view.
                continue;
            }
            cluster.wait_rest(&name, Duration::from_secs(10)).await?;
        }
        Ok(cluster)
    }

    /// The calls to this pair's services by address.
    pub fn api(&self) -> PairApi<'_> {
        PairApi {
            addrs: &self.addrs,
            group_id: &self.spec.group_id,
            http: &self.http,
        }
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
        if let Some(t) = self.temp.take() {
            let _ = t.keep();
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
        let arbiter = adapters::failover_url(self, adapter)?;
        if let Some(program) = self.spec.programs.get(adapter) {
            if program.configure == Configure::CommandLine {
                // Its command line carries its document.
                return Ok(Value::Null);
            }
            let values = adapters::placeholders(self, adapter, &bin_dir()?)?;
            for (path, body) in &program.put {
                let url = format!("http://{}{path}", self.rest_addr(adapter)?);
                self.rest(reqwest::Method::PUT, &url, Some(&fill_json(body, &values)))
                    .await
                    .with_context(|| format!("PUT {path} to {adapter}"))?;
            }
        }
        let mut doc = self.spec.client_failover_document(&arbiter)?;
        merge(&mut doc, changes);
        self.put_client_failover(adapter, &doc.to_string()).await
    }

    /// Starts an adapter beside the pair: a twin (its namesake's name and document) or a
    /// standalone adapter, on a port of its own, reaching the services directly (no link
    /// proxy), with its log beside the others; waits until it serves its REST API, and gives a
    /// twin its document.
    pub async fn start_extra(&mut self, extra: &Extra) -> anyhow::Result<()> {
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
        if let Extra::Twin(name) = extra {
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
        let http = self.http.clone();
        let see = self.log_of(key);
        let components = &mut self.components;
        wait_until(
            key,
            within,
            "serve its REST API",
            &see,
            || crate::services::serves_rest(http.clone(), rest),
            || check_alive(components, key),
        )
        .await
    }
    /// The URL an adapter reaches a service at: its link proxy, or the service itself with
    /// [`ClusterSpec::direct_links`].
    pub fn link_url(&self, adapter: &str, service: &str) -> anyhow::Result<String> {
        let omf = service == ENDPOINT && self.spec.egress == ClusterEgress::Omf;
        let protocol = self.spec.source_protocol;
        if !self.spec.direct_links {
            let listen = self.link(adapter, service)?.listen;
            return Ok(if omf {
                Addresses::omf_url(listen)
            } else if service == SOURCE {
                Addresses::source_url(protocol, listen)
            } else {
                Addresses::url(listen)
            });
        }
        if omf {
            return Ok(Addresses::omf_url(self.addrs.endpoint_metrics));
        }
        if let (SOURCE, Some(addr)) = (service, self.addrs.source_wire) {
            return Ok(Addresses::source_url(protocol, addr));
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
        self.api().put_client_failover(adapter, body).await
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
        self.api().adapter_rest(adapter, method, path, body).await
    }

    /// Calls a REST URL with an optional JSON body; the answer's JSON, or an error with the
    /// status and the server's message.
    pub async fn rest(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.api().rest(method, url, body).await
    }

    /// An adapter's REST address.
    pub fn rest_addr(&self, adapter: &str) -> anyhow::Result<SocketAddr> {
        self.api().rest_addr(adapter)
    }

    /// The endpoint's audit of this cluster's group: every stream, from its first point to its
    /// last.
    pub async fn audit(&self) -> anyhow::Result<failover_proto::v1::AuditReport> {
        self.api().audit(false).await
    }

    /// Who delivered each source tick of this cluster's group to the endpoint.
    pub async fn coverage(&self) -> anyhow::Result<Vec<failover_proto::v1::CoverageRun>> {
        Ok(self.api().audit(true).await?.coverage)
    }

    /// An adapter's FailoverState document.
    pub async fn failover_state(&self, adapter: &str) -> anyhow::Result<Value> {
        self.api().failover_state(adapter).await
    }

    /// Where a component's log is, for an error message.
    fn log_of(&self, name: &str) -> String {
        self.log_dir
            .join(format!("{name}.log"))
            .display()
            .to_string()
    }

    async fn wait_rest(&mut self, name: &str, within: Duration) -> anyhow::Result<()> {
        let rest = self.rest_addr(name)?;
        self.wait_extra_rest(name, rest, within).await
    }

    async fn wait_grpc_healthy(
        &mut self,
        name: &str,
        addr: SocketAddr,
        within: Duration,
    ) -> anyhow::Result<()> {
        let see = self.log_of(name);
        let components = &mut self.components;
        if name == ARBITER && self.addrs.arbiter_tls.is_some() {
            let addrs = self.addrs.clone();
            return wait_until(
                name,
                within,
                "become healthy over TLS",
                &see,
                || {
                    let addrs = addrs.clone();
                    async move {
                        match addrs.arbiter_channel().await {
                            Ok(channel) => crate::services::channel_healthy(channel).await,
                            Err(_) => false,
                        }
                    }
                },
                || check_alive(components, name),
            )
            .await;
        }
        wait_until(
            name,
            within,
            "become healthy",
            &see,
            || grpc_healthy(addr),
            || check_alive(components, name),
        )
        .await
    }

    /// Waits for the arbiter to write its self-signed CA, and trusts it.
    async fn wait_arbiter_ca(&mut self) -> anyhow::Result<failover_proto::tls::ClientTls> {
        let ca = self.log_dir.join(TLS_DIR).join("ca.pem");
        let probe_ca = ca.clone();
        let see = self.log_of(ARBITER);
        let components = &mut self.components;
        wait_until(
            ARBITER,
            Duration::from_secs(10),
            "write its TLS CA",
            &see,
            move || {
                let exists = probe_ca.exists();
                async move { exists }
            },
            || check_alive(components, ARBITER),
        )
        .await?;
        Ok(failover_proto::tls::ClientTls::new(true, &[ca])?)
    }

    /// SIGKILL: the process dies at once, nothing flushed.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
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
        self.freeze(name, true)
    }

    /// SIGCONT.
    pub async fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        self.freeze(name, false)
    }

    fn freeze(&mut self, name: &str, frozen: bool) -> anyhow::Result<()> {
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
        if self.component(name)?.child.is_some() {
            self.stop(name, Duration::from_secs(3)).await?;
        }
        self.component(name)?.spawn()?;
        let within = Duration::from_secs(10);
        let command_line = self
            .spec
            .programs
            .get(name)
            .is_some_and(|p| p.configure == Configure::CommandLine);
        if self.addrs.adapters.contains_key(name) && !command_line {
            self.wait_rest(name, within).await?;
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
        self.api().source_fault(&fault, down).await
    }

    /// Starts (`down` true) or ends a simulated endpoint outage.
    pub async fn endpoint_outage(&mut self, down: bool) -> anyhow::Result<()> {
        self.api().endpoint_outage(down).await
    }

    /// Stops everything: adapters first, then the services; SIGTERM with a grace period.
    pub async fn shutdown(&mut self) {
        let mut order: Vec<String> = self.spec.adapters.clone();
        order.extend([ARBITER, etcd::ARBITER_2, SOURCE, ENDPOINT].map(String::from));
        order.extend(etcd::ETCD_MEMBERS.map(String::from));
        for name in order {
            let _ = self.stop(&name, Duration::from_secs(3)).await;
        }
    }

    /// Changes a link between an adapter and a service (arbiter, source or endpoint).
    /// `from_adapter`: a one-way change goes from the adapter to the service (else back).
    pub async fn change_link(
        &mut self,
        adapter: &str,
        service: &str,
        change: &LinkChange,
        from_adapter: bool,
    ) -> anyhow::Result<()> {
        let proxy = self.link(adapter, service)?;
        proxy.set(|st| st.change(change, from_adapter));
        Ok(())
    }
}

/// An error when the named component's process has exited, with the last lines of its log.
fn check_alive(components: &mut BTreeMap<String, Component>, name: &str) -> anyhow::Result<()> {
    let Some(c) = components.get_mut(name) else {
        return Ok(());
    };
    let log = c.log_path().to_path_buf();
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
