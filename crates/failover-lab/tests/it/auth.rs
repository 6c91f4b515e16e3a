//! Basic authentication on the heartbeat stream: an arbiter started with
//! `--auth-username/--auth-password` takes adapters whose ClientFailover document carries the
//! same username and password (the vendor's example: UserName1 / Password1), and refuses others
//! with a clear error in their FailoverState and no role.

use std::time::{Duration, Instant};

use failover_core::Mode;
use failover_harness::cluster::{ClusterAuth, VENDOR_EXAMPLE};
use serde_json::Value;

fn spec_with_auth() -> failover_harness::cluster::ClusterSpec {
    let mut spec = crate::common::spec(Mode::Hot);
    spec.auth = ClusterAuth::Basic;
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_credentials_fail_over_as_usual() {
    assert!(VENDOR_EXAMPLE.contains("\"Password1\""));
    let mut p = crate::common::pair(spec_with_auth()).await;
    let epoch = p.obs.snapshot().epoch();
    p.cluster.kill("adapter-a").await.expect("kill");
    crate::common::wait_takeover(&p, "adapter-b", epoch).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_missing_credentials_are_reported_and_get_no_role() {
    let p = crate::common::pair(spec_with_auth()).await;
    for (password, words) in [
        (
            Some("wrong"),
            "refused our credentials: wrong username or password",
        ),
        (None, "requires authentication (basic"),
    ] {
        let state = crate::common::reconfigure_until_error(
            &p,
            "adapter-b",
            |doc| match password {
                Some(pw) => doc["password"] = Value::String(pw.into()),
                None => {
                    doc.as_object_mut().expect("object").remove("password");
                }
            },
            words,
        )
        .await;
        assert_eq!(state["Role"], "None", "{state}");
        assert!(!state.to_string().contains("Password1"), "{state}");
        assert!(!state.to_string().contains("\"wrong\""), "{state}");
    }
    // adapter-a, with the right credentials, stays Primary; adapter-b's session went stale.
    let ok = p
        .obs
        .wait_for(crate::common::deadline(), |t| {
            t.primary().as_deref() == Some("adapter-a")
                && t.session("adapter-b").is_none_or(|s| s.stale)
        })
        .await;
    assert!(ok, "{:#?}", p.obs.snapshot().events);
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens (OAuth2 client credentials).

fn spec_with_tokens(token_lifetime: Duration) -> failover_harness::cluster::ClusterSpec {
    let mut spec = crate::common::spec(Mode::Hot);
    spec.auth = ClusterAuth::Bearer { token_lifetime };
    spec
}

/// Tokens living 2 s are renewed at 80% of that, several times, without a role change; then
/// the pair fails over as usual.
#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_are_renewed_before_expiry_and_the_pair_fails_over() {
    let mut p = crate::common::pair(spec_with_tokens(Duration::from_secs(2))).await;
    let epoch = p.obs.snapshot().epoch();
    // Three lifetimes: at least three renewals each.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for adapter in ["adapter-a", "adapter-b"] {
        let state = p.cluster.failover_state(adapter).await.expect("state");
        let fetched = state["AccessTokensFetched"].as_u64().unwrap_or(0);
        assert!(fetched >= 4, "{adapter} fetched {fetched} tokens in 6 s");
        assert_eq!(state["FailoverServiceError"], Value::Null, "{state}");
        assert!(!state.to_string().contains("ClientSecret1"), "{state}");
    }
    let snapshot = p.obs.snapshot();
    assert_eq!(snapshot.epoch(), epoch, "a renewal changed the epoch");
    assert_eq!(snapshot.primary().as_deref(), Some("adapter-a"));
    p.cluster.kill("adapter-a").await.expect("kill");
    crate::common::wait_takeover(&p, "adapter-b", epoch).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_client_secret_is_reported_and_gets_no_role() {
    let p = crate::common::pair(spec_with_tokens(Duration::from_secs(3600))).await;
    let state = crate::common::reconfigure_until_error(
        &p,
        "adapter-b",
        |doc| doc["clientSecret"] = Value::String("NotTheSecret".into()),
        "refused our client credentials (invalid_client",
    )
    .await;
    assert_eq!(state["Role"], "None", "{state}");
    assert!(!state.to_string().contains("NotTheSecret"), "{state}");
    let log = std::fs::read_to_string(p.cluster.log_dir().join("adapter-b.log")).expect("log");
    assert!(log.contains("invalid_client"), "the log says why");
    assert!(!log.contains("NotTheSecret") && !log.contains("ClientSecret1"));
}

/// The service itself ends a heartbeat stream when its token expires, and refuses unknown
/// tokens: renewal is not optional.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_ends_a_stream_when_its_token_expires() {
    use failover_proto::v1;
    let spec = spec_with_tokens(Duration::from_secs(1));
    let cluster = failover_harness::cluster::Cluster::start(spec)
        .await
        .expect("cluster starts");
    let base = failover_harness::cluster::Addresses::url(cluster.addrs.arbiter);
    let http = reqwest::Client::new();
    let token_url = format!("{base}/identity/connect/token");
    let answer: Value = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", failover_harness::cluster::BEARER_CLIENT_ID),
            (
                "client_secret",
                failover_harness::cluster::BEARER_CLIENT_SECRET,
            ),
        ])
        .send()
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    assert_eq!(answer["expires_in"], 1, "{answer}");
    let token = answer["access_token"].as_str().expect("token").to_string();

    let refused = http
        .post(&token_url)
        .form(&[("grant_type", "client_credentials"), ("client_id", "x")])
        .send()
        .await
        .expect("token endpoint");
    assert_eq!(refused.status(), 401);

    let heartbeat = v1::HeartbeatRequest {
        group_id: "tokens".into(),
        adapter_id: "adapter-x".into(),
        incarnation: "x-1".into(),
        score: 100,
        mode: v1::Mode::Hot as i32,
        failover_timeout_ms: 60_000,
        ..Default::default()
    };
    let mut client = v1::arbiter_client::ArbiterClient::connect(base.clone())
        .await
        .expect("connect");
    let open = |header: String| {
        use tokio_stream::StreamExt;
        let mut request = tonic::Request::new(
            tokio_stream::iter(vec![heartbeat.clone()]).chain(tokio_stream::pending()),
        );
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("ascii"));
        request
    };
    let refused = client
        .heartbeat(open("Bearer 00ff".into()))
        .await
        .expect_err("an unknown token is refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let started = Instant::now();
    let mut stream = client
        .heartbeat(open(format!("Bearer {token}")))
        .await
        .expect("a valid token is taken")
        .into_inner();
    // A Hot group new to a service that has just started waits a heartbeat interval for its
    // members before its first promotion: the first answer says so.
    let first = stream.message().await.expect("assignment").expect("one");
    assert_eq!(first.role, v1::Role::Secondary as i32, "{first:?}");
    assert!(first.reason.contains("waiting"), "{first:?}");
    let ended = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a reason"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("expired"), "{ended:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the stream outlived its token by far"
    );
}
