//! A pair whose failover services share an etcd store (`[cluster] store = "etcd"`), as
//! processes:
//!
//! - three etcd members, `etcd-1` to `etcd-3` (the `etcd` binary on PATH, or
//!   `FAILOVER_LAB_ETCD`), each on loopback ports of its own with its data folder in the log
//!   folder, so a member killed and restarted rejoins with what it held;
//! - two failover services, `arbiter` and `arbiter-2` (`--store etcd://...`), each reaching
//!   every etcd member through a link proxy of its own, so `isolate` can cut one off;
//! - every adapter reaching both services through links of its own, its document listing both;
//! - the lab's own view (the observer's group watch, the admin calls) through two proxies that
//!   follow the leader: a task asks each service every 100 ms whether it leads
//!   (`GET /api/v1/lab/leadership`) and moves them to the one that does.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context, bail};
use failover_core::timespan::format_timespan;

use super::{ARBITER, Cluster};
use crate::proxy::{LinkState, Proxy};
pub use failover_scenario::cluster::{ARBITER_2, ETCD_MEMBERS};

/// The failover services of such a pair.
pub const SERVICES: [&str; 2] = [ARBITER, ARBITER_2];

/// The etcd binary to run: `FAILOVER_LAB_ETCD`, else `etcd` on PATH.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FAILOVER_LAB_ETCD") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

/// Ports a pair on an etcd store holds beside the usual ones: a client and a peer port per
/// etcd member, and the second service's gRPC and REST ports.
pub(super) const EXTRA_PORTS: usize = 2 * ETCD_MEMBERS.len() + 2;

/// The flags of etcd member `name` of a new loopback cluster (`initial`: every member's
/// `name=http://peer`), keeping its data in `data` (so a restart rejoins with it).
pub fn member_args(
    name: &str,
    data: &std::path::Path,
    client: SocketAddr,
    peer: SocketAddr,
    initial: &str,
) -> Vec<String> {
    [
        "--name",
        name,
        "--data-dir",
        &data.display().to_string(),
        "--listen-client-urls",
        &format!("http://{client}"),
        "--advertise-client-urls",
        &format!("http://{client}"),
        "--listen-peer-urls",
        &format!("http://{peer}"),
        "--initial-advertise-peer-urls",
        &format!("http://{peer}"),
        "--initial-cluster",
        initial,
        "--initial-cluster-token",
        "failover-lab",
        // Loopback: elect within half a second, not etcd's default of a second.
        "--heartbeat-interval",
        "100",
        "--election-timeout",
        "500",
        "--logger",
        "zap",
        "--log-level",
        "warn",
    ]
    .map(String::from)
    .to_vec()
}

/// The etcd side of a running pair.
#[derive(Debug)]
pub(super) struct EtcdFleet {
    lease: Duration,
    /// Each etcd member's client and peer address.
    members: Vec<(SocketAddr, SocketAddr)>,
    /// The second service's gRPC and REST addresses.
    second: (SocketAddr, SocketAddr),
    /// (failover service, etcd member) → the proxy on that link.
    store_links: BTreeMap<(String, String), Proxy>,
    /// Each failover service's gRPC and REST admin addresses.
    services: BTreeMap<String, (SocketAddr, SocketAddr)>,
    /// The lab's view of the leader.
    view: Option<LeaderView>,
    /// Services an `isolate` cut off.
    isolated: Vec<String>,
}

/// The lab's view of failover services sharing a store: a gRPC and a REST proxy that follow
/// whichever service says it leads (asked every 100 ms, `GET /api/v1/lab/leadership` on each
/// service's REST admin), and who that is.
#[derive(Debug)]
pub struct LeaderView {
    /// Where the lab reaches the leader's gRPC.
    pub grpc: SocketAddr,
    /// Where the lab reaches the leader's REST admin.
    pub rest: SocketAddr,
    leader: Arc<Mutex<Option<String>>>,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for LeaderView {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl LeaderView {
    /// Starts the view on `ip` over `services` (name: gRPC and REST admin addresses), and waits
    /// up to `within` until one leads.
    pub async fn start(
        ip: Ipv4Addr,
        services: BTreeMap<String, (SocketAddr, SocketAddr)>,
        http: reqwest::Client,
        within: Duration,
    ) -> anyhow::Result<LeaderView> {
        let (first_grpc, first_rest) = *services
            .values()
            .next()
            .context("no failover service to follow")?;
        let grpc = Proxy::start(ip, first_grpc).await?;
        let rest = Proxy::start(ip, first_rest).await?;
        let leader: Arc<Mutex<Option<String>>> = Arc::default();
        let view = LeaderView {
            grpc: grpc.listen,
            rest: rest.listen,
            leader: leader.clone(),
            follower: tokio::spawn(async move {
                loop {
                    if let Some(name) = leading(&http, &services).await {
                        let (g, r) = services[&name];
                        grpc.retarget(g);
                        rest.retarget(r);
                        *leader.lock().unwrap_or_else(PoisonError::into_inner) = Some(name);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }),
        };
        let started = tokio::time::Instant::now();
        while view.leader().is_none() {
            if started.elapsed() > within {
                bail!(
                    "no failover service leads {} s after they started (see their logs)",
                    within.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(view)
    }

    /// The failover service leading, as last seen.
    pub fn leader(&self) -> Option<String> {
        self.leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl EtcdFleet {
    /// Lays out the etcd side on `ports` ([`EXTRA_PORTS`] of them, held by the caller): the
    /// links of both services to every member, and (into `links`) every adapter's link to the
    /// second service. Call it before the held ports are released, so nothing else takes them.
    pub(super) async fn plan(
        ip: Ipv4Addr,
        ports: &[u16],
        lease: Duration,
        adapters: &[String],
        links: &mut BTreeMap<(String, String), Proxy>,
    ) -> anyhow::Result<EtcdFleet> {
        let at = |i: usize| SocketAddr::from((ip, ports[i]));
        let members: Vec<(SocketAddr, SocketAddr)> = (0..ETCD_MEMBERS.len())
            .map(|i| (at(2 * i), at(2 * i + 1)))
            .collect();
        let second = (at(2 * ETCD_MEMBERS.len()), at(2 * ETCD_MEMBERS.len() + 1));
        let mut store_links = BTreeMap::new();
        for service in SERVICES {
            for (member, (client, _)) in ETCD_MEMBERS.iter().zip(&members) {
                let proxy = Proxy::start(ip, *client)
                    .await
                    .context("cannot start a link proxy to etcd")?;
                store_links.insert((service.to_string(), member.to_string()), proxy);
            }
        }
        for adapter in adapters {
            let proxy = Proxy::start(ip, second.0)
                .await
                .context("cannot start a link proxy")?;
            links.insert((adapter.clone(), ARBITER_2.to_string()), proxy);
        }
        Ok(EtcdFleet {
            lease,
            members,
            second,
            store_links,
            services: BTreeMap::new(),
            view: None,
            isolated: Vec::new(),
        })
    }

    /// Starts the three etcd members and waits until they have a quorum.
    pub(super) async fn start_members(&self, cluster: &mut Cluster) -> anyhow::Result<()> {
        let binary = etcd_binary().context(
            "store = \"etcd\" needs etcd 3.4 or newer: put `etcd` on PATH (Debian: apt install etcd-server) or name it in FAILOVER_LAB_ETCD",
        )?;
        let initial: Vec<String> = ETCD_MEMBERS
            .iter()
            .zip(&self.members)
            .map(|(m, (_, peer))| format!("{m}=http://{peer}"))
            .collect();
        for (member, (client, peer)) in ETCD_MEMBERS.iter().zip(&self.members) {
            let data = cluster.log_dir.join(format!("{member}.data"));
            let args = member_args(member, &data, *client, *peer, &initial.join(","));
            cluster.add(member, binary.clone(), args)?;
        }
        let http = cluster.http.clone();
        let health = self.members[0].0;
        crate::services::wait_until(
            ETCD_MEMBERS[0],
            Duration::from_secs(20),
            "have a quorum (GET /health)",
            &cluster.log_of(ETCD_MEMBERS[0]),
            || {
                let http = http.clone();
                async move {
                    match http.get(format!("http://{health}/health")).send().await {
                        Ok(r) => r.text().await.is_ok_and(|t| t.contains("\"true\"")),
                        Err(_) => false,
                    }
                }
            },
            || Ok(()),
        )
        .await
    }

    /// The flags of failover service `name` (serving gRPC at `grpc`): the store through its
    /// own links to the members, the lease, and its URL.
    pub(super) fn service_args(&self, name: &str, grpc: SocketAddr) -> Vec<String> {
        let hosts: Vec<String> = ETCD_MEMBERS
            .iter()
            .filter_map(|m| self.store_links.get(&(name.to_string(), m.to_string())))
            .map(|p| p.listen.to_string())
            .collect();
        vec![
            "--store".into(),
            format!("etcd://{}/failover-lab", hosts.join(",")),
            "--store-lease".into(),
            format_timespan(self.lease),
            "--advertise-url".into(),
            format!("http://{grpc}"),
        ]
    }

    /// Notes where failover service `name` serves.
    pub(super) fn add_service(&mut self, name: &str, grpc: SocketAddr, rest: SocketAddr) {
        self.services.insert(name.to_string(), (grpc, rest));
    }

    /// Starts the lab's view of the leader, and waits until one service leads: answers its
    /// gRPC and REST addresses.
    pub(super) async fn follow_leader(
        &mut self,
        ip: Ipv4Addr,
        http: reqwest::Client,
    ) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        let view =
            LeaderView::start(ip, self.services.clone(), http, Duration::from_secs(20)).await?;
        let addrs = (view.grpc, view.rest);
        self.view = Some(view);
        Ok(addrs)
    }

    /// The failover service leading, as last seen.
    pub(crate) fn leader(&self) -> Option<String> {
        self.view.as_ref().and_then(LeaderView::leader)
    }

    /// Cuts every link of failover service `name`: to each etcd member, and (in `adapter_links`)
    /// from each adapter. None heals every service cut off so.
    pub(super) fn isolate<'a>(
        &mut self,
        name: Option<&str>,
        adapter_links: impl Iterator<Item = (&'a (String, String), &'a Proxy)>,
    ) {
        let names: Vec<String> = match name {
            Some(n) => vec![n.to_string()],
            None => std::mem::take(&mut self.isolated),
        };
        let cut = name.is_some();
        let set = |p: &Proxy| {
            p.set(|st| {
                *st = LinkState {
                    cut,
                    ..LinkState::default()
                }
            })
        };
        for ((service, _), proxy) in &self.store_links {
            if names.contains(service) {
                set(proxy);
            }
        }
        for ((_, service), proxy) in adapter_links {
            if names.contains(service) {
                set(proxy);
            }
        }
        if let Some(n) = name
            && !self.isolated.iter().any(|i| i == n)
        {
            self.isolated.push(n.to_string());
        }
    }
}

/// The service that says it leads, if exactly one does.
async fn leading(
    http: &reqwest::Client,
    services: &BTreeMap<String, (SocketAddr, SocketAddr)>,
) -> Option<String> {
    let mut leaders = Vec::new();
    for (name, (_, rest)) in services {
        let answer = http
            .get(format!("http://{rest}/api/v1/lab/leadership"))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        let Ok(answer) = answer else { continue };
        let Ok(body) = answer.json::<serde_json::Value>().await else {
            continue;
        };
        if body["Standing"] == "Leading" {
            leaders.push(name.clone());
        }
    }
    (leaders.len() == 1).then(|| leaders.remove(0))
}

/// Starts the second failover service beside the first (as it, but on ports of its own, with
/// its own links to etcd), the adapters' links to it, and the lab's view of the leader.
pub(super) async fn start_second(
    cluster: &mut Cluster,
    mut fleet: EtcdFleet,
    ip: Ipv4Addr,
) -> anyhow::Result<()> {
    let (grpc, rest) = fleet.second;
    fleet.add_service(ARBITER, cluster.addrs.arbiter, cluster.addrs.arbiter_rest);
    fleet.add_service(ARBITER_2, grpc, rest);
    let first = cluster
        .components
        .get(ARBITER)
        .context("the failover service is not started")?;
    let binary = first.binary.clone();
    // The first service's flags, but its addresses and its store links.
    let mut args = Vec::new();
    let mut given = first.args.iter();
    while let Some(flag) = given.next() {
        match flag.as_str() {
            "--listen" | "--rest-listen" | "--store" | "--store-lease" | "--advertise-url" => {
                given.next();
            }
            _ => args.push(flag.clone()),
        }
    }
    args.extend([
        "--listen".into(),
        grpc.to_string(),
        "--rest-listen".into(),
        rest.to_string(),
    ]);
    args.extend(fleet.service_args(ARBITER_2, grpc));
    cluster.add(ARBITER_2, binary, args)?;
    cluster
        .wait_grpc_healthy(ARBITER_2, grpc, Duration::from_secs(10))
        .await?;
    let (view_grpc, view_rest) = fleet.follow_leader(ip, cluster.http.clone()).await?;
    cluster.addrs.arbiter = view_grpc;
    cluster.addrs.arbiter_rest = view_rest;
    cluster.etcd = Some(fleet);
    Ok(())
}

impl Cluster {
    /// Cuts failover service `name` (`arbiter` or `arbiter-2`; the runner names the leading one
    /// for `leader`) off from etcd and every adapter; None heals every service cut off so.
    /// Answers the service's name.
    pub async fn isolate(&mut self, name: Option<&str>) -> anyhow::Result<String> {
        let fleet = self.etcd.as_mut().context(
            "isolate needs failover services sharing an etcd store ([cluster] store = \"etcd\")",
        )?;
        fleet.isolate(name, self.links.iter());
        Ok(name.unwrap_or_default().to_string())
    }
}
