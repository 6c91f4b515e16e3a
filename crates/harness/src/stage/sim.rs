//! `--target sim`: a scenario on the deterministic simulator ([`failover_sim::stage`]), in
//! simulated time. The runner runs inside the simulation as its director: it reaches the
//! services over turmoil's network exactly as it reaches real ones over TCP, and what signals
//! and link proxies do elsewhere, turmoil does here:
//!
//! | step | processes | sim |
//! |---|---|---|
//! | `kill` | SIGKILL | the host crashes |
//! | `pause` / `resume` | SIGSTOP / SIGCONT | every message to and from the host waits / goes on |
//! | `stop` | SIGTERM | an adapter stops gracefully (leaves its group); a service crashes |
//! | `restart` | a new process (an adapter configured again) | the host starts again (the same) |
//! | `cut_link`, `blackhole_link` | the proxy closes connections / drops bytes | bytes dropped, connections stay open |
//! | `link_latency` | the proxy delays bytes | turmoil delays messages (both ways only) |
//!
//! What the simulator cannot stage (authentication, TLS, the vendor's REST protocol, one-way
//! latency) is refused before the run by [`refusal`], naming the targets that can.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context, bail};
use failover_proto::v1;
use failover_sim::{
    stage::{ADAPTER_REST_PORT, ARBITER_REST_PORT, Handle, HostChange},
    world::{self, ARBITER, ARBITER_PORT, ENDPOINT, ENDPOINT_PORT, SOURCE, SOURCE_PORT, url},
};
use reqwest::Method;
use serde_json::{Map, Value};
use tonic::transport::Channel;

use crate::{
    cluster::{ClusterAuth, ClusterProtocol, ClusterSpec, ClusterTls, SourceFaultTarget},
    proxy::LinkChange,
    scenario::{Action, Scenario},
    stage::{Extra, Stage},
};

/// How long a REST call may take before the runner gives up (a paused adapter never answers).
const REST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a scenario cannot run on the simulator (None: it can), naming the line at fault and the
/// targets that can run it.
pub fn refusal(s: &Scenario, spec: &ClusterSpec) -> Option<String> {
    let c = spec;
    if c.store != failover_scenario::cluster::ClusterStore::Memory {
        return Some(
            "cluster.store etcd: the simulator runs one failover service in memory; run it on --target processes".into(),
        );
    }
    if c.auth != ClusterAuth::None {
        return Some(
            "cluster.auth: the simulated failover service takes no credentials; run it on --target processes".into(),
        );
    }
    if c.tls != ClusterTls::Off {
        return Some(
            "cluster.tls: the simulated links carry no TLS; run it on --target processes".into(),
        );
    }
    if !c.programs.is_empty() {
        return Some(
            "cluster.adapters with a command: the simulator runs failover-lab's adapter only; run it on --target processes".into(),
        );
    }
    if c.source_protocol != failover_scenario::cluster::ClusterSource::Grpc {
        return Some(format!(
            "cluster.source_protocol {}: the simulated adapters collect over gRPC only (the vendor's wires need real sockets); run it on --target processes",
            c.source_protocol.as_str()
        ));
    }
    if c.egress != failover_scenario::cluster::ClusterEgress::Grpc {
        return Some(
            "cluster.egress omf: the simulated adapters egress gRPC only (OMF needs real sockets); run it on --target processes".into(),
        );
    }
    if c.failover_protocol == ClusterProtocol::Rest {
        return Some(
            "failover_protocol rest: the simulated adapters speak gRPC only (the vendor's REST client needs real sockets); run it on --target processes or compose".into(),
        );
    }
    for step in &s.steps {
        if let Action::Link {
            change: LinkChange::Latency { one_way: true, .. },
            ..
        } = &step.action
        {
            return Some(format!(
                "line {}: {}: the simulator slows a link both ways only; run it on --target processes",
                step.line, step.action
            ));
        }
    }
    None
}

/// The adapters beside the pair that the scenario's steps start (twins and standalone
/// adapters): the simulation gives each a host of its own from the start.
pub fn extras(s: &Scenario) -> Vec<failover_sim::stage::ExtraAdapter> {
    let mut out: Vec<failover_sim::stage::ExtraAdapter> = Vec::new();
    for step in &s.steps {
        let extra = match &step.action {
            Action::Twin { adapter, .. } => failover_sim::stage::ExtraAdapter::twin(adapter),
            Action::Standalone { name, .. } => failover_sim::stage::ExtraAdapter::standalone(name),
            _ => continue,
        };
        if !out.contains(&extra) {
            out.push(extra);
        }
    }
    out
}

/// The scenario's pair on the simulator, as the runner inside it sees it.
#[derive(Debug)]
pub struct SimStage {
    spec: ClusterSpec,
    handle: Handle,
    crashed: BTreeSet<String>,
    paused: BTreeSet<String>,
}

impl SimStage {
    /// The stage of a simulation built from `spec`, driven through `handle`.
    pub fn new(spec: ClusterSpec, handle: Handle) -> SimStage {
        SimStage {
            spec,
            handle,
            crashed: BTreeSet::new(),
            paused: BTreeSet::new(),
        }
    }

    fn is_adapter(&self, name: &str) -> bool {
        self.spec.adapters.iter().any(|a| a == name)
    }

    /// The component's host, or an error naming the components.
    fn host(&self, name: &str) -> anyhow::Result<String> {
        if self.is_adapter(name) || [ARBITER, SOURCE, ENDPOINT].contains(&name) {
            Ok(name.to_string())
        } else {
            bail!(
                "no component {name:?}; components: {}, {ARBITER}, {SOURCE}, {ENDPOINT}",
                self.spec.adapters.join(", ")
            )
        }
    }

    /// The host of an adapter beside the pair (made when the stage was, from the scenario's
    /// steps: [`extras`]).
    fn extra_host(&self, extra: &Extra) -> anyhow::Result<String> {
        let host = extra.key();
        if self.handle.has_host(&host) {
            Ok(host)
        } else {
            bail!(
                "no host for {host} in this simulation (a bug: the stage is made from the scenario's steps)"
            )
        }
    }

    fn channel(host: &str, port: u16) -> anyhow::Result<Channel> {
        Ok(failover_proto::net::lazy_channel(
            &url(host, port),
            &world::network(),
            None,
        )?)
    }

    async fn http(
        &self,
        host: &str,
        port: u16,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let what = format!("{method} http://{host}:{port}{path}");
        let body = body.map(|b| b.to_string().into_bytes());
        let (status, answer) = tokio::time::timeout(
            REST_TIMEOUT,
            world::http(host, port, method.as_str(), path, body),
        )
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer within {REST_TIMEOUT:?}"))?
        .with_context(|| what.clone())?;
        crate::services::rest_answer(&what, status, &answer)
    }

    /// The endpoint's audit of the group, with its coverage or without.
    async fn audit_of(&self, include_coverage: bool) -> anyhow::Result<v1::AuditReport> {
        let mut client = v1::data_endpoint_client::DataEndpointClient::new(Self::channel(
            ENDPOINT,
            ENDPOINT_PORT,
        )?);
        Ok(client
            .audit(v1::AuditRequest {
                group_id: self.spec.group_id.clone(),
                include_coverage,
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    /// Gives the adapter on `host` the cluster's document, with `changes` merged in.
    async fn configure_host(
        &self,
        host: &str,
        changes: Option<&Map<String, Value>>,
    ) -> anyhow::Result<Value> {
        let mut doc = self
            .spec
            .client_failover_document(&url(ARBITER, ARBITER_PORT))?;
        crate::cluster::merge(&mut doc, changes);
        self.http(
            host,
            ADAPTER_REST_PORT,
            Method::PUT,
            "/api/v1/configuration/System/ClientFailover",
            Some(&doc),
        )
        .await
        .with_context(|| host.to_string())
    }

    async fn configure_with(
        &self,
        adapter: &str,
        changes: Option<&Map<String, Value>>,
    ) -> anyhow::Result<Value> {
        if !self.is_adapter(adapter) {
            bail!("no adapter {adapter:?}");
        }
        self.configure_host(adapter, changes).await
    }

    /// Waits until a (re)started adapter serves its REST API.
    async fn wait_rest(&self, adapter: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let probe = tokio::time::timeout(
                Duration::from_secs(1),
                world::http(
                    adapter,
                    ADAPTER_REST_PORT,
                    "GET",
                    "/api/v1/diagnostics/FailoverState",
                    None,
                ),
            )
            .await;
            if matches!(probe, Ok(Ok((200, _)))) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{adapter} did not serve its REST API within 10 s of its start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Stage for SimStage {
    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }
    fn logs(&self) -> String {
        "the simulator keeps no component logs; rerun the seed, or the file on --target processes --keep-logs DIR".into()
    }
    fn keep_logs(&mut self) {}
    fn watch_channels(&self) -> anyhow::Result<(Channel, Channel)> {
        Ok((
            Self::channel(ARBITER, ARBITER_PORT)?,
            Self::channel(ENDPOINT, ENDPOINT_PORT)?,
        ))
    }
    async fn configure(&self, adapter: &str) -> anyhow::Result<Value> {
        self.configure_with(adapter, None).await
    }
    async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let host = self.host(name)?;
        if self.paused.remove(&host) {
            self.handle.change(HostChange::Release(host.clone())).await;
        }
        self.handle.change(HostChange::Crash(host.clone())).await;
        self.crashed.insert(host);
        Ok(())
    }
    async fn pause(&mut self, name: &str) -> anyhow::Result<()> {
        let host = self.host(name)?;
        self.handle.change(HostChange::Hold(host.clone())).await;
        self.paused.insert(host);
        Ok(())
    }
    async fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        let host = self.host(name)?;
        self.handle.change(HostChange::Release(host.clone())).await;
        self.paused.remove(&host);
        Ok(())
    }
    async fn stop(&mut self, name: &str, grace: Duration) -> anyhow::Result<()> {
        let host = self.host(name)?;
        if self.paused.remove(&host) {
            self.handle.change(HostChange::Release(host.clone())).await;
        }
        if self.is_adapter(&host) && !self.crashed.contains(&host) {
            self.handle.set_running(&host, false, grace).await;
            Ok(())
        } else {
            self.kill(&host).await
        }
    }
    async fn restart(
        &mut self,
        name: &str,
        changes: Option<&Map<String, Value>>,
    ) -> anyhow::Result<()> {
        let host = self.host(name)?;
        if self.paused.remove(&host) {
            self.handle.change(HostChange::Release(host.clone())).await;
        }
        if self.is_adapter(&host) {
            if self.crashed.remove(&host) {
                self.handle
                    .set_running(&host, true, Duration::from_secs(3))
                    .await;
                self.handle.change(HostChange::Start(host.clone())).await;
            } else {
                if self.handle.is_running(&host) {
                    self.handle
                        .set_running(&host, false, Duration::from_secs(3))
                        .await;
                }
                self.handle
                    .set_running(&host, true, Duration::from_secs(3))
                    .await;
            }
            self.wait_rest(&host).await?;
            self.configure_with(&host, changes).await?;
        } else {
            self.handle.change(HostChange::Crash(host.clone())).await;
            self.handle.change(HostChange::Start(host.clone())).await;
            self.crashed.remove(&host);
        }
        Ok(())
    }
    async fn start_extra(&mut self, extra: &Extra) -> anyhow::Result<()> {
        let host = self.extra_host(extra)?;
        self.handle
            .set_running(&host, true, Duration::from_secs(3))
            .await;
        self.wait_rest(&host).await?;
        if let Extra::Twin(_) = extra {
            self.configure_host(&host, None).await?;
        }
        Ok(())
    }
    async fn stop_extra(&mut self, extra: &Extra) -> anyhow::Result<()> {
        let host = self.extra_host(extra)?;
        self.handle
            .set_running(&host, false, Duration::from_secs(5))
            .await;
        Ok(())
    }
    async fn source_fault(&mut self, target: SourceFaultTarget, down: bool) -> anyhow::Result<()> {
        let mut client =
            v1::data_source_client::DataSourceClient::new(Self::channel(SOURCE, SOURCE_PORT)?);
        target.inject(&mut client, down).await
    }
    async fn endpoint_outage(&mut self, down: bool) -> anyhow::Result<()> {
        let mut client = v1::data_endpoint_client::DataEndpointClient::new(Self::channel(
            ENDPOINT,
            ENDPOINT_PORT,
        )?);
        client.set_outage(v1::OutageRequest { down }).await?;
        Ok(())
    }
    async fn change_link(
        &mut self,
        adapter: &str,
        service: &str,
        change: &LinkChange,
        from_adapter: bool,
    ) -> anyhow::Result<()> {
        if !self.is_adapter(adapter) || ![ARBITER, SOURCE, ENDPOINT].contains(&service) {
            bail!(
                "no link between {adapter:?} and {service:?}; links join an adapter ({}) to {ARBITER}, {SOURCE} or {ENDPOINT}",
                self.spec.adapters.join(", ")
            );
        }
        let (a, b) = (adapter.to_string(), service.to_string());
        let change = match change {
            LinkChange::Heal => HostChange::Repair { a, b },
            LinkChange::Cut { one_way: false } | LinkChange::Blackhole => HostChange::Partition {
                a,
                b,
                one_way: false,
            },
            LinkChange::Cut { one_way: true } => {
                let (a, b) = if from_adapter { (a, b) } else { (b, a) };
                HostChange::Partition {
                    a,
                    b,
                    one_way: true,
                }
            }
            LinkChange::Latency { ms, one_way: false } => HostChange::Latency {
                a,
                b,
                delay: Duration::from_millis(*ms),
            },
            LinkChange::Latency { one_way: true, .. } => {
                bail!("the simulator slows a link both ways only; run it on --target processes")
            }
        };
        self.handle.change(change).await;
        Ok(())
    }
    async fn adapter_rest(
        &self,
        adapter: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        if !self.is_adapter(adapter) {
            bail!("no adapter {adapter:?}");
        }
        self.http(
            adapter,
            ADAPTER_REST_PORT,
            method,
            &format!("/api/v1{path}"),
            body,
        )
        .await
        .with_context(|| adapter.to_string())
    }
    async fn arbiter_admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.http(ARBITER, ARBITER_REST_PORT, method, path, body)
            .await
    }
    async fn audit(&self) -> anyhow::Result<v1::AuditReport> {
        self.audit_of(false).await
    }
    async fn coverage(&self) -> anyhow::Result<Vec<v1::CoverageRun>> {
        Ok(self.audit_of(true).await?.coverage)
    }
    async fn shutdown(&mut self) {}
}
