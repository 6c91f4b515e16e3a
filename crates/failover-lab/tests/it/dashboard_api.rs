//! The dashboard's HTTP side without a browser: the page and its events are served, and bad
//! button requests are refused with a reason (watch-only in compose: 403; an unknown adapter or
//! action: 409; malformed: 400), changing nothing.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use failover_harness::cluster::{ARBITER_BIN, bin_dir, cluster_ip, hold_ports};

async fn post(url: &str, body: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}api/action"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("answer");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_arbiters_dashboard_serves_the_page_and_refuses_buttons() {
    let ip = cluster_ip();
    let ports: Vec<u16> = hold_ports(ip, 3)
        .expect("ports")
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    let at = |i: usize| format!("{ip}:{}", ports[i]);
    let _arbiter = crate::common::Stopper(
        Command::new(bin_dir().expect("binaries").join(ARBITER_BIN))
            .args(["--listen", &at(0), "--rest-listen", &at(1)])
            .args(["--dashboard-listen", &at(2)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("arbiter starts"),
    );
    let url = format!("http://{}/", at(2));
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        if let Ok(r) = reqwest::get(&url).await {
            break r.text().await.expect("page");
        }
        assert!(Instant::now() < deadline, "no dashboard at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(page.contains("<title>failover-lab dashboard</title>"));
    for asset in ["app.js", "style.css"] {
        let r = reqwest::get(format!("{url}{asset}")).await.expect(asset);
        assert!(r.status().is_success(), "{asset}");
    }
    // The first server-sent event: the page's history, with buttons off.
    let mut events = reqwest::get(format!("{url}events")).await.expect("events");
    let mut first = String::new();
    while !first.contains("\n\n") {
        let chunk = events.chunk().await.expect("chunk").expect("more");
        first.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(first.starts_with("event: initial"), "{first}");
    assert!(first.contains("\"actions\":false"), "{first}");
    let (status, answer) = post(&url, r#"{"action":"kill","adapter":"adapter-a"}"#).await;
    assert_eq!(status, 403);
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("only watches")),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_buttons_refuse_unknown_adapters_actions_and_malformed_requests() {
    let (_demo, url) = crate::common::dashboard_demo(&[]).await;
    let url = url.as_str();
    let cases = [
        (
            r#"{"action":"kill","adapter":"adapter-z"}"#,
            409,
            "no adapter \"adapter-z\"; the pair is adapter-a and adapter-b",
        ),
        (
            r#"{"action":"explode","adapter":"adapter-a"}"#,
            409,
            "unknown action \"explode\"",
        ),
        (
            r#"{"action":"mode","mode":"hot"}"#,
            409,
            "\"Hot\", \"Warm\" or \"Cold\"",
        ),
        (r#"{"action":"kill""#, 400, "expected {\"action\""),
    ];
    for (body, code, words) in cases {
        let (status, answer) = post(url, body).await;
        assert_eq!(status, code, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(words)),
            "{body} -> {answer}"
        );
    }
    // Another web page cannot press: a cross-site text/plain POST (no CORS preflight) is
    // refused, and so is a JSON one from another origin.
    let http = reqwest::Client::new();
    let body = r#"{"action":"kill","adapter":"adapter-a"}"#;
    let r = http
        .post(format!("{url}api/action"))
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 415);
    let r = http
        .post(format!("{url}api/action"))
        .header("content-type", "application/json")
        .header("origin", "http://evil.example")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let answer: serde_json::Value = r.json().await.expect("json");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("Origin")),
        "{answer}"
    );
    // A good press works, with the page's own origin too.
    let origin = url.trim_end_matches('/').to_string();
    let r = http
        .post(format!("{url}api/action"))
        .header("content-type", "application/json")
        .header("origin", origin)
        .body(r#"{"action":"resume","adapter":"adapter-b"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let (status, answer) = post(url, r#"{"action":"pause","adapter":"adapter-b"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["done"], "SIGSTOP adapter-b (paused)");
}
