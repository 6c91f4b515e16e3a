//! `failover-lab replay`: a recorded run played back in the browser, or drawn as SVG.

use std::{path::PathBuf, process::ExitCode};

/// Serves the recording's page, or writes its picture.
pub(crate) async fn run(
    file: PathBuf,
    listen: std::net::SocketAddr,
    svg: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (header, timeline) = failover_harness::recording::read(&file)?;
    if let Some(out) = svg {
        let picture = failover_harness::timeline_svg::render(
            &header.title,
            &header.adapters,
            &timeline,
            None,
        );
        std::fs::write(&out, picture)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
        eprintln!("wrote {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let json = failover_harness::recording::to_json(&header, &timeline).to_string();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    println!("replaying {} at {url} (Ctrl-C to stop)", file.display());
    failover_dashboard::serve_replay(listener, json, failover_proto::process::shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}
