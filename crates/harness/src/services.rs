//! How to reach a running pair's services by address, whatever runs them: the addresses,
//! the REST calls to the adapters and the failover service's admin API, the endpoint's audit,
//! source faults and endpoint outages (both are requests to a service, on every stage), and
//! the gRPC health probe. The processes stage ([`crate::cluster`]) and the compose stage
//! ([`crate::stage::compose`]) differ in how they start and hurt their components, not in this.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use anyhow::Context;
use failover_proto::v1;
use serde_json::Value;

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
        client: &mut v1::data_source_client::DataSourceClient<tonic::transport::Channel>,
        down: bool,
    ) -> anyhow::Result<()> {
        use v1::source_fault::Target;
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
            .inject_fault(v1::SourceFault {
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
    /// The source's MQTT or OPC UA side, as `cluster.source_protocol` says (None where only
    /// gRPC is served).
    pub source_wire: Option<SocketAddr>,
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

    /// The URL of the source's side at `addr` for `protocol`: `mqtt://`, `opc.tcp://` or
    /// gRPC's `http://`.
    pub fn source_url(
        protocol: failover_scenario::cluster::ClusterSource,
        addr: SocketAddr,
    ) -> String {
        use failover_scenario::cluster::ClusterSource;
        match protocol {
            ClusterSource::Grpc => Self::url(addr),
            ClusterSource::Mqtt => format!("mqtt://{addr}"),
            ClusterSource::OpcUa => format!("opc.tcp://{addr}/"),
        }
    }

    /// The OMF URL (Edge Data Store's path) of an endpoint's HTTP address.
    pub fn omf_url(addr: SocketAddr) -> String {
        format!("http://{addr}/api/v1/tenants/default/namespaces/default/omf")
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

/// The calls a harness makes to a running pair, by address: a borrowed view of a stage's
/// addresses, group and HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct PairApi<'a> {
    /// Where everything listens.
    pub addrs: &'a Addresses,
    /// The failover group the pair's audit covers.
    pub group_id: &'a str,
    /// The HTTP client for REST calls.
    pub http: &'a reqwest::Client,
}

/// An HTTP client for REST calls to a pair, with a 5 s timeout per request.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?)
}

impl PairApi<'_> {
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

    /// Sets an adapter's data collection mode (its data source configuration).
    pub async fn set_data_collection_mode(&self, adapter: &str, mode: &str) -> anyhow::Result<()> {
        let ds = serde_json::json!({ "dataCollectionMode": mode });
        self.adapter_rest(
            adapter,
            reqwest::Method::PUT,
            "/configuration/Source1/DataSource",
            Some(&ds),
        )
        .await?;
        Ok(())
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

    /// Calls the failover service's admin REST API (`path` from `/api/v1`).
    pub async fn arbiter_admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("http://{}{path}", self.addrs.arbiter_rest);
        self.rest(method, &url, body).await
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
        rest_answer(&format!("{method} {url}"), status.as_u16(), &body)
    }

    /// An adapter's REST address.
    pub fn rest_addr(&self, adapter: &str) -> anyhow::Result<SocketAddr> {
        self.addrs
            .adapters
            .get(adapter)
            .copied()
            .with_context(|| format!("no adapter {adapter:?}"))
    }

    /// The endpoint's audit of the group, with the coverage (who delivered each tick) or
    /// without.
    pub async fn audit(&self, include_coverage: bool) -> anyhow::Result<v1::AuditReport> {
        audit(
            self.addrs,
            v1::AuditRequest {
                group_id: self.group_id.to_string(),
                include_coverage,
                ..Default::default()
            },
        )
        .await
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

    /// Fails (`down` true) or heals a part of the data source.
    pub async fn source_fault(&self, fault: &SourceFaultTarget, down: bool) -> anyhow::Result<()> {
        let mut client =
            v1::data_source_client::DataSourceClient::connect(Addresses::url(self.addrs.source))
                .await?;
        fault.inject(&mut client, down).await
    }

    /// Starts (`down` true) or ends a simulated endpoint outage.
    pub async fn endpoint_outage(&self, down: bool) -> anyhow::Result<()> {
        let mut client = v1::data_endpoint_client::DataEndpointClient::connect(Addresses::url(
            self.addrs.endpoint,
        ))
        .await?;
        client.set_outage(v1::OutageRequest { down }).await?;
        Ok(())
    }
}

/// True when the adapter REST API at `rest` answers (any status).
pub async fn serves_rest(http: reqwest::Client, rest: SocketAddr) -> bool {
    let url = format!("http://{rest}/api/v1/diagnostics/FailoverState");
    http.get(&url).send().await.is_ok()
}

/// A fresh audit from the endpoint at `addrs`.
pub async fn audit(
    addrs: &Addresses,
    request: v1::AuditRequest,
) -> anyhow::Result<v1::AuditReport> {
    let mut client =
        v1::data_endpoint_client::DataEndpointClient::connect(Addresses::url(addrs.endpoint))
            .await?;
    Ok(client.audit(request).await?.into_inner())
}

/// A REST answer as the harness takes it: the body's JSON (null when empty, a string when not
/// JSON), or an error with the status and the server's message.
pub fn rest_answer(what: &str, status: u16, body: &[u8]) -> anyhow::Result<Value> {
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

/// Polls `probe` every 50 ms until it answers true. Between polls `alive` may end the wait
/// with its error (a process that exited); after `within` the error names `name`, what it
/// waited for and `see` (where its log is).
pub async fn wait_until<F, Fut>(
    name: &str,
    within: Duration,
    what: &str,
    see: &str,
    mut probe: F,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if probe().await {
            return Ok(());
        }
        alive()?;
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{name} did not {what} within {within:?}; see {see}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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
pub(crate) async fn channel_healthy(channel: tonic::transport::Channel) -> bool {
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

/// Merges `changes` into a JSON object (each key replaced), as a ClientFailover document PATCH
/// does for these fields.
pub fn merge(doc: &mut Value, changes: Option<&serde_json::Map<String, Value>>) {
    if let (Value::Object(d), Some(c)) = (doc, changes) {
        for (k, v) in c {
            d.insert(k.clone(), v.clone());
        }
    }
}
