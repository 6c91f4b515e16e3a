//! One component of the processes stage: a binary, its flags and its log file, started,
//! signalled and stopped as a child process.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::Context;

#[derive(Debug)]
pub struct Component {
    /// Its name in the cluster.
    pub name: String,
    pub(super) binary: PathBuf,
    pub(super) args: Vec<String>,
    pub(super) log: PathBuf,
    pub(super) child: Option<tokio::process::Child>,
    /// Paused with SIGSTOP.
    pub paused: bool,
}

impl Component {
    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub(super) fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let child = tokio::process::Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env(
                "RUST_LOG",
                std::env::var("FAILOVER_LAB_LOG").unwrap_or_else(|_| "info".into()),
            )
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    pub(super) fn signal(&self, sig: rustix::process::Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.name))?;
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid)?).context("bad pid")?;
        rustix::process::kill_process(pid, sig)
            .with_context(|| format!("signal to {}", self.name))?;
        Ok(())
    }
}
