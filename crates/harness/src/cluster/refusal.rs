//! What a pair of processes cannot run, said before anything starts: shapes the processes
//! stage refuses ([`refusal`]), and steps a source wire cannot carry out ([`steps_refusal`]).

use super::{ClusterAuth, ClusterProtocol, ClusterSource, ClusterSpec};

/// Why a scenario's steps cannot run on this pair as processes (None: they can): a source
/// fault for one adapter alone needs a source that knows its clients by name, which the OPC UA
/// side does not (its sessions are anonymous to the faults).
pub fn steps_refusal(s: &failover_scenario::Scenario, spec: &ClusterSpec) -> Option<String> {
    use failover_scenario::{Action, SourceScope};
    if spec.behaviour == failover_core::Behaviour::Vendor
        && let Some(why) = vendor_refusal(s)
    {
        return Some(why);
    }
    if spec.source_protocol != ClusterSource::OpcUa {
        return None;
    }
    s.steps.iter().find_map(|step| match &step.action {
        Action::Source {
            scope:
                SourceScope::Connection(_)
                | SourceScope::Component {
                    adapter: Some(_), ..
                },
            ..
        } => Some(format!(
            "line {}: {}: a source fault for one adapter alone needs a source that knows its \
             clients by name (gRPC, MQTT); the OPC UA side fails for every client (cut the \
             adapter's source link instead, or use source_protocol \"grpc\" or \"mqtt\")",
            step.line, step.action
        )),
        _ => None,
    })
}

/// Why a story cannot be told of a pair of the vendor's behaviour: its OMF writes carry its name
/// but no epoch, so the endpoint cannot tell a new Primary's writes from the same adapter's
/// earlier ones (`takeover_within`), nor say at what epoch a point came (`audit` `epoch`,
/// `refused_stale`).
fn vendor_refusal(s: &failover_scenario::Scenario) -> Option<String> {
    use failover_scenario::Action;
    s.steps.iter().find_map(|step| {
        let c = match &step.action {
            Action::Expect(c)
            | Action::WaitUntil { condition: c, .. }
            | Action::Hold { condition: c, .. }
            | Action::Never { condition: c, .. } => c,
            _ => return None,
        };
        let what = if c.takeover_within.is_some() {
            "takeover_within"
        } else if let Some((figure, _)) = c
            .audit
            .iter()
            .find(|(f, _)| f == "epoch" || f == "refused_stale")
        {
            figure.as_str()
        } else {
            return None;
        };
        Some(format!(
            "line {}: {what}: the vendor's behaviour writes OMF with no epoch, so the endpoint \
             cannot tell a new Primary's writes from the same adapter's earlier ones, nor say at \
             what epoch a point came; measure what it loses and duplicates with audit lost and \
             duplicated instead",
            step.line
        ))
    })
}

/// Why a pair of this shape cannot run as processes (None: it can).
pub fn refusal(spec: &ClusterSpec) -> Option<String> {
    if let Some(why) = store_refusal(spec) {
        return Some(why);
    }
    if spec.source_protocol == ClusterSource::Mqtt
        && spec.data_collection_mode == failover_core::DataCollectionMode::HistoryOnly
    {
        return Some(
            "source_protocol mqtt with dataCollectionMode HistoryOnly: MQTT keeps no history, \
             and history recoveries need a source that does; use source_protocol = \"opcua\" \
             or \"grpc\""
                .to_string(),
        );
    }
    (spec.failover_protocol == ClusterProtocol::Rest
        && matches!(spec.auth, ClusterAuth::Bearer { .. }))
    .then(|| {
        "cluster.auth bearer with failover_protocol rest: bearer tokens are not taken on the \
         vendor's REST API (its on-premises service knows basic authentication); use auth = \
         \"basic\" with the rest protocol"
            .to_string()
    })
}

/// Why a pair on an etcd store cannot run here: it runs on the gRPC wire, without TLS, through
/// the link proxies, and needs etcd (which CI installs: with `FAILOVER_LAB_REQUIRE_ETCD` set,
/// a missing etcd fails the start instead of skipping the file).
fn store_refusal(spec: &ClusterSpec) -> Option<String> {
    if spec.store == failover_scenario::cluster::ClusterStore::Memory {
        return None;
    }
    if spec.failover_protocol != ClusterProtocol::Grpc {
        return Some("store etcd with failover_protocol rest: failover services sharing an etcd store are staged on failover-lab's gRPC wire only".into());
    }
    if spec.tls != super::ClusterTls::Off {
        return Some(
            "store etcd with tls: failover services sharing an etcd store are staged without TLS"
                .into(),
        );
    }
    if spec.direct_links {
        return Some("store etcd needs the link proxies (isolate cuts them)".into());
    }
    if super::etcd::etcd_binary().is_none()
        && std::env::var_os("FAILOVER_LAB_REQUIRE_ETCD").is_none()
    {
        return Some("store etcd needs etcd 3.4 or newer on PATH (Debian: apt install etcd-server), or FAILOVER_LAB_ETCD naming it".into());
    }
    None
}
