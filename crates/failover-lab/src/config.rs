//! `failover-lab config`: an adapter's ClientFailover document over its REST API.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use failover_core::Mode;

use clap::Subcommand;
use failover_harness::config_client;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// PUT a ClientFailover JSON document to the adapter.
    Set {
        /// The adapter's REST port.
        #[arg(long, default_value_t = 5590)]
        port: u16,
        /// The adapter's host; several, comma-separated, are configured in that order, each
        /// after the previous one has a role (so the first starts as Primary).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The document (for example ConfigureClientFailover.json).
        #[arg(long)]
        file: PathBuf,
        /// Replace the document's mode with this one (Hot, Warm or Cold; empty: keep it).
        #[arg(long, default_value = "")]
        mode: String,
    },
    /// Show the adapter's ClientFailover document (never the password).
    Get {
        /// The adapter's REST port.
        #[arg(long, default_value_t = 5590)]
        port: u16,
        /// The adapter's host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Remove the adapter's ClientFailover document.
    Delete {
        /// The adapter's REST port.
        #[arg(long, default_value_t = 5590)]
        port: u16,
        /// The adapter's host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Show the adapter's FailoverState (role, score, epoch, errors).
    State {
        /// The adapter's REST port.
        #[arg(long, default_value_t = 5590)]
        port: u16,
        /// The adapter's host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
}

/// Carries out the action, printing the answer.
pub(crate) async fn run(action: ConfigAction) -> anyhow::Result<ExitCode> {
    let value = match action {
        ConfigAction::Set {
            port,
            host,
            file,
            mode,
        } => {
            let mode = if mode.is_empty() {
                None
            } else {
                Some(
                    mode.parse::<Mode>()
                        .map_err(|e| anyhow::anyhow!("--mode: {e}"))?,
                )
            };
            let hosts: Vec<&str> = host
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect();
            let mut answers = Vec::new();
            for (i, h) in hosts.iter().enumerate() {
                let answer = config_client::set_with_mode(h, port, &file, mode).await?;
                eprintln!("{h}:{port}: ClientFailover applied");
                if i + 1 < hosts.len() {
                    config_client::wait_for_role(h, port, Duration::from_secs(30)).await?;
                }
                answers.push(answer);
            }
            if answers.len() == 1 {
                answers.remove(0)
            } else {
                serde_json::Value::Array(answers)
            }
        }
        ConfigAction::Get { port, host } => config_client::get(&host, port).await?,
        ConfigAction::Delete { port, host } => config_client::delete(&host, port).await?,
        ConfigAction::State { port, host } => config_client::state(&host, port).await?,
    };
    if !value.is_null() {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(ExitCode::SUCCESS)
}
