//! The keys of a pair whose failover services share an etcd store: `[cluster] store` and
//! `store_lease`, the steps `isolate` and `end_isolation`, and the components only such a pair
//! has (`arbiter-2`, `etcd-1` to `etcd-3`, and `leader`, whichever service leads).

use std::time::Duration;

use crate::{
    ScenarioError,
    checker::{Checker, key_line},
    cluster::{ARBITER_2, ClusterSpec, ClusterStore, LEADER},
    model::{Action, Target},
    raw::{ClusterToml, StepToml},
};

/// The lease when the file gives none.
const DEFAULT_LEASE: Duration = Duration::from_secs(2);

/// `spec` with the file's store; the checker then knows the store's components.
pub(crate) fn with_store(
    ck: &mut Checker<'_>,
    c: &ClusterToml,
    mut spec: ClusterSpec,
) -> Result<ClusterSpec, ScenarioError> {
    let lease = match &c.store_lease {
        None => DEFAULT_LEASE,
        Some(text) => {
            let d = failover_core::timespan::parse_timespan(text)
                .map_err(|e| ck.err("cluster.store_lease", e.to_string()))?;
            if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&d)
                || d.subsec_nanos() != 0
            {
                return Err(ck.err(
                    "cluster.store_lease",
                    format!("{text:?}: give whole seconds, 00:00:01 to 00:01:00 (etcd's leases are in seconds)"),
                ));
            }
            d
        }
    };
    spec.store = match c.store.as_deref() {
        None | Some("memory") => {
            if c.store_lease.is_some() {
                return Err(ck.err("cluster.store_lease", "a lease goes with store = \"etcd\""));
            }
            ClusterStore::Memory
        }
        Some("etcd") => {
            ck.etcd = true;
            ClusterStore::Etcd { lease }
        }
        Some(other) => {
            return Err(ck.err(
                "cluster.store",
                format!("{other:?} is not a store; use \"memory\" (one failover service) or \"etcd\" (two sharing a three-member etcd cluster)"),
            ));
        }
    };
    Ok(spec)
}

/// The step's `isolate` and `end_isolation`, when it has them.
pub(crate) fn actions(
    ck: &mut Checker<'_>,
    s: &StepToml,
    text: &str,
    span: &std::ops::Range<usize>,
    index: usize,
) -> Result<Vec<Action>, ScenarioError> {
    let mut actions = Vec::new();
    if let Some(name) = &s.isolate {
        ck.line = key_line(text, span, "isolate");
        let field = format!("step {}.isolate", index + 1);
        if !ck.etcd {
            return Err(ck.err(
                &field,
                "isolate cuts a failover service off from etcd and the adapters: give [cluster] store = \"etcd\" (or cut_link for one link)",
            ));
        }
        if ![crate::cluster::ARBITER, ARBITER_2, LEADER].contains(&name.as_str()) {
            return Err(ck.err(
                &field,
                format!("{name:?} is not a failover service; use \"leader\", \"arbiter\" or \"arbiter-2\""),
            ));
        }
        actions.push(Action::Isolate(Target::Named(name.clone())));
    }
    if let Some(end) = s.end_isolation {
        ck.line = key_line(text, span, "end_isolation");
        if !end {
            return Err(ck.err(
                &format!("step {}.end_isolation", index + 1),
                "end_isolation = true heals what isolate cut (false does nothing: leave it out)",
            ));
        }
        actions.push(Action::EndIsolation);
    }
    Ok(actions)
}
