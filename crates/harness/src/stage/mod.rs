//! Where a scenario's pair runs: one story, three stages. The runner ([`crate::runner`]) drives
//! any [`Stage`] with the same steps and checks:
//!
//! - real processes on loopback, with signals and link proxies ([`crate::cluster::Cluster`]);
//! - the services of `docker-compose.yml`, faults through docker compose
//!   ([`compose::ComposeStage`]);
//! - the deterministic simulator, in simulated time ([`sim::SimStage`]).
//!
//! A stage refuses what it cannot do with a message naming the stages that can: each refuses
//! before it starts (a scenario that needs what the stage lacks is skipped with the reason)
//! or at the step (an error naming the stages that can).

pub mod compose;
pub mod sim;

use std::time::Duration;

use failover_proto::v1;
use reqwest::Method;
use serde_json::{Map, Value};
use tonic::transport::Channel;

use crate::{observe::Observer, services::SourceFaultTarget};
use failover_scenario::cluster::{ClusterSpec, LinkChange};

/// An adapter that is not one of the pair, started by a scenario step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// A second process with this pair member's name and document (`start_twin`).
    Twin(String),
    /// A standalone adapter with this name (`start_standalone`).
    Standalone(String),
}

impl Extra {
    /// The name its adapter takes.
    pub fn name(&self) -> &str {
        match self {
            Extra::Twin(n) | Extra::Standalone(n) => n,
        }
    }

    /// The component it is known as (unique: a twin shares its namesake's name).
    pub fn key(&self) -> String {
        match self {
            Extra::Twin(n) => format!("twin-{n}"),
            Extra::Standalone(n) => n.clone(),
        }
    }
}

/// What the runner needs of a running pair.
pub(crate) trait Stage {
    /// The pair's shape.
    fn spec(&self) -> &ClusterSpec;
    /// Where its components' logs are, for a failure message.
    fn logs(&self) -> String;
    /// Keep the logs after the run (a failure).
    fn keep_logs(&mut self);
    /// Connections to the failover service's and the endpoint's gRPC, for the observer.
    fn watch_channels(&self) -> anyhow::Result<(Channel, Channel)>;
    /// Gives an adapter its ClientFailover document (the cluster's).
    async fn configure(&self, adapter: &str) -> anyhow::Result<Value>;
    /// Stops a component at once, nothing flushed (SIGKILL).
    async fn kill(&mut self, name: &str) -> anyhow::Result<()>;
    /// Freezes a component (SIGSTOP).
    async fn pause(&mut self, name: &str) -> anyhow::Result<()>;
    /// Thaws it (SIGCONT).
    async fn resume(&mut self, name: &str) -> anyhow::Result<()>;
    /// Stops a component gracefully (SIGTERM), at once after `grace`.
    async fn stop(&mut self, name: &str, grace: Duration) -> anyhow::Result<()>;
    /// Starts a component again: an adapter is configured again, with the cluster's document
    /// with `changes` merged in (None: as it is).
    async fn restart(
        &mut self,
        name: &str,
        changes: Option<&Map<String, Value>>,
    ) -> anyhow::Result<()>;
    /// Starts an adapter that is not one of the pair (a twin: configured with its namesake's
    /// document; a standalone adapter: no document).
    async fn start_extra(&mut self, extra: &Extra) -> anyhow::Result<()>;
    /// Stops it gracefully.
    async fn stop_extra(&mut self, extra: &Extra) -> anyhow::Result<()>;
    /// Fails (`down`) or restores part of the source.
    async fn source_fault(&mut self, target: SourceFaultTarget, down: bool) -> anyhow::Result<()>;
    /// Starts or ends an endpoint outage.
    async fn endpoint_outage(&mut self, down: bool) -> anyhow::Result<()>;
    /// Changes the link between an adapter and a service; a one-way change goes from the
    /// adapter when `from_adapter`.
    async fn change_link(
        &mut self,
        adapter: &str,
        service: &str,
        change: &LinkChange,
        from_adapter: bool,
    ) -> anyhow::Result<()>;
    /// Cuts every link of a failover service sharing an etcd store (by name: the runner names
    /// the leading one for `leader`), to etcd and from every adapter; None heals every service cut off so. Answers the
    /// service's name. Processes only (the other stages refuse such files before they start).
    async fn isolate(&mut self, service: Option<&str>) -> anyhow::Result<String> {
        let _ = service;
        anyhow::bail!("isolate runs on --target processes only")
    }
    /// The failover service leading now, when several share an etcd store.
    fn leader(&self) -> Option<String> {
        None
    }
    /// Calls an adapter's REST API (`path` after `/api/v1`): the answer's JSON.
    async fn adapter_rest(
        &self,
        adapter: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value>;
    /// Calls the failover service's admin REST API (`path` from `/api/v1`).
    async fn arbiter_admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value>;
    /// The endpoint's audit of the group.
    async fn audit(&self) -> anyhow::Result<v1::AuditReport>;
    /// Who delivered each source tick to the endpoint (the audit's coverage).
    async fn coverage(&self) -> anyhow::Result<Vec<v1::CoverageRun>>;
    /// Stops everything (or puts the compose services back).
    async fn shutdown(&mut self);
}

/// Configures a stage's adapters one at a time, each after the previous one has joined the
/// group, so the first configured becomes Primary (a lone member) on every run.
pub(crate) async fn configure_in_order<S: Stage>(
    stage: &S,
    obs: &Observer,
    within: Duration,
) -> anyhow::Result<()> {
    // Watch first, so every transition from the first join on is seen.
    if !obs.wait_for(within, |t| t.connected).await {
        anyhow::bail!("cannot watch the failover group; {}", stage.logs());
    }
    for adapter in &stage.spec().adapters {
        stage.configure(adapter).await?;
        if !obs.wait_for(within, |t| t.session(adapter).is_some()).await {
            anyhow::bail!(
                "{adapter} did not join the failover group within {within:?}; {}",
                stage.logs()
            );
        }
    }
    Ok(())
}
