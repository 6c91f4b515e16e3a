//! The processes stage as the runner drives it: each [`Stage`] step is the [`Cluster`]'s
//! own method of the same name.

use std::time::Duration;

use failover_proto::v1;
use reqwest::Method;
use serde_json::{Map, Value};
use tonic::transport::Channel;

use super::{Cluster, ClusterSpec, LinkChange, SourceFaultTarget};
use crate::stage::{Extra, Stage};

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
            &super::Addresses::url(self.addrs.endpoint),
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
    async fn isolate(&mut self, service: Option<&str>) -> anyhow::Result<String> {
        Cluster::isolate(self, service).await
    }
    fn leader(&self) -> Option<String> {
        self.etcd.as_ref().and_then(super::etcd::EtcdFleet::leader)
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
        self.api().arbiter_admin(method, path, body).await
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
