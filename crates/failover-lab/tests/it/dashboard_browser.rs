//! The live dashboard in a real browser: `failover-lab demo --dashboard` is started, headless
//! chromium opens the page through chromedriver (WebDriver, spoken with plain HTTP), the page
//! must show both adapters with their roles, and a click on kill on the Primary's card must make the other
//! adapter Primary on the page.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says so and passes, unless FAILOVER_LAB_REQUIRE_BROWSER=1 (set by `.ci/run`).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use failover_proto::testing::free_port;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(name: &str) -> Option<String> {
    let out = Command::new("which").arg(name).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Ends a WebDriver session even when the test fails, so no browser outlives the test
/// (a blocking HTTP DELETE: drop cannot wait for async work).
struct SessionGuard {
    port: u16,
    session: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                conn,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = conn.read_to_end(&mut Vec::new());
        }
    }
}

struct WebDriver {
    http: reqwest::Client,
    base: String,
}

impl WebDriver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("chromedriver {path}: {e}"));
        let v: Value = resp.json().await.expect("chromedriver answers JSON");
        assert!(
            v["value"].get("error").is_none(),
            "chromedriver {path}: {v}"
        );
        v["value"].clone()
    }

    /// The element `selector` matches, once it is there and shown (at most `within`), as a
    /// person waits to see a button before pressing it. `session` is `/session/{id}`.
    async fn element(&self, session: &str, selector: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .http
                .post(format!("{}{session}/element", self.base))
                .json(&json!({"using": "css selector", "value": selector}))
                .send()
                .await;
            if let Ok(resp) = found
                && let Ok(v) = resp.json::<Value>().await
                && let Some(id) = v["value"][ELEMENT].as_str()
            {
                let shown = self
                    .call(
                        reqwest::Method::GET,
                        &format!("{session}/element/{id}/displayed"),
                        json!({}),
                    )
                    .await;
                if shown == json!(true) {
                    return id.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{selector} was not on the page within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the text of `selector` contains `words` (at most `within`).
    async fn wait_text(&self, session: &str, selector: &str, words: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let text = self
                .call(
                    reqwest::Method::POST,
                    &format!("{session}/execute/sync"),
                    json!({"script": "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", "args": [selector]}),
                )
                .await;
            if text.as_str().is_some_and(|t| t.contains(words)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{selector} never said {words:?}; it says {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A WebDriver reference to an element, as a script argument.
fn element_ref(id: &str) -> Value {
    let mut reference = serde_json::Map::new();
    reference.insert(ELEMENT.to_string(), Value::String(id.to_string()));
    Value::Object(reference)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_the_pair_and_a_kill_from_it_fails_over() {
    let (Some(chromium), Some(driver)) = (which("chromium"), which("chromedriver")) else {
        assert!(
            std::env::var("FAILOVER_LAB_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "chromium and chromedriver are required (FAILOVER_LAB_REQUIRE_BROWSER=1)"
        );
        eprintln!(
            "SKIPPED: chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let (demo, url) = crate::common::dashboard_demo(&["--failover-timeout", "00:00:02"]).await;

    let port = free_port();
    let _driver = crate::common::Stopper(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let wd = WebDriver {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http"),
        base: format!("http://127.0.0.1:{port}"),
    };
    let ready = Instant::now() + Duration::from_secs(20);
    while wd
        .http
        .get(format!("{}/status", wd.base))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < ready, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = wd
        .call(
            reqwest::Method::POST,
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
                }
            }}}),
        )
        .await;
    let sid = session["sessionId"]
        .as_str()
        .expect("session id")
        .to_string();
    let _session = SessionGuard {
        port,
        session: sid.clone(),
    };
    let s = |p: &str| format!("/session/{sid}{p}");
    wd.call(reqwest::Method::POST, &s("/url"), json!({ "url": url }))
        .await;

    let roles_script = json!({
        "script": "return Array.from(document.querySelectorAll('#adapters .adapter')).map(c => [c.dataset.adapter, c.querySelector('.role').textContent]);",
        "args": []
    });
    let roles = || async {
        let v = wd
            .call(
                reqwest::Method::POST,
                &s("/execute/sync"),
                roles_script.clone(),
            )
            .await;
        v.as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| Some((r[0].as_str()?.to_string(), r[1].as_str()?.to_string())))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let wait_roles = |want: [(&'static str, &'static str); 2], within: Duration| {
        let roles = &roles;
        async move {
            let deadline = Instant::now() + within;
            loop {
                let now = roles().await;
                if want
                    .iter()
                    .all(|(a, r)| now.iter().any(|(x, y)| x == a && y == r))
                {
                    return now;
                }
                assert!(
                    Instant::now() < deadline,
                    "the page never showed {want:?}; it shows {now:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_roles(
        [("adapter-a", "Primary"), ("adapter-b", "Secondary")],
        Duration::from_secs(20),
    )
    .await;

    // The page keeps its elements between updates: an adapter card's button focused from the
    // keyboard stays focused over ten updates (four a second), and Enter presses it. Resume on
    // the running Secondary is a real action with no effect on the pair. The cards hold the
    // page's one set of per-adapter actions; the diagram offers none.
    let diagram_buttons = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "return document.querySelectorAll('#diagram [data-action]').length + document.querySelectorAll('#controls [data-adapter]').length;", "args": []}),
        )
        .await;
    assert_eq!(
        diagram_buttons.as_u64(),
        Some(0),
        "the diagram or the pair's controls repeat the cards' actions"
    );
    let resume = wd
        .element(
            &s(""),
            "#adapters [data-action='resume'][data-adapter='adapter-b']",
            Duration::from_secs(10),
        )
        .await;
    let renders = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "arguments[0].focus(); return Number(document.body.dataset.renders || 0);", "args": [element_ref(&resume)]}),
        )
        .await
        .as_u64()
        .expect("the page counts its renders");
    let updated = Instant::now() + Duration::from_secs(20);
    loop {
        let now = wd
            .call(
                reqwest::Method::POST,
                &s("/execute/sync"),
                json!({"script": "return Number(document.body.dataset.renders || 0);", "args": []}),
            )
            .await
            .as_u64()
            .unwrap_or(0);
        if now >= renders + 10 {
            break;
        }
        assert!(
            Instant::now() < updated,
            "the page drew {} updates in 20 s",
            now.saturating_sub(renders)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let active = wd
        .call(reqwest::Method::GET, &s("/element/active"), json!({}))
        .await;
    assert_eq!(
        active[ELEMENT].as_str(),
        Some(resume.as_str()),
        "the focused card button lost its focus over ten updates: the active element is {active}"
    );
    // U+E007 is WebDriver's Enter key.
    wd.call(
        reqwest::Method::POST,
        &s(&format!("/element/{resume}/value")),
        json!({"text": "\u{E007}"}),
    )
    .await;
    wd.wait_text(
        &s(""),
        "#action-result",
        "SIGCONT adapter-b",
        Duration::from_secs(10),
    )
    .await;

    // Waited for as a person waits to see it, then clicked as a person clicks (WebDriver's
    // element click: scrolled into view, at its centre, refused if something covers it).
    let eid = wd
        .element(
            &s(""),
            "#adapters [data-action='kill'][data-adapter='adapter-a']",
            Duration::from_secs(10),
        )
        .await;
    // The diagram shows the pair at work: adapter-a Primary, data moving along its links.
    let diagram = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "return [document.querySelector('#diagram').textContent, document.querySelectorAll('#diagram .flowing').length];", "args": []}),
        )
        .await;
    assert!(
        diagram[0]
            .as_str()
            .is_some_and(|t| t.contains("Primary · score 100") && t.contains("failover service")),
        "{diagram}"
    );
    assert!(
        diagram[1].as_u64().is_some_and(|n| n >= 1),
        "nothing flowing: {diagram}"
    );
    let clicked = Instant::now();
    wd.call(
        reqwest::Method::POST,
        &s(&format!("/element/{eid}/click")),
        json!({}),
    )
    .await;
    // failoverTimeout (2 s) plus a generous margin for a loaded machine.
    wait_roles(
        [("adapter-a", "Stale"), ("adapter-b", "Primary")],
        Duration::from_secs(2 + 15),
    )
    .await;
    // A measurement, reported (not asserted): what a user sees after the click.
    eprintln!(
        "the page showed adapter-b Primary {:.2} s after the click on kill on its card (failoverTimeout 2 s)",
        clicked.elapsed().as_secs_f64()
    );
    let feed = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "return document.querySelector('#feed').textContent;", "args": []}),
        )
        .await;
    let feed = feed.as_str().unwrap_or_default();
    assert!(feed.contains("SIGKILL adapter-a"), "{feed}");
    assert!(feed.contains("adapter-b promoted, epoch 2"), "{feed}");
    assert!(feed.contains("> failoverTimeout 2.0 s: stale"), "{feed}");
    // The killed adapter's score is its last report, shown with its age, never as current.
    let card = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "const c = document.querySelector('#adapters [data-adapter=\"adapter-a\"]'); return [c.querySelector('.score').className, c.querySelector('.score-age').textContent, document.querySelector('#diagram').textContent];", "args": []}),
        )
        .await;
    assert_eq!(card[0], "score stale", "{card}");
    assert!(
        card[1]
            .as_str()
            .is_some_and(|t| t.starts_with("last reported ") && t.ends_with(" s ago")),
        "{card}"
    );
    assert!(
        card[2]
            .as_str()
            .is_some_and(|t| t.contains("Stale · last 100 · ")),
        "{card}"
    );
    // The live page's data coverage: both adapters' ticks and no hole (Hot). (That the flush
    // shows as late is checked on the replay of a simulated run and in the pictures' tests.)
    let coverage_deadline = Instant::now() + Duration::from_secs(10);
    let coverage = loop {
        let c = wd
            .call(
                reqwest::Method::POST,
                &s("/execute/sync"),
                json!({"script": "return [document.querySelectorAll('#coverage rect.run').length, document.querySelectorAll('#coverage rect.hole').length];", "args": []}),
            )
            .await;
        if c[0].as_u64().is_some_and(|runs| runs >= 2) || Instant::now() >= coverage_deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        coverage[0].as_u64().is_some_and(|runs| runs >= 2),
        "the coverage shows no takeover: {coverage}"
    );
    assert_eq!(coverage[1], 0, "a hole in Hot: {coverage}");

    // The live page pauses and scrubs back through what it has seen: moving its slider from the
    // oldest snapshot on, an earlier one shows adapter-a Primary; back to live, adapter-b is.
    let found = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "document.querySelector('#pause').click(); const r = document.querySelector('#rewind'); const max = Number(r.max); for (let i = 0; i <= max; i++) { r.value = String(i); r.dispatchEvent(new Event('input')); const roles = Array.from(document.querySelectorAll('#adapters .adapter')).map(c => c.dataset.adapter + ':' + c.querySelector('.role').textContent); if (roles.includes('adapter-a:Primary') && roles.includes('adapter-b:Secondary')) return [i, max]; } return [-1, max];", "args": []}),
        )
        .await;
    assert!(
        found[0].as_i64().is_some_and(|i| i >= 0) && found[0].as_i64() < found[1].as_i64(),
        "scrubbing back never showed adapter-a Primary: {found}"
    );
    wait_roles(
        [("adapter-a", "Primary"), ("adapter-b", "Secondary")],
        Duration::from_secs(2),
    )
    .await;
    wd.call(
        reqwest::Method::POST,
        &s("/execute/sync"),
        json!({"script": "document.querySelector('#pause').click(); return true;", "args": []}),
    )
    .await;
    wait_roles(
        [("adapter-a", "Stale"), ("adapter-b", "Primary")],
        Duration::from_secs(5),
    )
    .await;
    drop(demo);

    // A watch-only page (the failover service's own dashboard, as in compose) shows the pair
    // and offers no action button: none could work (each would answer 403). Its own pause and
    // slider stay: they act on the page only. Before the fix, every
    // adapter card showed kill, pause and restart (a class's display overrode `hidden`).
    let pair = crate::common::pair(crate::common::spec(failover_core::Mode::Hot)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let watch_url = format!("http://{}/", listener.local_addr().expect("address"));
    let feed = failover_dashboard::Feed::new();
    let watching = tokio::spawn(feed.clone().run(
        failover_harness::cluster::Addresses::url(pair.cluster.addrs.arbiter),
        Some(failover_harness::cluster::Addresses::url(
            pair.cluster.addrs.endpoint,
        )),
        pair.cluster.spec.group_id.clone(),
    ));
    let serving = tokio::spawn(failover_dashboard::serve(
        listener,
        feed,
        None,
        std::future::pending(),
    ));
    wd.call(
        reqwest::Method::POST,
        &s("/url"),
        json!({ "url": watch_url }),
    )
    .await;
    wait_roles(
        [("adapter-a", "Primary"), ("adapter-b", "Secondary")],
        Duration::from_secs(20),
    )
    .await;
    let shown = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "return Array.from(document.querySelectorAll('[data-action]')).filter(b => b.getBoundingClientRect().width > 0).map(b => b.textContent);", "args": []}),
        )
        .await;
    assert_eq!(
        shown.as_array().map(Vec::len),
        Some(0),
        "a watch-only page shows buttons: {shown}"
    );
    watching.abort();
    serving.abort();
    drop(pair);

    // A replay of a scenario's recording is the live page fed from the recording: the same
    // diagram, score chart, coverage and story, with its time controls. Scrubbing to a time
    // before the kill shows the roles then; stepping forward from event to event reaches the
    // takeover.
    let temp = tempfile::tempdir().expect("a temporary folder");
    let dir = temp.path().to_path_buf();
    let library = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let opts = failover_harness::runner::RunOptions {
        jobs: 2,
        target: failover_harness::runner::RunTarget::Sim { seeds: 1 },
        report_dir: Some(dir.clone()),
        ..Default::default()
    };
    let outcomes = failover_harness::runner::run_all(
        &[
            library.join("hot-primary-killed.toml"),
            library.join("cold-primary-killed.toml"),
        ],
        &opts,
        &|_| {},
    )
    .await;
    for o in &outcomes {
        assert!(o.passed, "{}", o.failure_text());
    }
    let recording = dir.join("hot-primary-killed.jsonl");
    let text = std::fs::read_to_string(&recording).expect("the recording");
    let kill_ms = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"]["kind"] == "fault")
        .and_then(|v| v["at_ms"].as_u64())
        .expect("the kill in the recording");
    let open_replay = |file: std::path::PathBuf| {
        let (wd, s) = (&wd, &s);
        async move {
            let bin = failover_harness::cluster::bin_dir()
                .expect("binaries")
                .join("failover-lab");
            let mut replay = tokio::process::Command::new(bin)
                .arg("replay")
                .arg(&file)
                .args(["--listen", "127.0.0.1:0"])
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("failover-lab replay starts");
            let mut said = tokio::io::BufReader::new(replay.stdout.take().expect("stdout"));
            let mut line = String::new();
            tokio::io::AsyncBufReadExt::read_line(&mut said, &mut line)
                .await
                .expect("the replay's URL");
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap_or_else(|| panic!("no URL in {line:?}"))
                .to_string();
            wd.call(reqwest::Method::POST, &s("/url"), json!({ "url": url }))
                .await;
            let loaded = Instant::now() + Duration::from_secs(20);
            loop {
                let v = wd
                    .call(
                        reqwest::Method::POST,
                        &s("/execute/sync"),
                        json!({"script": "return document.body.dataset.loaded === '1';", "args": []}),
                    )
                    .await;
                if v == json!(true) {
                    break;
                }
                assert!(Instant::now() < loaded, "the replay page did not load");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            replay
        }
    };
    let _hot_replay = open_replay(recording.clone()).await;
    // Scrub with the slider, as a hand would: half a second before the kill.
    wd.call(
        reqwest::Method::POST,
        &s("/execute/sync"),
        json!({"script": "const r = document.querySelector('#rewind'); r.value = String(arguments[0]); r.dispatchEvent(new Event('input')); return r.value;", "args": [kill_ms - 500]}),
    )
    .await;
    // The live page's panels, drawn from the recording: the diagram with adapter-a Primary,
    // both adapters' score lines, and no action button.
    let page = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "return [document.querySelector('#diagram').textContent, document.querySelectorAll('#chart polyline').length, Array.from(document.querySelectorAll('[data-action]')).filter(b => b.getBoundingClientRect().width > 0).length, document.querySelector('#connection').textContent];", "args": []}),
        )
        .await;
    assert!(
        page[0].as_str().is_some_and(|t| t.contains("adapter-a")
            && t.contains("Primary · score 100")
            && t.contains("failover service")),
        "{page}"
    );
    assert_eq!(page[1], 2, "score lines: {page}");
    assert_eq!(page[2], 0, "buttons on a recording: {page}");
    assert_eq!(page[3], "recorded", "{page}");
    wait_roles(
        [("adapter-a", "Primary"), ("adapter-b", "Secondary")],
        Duration::from_secs(2),
    )
    .await;
    let next = wd.element(&s(""), "#next", Duration::from_secs(10)).await;
    let mut steps = 0;
    loop {
        let now = roles().await;
        if now.iter().any(|(a, r)| a == "adapter-b" && r == "Primary") {
            assert!(
                now.iter().any(|(a, r)| a == "adapter-a" && r == "Stale"),
                "{now:?}"
            );
            break;
        }
        assert!(steps < 20, "20 steps forward and no takeover: {now:?}");
        wd.call(
            reqwest::Method::POST,
            &s(&format!("/element/{next}/click")),
            json!({}),
        )
        .await;
        steps += 1;
    }
    // The kill was one of the events stepped over, and the takeover is the current one.
    assert!(
        steps >= 2,
        "{steps} steps from before the kill to the takeover"
    );
    let current = wd
        .call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "const c = document.querySelector('#feed li.current'); return c ? c.textContent : '';", "args": []}),
        )
        .await;
    assert!(
        current.as_str().is_some_and(|c| c.contains("adapter-b")),
        "{current}"
    );
    // The data coverage at the end: Hot has no hole (the Secondary's buffer filled it, late);
    // Cold has one.
    let holes_at_end = || async {
        wd.call(
            reqwest::Method::POST,
            &s("/execute/sync"),
            json!({"script": "const r = document.querySelector('#rewind'); r.value = r.max; r.dispatchEvent(new Event('input')); return [document.querySelectorAll('#coverage rect.hole').length, document.querySelectorAll('#coverage rect').length];", "args": []}),
        )
        .await
    };
    let hot = holes_at_end().await;
    assert_eq!(hot[0], 0, "holes in Hot: {hot}");
    assert!(
        hot[1].as_u64().is_some_and(|n| n >= 2),
        "Hot coverage: {hot}"
    );
    let _cold_replay = open_replay(dir.join("cold-primary-killed.jsonl")).await;
    let cold = holes_at_end().await;
    assert!(
        cold[0].as_u64().is_some_and(|n| n >= 1),
        "no hole in Cold: {cold}"
    );
}
