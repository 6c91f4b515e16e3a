//! The compose stage: the services of the project's `docker-compose.yml`, started if they are
//! not, reached on their published ports on 127.0.0.1 (by default source 50051, endpoint 50052,
//! arbiter 50053 and 5591, adapter-a 5590, adapter-b 5592, vendor-a 5594, vendor-b 5596; moved
//! by `FAILOVER_LAB_<SERVICE>_PORT`). It runs any of the file's three pairs ([`PAIRS`]): the
//! lab's wires, the vendor's (profile `vendor-wires`), or two failover services sharing etcd
//! (profile `etcd`, followed by a [`LeaderView`] as on processes), whichever the scenario's
//! cluster is. Faults go through docker ([`docker`]): kill, pause, stop, restart, links cut both
//! ways and failover services isolated by `docker network disconnect`. Each run uses a group of
//! its own, so the endpoint audits it alone, and puts the services back as it found them.

pub mod docker;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use failover_proto::v1;
use reqwest::Method;
use serde_json::{Map, Value};
use tonic::transport::Channel;

use self::docker::Compose;
use crate::{
    cluster::etcd::LeaderView,
    scenario::{Action, LinkChange, Scenario},
    services::{Addresses, PairApi, SourceFaultTarget, grpc_healthy, merge, wait_until},
    stage::{Extra, Stage},
};
use failover_scenario::cluster::{
    ARBITER, ARBITER_2, ClusterAuth, ClusterEgress, ClusterProtocol, ClusterSource, ClusterSpec,
    ClusterStore, ClusterTls, ENDPOINT, SOURCE,
};

/// The source's shape in `docker-compose.yml`: streams, components, Hz, history rate.
const COMPOSE_SHAPE: (u32, u32, f64, Option<u32>) = (8, 4, 10.0, None);
/// A pair of adapters `docker-compose.yml` runs, and its wires.
#[derive(Debug, PartialEq, Eq)]
pub struct ComposePair {
    /// The two adapters' services.
    pub adapters: [&'static str; 2],
    /// The compose profile that has them (None: the default services).
    pub profile: Option<&'static str>,
    /// How they collect.
    pub source_protocol: ClusterSource,
    /// How they reach the failover service.
    pub failover_protocol: ClusterProtocol,
    /// How they egress.
    pub egress: ClusterEgress,
    /// The failover service as they reach it (on the `control` network).
    pub arbiter_url: &'static str,
    /// The document the compose file's configure service gives them.
    pub document: &'static str,
    /// Their failover services share etcd: (scenario name, compose service) of each.
    pub etcd_services: &'static [(&'static str, &'static str)],
}

/// The services of the profile `etcd` besides the failover services.
const ETCD_MEMBERS: [&str; 3] = ["etcd-1", "etcd-2", "etcd-3"];

/// The lease of the profile `etcd`'s failover services (`--store-lease` in docker-compose.yml).
const ETCD_LEASE: Duration = Duration::from_secs(2);

/// The pairs of `docker-compose.yml`.
pub const PAIRS: [ComposePair; 3] = [
    ComposePair {
        adapters: ["adapter-a", "adapter-b"],
        profile: None,
        source_protocol: ClusterSource::Grpc,
        failover_protocol: ClusterProtocol::Grpc,
        egress: ClusterEgress::Grpc,
        arbiter_url: "http://failover-arbiter-control:50053",
        document: "docker/ClientFailover.json",
        etcd_services: &[],
    },
    ComposePair {
        adapters: ["vendor-a", "vendor-b"],
        profile: Some("vendor-wires"),
        source_protocol: ClusterSource::OpcUa,
        failover_protocol: ClusterProtocol::Rest,
        egress: ClusterEgress::Omf,
        arbiter_url: "https://failover-arbiter-control:5590/api/v1/clientfailover",
        document: "docker/ClientFailover.vendor-wires.json",
        etcd_services: &[],
    },
    ComposePair {
        adapters: ["etcd-adapter-a", "etcd-adapter-b"],
        profile: Some("etcd"),
        source_protocol: ClusterSource::Grpc,
        failover_protocol: ClusterProtocol::Grpc,
        egress: ClusterEgress::Grpc,
        arbiter_url: "http://failover-arbiter-a-control:50053,http://failover-arbiter-b-control:50053",
        document: "docker/ClientFailover.etcd.json",
        etcd_services: &[
            (ARBITER, "failover-arbiter-a"),
            (ARBITER_2, "failover-arbiter-b"),
        ],
    },
];

/// The compose pair a cluster is, if it is one.
fn pair_of(spec: &ClusterSpec) -> Option<&'static ComposePair> {
    PAIRS.iter().find(|p| {
        spec.adapters == p.adapters
            && spec.source_protocol == p.source_protocol
            && spec.failover_protocol == p.failover_protocol
            && spec.egress == p.egress
            && (spec.store == ClusterStore::Memory) == p.etcd_services.is_empty()
    })
}
/// How long a compose service may take to (re)start: a container, not a process.
const START_WITHIN: Duration = Duration::from_secs(120);

/// Why a scenario cannot run on the compose stage (None: it can), naming what it needs and
/// the stages that can run it.
pub fn refusal(s: &Scenario, spec: &ClusterSpec) -> Option<String> {
    spec_refusal(spec).or_else(|| steps_refusal(s))
}

/// Why a pair of this shape cannot run on the compose stage.
fn spec_refusal(spec: &ClusterSpec) -> Option<String> {
    if let ClusterStore::Etcd { lease } = spec.store
        && lease != ETCD_LEASE
    {
        return Some(format!(
            "cluster.store_lease: the compose profile etcd's failover services hold a lease of 00:00:02; this scenario needs {}: run it on --target processes",
            failover_core::timespan::format_timespan(lease)
        ));
    }
    if !spec.programs.is_empty() {
        return Some(
            "cluster.adapters with a command: the compose file runs failover-lab's adapter image; run it on --target processes".into(),
        );
    }
    if !spec.broken.is_none() {
        return Some(
            "cluster.break: the compose services keep every rule; run it on --target processes or sim".into(),
        );
    }
    if spec.max_clients.is_some() {
        return Some(
            "cluster.max_clients: the compose source takes any number of clients; run it on --target processes or sim".into(),
        );
    }
    if spec.auth != ClusterAuth::None || spec.tls != ClusterTls::Off {
        return Some(format!(
            "cluster.auth/cluster.tls: the compose failover service runs with the flags of \
             docker-compose.yml; this scenario needs {:?} and TLS {:?}: run it on --target processes",
            spec.auth, spec.tls
        ));
    }
    let (streams, components, rate_hz, history_rate) = COMPOSE_SHAPE;
    #[allow(clippy::float_cmp)] // Both are written as literals: 10 Hz is 10.0 exactly.
    let same_shape = spec.streams == streams
        && spec.components == components
        && spec.rate_hz == rate_hz
        && spec.history_rate == history_rate;
    if !same_shape {
        return Some(format!(
            "cluster: the compose source has 8 streams in 4 components at 10 Hz with unthrottled \
             history; this scenario needs {} streams, {} components, {} Hz, history_rate {:?}: \
             run it on --target processes or sim",
            spec.streams, spec.components, spec.rate_hz, spec.history_rate
        ));
    }
    if pair_of(spec).is_none() {
        return Some(format!(
            "cluster: the compose pairs are adapter-a and adapter-b on the lab's wires (gRPC in, \
             to the service and out), vendor-a and vendor-b on the vendor's (source_protocol \
             \"opcua\", failover_protocol \"rest\", egress \"omf\"; profile vendor-wires), and \
             etcd-adapter-a and etcd-adapter-b on the lab's wires with store \"etcd\" (profile \
             etcd); this scenario has adapters {:?} with source_protocol {}, failover_protocol \
             {:?}, egress {:?}, store {:?}: run it on --target processes",
            spec.adapters,
            spec.source_protocol.as_str(),
            spec.failover_protocol,
            spec.egress,
            spec.store
        ));
    }
    None
}

/// Why a step of the story cannot be played on the compose stage.
fn steps_refusal(s: &Scenario) -> Option<String> {
    for step in &s.steps {
        let why = match &step.action {
            Action::Twin { .. } | Action::Standalone { .. } => {
                "the compose file runs the pair's two adapters only; run it on --target processes or sim"
            }
            Action::Link { change, .. }
                if !matches!(
                    change,
                    LinkChange::Cut { one_way: false } | LinkChange::Heal
                ) =>
            {
                "one-way cuts, blackholes and latency need the link proxies of --target processes; on compose a link is cut both ways (docker network disconnect)"
            }
            _ => continue,
        };
        return Some(format!("line {}: {}: {why}", step.line, step.action));
    }
    None
}

/// The pair as the compose services.
#[derive(Debug)]
pub struct ComposeStage {
    spec: ClusterSpec,
    pair: &'static ComposePair,
    addrs: Addresses,
    http: reqwest::Client,
    compose: Compose,
    log_dir: PathBuf,
    /// The log folder when the stage made it (removed on drop unless the logs are kept).
    temp: Option<tempfile::TempDir>,
    /// Source faults injected and not yet healed (healed when the stage shuts down).
    source_faults: Vec<SourceFaultTarget>,
    /// An endpoint outage is in force.
    endpoint_down: bool,
    /// Keep the logs (a failing scenario).
    keep: bool,
    /// With the profile etcd: the lab's view of the leading failover service.
    view: Option<LeaderView>,
}

impl ComposeStage {
    /// Starts the compose project in `dir` (if it is not running), waits until its services
    /// serve, and gives the adapters the scenario's data collection mode. The caller has
    /// checked [`refusal`]; a spec that needs what compose lacks is refused again here.
    pub async fn start(mut spec: ClusterSpec, dir: &Path) -> anyhow::Result<ComposeStage> {
        if let Some(why) = spec_refusal(&spec) {
            bail!("cannot run on --target compose: {why}");
        }
        let Some(pair) = pair_of(&spec) else {
            bail!("cannot run on --target compose: no compose pair has these adapters and wires");
        };
        let compose = Compose::detect(dir).await?.with_profile(pair.profile);
        match pair.profile {
            // The default services, and the configure service with them.
            None => compose.run(&["up", "-d"]).await.map(drop)?,
            // The services the pair needs, not its configure service: the scenario configures
            // the adapters itself.
            Some(_) => compose.up_pair(&pair_services(pair)).await?,
        };
        spec.group_id = format!("{}-{:08x}", spec.group_id, rand::random::<u32>());
        let (log_dir, temp) =
            crate::cluster::log_folder(spec.log_dir.as_deref(), "failover-lab-compose-")?;
        let mut view = None;
        let (arbiter, arbiter_rest) = if pair.etcd_services.is_empty() {
            (
                compose.host_addr("failover-arbiter", 50053).await?,
                compose.host_addr("failover-arbiter", 5591).await?,
            )
        } else {
            let mut services = std::collections::BTreeMap::new();
            for (name, service) in pair.etcd_services {
                services.insert(
                    name.to_string(),
                    (
                        compose.host_addr(service, 50053).await?,
                        compose.host_addr(service, 5591).await?,
                    ),
                );
            }
            let v = LeaderView::start(
                std::net::Ipv4Addr::LOCALHOST,
                services,
                crate::services::http_client()?,
                START_WITHIN,
            )
            .await?;
            let addrs = (v.grpc, v.rest);
            view = Some(v);
            addrs
        };
        let addrs = Addresses {
            source_wire: None,
            source: compose.host_addr("fake-data-source", 50051).await?,
            endpoint: compose.host_addr("fake-endpoint", 50052).await?,
            arbiter,
            arbiter_rest,
            arbiter_cfs: None,
            endpoint_metrics: compose.host_addr("fake-endpoint", 9102).await?,
            adapters: [
                (
                    pair.adapters[0].to_string(),
                    compose.host_addr(pair.adapters[0], 5590).await?,
                ),
                (
                    pair.adapters[1].to_string(),
                    compose.host_addr(pair.adapters[1], 5590).await?,
                ),
            ]
            .into(),
            arbiter_tls: None,
        };
        let stage = ComposeStage {
            spec,
            pair,
            addrs,
            http: crate::services::http_client()?,
            compose,
            log_dir,
            temp,
            source_faults: Vec::new(),
            endpoint_down: false,
            keep: false,
            view,
        };
        for (name, addr) in [
            (SOURCE, stage.addrs.source),
            (ENDPOINT, stage.addrs.endpoint),
            (ARBITER, stage.addrs.arbiter),
        ] {
            stage.wait_grpc_healthy(name, addr).await?;
        }
        for name in &stage.spec.adapters {
            stage.wait_rest(name).await?;
            stage
                .api()
                .set_data_collection_mode(name, stage.spec.data_collection_mode.as_str())
                .await?;
        }
        Ok(stage)
    }

    /// The calls to the services by address.
    fn api(&self) -> PairApi<'_> {
        PairApi {
            addrs: &self.addrs,
            group_id: &self.spec.group_id,
            http: &self.http,
        }
    }

    async fn wait_rest(&self, name: &str) -> anyhow::Result<()> {
        let rest = self.api().rest_addr(name)?;
        let http = self.http.clone();
        wait_until(
            name,
            START_WITHIN,
            "serve its REST API",
            "docker compose logs",
            || crate::services::serves_rest(http.clone(), rest),
            || Ok(()),
        )
        .await
    }

    async fn wait_grpc_healthy(&self, name: &str, addr: SocketAddr) -> anyhow::Result<()> {
        wait_until(
            name,
            START_WITHIN,
            "become healthy",
            "docker compose logs",
            || grpc_healthy(addr),
            || Ok(()),
        )
        .await
    }

    /// Gives an adapter the cluster's document, `changes` merged in; its failover service is
    /// the arbiter on the adapter's own control network.
    async fn configure_with(
        &self,
        adapter: &str,
        changes: Option<&Map<String, Value>>,
    ) -> anyhow::Result<Value> {
        let mut doc = self.spec.client_failover_document(self.pair.arbiter_url)?;
        if self.pair.failover_protocol == ClusterProtocol::Rest {
            // The compose service's certificate is self-signed, made at its first start.
            doc["validateEndpointCertificate"] = Value::Bool(false);
        }
        merge(&mut doc, changes);
        self.api()
            .put_client_failover(adapter, &doc.to_string())
            .await
    }

    /// Puts the compose services back as a scenario found them: faults healed, links and
    /// services back, adapters configured with docker/ClientFailover.json again.
    async fn restore(&mut self) -> anyhow::Result<()> {
        if self.keep {
            let _ = self
                .compose
                .save_logs(&self.log_dir.join("compose.log"))
                .await;
        }
        for f in std::mem::take(&mut self.source_faults) {
            let _ = self.api().source_fault(&f, false).await;
        }
        if self.endpoint_down {
            let _ = self.api().endpoint_outage(false).await;
        }
        self.compose.restore(&pair_services(self.pair)).await?;
        let doc = std::fs::read_to_string(self.compose.dir.join(self.pair.document))
            .with_context(|| self.pair.document.to_string())?;
        for name in &self.spec.adapters {
            self.wait_rest(name).await?;
            self.api()
                .set_data_collection_mode(name, "CurrentOnly")
                .await?;
            self.api().put_client_failover(name, &doc).await?;
            let rest = self.api().rest_addr(name)?;
            crate::config_client::wait_for_role(
                &rest.ip().to_string(),
                rest.port(),
                Duration::from_secs(30),
            )
            .await?;
        }
        Ok(())
    }
}

/// Every service a pair needs besides the shared ones: its adapters, and with the profile etcd
/// its failover services and etcd members.
fn pair_services(pair: &ComposePair) -> Vec<&'static str> {
    let mut services: Vec<&'static str> = pair.adapters.to_vec();
    if !pair.etcd_services.is_empty() {
        services.extend(ETCD_MEMBERS);
        services.extend(pair.etcd_services.iter().map(|(_, s)| *s));
    }
    services
}

impl ComposeStage {
    /// A component's compose service: with the profile etcd, `arbiter` and `arbiter-2` are its
    /// two failover services (the runner names the leading one for `leader`).
    fn service(&self, name: &str) -> anyhow::Result<String> {
        Ok(self
            .pair
            .etcd_services
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(name.to_string(), |(_, s)| (*s).to_string()))
    }
}

impl Stage for ComposeStage {
    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }
    fn logs(&self) -> String {
        format!(
            "service logs: docker compose logs (in {})",
            self.compose.dir.display()
        )
    }
    fn keep_logs(&mut self) {
        self.keep = true;
        if let Some(t) = self.temp.take() {
            let _ = t.keep();
        }
    }
    fn watch_channels(&self) -> anyhow::Result<(Channel, Channel)> {
        let tcp = failover_proto::net::Network::tcp();
        let arbiter =
            failover_proto::net::lazy_channel(&Addresses::url(self.addrs.arbiter), &tcp, None)?;
        let endpoint =
            failover_proto::net::lazy_channel(&Addresses::url(self.addrs.endpoint), &tcp, None)?;
        Ok((arbiter, endpoint))
    }
    async fn configure(&self, adapter: &str) -> anyhow::Result<Value> {
        self.configure_with(adapter, None).await
    }
    async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let name = self.service(name)?;
        self.compose.kill(&name).await
    }
    async fn pause(&mut self, name: &str) -> anyhow::Result<()> {
        let name = self.service(name)?;
        self.compose.pause(&name).await
    }
    async fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        let name = self.service(name)?;
        self.compose.resume(&name).await
    }
    async fn stop(&mut self, name: &str, grace: Duration) -> anyhow::Result<()> {
        let name = self.service(name)?;
        self.compose.stop(&name, grace).await
    }
    async fn isolate(&mut self, service: Option<&str>) -> anyhow::Result<String> {
        let Some(name) = service else {
            self.compose.end_isolation().await;
            return Ok(String::new());
        };
        let svc = self.service(name)?;
        self.compose.isolate(&svc).await?;
        Ok(name.to_string())
    }
    fn leader(&self) -> Option<String> {
        self.view.as_ref().and_then(LeaderView::leader)
    }
    async fn restart(
        &mut self,
        name: &str,
        changes: Option<&Map<String, Value>>,
    ) -> anyhow::Result<()> {
        let service = self.service(name)?;
        self.compose.restart(&service).await?;
        if self.addrs.adapters.contains_key(name) {
            self.wait_rest(name).await?;
            self.api()
                .set_data_collection_mode(name, self.spec.data_collection_mode.as_str())
                .await?;
            self.configure_with(name, changes).await?;
        } else {
            let addr = match name {
                SOURCE => self.addrs.source,
                ENDPOINT => self.addrs.endpoint,
                _ => self.addrs.arbiter,
            };
            self.wait_grpc_healthy(name, addr).await?;
        }
        Ok(())
    }
    async fn start_extra(&mut self, extra: &Extra) -> anyhow::Result<()> {
        bail!(
            "{}: the compose file runs the pair's two adapters only; run it on --target processes or sim",
            extra.key()
        )
    }
    async fn stop_extra(&mut self, extra: &Extra) -> anyhow::Result<()> {
        self.start_extra(extra).await
    }
    async fn source_fault(&mut self, target: SourceFaultTarget, down: bool) -> anyhow::Result<()> {
        if down {
            self.source_faults.push(target.clone());
        } else {
            self.source_faults.retain(|f| *f != target);
        }
        self.api().source_fault(&target, down).await
    }
    async fn endpoint_outage(&mut self, down: bool) -> anyhow::Result<()> {
        self.endpoint_down = down;
        self.api().endpoint_outage(down).await
    }
    async fn change_link(
        &mut self,
        adapter: &str,
        service: &str,
        change: &LinkChange,
        _from_adapter: bool,
    ) -> anyhow::Result<()> {
        match change {
            LinkChange::Cut { one_way: false } => {
                self.compose.set_link(adapter, service, true).await
            }
            LinkChange::Heal => self.compose.set_link(adapter, service, false).await,
            _ => bail!(
                "one-way cuts, blackholes and latency need the link proxies of --target processes; on compose a link is cut both ways (docker network disconnect)"
            ),
        }
    }
    async fn adapter_rest(
        &self,
        adapter: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.api().adapter_rest(adapter, method, path, body).await
    }
    async fn arbiter_admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.api().arbiter_admin(method, path, body).await
    }
    async fn audit(&self) -> anyhow::Result<v1::AuditReport> {
        self.api().audit(false).await
    }
    async fn coverage(&self) -> anyhow::Result<Vec<v1::CoverageRun>> {
        Ok(self.api().audit(true).await?.coverage)
    }
    async fn shutdown(&mut self) {
        if let Err(e) = self.restore().await {
            eprintln!("could not put the compose services back as they were: {e:#}");
        }
    }
}
