//! Basic authentication on the heartbeat stream: an arbiter started with
//! `--auth-username/--auth-password` takes adapters whose ClientFailover document carries the
//! same username and password (the vendor's example: UserName1 / Password1), and refuses others
//! with a clear error in their FailoverState and no role.

mod common;

use std::time::{Duration, Instant};

use failover_core::Mode;
use failover_lab::cluster::VENDOR_EXAMPLE;
use serde_json::Value;

fn spec_with_auth() -> failover_lab::cluster::ClusterSpec {
    let mut spec = common::spec(Mode::Hot);
    spec.arbiter_args = [
        "--auth-username",
        "UserName1",
        "--auth-password",
        "Password1",
    ]
    .map(String::from)
    .to_vec();
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_credentials_fail_over_as_usual() {
    assert!(VENDOR_EXAMPLE.contains("\"Password1\""));
    let mut p = common::pair(spec_with_auth()).await;
    let epoch = p.obs.snapshot().epoch();
    p.cluster.kill("adapter-a").await.expect("kill");
    common::wait_takeover(&p, "adapter-b", epoch).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_missing_credentials_are_reported_and_get_no_role() {
    let p = common::pair(spec_with_auth()).await;
    let arbiter_url = p.cluster.link_url("adapter-b", "arbiter").expect("link");
    for (password, words) in [
        (
            Some("wrong"),
            "refused our credentials: wrong username or password",
        ),
        (None, "requires basic authentication"),
    ] {
        let mut doc = p
            .cluster
            .spec
            .client_failover_document(&arbiter_url)
            .expect("document");
        match password {
            Some(pw) => doc["password"] = Value::String(pw.into()),
            None => {
                doc.as_object_mut().expect("object").remove("password");
            }
        }
        p.cluster
            .put_client_failover("adapter-b", &doc.to_string())
            .await
            .expect("the document itself is valid");
        let deadline = Instant::now() + common::deadline();
        let state = loop {
            let state = p.cluster.failover_state("adapter-b").await.expect("state");
            if state["FailoverServiceError"]
                .as_str()
                .is_some_and(|e| e.contains(words))
            {
                break state;
            }
            assert!(Instant::now() < deadline, "no clear error: {state}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(state["Role"], "None", "{state}");
        assert!(!state.to_string().contains("Password1"), "{state}");
        assert!(!state.to_string().contains("\"wrong\""), "{state}");
    }
    // adapter-a, with the right credentials, stays Primary; adapter-b's session went stale.
    let ok = p
        .obs
        .wait_for(common::deadline(), |t| {
            t.primary().as_deref() == Some("adapter-a")
                && t.session("adapter-b").is_none_or(|s| s.stale)
        })
        .await;
    assert!(ok, "{:#?}", p.obs.snapshot().events);
}
