//! The OMF ingress: answers, what is stored, and what the audit counts.

use super::*;
use crate::EndpointService;
use failover_proto::v1::{self, data_endpoint_server::DataEndpoint};
use serde_json::json;
use std::io::Write;

const ORIGIN: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const NS: (&str, &str) = ("default", "default");

fn service() -> EndpointService {
    EndpointService::default().with_omf(OmfSettings {
        tick: Some(Tick {
            origin_unix_ms: ORIGIN,
            rate_hz: 10.0,
        }),
        ..OmfSettings::default()
    })
}

fn headers(kind: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("messagetype", kind),
        ("messageformat", "JSON"),
        ("omfversion", "1.2"),
    ]
    .iter()
    .chain(extra)
    {
        h.append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

struct Answer {
    status: u16,
    body: Value,
    fenced_epoch: Option<String>,
}

fn post(s: &EndpointService, kind: &str, extra: &[(&str, &str)], body: &Value) -> Answer {
    post_bytes(s, kind, extra, serde_json::to_vec(body).expect("json"))
}

fn post_bytes(s: &EndpointService, kind: &str, extra: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let r = ingest(
        s,
        (NS.0.into(), NS.1.into()),
        &headers(kind, extra),
        &Bytes::from(body),
    );
    let status = r.status().as_u16();
    let fenced_epoch = r
        .headers()
        .get(HEADER_FENCED_EPOCH)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let bytes =
        futures::executor::block_on(axum::body::to_bytes(r.into_body(), 1 << 20)).expect("body");
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        fenced_epoch,
    }
}

fn define(s: &EndpointService, group: &str, streams: u32) {
    let t = json!([{"id": "FailoverLabPoint", "type": "object", "classification": "dynamic",
        "properties": {"Timestamp": {"type": "string", "format": "date-time", "isindex": true},
                       "Value": {"type": "number", "format": "float64"}}}]);
    assert_eq!(post(s, "type", &[], &t).status, 204);
    let c: Vec<Value> = (0..streams)
        .map(|n| json!({"id": format!("{group}.stream-{n}"), "typeid": "FailoverLabPoint"}))
        .collect();
    assert_eq!(post(s, "container", &[], &json!(c)).status, 204);
}

fn values(group: &str, stream: u32, seqs: std::ops::Range<i64>) -> Value {
    json!([{"containerid": format!("{group}.stream-{stream}"),
        "values": seqs.map(|n| json!({
            "Timestamp": failover_core::clock_time::format_utc_ms(ORIGIN + n * 100),
            "Value": n as f64 / 2.0}))
        .collect::<Vec<_>>()}])
}

fn audit(s: &EndpointService, group: &str) -> v1::AuditReport {
    futures::executor::block_on(s.audit(tonic::Request::new(v1::AuditRequest {
        group_id: group.into(),
        ..Default::default()
    })))
    .expect("audit")
    .into_inner()
}

#[test]
fn values_join_the_audit_as_points_of_the_source() {
    let s = service();
    define(&s, "g", 2);
    assert_eq!(post(&s, "data", &[], &values("g", 0, 0..10)).status, 204);
    assert_eq!(post(&s, "data", &[], &values("g", 1, 0..10)).status, 204);
    // Sent again: held once, counted as duplicated.
    assert_eq!(post(&s, "data", &[], &values("g", 0, 5..12)).status, 204);
    let a = audit(&s, "g");
    assert_eq!(
        (a.expected, a.received, a.lost, a.duplicated, a.streams),
        (22, 22, 0, 5, 2)
    );
    assert_eq!(a.writers[0].adapter_id, ANONYMOUS_WRITER);
    // A gap of two ticks is two points lost.
    assert_eq!(post(&s, "data", &[], &values("g", 1, 12..13)).status, 204);
    assert_eq!(audit(&s, "g").lost, 2);
}

#[test]
fn gzip_bodies_are_taken_and_bombs_refused() {
    let s = service();
    define(&s, "g", 1);
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&serde_json::to_vec(&values("g", 0, 0..50)).expect("json"))
        .expect("zip");
    let a = post_bytes(
        &s,
        "data",
        &[("compression", "gzip")],
        z.finish().expect("zip"),
    );
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(audit(&s, "g").received, 50);
    // 16 MB of spaces zip to a few KB and expand past the limit.
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![b' '; 16 << 20]).expect("zip");
    let bomb = z.finish().expect("zip");
    assert!(bomb.len() < MAX_BODY);
    let a = post_bytes(&s, "data", &[("compression", "gzip")], bomb);
    assert_eq!(a.status, 413, "{}", a.body);
    let a = post_bytes(
        &s,
        "data",
        &[("compression", "gzip")],
        b"[not gzip]".to_vec(),
    );
    assert_eq!(
        (a.status, a.body["Parameters"]["Field"].as_str()),
        (400, Some("compression"))
    );
    let a = post_bytes(&s, "data", &[], vec![b' '; MAX_BODY + 1]);
    assert_eq!(a.status, 413);
}

#[test]
fn bad_headers_are_named() {
    let s = service();
    for (kind, extra, field) in [
        ("sample", vec![], "messagetype"),
        ("type", vec![("action", "upsert")], "action"),
        ("type", vec![("compression", "deflate")], "compression"),
        ("type", vec![(HEADER_EPOCH, "2")], HEADER_EPOCH),
        (
            "type",
            vec![
                (HEADER_ADAPTER, "a"),
                (HEADER_WRITER, "w"),
                (HEADER_EPOCH, "-1"),
            ],
            HEADER_EPOCH,
        ),
    ] {
        let a = post(&s, kind, &extra, &json!([]));
        assert_eq!(a.status, 400, "{kind} {extra:?}");
        assert_eq!(a.body["Parameters"]["Field"], field, "{}", a.body);
    }
    let mut h = headers("type", &[]);
    h.remove("omfversion");
    h.insert("omfversion", HeaderValue::from_static("1.0"));
    let r = ingest(
        &s,
        ("default".into(), "default".into()),
        &h,
        &Bytes::from_static(b"[]"),
    );
    assert_eq!(r.status().as_u16(), 400);
    h.remove("omfversion");
    let r = ingest(
        &s,
        ("default".into(), "default".into()),
        &h,
        &Bytes::from_static(b"[]"),
    );
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn a_bad_message_is_refused_whole_naming_its_index_and_field() {
    let s = service();
    define(&s, "g", 1);
    let mut body = values("g", 0, 0..3);
    body.as_array_mut().expect("array").push(
        json!({"containerid": "g.stream-0", "values": [{"Timestamp": "yesterday", "Value": 1}]}),
    );
    let a = post(&s, "data", &[], &body);
    assert_eq!(a.status, 400);
    assert_eq!(a.body["Parameters"]["MessageIndex"], "1");
    assert_eq!(a.body["Parameters"]["Field"], "values[0].Timestamp");
    // Nothing of it was kept: not the good first message either.
    assert_eq!(audit(&s, "g").received, 0);
    // Unknown container, unknown type, a container deleted.
    let a = post(&s, "data", &[], &values("g", 9, 0..1));
    assert_eq!(
        (a.status, a.body["Parameters"]["Field"].as_str()),
        (400, Some("containerid"))
    );
    let a = post(
        &s,
        "container",
        &[],
        &json!([{"id": "x", "typeid": "Nope"}]),
    );
    assert_eq!(
        (a.status, a.body["Parameters"]["Field"].as_str()),
        (400, Some("typeid"))
    );
    let del = post(
        &s,
        "container",
        &[("action", "delete")],
        &json!([{"id": "g.stream-0", "typeid": "FailoverLabPoint"}]),
    );
    assert_eq!(del.status, 204);
    let a = post(&s, "data", &[], &values("g", 0, 0..1));
    assert_eq!(a.status, 400);
    assert!(
        a.body["Reason"]
            .as_str()
            .is_some_and(|r| r.contains("deleted")),
        "{}",
        a.body
    );
    let a = post_bytes(&s, "data", &[], b"{\"not\": \"an array\"}".to_vec());
    assert_eq!(a.status, 400);
}

#[test]
fn a_conflicting_redefinition_is_409_and_the_same_one_is_fine() {
    let s = service();
    define(&s, "g", 1);
    define(&s, "g", 1); // the same again: idempotent
    let t = json!([{"id": "FailoverLabPoint", "type": "object", "classification": "dynamic",
        "properties": {"Timestamp": {"type": "string", "format": "date-time", "isindex": true},
                       "Value": {"type": "string"}}}]);
    assert_eq!(post(&s, "type", &[], &t).status, 409);
    let t2 = json!([{"id": "Other", "type": "object", "classification": "dynamic",
        "properties": {"I": {"type": "integer", "isindex": true}}}]);
    assert_eq!(post(&s, "type", &[], &t2).status, 204);
    let a = post(
        &s,
        "container",
        &[],
        &json!([{"id": "g.stream-0", "typeid": "Other"}]),
    );
    assert_eq!(a.status, 409);
    // A type in use cannot be deleted.
    let a = post(
        &s,
        "type",
        &[("action", "delete")],
        &json!([{"id": "FailoverLabPoint"}]),
    );
    assert_eq!(a.status, 409);
}

#[test]
fn our_fencing_headers_refuse_a_stale_writer_and_others_are_taken_as_they_come() {
    let s = service();
    define(&s, "g", 1);
    let writer = |name: &'static str, epoch: &'static str| {
        [
            (HEADER_ADAPTER, name),
            (HEADER_WRITER, name),
            (HEADER_EPOCH, epoch),
        ]
    };
    assert_eq!(
        post(&s, "data", &writer("a", "1"), &values("g", 0, 0..5)).status,
        204
    );
    assert_eq!(
        post(&s, "data", &writer("b", "2"), &values("g", 0, 5..8)).status,
        204
    );
    let stale = post(&s, "data", &writer("a", "1"), &values("g", 0, 8..10));
    assert_eq!(
        (stale.status, stale.fenced_epoch.as_deref()),
        (409, Some("2"))
    );
    // Another writer at the fenced epoch is refused too.
    assert_eq!(
        post(&s, "data", &writer("c", "2"), &values("g", 0, 8..10)).status,
        409
    );
    // A writer with no headers is any OMF client.
    assert_eq!(post(&s, "data", &[], &values("g", 0, 7..9)).status, 204);
    let a = audit(&s, "g");
    assert_eq!((a.received, a.duplicated, a.fenced_epoch), (9, 1, 2));
    assert_eq!(a.refused_stale, 2);
    let names: Vec<_> = a
        .writers
        .iter()
        .map(|w| (w.adapter_id.as_str(), w.epoch))
        .collect();
    assert_eq!(names, [("a", 1), ("b", 2), (ANONYMOUS_WRITER, 0)]);
}

/// A data request at the epoch its writer holds is a write, as a gRPC `Write` is; only a request
/// that fences (containers, or data at a newer epoch) counts as a fence. Found by a scenario at
/// 500 Hz over OMF: every data request counted as a fence, and rule 10 (20 fences a second)
/// took the Primary's steady writes for a busy loop.
#[test]
fn steady_writes_at_a_held_epoch_are_writes_not_fences() {
    let s = service();
    define(&s, "g", 1);
    let a = [
        (HEADER_ADAPTER, "a"),
        (HEADER_WRITER, "a@1"),
        (HEADER_EPOCH, "1"),
    ];
    for i in 0..30 {
        assert_eq!(post(&s, "data", &a, &values("g", 0, i..i + 1)).status, 204);
    }
    let report = audit(&s, "g");
    assert_eq!((report.fence_calls, report.write_calls), (1, 30));
    let b = [
        (HEADER_ADAPTER, "b"),
        (HEADER_WRITER, "b@1"),
        (HEADER_EPOCH, "2"),
    ];
    assert_eq!(post(&s, "data", &b, &values("g", 0, 30..31)).status, 204);
    assert_eq!(
        audit(&s, "g").fence_calls,
        2,
        "data at a newer epoch fences"
    );
}

#[test]
fn credentials_are_asked_for_and_checked() {
    let s = EndpointService::default().with_omf(OmfSettings {
        auth: OmfAuth::Basic {
            user: "u".into(),
            password: "secret-pw".into(),
        },
        ..OmfSettings::default()
    });
    let t = json!([]);
    assert_eq!(post(&s, "type", &[], &t).status, 401);
    let wrong = failover_proto::auth::basic_header("u", "guess");
    let a = post(&s, "type", &[("authorization", &wrong)], &t);
    assert_eq!(a.status, 403);
    assert!(!a.body.to_string().contains("secret-pw"));
    let right = failover_proto::auth::basic_header("u", "secret-pw");
    assert_eq!(
        post(&s, "type", &[("authorization", &right)], &t).status,
        204
    );
    assert!(!format!("{:?}", s.omf.settings).contains("secret-pw"));
}

#[test]
fn what_was_stored_reads_back() {
    let s = service();
    define(&s, "g", 1);
    assert_eq!(post(&s, "data", &[], &values("g", 0, 0..20)).status, 204);
    let stores = s.omf.stores.lock().expect("lock");
    let ns = stores.namespaces.get(&("default".into(), "default".into()));
    let read = |path: &str, q: &[(&str, &str)]| {
        let query = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = readback::read(&s.omf, ns, path, &query);
        let status = r.status().as_u16();
        let bytes = futures::executor::block_on(axum::body::to_bytes(r.into_body(), 1 << 20))
            .expect("body");
        (
            status,
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        )
    };
    let (_, last) = read("Streams/g.stream-0/Data/Last", &[]);
    assert_eq!(last["Value"], 9.5);
    let (_, range) = read(
        "streams/g.stream-0/data",
        &[
            (
                "startIndex",
                &failover_core::clock_time::format_utc_ms(ORIGIN + 500),
            ),
            (
                "endIndex",
                &failover_core::clock_time::format_utc_ms(ORIGIN + 900),
            ),
        ],
    );
    assert_eq!(range.as_array().map(Vec::len), Some(5));
    let (_, streams) = read("streams", &[]);
    assert_eq!(streams[0]["TypeId"], "FailoverLabPoint");
    assert_eq!(read("streams/nope", &[]).0, 404);
}

#[test]
fn the_container_pattern_names_group_and_stream() {
    let p = ContainerPattern::default();
    assert_eq!(p.container("pair-1", 3), "pair-1.stream-3");
    assert_eq!(p.stream_of("pair-1.stream-3"), Some(("pair-1".into(), 3)));
    assert_eq!(p.stream_of("pair-1.stream-x"), None);
    let p = ContainerPattern::parse("plant/{stream}/of/{group}").expect("valid");
    assert_eq!(p.stream_of("plant/7/of/a.b"), Some(("a.b".into(), 7)));
    assert!(ContainerPattern::parse("{group}").is_err());
}

#[test]
fn an_outage_answers_503_with_retry_after() {
    let s = service();
    s.outage.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = ingest(
        &s,
        ("default".into(), "default".into()),
        &headers("type", &[]),
        &Bytes::from_static(b"[]"),
    );
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
}

/// A writer that sends only `x-failover-adapter` (the vendor behaviour: no epoch, no fence)
/// is counted under its name, so the audit and the coverage say who wrote what, and it neither
/// fences nor is fenced.
#[test]
fn a_writer_named_without_an_epoch_is_counted_not_fenced() {
    let s = service();
    define(&s, "g", 1);
    let fenced = [
        (HEADER_ADAPTER, "a"),
        (HEADER_WRITER, "a@1"),
        (HEADER_EPOCH, "3"),
    ];
    assert_eq!(post(&s, "data", &fenced, &values("g", 0, 0..5)).status, 204);
    let named = [(HEADER_ADAPTER, "b")];
    assert_eq!(post(&s, "data", &named, &values("g", 0, 3..8)).status, 204);
    // b took nothing from a: a still writes at its epoch.
    assert_eq!(
        post(&s, "data", &fenced, &values("g", 0, 8..10)).status,
        204
    );
    let a = audit(&s, "g");
    assert_eq!((a.received, a.duplicated, a.fenced_epoch), (10, 2, 3));
    let names: Vec<_> = a
        .writers
        .iter()
        .map(|w| (w.adapter_id.as_str(), w.epoch, w.accepted))
        .collect();
    assert_eq!(names, [("a", 3, 7), ("b", 0, 3)]);
    // The name is checked as any adapter name is; a writer or epoch alone is still refused.
    let long = "x".repeat(failover_core::limits::MAX_ID_LEN + 1);
    let bad = post(
        &s,
        "data",
        &[(HEADER_ADAPTER, &long)],
        &values("g", 0, 10..11),
    );
    assert_eq!(
        (bad.status, bad.body["Parameters"]["Field"].as_str()),
        (400, Some(HEADER_ADAPTER))
    );
    let bad = post(&s, "data", &[(HEADER_WRITER, "w")], &values("g", 0, 10..11));
    assert_eq!(bad.status, 400);
}
