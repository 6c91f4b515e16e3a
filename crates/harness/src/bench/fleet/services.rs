//! The fleet's failover services: one process keeping its groups in memory, or
//! (`--fleet-store etcd`) two sharing a three-member etcd cluster started for the run, one
//! leading. The members know every service; the figures are read from the one leading.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use serde::Serialize;

/// Where the fleet's failover service keeps leadership and epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Store {
    /// One failover-arbiter, in memory.
    Memory,
    /// Two failover-arbiters on three etcd members.
    Etcd,
}

impl Store {
    /// As the table shows it.
    pub fn name(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Etcd => "etcd",
        }
    }
}

/// The lease of the etcd store's leader.
pub(super) const LEASE: Duration = Duration::from_secs(2);

/// One failover service under test, as a process.
pub(super) struct Service {
    pub(super) child: tokio::process::Child,
    args: Vec<String>,
    log: PathBuf,
    pub(super) grpc: SocketAddr,
    pub(super) rest: SocketAddr,
    pub(super) cfs: SocketAddr,
    pub(super) ca: PathBuf,
}

fn port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], failover_proto::testing::free_port()))
}

impl Service {
    /// Starts failover-arbiter `name` with `store_args` (given its gRPC address).
    async fn start(
        dir: &Path,
        name: &str,
        store_args: impl FnOnce(SocketAddr) -> Vec<String>,
    ) -> anyhow::Result<Service> {
        let (grpc, rest, cfs) = (port(), port(), port());
        let cert_dir = dir.join(format!("{name}-cfs-cert"));
        let mut args = vec![
            "--listen".to_string(),
            grpc.to_string(),
            "--rest-listen".into(),
            rest.to_string(),
            "--cfs-listen".into(),
            cfs.to_string(),
            "--cfs-cert-dir".into(),
            cert_dir.display().to_string(),
        ];
        args.extend(store_args(grpc));
        let log = dir.join(format!("{name}.log"));
        let child = spawn(&args, &log)?;
        let s = Service {
            child,
            args,
            log,
            grpc,
            rest,
            cfs,
            ca: cert_dir.join("ca.pem"),
        };
        s.wait_serving().await?;
        Ok(s)
    }

    async fn wait_serving(&self) -> anyhow::Result<()> {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.grpc).await.is_ok()
                && tokio::net::TcpStream::connect(self.cfs).await.is_ok()
                && self.ca.exists()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("failover-arbiter did not serve within 10 s")
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, then the same command on the same ports.
    pub(super) async fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill().await;
        self.child = spawn(&self.args, &self.log)?;
        self.wait_serving().await
    }

    pub(super) async fn heartbeats_taken(&self) -> anyhow::Result<u64> {
        metric(self.rest, "failover_arbiter_heartbeats_total")
            .await
            .map(|v| v as u64)
    }

    async fn leads(&self) -> bool {
        let answer = async {
            let body: serde_json::Value =
                reqwest::get(format!("http://{}/api/v1/lab/leadership", self.rest))
                    .await?
                    .json()
                    .await?;
            anyhow::Ok(body["Standing"] == "Leading")
        };
        answer.await.unwrap_or(false)
    }
}

fn spawn(args: &[String], log: &Path) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    tokio::process::Command::new(crate::cluster::bin_dir()?.join("failover-arbiter"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start failover-arbiter")
}

/// The sum of a metric's samples on a `/metrics` page.
async fn metric(addr: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let page = reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .text()
        .await?;
    let values: Vec<f64> = page
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .collect();
    anyhow::ensure!(!values.is_empty(), "no {name} on {addr}/metrics");
    Ok(values.iter().sum())
}

/// The fleet's services, and the etcd members when they share a store.
pub(super) struct Services {
    pub(super) list: Vec<Service>,
    etcd: Vec<tokio::process::Child>,
    etcd_clients: Vec<SocketAddr>,
}

impl Services {
    pub(super) async fn start(store: Store, dir: &Path) -> anyhow::Result<Services> {
        if store == Store::Memory {
            return Ok(Services {
                list: vec![Service::start(dir, "failover-arbiter", |_| Vec::new()).await?],
                etcd: Vec::new(),
                etcd_clients: Vec::new(),
            });
        }
        let binary = crate::cluster::etcd::etcd_binary()
            .context("--fleet-store etcd needs etcd 3.4 or newer on PATH (Debian: apt install etcd-server), or FAILOVER_LAB_ETCD naming it")?;
        let members: Vec<(SocketAddr, SocketAddr)> = (0..3).map(|_| (port(), port())).collect();
        let initial: Vec<String> = members
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("etcd-{}=http://{peer}", i + 1))
            .collect();
        let mut etcd = Vec::new();
        for (i, (client, peer)) in members.iter().enumerate() {
            let name = format!("etcd-{}", i + 1);
            let args = crate::cluster::etcd::member_args(
                &name,
                &dir.join(format!("{name}.data")),
                *client,
                *peer,
                &initial.join(","),
            );
            let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
            etcd.push(
                tokio::process::Command::new(&binary)
                    .args(args)
                    .stdout(std::process::Stdio::null())
                    .stderr(log)
                    .kill_on_drop(true)
                    .spawn()
                    .context("cannot start etcd")?,
            );
        }
        let hosts: Vec<String> = members.iter().map(|(c, _)| c.to_string()).collect();
        let store_args = |grpc: SocketAddr| {
            vec![
                "--store".to_string(),
                format!("etcd://{}/fleet", hosts.join(",")),
                "--store-lease".into(),
                failover_core::timespan::format_timespan(LEASE),
                "--advertise-url".into(),
                format!("http://{grpc}"),
            ]
        };
        let a = Service::start(dir, "failover-arbiter-a", store_args).await?;
        let b = Service::start(dir, "failover-arbiter-b", store_args).await?;
        Ok(Services {
            list: vec![a, b],
            etcd,
            etcd_clients: members.iter().map(|(c, _)| *c).collect(),
        })
    }

    /// The index of the service leading, waiting up to 20 s for one.
    pub(super) async fn leader(&self) -> anyhow::Result<usize> {
        for _ in 0..200 {
            for (i, s) in self.list.iter().enumerate() {
                if self.list.len() == 1 || s.leads().await {
                    return Ok(i);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("no failover service leads 20 s after the start")
    }

    /// etcd's calls answered and raft proposals committed so far, summed over the members (0, 0
    /// without etcd).
    pub(super) async fn etcd_counts(&self) -> anyhow::Result<(f64, f64)> {
        let mut calls = 0.0;
        let mut proposals: f64 = 0.0;
        for c in &self.etcd_clients {
            calls += metric(*c, "grpc_server_handled_total").await?;
            // Every member commits every proposal: the most any has seen.
            proposals = proposals.max(metric(*c, "etcd_server_proposals_committed_total").await?);
        }
        Ok((calls, proposals))
    }

    /// Whether the services share an etcd store.
    pub(super) fn shared(&self) -> bool {
        !self.etcd.is_empty()
    }
}
