//! The compose target: the same faults as on processes, applied to the services of the
//! project's `docker-compose.yml` through `docker compose` (v2) or `docker-compose` (v1):
//! kill, pause/unpause, stop, restart, and links cut by `docker network disconnect`. Each
//! adapter reaches the arbiter, source and endpoint over its own network (control, collect,
//! egress), so a link is cut alone. Whatever a scenario changed is put back afterwards.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

/// A component's compose service.
pub fn service_of(name: &str) -> &str {
    match name {
        "arbiter" => "failover-arbiter",
        "source" => "fake-data-source",
        "endpoint" => "fake-endpoint",
        other => other,
    }
}

/// The compose network that carries an adapter's link to a service.
pub fn network_of_link(service: &str) -> anyhow::Result<&'static str> {
    match service {
        "arbiter" => Ok("control"),
        "source" => Ok("collect"),
        "endpoint" => Ok("egress"),
        other => bail!("no compose network for a link to {other:?}"),
    }
}

/// Runs compose commands in a project folder, and remembers what to put back.
#[derive(Debug)]
pub struct Compose {
    /// The folder holding docker-compose.yml.
    pub dir: PathBuf,
    program: String,
    prefix: Vec<String>,
    /// (network, container) pairs disconnected by a scenario.
    disconnected: Vec<(String, String)>,
    /// Paused services.
    paused: Vec<String>,
    /// The compose profile every command runs with (COMPOSE_PROFILES), if any.
    profile: Option<&'static str>,
    /// (network, container, alias) of failover services a scenario isolated.
    isolated: Vec<(String, String, Option<String>)>,
}

impl Compose {
    /// Finds `docker compose` (v2) or `docker-compose` (v1) for the project in `dir`.
    pub async fn detect(dir: &Path) -> anyhow::Result<Compose> {
        if !dir.join("docker-compose.yml").exists() {
            bail!("no docker-compose.yml in {}", dir.display());
        }
        let v2 = tokio::process::Command::new("docker")
            .args(["compose", "version"])
            .output()
            .await;
        let (program, prefix) = match v2 {
            Ok(o) if o.status.success() => ("docker".to_string(), vec!["compose".to_string()]),
            _ => ("docker-compose".to_string(), Vec::new()),
        };
        let c = Compose {
            dir: dir.to_path_buf(),
            program,
            prefix,
            disconnected: Vec::new(),
            paused: Vec::new(),
            profile: None,
            isolated: Vec::new(),
        };
        c.run(&["version"])
            .await
            .context("neither `docker compose` nor `docker-compose` works")?;
        Ok(c)
    }

    /// Runs a compose command; its stdout, or an error with its stderr.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = tokio::process::Command::new(&self.program);
        if let Some(profile) = self.profile {
            command.env("COMPOSE_PROFILES", profile);
        }
        let out = command
            .args(&self.prefix)
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.program))?;
        if !out.status.success() {
            bail!(
                "{} {} {} failed: {}",
                self.program,
                self.prefix.join(" "),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new("docker")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .context("cannot run docker")?;
        if !out.status.success() {
            bail!(
                "docker {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Where a service's published `container_port` answers on this host (127.0.0.1 and the
    /// host port compose gave it: the default, or `FAILOVER_LAB_<SERVICE>_PORT`).
    pub async fn host_addr(
        &self,
        service: &str,
        container_port: u16,
    ) -> anyhow::Result<std::net::SocketAddr> {
        let out = self
            .run(&["port", service, &container_port.to_string()])
            .await?;
        parse_published_port(&out)
            .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .with_context(|| {
                format!(
                    "compose publishes no host port for {service}:{container_port} (it answered {:?})",
                    out.trim()
                )
            })
    }

    /// The container id of a service.
    pub async fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self.run(&["ps", "-q", service]).await?.trim().to_string();
        if id.is_empty() {
            bail!(
                "compose service {service} has no container; is the stack up (docker compose up -d)?"
            );
        }
        Ok(id)
    }

    /// The full name of a compose network (`<project>_<short>`) a container is attached to,
    /// or was attached to before a scenario disconnected it.
    async fn network(&self, container: &str, short: &str) -> anyhow::Result<String> {
        if let Some((n, _)) = self
            .disconnected
            .iter()
            .find(|(n, c)| c == container && n.ends_with(&format!("_{short}")))
        {
            return Ok(n.clone());
        }
        let json = self
            .docker(&[
                "inspect",
                "-f",
                "{{json .NetworkSettings.Networks}}",
                container,
            ])
            .await?;
        let nets: Value =
            serde_json::from_str(json.trim()).context("docker inspect answered no JSON")?;
        nets.as_object()
            .and_then(|m| {
                m.keys()
                    .find(|k| k.ends_with(&format!("_{short}")))
                    .cloned()
            })
            .with_context(|| format!("container {container} is not on a *_{short} network"))
    }

    /// SIGKILL.
    pub async fn kill(&self, name: &str) -> anyhow::Result<()> {
        self.run(&["kill", "-s", "SIGKILL", service_of(name)])
            .await
            .map(drop)
    }

    /// Freeze (cgroup freezer, like SIGSTOP).
    pub async fn pause(&mut self, name: &str) -> anyhow::Result<()> {
        self.run(&["pause", service_of(name)]).await?;
        self.paused.push(service_of(name).to_string());
        Ok(())
    }

    /// Thaw.
    pub async fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        self.run(&["unpause", service_of(name)]).await?;
        self.paused.retain(|s| s != service_of(name));
        Ok(())
    }

    /// SIGTERM, SIGKILL after `grace`.
    pub async fn stop(&self, name: &str, grace: std::time::Duration) -> anyhow::Result<()> {
        let secs = grace.as_secs().max(1).to_string();
        self.run(&["stop", "-t", &secs, service_of(name)])
            .await
            .map(drop)
    }

    /// Starts a service again (restarting it if it runs).
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let svc = service_of(name).to_string();
        if self.paused.contains(&svc) {
            self.resume(name).await?;
        }
        let running = self
            .run(&["ps", "-q", "--filter", "status=running", &svc])
            .await
            .unwrap_or_default();
        if running.trim().is_empty() {
            self.run(&["up", "-d", "--no-deps", &svc]).await.map(drop)
        } else {
            self.run(&["restart", &svc]).await.map(drop)
        }
    }

    /// Cuts (`cut`) or heals the link between an adapter and a service.
    pub async fn set_link(
        &mut self,
        adapter: &str,
        service: &str,
        cut: bool,
    ) -> anyhow::Result<()> {
        let container = self.container(adapter).await?;
        let net = self.network(&container, network_of_link(service)?).await?;
        let is_cut = self
            .disconnected
            .iter()
            .any(|(n, c)| *n == net && *c == container);
        if cut && !is_cut {
            self.docker(&["network", "disconnect", "-f", &net, &container])
                .await?;
            self.disconnected.push((net, container));
        } else if !cut && is_cut {
            self.docker(&["network", "connect", &net, &container])
                .await?;
            self.disconnected
                .retain(|(n, c)| !(*n == net && *c == container));
        }
        Ok(())
    }

    /// Cuts a failover service of the profile etcd off from everything: its container leaves
    /// the networks `store` (etcd) and `control` (the adapters).
    pub async fn isolate(&mut self, service: &str) -> anyhow::Result<()> {
        let container = self.container(service).await?;
        for short in ["store", "control"] {
            let net = self.network(&container, short).await?;
            if self
                .isolated
                .iter()
                .any(|(n, c, _)| *n == net && *c == container)
            {
                continue;
            }
            self.docker(&["network", "disconnect", "-f", &net, &container])
                .await?;
            // Adapters reach it by its alias on `control`: given back with it.
            let alias = (short == "control").then(|| format!("{service}-control"));
            self.isolated.push((net, container.clone(), alias));
        }
        Ok(())
    }

    /// Connects every isolated failover service again.
    pub async fn end_isolation(&mut self) {
        for (net, container, alias) in std::mem::take(&mut self.isolated) {
            let mut args = vec!["network", "connect"];
            if let Some(a) = &alias {
                args.extend(["--alias", a.as_str()]);
            }
            args.extend([net.as_str(), container.as_str()]);
            let _ = self.docker(&args).await;
        }
    }

    /// Every command with `profile`'s services too (COMPOSE_PROFILES).
    pub fn with_profile(mut self, profile: Option<&'static str>) -> Compose {
        self.profile = profile;
        self
    }

    /// Puts back what scenarios changed: paused services, cut links, stopped or killed services
    /// (the shared services, and `adapters`).
    pub async fn restore(&mut self, adapters: &[&str]) -> anyhow::Result<()> {
        for svc in std::mem::take(&mut self.paused) {
            let _ = self.run(&["unpause", &svc]).await;
        }
        for (net, container) in std::mem::take(&mut self.disconnected) {
            let _ = self.docker(&["network", "connect", &net, &container]).await;
        }
        self.end_isolation().await;
        self.up_pair(adapters).await
    }

    /// Starts (or starts again) the shared services and `adapters` (a pair's own services), not
    /// the configure services: whoever runs the pair configures it.
    pub async fn up_pair(&self, adapters: &[&str]) -> anyhow::Result<()> {
        let mut up = vec![
            "up",
            "-d",
            "fake-data-source",
            "fake-endpoint",
            "failover-arbiter",
        ];
        up.extend(adapters);
        self.run(&up).await.map(drop)
    }

    /// Writes every service's log to `file`.
    pub async fn save_logs(&self, file: &Path) -> anyhow::Result<()> {
        let logs = self.run(&["logs", "--no-color", "--timestamps"]).await?;
        std::fs::write(file, logs).with_context(|| format!("cannot write {}", file.display()))
    }
}

/// The host port in `docker compose port`'s answer (`0.0.0.0:50052`, `[::]:50052`, one per
/// line; the first that parses).
fn parse_published_port(out: &str) -> Option<u16> {
    out.lines()
        .filter_map(|l| l.trim().rsplit_once(':'))
        .find_map(|(_, port)| port.parse::<u16>().ok().filter(|p| *p != 0))
}

#[cfg(test)]
mod tests {
    use super::parse_published_port;

    #[test]
    fn published_ports_are_read_from_either_compose() {
        assert_eq!(parse_published_port("0.0.0.0:25052\n"), Some(25052));
        assert_eq!(
            parse_published_port("[::]:5590\n0.0.0.0:5590\n"),
            Some(5590)
        );
        assert_eq!(parse_published_port(":0\n"), None);
        assert_eq!(parse_published_port(""), None);
    }
}
