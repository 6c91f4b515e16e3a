//! Bad gRPC messages to the failover service and the endpoint, against the real processes:
//! each is refused with a status naming what is wrong, and nothing changes (docs/bad-input.md's
//! bad-input table lists them).

use failover_harness::cluster::{Addresses, Cluster, ClusterSpec};
use failover_proto::v1;
use tonic::Code;

fn heartbeat() -> v1::HeartbeatRequest {
    v1::HeartbeatRequest {
        group_id: "bad-input".into(),
        adapter_id: "adapter-x".into(),
        incarnation: "x-1".into(),
        score: 100,
        mode: v1::Mode::Hot as i32,
        failover_timeout_ms: 4000,
        ..Default::default()
    }
}

/// Sends one heartbeat on a new stream; the first answer.
async fn send_one(
    client: &mut v1::arbiter_client::ArbiterClient<tonic::transport::Channel>,
    hb: v1::HeartbeatRequest,
) -> Result<v1::RoleAssignment, tonic::Status> {
    let mut answers = client
        .heartbeat(futures::stream::iter([hb]))
        .await?
        .into_inner();
    match answers.message().await? {
        Some(a) => Ok(a),
        None => Err(tonic::Status::unknown("stream ended without an answer")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_heartbeats_are_refused_naming_the_field_and_create_no_group() {
    let cluster = Cluster::start(ClusterSpec::default())
        .await
        .expect("cluster");
    let mut arbiter =
        v1::arbiter_client::ArbiterClient::connect(Addresses::url(cluster.addrs.arbiter))
            .await
            .expect("arbiter");
    let cases: Vec<(&str, v1::HeartbeatRequest, Code, &str)> = vec![
        (
            "score above 100",
            v1::HeartbeatRequest {
                score: 101,
                ..heartbeat()
            },
            Code::InvalidArgument,
            "score must be 0 to 100",
        ),
        (
            "zero failoverTimeout",
            v1::HeartbeatRequest {
                failover_timeout_ms: 0,
                ..heartbeat()
            },
            Code::InvalidArgument,
            "failover_timeout_ms must be",
        ),
        (
            "empty group id",
            v1::HeartbeatRequest {
                group_id: String::new(),
                ..heartbeat()
            },
            Code::InvalidArgument,
            "group_id must not be empty",
        ),
        (
            "mode unspecified",
            v1::HeartbeatRequest {
                mode: 0,
                ..heartbeat()
            },
            Code::InvalidArgument,
            "mode",
        ),
        (
            "adapter id over 256 bytes (the limit the endpoint shares)",
            v1::HeartbeatRequest {
                adapter_id: "a".repeat(257),
                ..heartbeat()
            },
            Code::InvalidArgument,
            "adapter_id is 257 bytes long; at most 256 are accepted",
        ),
        (
            "message over 4 MiB",
            v1::HeartbeatRequest {
                description: "x".repeat(5 * 1024 * 1024),
                ..heartbeat()
            },
            Code::OutOfRange,
            "too large",
        ),
    ];
    for (what, hb, code, words) in cases {
        let status = send_one(&mut arbiter, hb)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what} must be refused"));
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(status.message().contains(words), "{what}: {status:?}");
    }
    // Nothing was created by the refused heartbeats; an unknown group is no error.
    let group = arbiter
        .get_group(v1::GroupRequest {
            group_id: "bad-input".into(),
        })
        .await
        .expect("get group")
        .into_inner();
    assert!(!group.exists && group.sessions.is_empty(), "{group:?}");
    // The same heartbeat, well formed, is taken: a lone member leads, or, within a heartbeat
    // interval of the service's start, the Hot group says it waits for its members first.
    let a = send_one(&mut arbiter, heartbeat()).await.expect("taken");
    assert!(
        a.role == v1::Role::Primary as i32
            || (a.role == v1::Role::Secondary as i32 && a.reason.contains("waiting")),
        "{a:?}"
    );
    assert!(!a.session_id.is_empty(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_writes_are_refused_and_accept_nothing() {
    let cluster = Cluster::start(ClusterSpec::default())
        .await
        .expect("cluster");
    let mut ep = v1::data_endpoint_client::DataEndpointClient::connect(Addresses::url(
        cluster.addrs.endpoint,
    ))
    .await
    .expect("endpoint");
    let g = "bad-writes";
    let batch = || v1::PointBatch {
        stream_ids: vec![0, 1],
        seqs: vec![5, 5],
        timestamps_ms: vec![1, 1],
        values: vec![0.5, 0.5],
    };
    let write = |adapter: &str, epoch: u64, batch: v1::PointBatch| v1::WriteRequest {
        group_id: g.into(),
        adapter_id: adapter.into(),
        epoch,
        batch: Some(batch),
        writer: format!("{adapter}@1"),
    };
    // Unfenced writer.
    let r = ep
        .write(write("adapter-a", 1, batch()))
        .await
        .expect("answer")
        .into_inner();
    assert_eq!(r.outcome, v1::WriteOutcome::NotFenced as i32);
    // Fenced at 2; a write from epoch 1 is stale; a fence at 1 is not granted.
    let f = ep
        .fence(v1::FenceRequest {
            group_id: g.into(),
            adapter_id: "adapter-a".into(),
            epoch: 2,
            writer: "adapter-a@1".into(),
        })
        .await
        .expect("fence")
        .into_inner();
    assert!(f.granted);
    // A second process with the same name (another writer) cannot share the fence at 2.
    let twin = ep
        .fence(v1::FenceRequest {
            group_id: g.into(),
            adapter_id: "adapter-a".into(),
            epoch: 2,
            writer: "adapter-a@2".into(),
        })
        .await
        .expect("fence")
        .into_inner();
    assert!(
        !twin.granted && twin.detail.contains("another process with the same name"),
        "{twin:?}"
    );
    let r = ep
        .write(write("adapter-a", 1, batch()))
        .await
        .expect("answer")
        .into_inner();
    assert_eq!(r.outcome, v1::WriteOutcome::StaleEpoch as i32);
    assert_eq!(r.fenced_epoch, 2);
    let f = ep
        .fence(v1::FenceRequest {
            group_id: g.into(),
            adapter_id: "adapter-b".into(),
            epoch: 1,
            writer: "adapter-b@1".into(),
        })
        .await
        .expect("fence")
        .into_inner();
    assert!(!f.granted && f.detail.contains("not newer"), "{f:?}");
    // Ragged columns and an empty group id: INVALID_ARGUMENT.
    let mut ragged = batch();
    ragged.values.pop();
    let e = ep
        .write(write("adapter-a", 2, ragged))
        .await
        .err()
        .unwrap_or_else(|| panic!("ragged columns must be refused"));
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("differ in length"), "{e:?}");
    let e = ep
        .write(v1::WriteRequest {
            group_id: String::new(),
            ..write("adapter-a", 2, batch())
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("an empty group id must be refused"));
    assert_eq!(e.code(), Code::InvalidArgument);
    // Nothing was accepted; an unknown group audits as empty.
    let audit = |group: &str| v1::AuditRequest {
        group_id: group.into(),
        ..Default::default()
    };
    let a = ep.audit(audit(g)).await.expect("audit").into_inner();
    assert_eq!((a.received, a.refused_stale), (0, 2), "{a:?}");
    let unknown = ep
        .audit(audit("no-such-group"))
        .await
        .expect("audit")
        .into_inner();
    assert_eq!((unknown.received, unknown.expected), (0, 0));
    // A good write at the fenced epoch is accepted.
    let r = ep
        .write(write("adapter-a", 2, batch()))
        .await
        .expect("answer")
        .into_inner();
    assert_eq!(
        (r.outcome, r.accepted),
        (v1::WriteOutcome::Accepted as i32, 2)
    );
}
