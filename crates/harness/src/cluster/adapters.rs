//! How the processes stage starts each adapter of a pair: failover-lab's own binary with the
//! flags the cluster asks for, or a program of the scenario file's (`[cluster.adapters.NAME]`
//! with a `command`), its placeholders filled in from the pair's addresses.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::Context;
use failover_core::timespan::format_timespan;
use failover_scenario::program::{AdapterProgram, fill};

use super::{
    ADAPTER_BIN, ARBITER, Cluster, ClusterProtocol, ClusterTls, ENDPOINT, SOURCE, TLS_DIR, binaries,
};

/// failover-lab's adapter `name`: its binary and flags.
pub(super) fn lab_command(
    cluster: &Cluster,
    name: &str,
    bins: &std::path::Path,
) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let spec = &cluster.spec;
    let rest = cluster.addrs.adapters[name];
    let mut args = vec![
        "--name".into(),
        name.to_string(),
        "--rest-listen".into(),
        rest.to_string(),
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
        let ca = cluster.log_dir.join(TLS_DIR).join("ca.pem");
        args.extend(["--trusted-ca".into(), ca.display().to_string()]);
    }
    if spec.disk_buffer {
        let dir = cluster.log_dir.join(format!("{name}.buffer"));
        args.extend(["--buffer-dir".into(), dir.display().to_string()]);
    }
    if spec.behaviour != failover_core::Behaviour::Lab {
        args.extend(["--behaviour".into(), spec.behaviour.as_str().into()]);
    }
    args.extend(spec.adapter_args.iter().cloned());
    args.extend(binaries::break_args(spec, ADAPTER_BIN));
    Ok((bins.join(ADAPTER_BIN), args))
}

/// The failover service's URL as adapter `name`'s ClientFailover document has it: both
/// services, comma-separated, when they share an etcd store.
pub(super) fn failover_url(cluster: &Cluster, name: &str) -> anyhow::Result<String> {
    if cluster.etcd.is_some() {
        return Ok(super::etcd::SERVICES
            .iter()
            .map(|s| cluster.link_url(name, s))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","));
    }
    Ok(if cluster.spec.failover_protocol == ClusterProtocol::Rest {
        format!("{}/api/v1/clientfailover", cluster.link_url(name, ARBITER)?)
    } else {
        cluster.link_url(name, ARBITER)?
    })
}

/// What each placeholder of a program adapter's command stands for. Makes its data folder and
/// writes its `{config_file}`.
pub(super) fn placeholders(
    cluster: &Cluster,
    name: &str,
    bins: &std::path::Path,
) -> anyhow::Result<BTreeMap<&'static str, String>> {
    let spec = &cluster.spec;
    let rest = cluster.addrs.adapters[name];
    let failover = failover_url(cluster, name)?;
    let data_dir = cluster.log_dir.join(format!("{name}.data"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot make {}", data_dir.display()))?;
    let config_file = cluster.log_dir.join(format!("{name}.ClientFailover.json"));
    let doc = spec.client_failover_document(&failover)?;
    std::fs::write(&config_file, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", config_file.display()))?;
    Ok(BTreeMap::from([
        ("{bin}", bins.display().to_string()),
        ("{name}", name.to_string()),
        ("{rest}", rest.to_string()),
        ("{rest_port}", rest.port().to_string()),
        ("{source}", cluster.link_url(name, SOURCE)?),
        ("{endpoint}", cluster.link_url(name, ENDPOINT)?),
        ("{failover}", failover),
        ("{group}", spec.group_id.clone()),
        ("{mode}", spec.mode.as_str().to_string()),
        ("{failover_timeout}", format_timespan(spec.failover_timeout)),
        ("{data_dir}", data_dir.display().to_string()),
        ("{config_file}", config_file.display().to_string()),
    ]))
}

/// A program adapter's command, its placeholders filled in.
pub(super) fn program_command(
    program: &AdapterProgram,
    values: &BTreeMap<&'static str, String>,
) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let mut words = program.command.iter().map(|w| fill(w, values));
    let binary = words.next().context("the command is empty")?;
    Ok((PathBuf::from(binary), words.collect()))
}
