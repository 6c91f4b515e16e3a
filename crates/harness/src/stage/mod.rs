//! Where a scenario's pair runs: one story, three stages. The runner ([`crate::runner`]) drives
//! any [`Stage`] with the same steps and checks:
//!
//! - real processes on loopback, with signals and link proxies ([`Cluster::start`]);
//! - the services of `docker-compose.yml`, faults through docker compose
//!   ([`Cluster::start_compose`]);
//! - the deterministic simulator, in simulated time ([`sim::SimStage`]).
//!
//! A stage refuses what it cannot do with a message naming the stages that can.

pub mod sim;

use std::time::Duration;

use failover_proto::v1;
use reqwest::Method;
use serde_json::{Map, Value};
use tonic::transport::Channel;

use crate::{
    cluster::{Cluster, ClusterSpec, SourceFaultTarget},
    proxy::LinkChange,
};

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

impl Stage for Cluster {
    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }
    fn logs(&self) -> String {
        format!("component logs: {}", self.log_dir().display())
    }
    fn keep_logs(&mut self) {
        Cluster::keep_logs(self);
    }
    fn watch_channels(&self) -> anyhow::Result<(Channel, Channel)> {
        let arbiter = failover_proto::net::lazy_channel(
            &self.addrs.arbiter_url(),
            &failover_proto::net::Network::tcp(),
            self.addrs.arbiter_tls.clone(),
        )?;
        let endpoint = failover_proto::net::lazy_channel(
            &crate::cluster::Addresses::url(self.addrs.endpoint),
            &failover_proto::net::Network::tcp(),
            None,
        )?;
        Ok((arbiter, endpoint))
    }
    async fn configure(&self, adapter: &str) -> anyhow::Result<Value> {
        Cluster::configure(self, adapter).await
    }
    async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        Cluster::kill(self, name).await
    }
    async fn pause(&mut self, name: &str) -> anyhow::Result<()> {
        Cluster::pause(self, name).await
    }
    async fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        Cluster::resume(self, name).await
    }
    async fn stop(&mut self, name: &str, grace: Duration) -> anyhow::Result<()> {
        Cluster::stop(self, name, grace).await
    }
    async fn restart(
        &mut self,
        name: &str,
        changes: Option<&Map<String, Value>>,
    ) -> anyhow::Result<()> {
        Cluster::restart_with(self, name, changes).await
    }
    async fn start_extra(&mut self, extra: &Extra) -> anyhow::Result<()> {
        Cluster::start_extra(self, extra).await
    }
    async fn stop_extra(&mut self, extra: &Extra) -> anyhow::Result<()> {
        Cluster::stop(self, &extra.key(), Duration::from_secs(5)).await
    }
    async fn source_fault(&mut self, target: SourceFaultTarget, down: bool) -> anyhow::Result<()> {
        Cluster::source_fault(self, target, down).await
    }
    async fn endpoint_outage(&mut self, down: bool) -> anyhow::Result<()> {
        Cluster::endpoint_outage(self, down).await
    }
    async fn change_link(
        &mut self,
        adapter: &str,
        service: &str,
        change: &LinkChange,
        from_adapter: bool,
    ) -> anyhow::Result<()> {
        Cluster::change_link(self, adapter, service, change, from_adapter).await
    }
    async fn adapter_rest(
        &self,
        adapter: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        Cluster::adapter_rest(self, adapter, method, path, body).await
    }
    async fn arbiter_admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("http://{}{path}", self.addrs.arbiter_rest);
        self.rest(method, &url, body).await
    }
    async fn audit(&self) -> anyhow::Result<v1::AuditReport> {
        Cluster::audit(self).await
    }
    async fn coverage(&self) -> anyhow::Result<Vec<v1::CoverageRun>> {
        Cluster::coverage(self).await
    }
    async fn shutdown(&mut self) {
        Cluster::shutdown(self).await;
    }
}

/// A REST answer as the runner takes it: the body's JSON (null when empty, a string when not
/// JSON), or an error with the status and the server's message.
pub(crate) fn rest_answer(what: &str, status: u16, body: &[u8]) -> anyhow::Result<Value> {
    let text = String::from_utf8_lossy(body);
    let answer: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.to_string()))
    };
    if !(200..300).contains(&status) {
        let message = answer
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| answer.to_string(), str::to_string);
        // "404 Not Found", as the status line says.
        let status = reqwest::StatusCode::from_u16(status)
            .map_or_else(|_| status.to_string(), |s| s.to_string());
        anyhow::bail!("{what} refused ({status}): {message}");
    }
    Ok(answer)
}
