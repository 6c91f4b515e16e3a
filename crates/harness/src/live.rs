//! `failover-lab demo --dashboard`: the pair on loopback with the live dashboard, whose buttons
//! drive the real processes (kill, pause, resume, restart, cut or restore an adapter's source,
//! change the mode), until Ctrl-C.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use failover_core::Mode;
use failover_dashboard::{ActionRequest, ActionResult, Actions, Feed};
use tokio::sync::Mutex;

use crate::{
    cluster::{Addresses, Cluster, ClusterSpec, SourceFaultTarget},
    observe::Observer,
};

/// The buttons, on a running cluster.
#[derive(Debug)]
pub struct ClusterActions {
    cluster: Arc<Mutex<Cluster>>,
}

impl ClusterActions {
    async fn run(&self, req: ActionRequest) -> ActionResult {
        let mut cluster = self.cluster.lock().await;
        let names = cluster.spec.adapters.clone();
        let adapter = || -> Result<String, String> {
            let name = req
                .adapter
                .clone()
                .ok_or_else(|| format!("{} needs an adapter", req.action))?;
            if names.contains(&name) {
                Ok(name)
            } else {
                Err(format!(
                    "no adapter {name:?}; the pair is {}",
                    names.join(" and ")
                ))
            }
        };
        let done = match req.action.as_str() {
            "kill" => {
                let a = adapter()?;
                cluster.kill(&a).await.map(|()| format!("SIGKILL {a}"))
            }
            "pause" => {
                let a = adapter()?;
                cluster
                    .pause(&a)
                    .await
                    .map(|()| format!("SIGSTOP {a} (paused)"))
            }
            "resume" => {
                let a = adapter()?;
                cluster
                    .resume(&a)
                    .await
                    .map(|()| format!("SIGCONT {a} (resumed)"))
            }
            "restart" => {
                let a = adapter()?;
                cluster
                    .restart(&a)
                    .await
                    .map(|()| format!("{a} restarted and configured again"))
            }
            "cut_source" | "heal_source" => {
                let a = adapter()?;
                let down = req.action == "cut_source";
                cluster
                    .source_fault(SourceFaultTarget::Connection(a.clone()), down)
                    .await
                    .map(|()| {
                        if down {
                            format!("cut {a}'s connection to the data source")
                        } else {
                            format!("restored {a}'s connection to the data source")
                        }
                    })
            }
            "mode" => {
                let mode: Mode = req
                    .mode
                    .as_deref()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| format!("mode: {e}"))?;
                cluster.spec.mode = mode;
                let body = serde_json::json!({ "mode": mode.as_str() });
                let mut changed = Vec::new();
                for a in cluster.spec.adapters.clone() {
                    // A killed or paused adapter gets the new mode when it is restarted.
                    if cluster.pid(&a).is_none() {
                        continue;
                    }
                    let patch = cluster.adapter_rest(
                        &a,
                        reqwest::Method::PATCH,
                        "/configuration/System/ClientFailover",
                        Some(&body),
                    );
                    if tokio::time::timeout(Duration::from_secs(2), patch)
                        .await
                        .is_ok_and(|r| r.is_ok())
                    {
                        changed.push(a);
                    }
                }
                Ok(format!("mode {mode} set on {}", changed.join(" and ")))
            }
            other => {
                return Err(format!(
                    "unknown action {other:?}: kill, pause, resume, restart, cut_source, heal_source or mode"
                ));
            }
        };
        done.map_err(|e| format!("{}: {e:#}", req.action))
    }
}

impl Actions for ClusterActions {
    fn act(
        &self,
        request: ActionRequest,
    ) -> Pin<Box<dyn Future<Output = ActionResult> + Send + '_>> {
        Box::pin(self.run(request))
    }
}

/// Starts the pair, configures it, serves the dashboard on `listen` and runs until `stop`.
pub async fn run(
    spec: ClusterSpec,
    listen: SocketAddr,
    stop: impl Future<Output = ()>,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the dashboard on {listen}: {e}"))?;
    progress(&format!(
        "starting fake-data-source, fake-endpoint, failover-arbiter and {} on loopback",
        spec.adapters.join(", ")
    ));
    let cluster = Cluster::start(spec.clone()).await?;
    let obs = Observer::start(&cluster.addrs, &spec.group_id);
    let feed = Feed::new();
    let sampler = tokio::spawn(feed.clone().run(
        Addresses::url(cluster.addrs.arbiter),
        Some(Addresses::url(cluster.addrs.endpoint)),
        spec.group_id.clone(),
    ));
    let configured = crate::cluster::configure_in_order(
        &cluster,
        &obs,
        spec.failover_timeout * 3 + Duration::from_secs(10),
    )
    .await;
    let cluster = Arc::new(Mutex::new(cluster));
    let result = match configured {
        Err(e) => Err(e),
        Ok(()) => {
            let url = format!("http://{}/", listener.local_addr()?);
            progress(&format!(
                "dashboard at {url} ({} mode, failoverTimeout {:.1} s); Ctrl-C to stop",
                spec.mode,
                spec.failover_timeout.as_secs_f64()
            ));
            println!("{url}");
            let actions = Arc::new(ClusterActions {
                cluster: cluster.clone(),
            });
            tokio::select! {
                r = failover_dashboard::serve(listener, feed, Some(actions), std::future::pending()) => r,
                () = stop => Ok(()),
            }
        }
    };
    sampler.abort();
    progress("stopping every process");
    cluster.lock().await.shutdown().await;
    result
}
