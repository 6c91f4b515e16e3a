//! `failover-lab config`: reads and writes an adapter's ClientFailover document over its REST
//! API, doing what the vendor's `edgecmd -port 5590 set clientfailover -cid System -file F` does.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

fn base(host: &str, port: u16) -> String {
    format!("http://{host}:{port}/api/v1")
}

async fn answer(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if !status.is_success() {
        let msg = body
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| body.to_string(), str::to_string);
        bail!("{what} refused ({status}): {msg}");
    }
    Ok(body)
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?)
}

/// PUTs the document in `file` to the adapter at `host:port`.
pub async fn set(host: &str, port: u16, file: &Path) -> anyhow::Result<Value> {
    set_with_mode(host, port, file, None).await
}

/// PUTs the document in `file`, with its mode replaced when `mode` is given.
pub async fn set_with_mode(
    host: &str,
    port: u16,
    file: &Path,
    mode: Option<failover_core::Mode>,
) -> anyhow::Result<Value> {
    let mut body =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if let Some(m) = mode {
        let mut doc: Value = serde_json::from_str(&body)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        let Some(map) = doc.as_object_mut() else {
            bail!("{} is not a JSON object", file.display())
        };
        let key = map
            .keys()
            .find(|k| k.eq_ignore_ascii_case("mode"))
            .cloned()
            .unwrap_or_else(|| "mode".into());
        map.insert(key, Value::String(m.as_str().into()));
        body = doc.to_string();
    }
    let url = format!("{}/configuration/System/ClientFailover", base(host, port));
    let resp = client()?
        .put(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach the adapter at {host}:{port}"))?;
    answer(resp, "the ClientFailover document").await
}

/// GETs the adapter's document (without secrets).
pub async fn get(host: &str, port: u16) -> anyhow::Result<Value> {
    let url = format!("{}/configuration/System/ClientFailover", base(host, port));
    let resp = client()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach the adapter at {host}:{port}"))?;
    answer(resp, "GET ClientFailover").await
}

/// DELETEs the adapter's document (it becomes standalone).
pub async fn delete(host: &str, port: u16) -> anyhow::Result<Value> {
    let url = format!("{}/configuration/System/ClientFailover", base(host, port));
    let resp = client()?
        .delete(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach the adapter at {host}:{port}"))?;
    answer(resp, "DELETE ClientFailover").await
}

/// Waits until the adapter at `host:port` has a role (Primary or Secondary).
pub async fn wait_for_role(
    host: &str,
    port: u16,
    within: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Ok(s) = state(host, port).await
            && matches!(s["Role"].as_str(), Some("Primary" | "Secondary"))
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "{host}:{port} has no role after {within:?}; see its FailoverState (failover-lab config state)"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// GETs the FailoverState of the adapter at `host:port` given as one string.
pub async fn state_at(addr: &str) -> anyhow::Result<Value> {
    let url = format!("http://{addr}/api/v1/diagnostics/FailoverState");
    let resp = client()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach the adapter at {addr}"))?;
    answer(resp, "GET FailoverState").await
}

/// GETs the adapter's FailoverState.
pub async fn state(host: &str, port: u16) -> anyhow::Result<Value> {
    let url = format!("{}/diagnostics/FailoverState", base(host, port));
    let resp = client()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach the adapter at {host}:{port}"))?;
    answer(resp, "GET FailoverState").await
}
