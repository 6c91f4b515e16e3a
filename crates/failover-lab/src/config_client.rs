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
    let body =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
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
