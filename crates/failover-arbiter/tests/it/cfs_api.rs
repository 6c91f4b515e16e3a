//! The vendor's Client Failover Service REST API on a real failover-arbiter process: every
//! documented call with the vendor's own request bodies (byte for byte where the vendor prints
//! one) and each documented status code, the error shape, basic authentication with members
//! and administrators over HTTPS with the self-signed certificate made at first start, and a
//! group that mixes a REST member and a gRPC member failing over both ways.

use std::time::Duration;

use failover_core::Mode;
use failover_harness::{
    cluster::{Cluster, ClusterProtocol, bin_dir},
    observe::Observer,
};
use reqwest::Method;
use serde_json::{Value, json};

use failover_harness::fixture as common;
use failover_proto::testing::free_port;

/// A failover-arbiter serving the vendor API, and a client for it.
struct Service {
    _child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    auth: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Starts the service; `tls` serves HTTPS with a self-signed certificate (made now), and
    /// `users` requires basic authentication with those accounts.
    async fn start(tls: bool, users: Option<Value>) -> Service {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        let port = free_port();
        let mut cmd =
            tokio::process::Command::new(bin_dir().expect("bins").join("failover-arbiter"));
        cmd.args(["--listen", "127.0.0.1:0", "--rest-listen", "127.0.0.1:0"])
            .args(["--cfs-listen", &format!("127.0.0.1:{port}")])
            .arg("--cfs-cert-dir")
            .arg(dir.join("cert"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if !tls {
            cmd.arg("--cfs-plain-http");
        }
        if let Some(u) = users {
            let path = dir.join("users.json");
            std::fs::write(&path, u.to_string()).expect("users file");
            cmd.arg("--cfs-users").arg(path);
        }
        let child = cmd.spawn().expect("failover-arbiter starts");
        let scheme = if tls { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{port}");
        let ca = dir.join("cert").join("ca.pem");
        let mut http = None;
        for _ in 0..200 {
            // The certificate exists once the service has made it.
            let client = if tls {
                match std::fs::read(&ca) {
                    Ok(pem) => reqwest::Client::builder()
                        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
                        .build()
                        .expect("client"),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            } else {
                reqwest::Client::new()
            };
            if client
                .get(format!("{base}/api/v1/clientfailover"))
                .send()
                .await
                .is_ok()
            {
                http = Some(client);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Service {
            _child: child,
            base,
            http: http.expect("the vendor API answers within 10 s"),
            auth: None,
            _dir: temp,
        }
    }

    fn as_user(&mut self, user: &str, password: &str) -> &mut Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("answer");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, value)
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let (s, _, v) = self.call(Method::POST, path, Some(body)).await;
        (s, v)
    }

    /// Heartbeats as an adapter does (here every 100 ms) while the just-started service waits
    /// for the group's members to rejoin, which each answer says in its Reason; the first
    /// answer after the wait.
    async fn heartbeat_after_startup_wait(&self, path: &str, body: &str) -> (u16, Value) {
        for _ in 0..100 {
            let (status, r) = self.post(path, body).await;
            let waiting = status == 200
                && r["Reason"]
                    .as_str()
                    .is_some_and(|why| why.contains("waiting"));
            if !waiting {
                return (status, r);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the service still waits after 10 s: {path}");
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, v) = self.call(Method::GET, path, None).await;
        (s, v)
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        let (s, _, v) = self.call(Method::DELETE, path, None).await;
        (s, v)
    }
}

const CF: &str = "/api/v1/clientfailover";

/// The vendor's error shape: OperationId (32 hex digits), Error, Reason, Resolution.
fn assert_vendor_error(body: &Value, reason_has: &str) {
    let id = body["OperationId"].as_str().unwrap_or_default();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "OperationId: {body}"
    );
    for field in ["Error", "Reason", "Resolution"] {
        assert!(body[field].is_string(), "{field} missing: {body}");
    }
    assert!(
        body["Reason"]
            .as_str()
            .unwrap_or_default()
            .contains(reason_has),
        "Reason should say {reason_has:?}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_call_answers_as_the_vendor_documents() {
    let s = Service::start(false, None).await;
    // Application information.
    let (status, info) = s.get(CF).await;
    assert_eq!(status, 200);
    assert!(info["Version"].is_string(), "{info}");

    // Groups: 201 created, 200 the same again, 409 when it differs. The API reference's
    // example body, with its placeholder timespan, is refused naming the field.
    let reference_example = "{\n  \"Id\": \"string\",\n  \"Name\": \"string\",\n  \"Description\": \"string\",\n  \"FailoverTimeout\": \"string\",\n  \"AdditionalData\": {\n    \"property1\": null,\n    \"property2\": null\n  }\n}";
    let (status, e) = s.post(&format!("{CF}/groups"), reference_example).await;
    assert_eq!(status, 400, "{e}");
    assert_vendor_error(&e, "FailoverTimeout");
    assert_eq!(e["AdditionalParameters"]["Field"], "FailoverTimeout");
    let group = reference_example.replace(
        "\"FailoverTimeout\": \"string\"",
        "\"FailoverTimeout\": \"00:00:02\"",
    );
    let (status, g) = s.post(&format!("{CF}/groups"), &group).await;
    assert_eq!(status, 201, "{g}");
    assert_eq!(g["Id"], "string");
    assert_eq!(g["FailoverTimeout"], "00:00:02");
    assert_eq!(
        g["AdditionalData"],
        json!({"property1": null, "property2": null})
    );
    let (status, _) = s.post(&format!("{CF}/groups"), &group).await;
    assert_eq!(status, 200, "the same group again");
    let (status, e) = s
        .post(
            &format!("{CF}/groups"),
            &group.replace("\"Name\": \"string\"", "\"Name\": \"other\""),
        )
        .await;
    assert_eq!(status, 409);
    assert_vendor_error(&e, "Name");
    // The adapters' timespans in .NET's d.hh:mm:ss form are the same value.
    let (status, _) = s
        .post(
            &format!("{CF}/groups"),
            r#"{"Id":"G2","Name":"n","Description":"d","FailoverTimeout":"0.00:00:02"}"#,
        )
        .await;
    assert_eq!(status, 201);
    let (status, g) = s.get(&format!("{CF}/groups/G2")).await;
    assert_eq!(
        (status, g["FailoverTimeout"].as_str()),
        (200, Some("00:00:02"))
    );
    let (status, e) = s.get(&format!("{CF}/groups/nope")).await;
    assert_eq!(status, 404);
    assert_vendor_error(&e, "nope");
    // An epoch that would overflow the next promotion is refused.
    let (status, e) = s
        .post(
            &format!("{CF}/groups/G2/clientsessions/nobody/heartbeat"),
            r#"{"FailoverScore":100,"KnownEpoch":18446744073709551615}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(e["AdditionalParameters"]["Field"], "KnownEpoch");
    // A long id in a path is not echoed whole.
    let (status, e) = s.get(&format!("{CF}/groups/{}", "x".repeat(5000))).await;
    assert_eq!(status, 404);
    assert!(e.to_string().len() < 1000, "{}", e.to_string().len());

    // Paging: skip and count, the Total-Count header.
    let (status, headers, page) = s
        .call(Method::GET, &format!("{CF}/groups?skip=1&count=1"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["Total-Count"], "2");
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    assert_eq!(page[0]["Id"], "string", "groups in id order: G2, string");
    let (status, e) = s.get(&format!("{CF}/groups?skip=-1")).await;
    assert_eq!(status, 400);
    assert_eq!(e["AdditionalParameters"]["Field"], "skip");

    // Client sessions: the reference's example registers a session with the client's own id;
    // repeating it is safe; the same id under another name is a conflict.
    let g = format!("{CF}/groups/G2");
    let session_example = "{\n  \"Id\": \"string\",\n  \"Name\": \"string\"\n}";
    let (status, a) = s
        .post(&format!("{g}/clientsessions"), session_example)
        .await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(
        (
            a["Id"].as_str(),
            a["Role"].as_u64(),
            a["HeartbeatPosted"].as_bool()
        ),
        (Some("string"), Some(0), Some(false))
    );
    assert!(a["Heartbeat"].is_null(), "{a}");
    let (status, _) = s
        .post(&format!("{g}/clientsessions"), session_example)
        .await;
    assert_eq!(status, 200);
    let (status, e) = s
        .post(
            &format!("{g}/clientsessions"),
            r#"{"Id":"string","Name":"another"}"#,
        )
        .await;
    assert_eq!(status, 409);
    assert_vendor_error(&e, "string");
    let (status, _) = s
        .post(&format!("{CF}/groups/nope/clientsessions"), session_example)
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .post(
            &format!("{g}/clientsessions"),
            r#"{"Id":"b-1","Name":"adapter-b"}"#,
        )
        .await;
    assert_eq!(status, 201);

    // Heartbeats: the reference's body; the role comes back as a number.
    let hb = |id: &str| format!("{g}/clientsessions/{id}/heartbeat");
    // A just-started service waits a heartbeat interval before its first promotion (its
    // Reason says so), then the lone member is Primary.
    let (status, r) = s
        .heartbeat_after_startup_wait(&hb("string"), "{\n  \"FailoverScore\": 100\n}")
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["Role"], 1, "the lone member is Primary: {r}");
    assert!(r["LastDataProcessedTime"].is_string(), "{r}");
    let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(r["Role"], 0, "no failback to an equal score: {r}");
    // The Primary's LastDataProcessedTime is relayed as it reported it (a vendor's Hot
    // Secondary trims its queue by it), not replaced by the time of its heartbeat.
    let old = r#"{"FailoverScore":100,"LastDataProcessedTime":"2020-01-01T00:00:00Z"}"#;
    let (status, r) = s.post(&hb("string"), old).await;
    assert_eq!((status, r["Role"].clone()), (200, json!(1)), "{r}");
    assert_eq!(
        r["LastDataProcessedTime"], "2020-01-01T00:00:00.000Z",
        "{r}"
    );
    let (_, r) = s
        .post(
            &hb("b-1"),
            r#"{"FailoverScore":100,"LastDataProcessedTime":"0001-01-01T00:00:00"}"#,
        )
        .await;
    assert_eq!(
        r["LastDataProcessedTime"], "2020-01-01T00:00:00.000Z",
        "a Secondary hears the Primary's time, not its own: {r}"
    );
    let (_, st) = s.get(&format!("{g}/status")).await;
    assert_eq!(
        st["LastDataProcessedTime"], "2020-01-01T00:00:00.000Z",
        "{st}"
    );
    let (_, one) = s.get(&format!("{g}/clientsessions/string")).await;
    assert_eq!(
        one["Heartbeat"]["LastDataProcessedTime"], "2020-01-01T00:00:00.000Z",
        "{one}"
    );
    let (status, e) = s
        .post(
            &hb("b-1"),
            r#"{"FailoverScore":100,"LastDataProcessedTime":"soon"}"#,
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["AdditionalParameters"]["Field"], "LastDataProcessedTime");
    let (status, e) = s.post(&hb("b-1"), r#"{"FailoverScore":"lots"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(e["AdditionalParameters"]["Field"], "FailoverScore");
    let (status, e) = s.post(&hb("nobody"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(status, 404);
    assert_vendor_error(&e, "nobody");
    // Paths are matched without regard to case; ids keep theirs.
    let (status, sessions) = s
        .get("/api/v1/ClientFailover/Groups/G2/ClientSessions")
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = sessions
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|x| x["Id"].as_str())
        .collect();
    assert_eq!(ids, ["string", "b-1"]);
    assert_eq!(sessions[0]["Heartbeat"]["FailoverScore"], 100);
    assert!(sessions[0]["Heartbeat"]["HeartbeatTime"].is_string());
    let (status, one) = s.get(&format!("{g}/clientsessions/b-1")).await;
    assert_eq!((status, one["Name"].as_str()), (200, Some("adapter-b")));

    // A Primary whose score drops hears Secondary in that very answer; the next one asks.
    let (status, st) = s.get(&format!("{g}/status")).await;
    assert_eq!((status, st["Primary"].as_str()), (200, Some("string")));
    assert!(st["PendingPrimary"].is_null());
    let (_, r) = s.post(&hb("string"), r#"{"FailoverScore":0}"#).await;
    assert_eq!(r["Role"], 0, "told in this answer: {r}");
    let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(r["Role"], 1, "the old Primary has heard: {r}");
    // PendingPrimary: an administrator forces "string" Primary while b-1, told Primary, has
    // not heard otherwise: "string" is PendingPrimary (2) until b-1's next heartbeat.
    let ov = |id: &str| format!("{g}/clientsessions/{id}/roleoverride");
    let (status, _) = s.post(&ov("string"), r#"{"Value": "Primary"}"#).await;
    assert_eq!(status, 200);
    let (_, r) = s.post(&hb("string"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(r["Role"], 2, "b-1 has not heard yet: {r}");
    let (_, st) = s.get(&format!("{g}/status")).await;
    assert_eq!(
        (st["Primary"].as_str(), st["PendingPrimary"].as_str()),
        (Some("b-1"), Some("string")),
        "{st}"
    );
    let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(r["Role"], 0);
    let (_, r) = s.post(&hb("string"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(r["Role"], 1);
    let (status, _) = s.post(&ov("string"), r#"{"Value": "Off"}"#).await;
    assert_eq!(status, 200);

    // Role override: the guide's Postman body (indented as printed), then Off.
    let ov = ov("b-1");
    let (status, r) = s
        .post(
            &ov,
            "   {\n       \"Value\": \"Primary\",\n       \"ExpirationPeriod\": \"08:00:00\"\n   }",
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["Value"], 1);
    assert!(r["RoleOverrideExpirationTime"].is_string(), "{r}");
    let (_, one) = s.get(&format!("{g}/clientsessions/b-1")).await;
    assert_eq!(
        (
            one["RoleOverride"].as_u64(),
            one["RoleOverrideExpirationTime"].is_string()
        ),
        (Some(1), true),
        "{one}"
    );
    let (status, r) = s.post(&ov, "   {\n      \"Value\": \"Off\"\n   }").await;
    assert_eq!((status, r["Value"].as_u64()), (200, Some(0)), "{r}");
    assert!(r["RoleOverrideExpirationTime"].is_null());
    let (status, e) = s.post(&ov, r#"{"Value":"Maybe"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(e["AdditionalParameters"]["Field"], "Value");

    // Deleting: a group with sessions is refused (409); its sessions go (204), then it does.
    let (status, e) = s.delete(&g).await;
    assert_eq!(status, 409);
    assert_vendor_error(&e, "session");
    // b-1 (forced Primary above) waits while "string", last told Primary, has not heard. The
    // session of "string" is deleted: it may still act as Primary until it would have gone
    // stale (failoverTimeout after its last answer), so b-1 waits that long. Found in review:
    // b-1 was told Primary at once.
    let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(r["Role"], 2, "{r}");
    assert_eq!(s.delete(&format!("{g}/clientsessions/string")).await.0, 204);
    let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(r["Role"], 2, "the deleted Primary may still act: {r}");
    let (_, st) = s.get(&format!("{g}/status")).await;
    assert_eq!(
        (st["Primary"].as_str(), st["PendingPrimary"].as_str()),
        (Some("string"), Some("b-1")),
        "{st}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
    assert_eq!(r["Role"], 1, "failoverTimeout later: {r}");
    let (status, _) = s.delete(&format!("{g}/clientsessions/b-1")).await;
    assert_eq!(status, 204);
    let (status, _) = s.delete(&format!("{g}/clientsessions/b-1")).await;
    assert_eq!(status, 404);
    assert_eq!(s.delete(&g).await.0, 204);
    assert_eq!(s.get(&g).await.0, 404);

    // Configuration: the guide's log level body, at runtime.
    let (status, r) = s
        .call(
            Method::PUT,
            "/api/v1/configuration/logging",
            Some("   {\n       \"LogLevel\": \"Debug\"\n   }"),
        )
        .await
        .into_parts();
    assert_eq!(
        (status, r["LogLevel"].as_str()),
        (200, Some("Debug")),
        "{r}"
    );
    let (_, r) = s.get("/api/v1/configuration").await;
    assert_eq!(r["Logging"]["LogLevel"], "Debug");
    let (status, _, e) = s
        .call(
            Method::PUT,
            "/api/v1/configuration/logging",
            Some(r#"{"LogLevel":"Loud"}"#),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(e["AdditionalParameters"]["Field"], "LogLevel");
    // Health endpoints (the vendor's OMF targets) are not kept: 501 says where health is.
    assert_eq!(
        s.get("/api/v1/configuration/healthEndpoints").await,
        (200, json!([]))
    );
    let (status, e) = s
        .post(
            "/api/v1/configuration/healthEndpoints",
            r#"{"Id":"PI Web API","Endpoint":"https://x/piwebapi/omf/"}"#,
        )
        .await;
    assert_eq!(status, 501);
    assert_vendor_error(&e, "health");
    let (status, health) = s.get("/api/v1/health").await;
    assert_eq!(
        (status, health["DeviceStatus"].as_str()),
        (200, Some("Good"))
    );
    assert_eq!(health["FailoverObjectCount"]["Groups"], 1);

    // A method the resource does not take, a path that is not there.
    let (status, headers, e) = s.call(Method::PATCH, &format!("{CF}/groups"), None).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, POST");
    assert_vendor_error(&e, "PATCH");
    assert_eq!(s.get("/api/v1/clientfailover/nothing").await.0, 404);
}

trait IntoParts {
    fn into_parts(self) -> (u16, Value);
}

impl IntoParts for (u16, reqwest::header::HeaderMap, Value) {
    fn into_parts(self) -> (u16, Value) {
        (self.0, self.2)
    }
}

/// A Primary that leaves (its adapter deletes its own session, saying so with the
/// `Failover-Lab-Leaving: true` header) hands over at once: the next member's next heartbeat
/// answers Primary. A delete without the header is an operator's: the deleted Primary may still
/// act until it would have gone stale or until its client hears 404, so the next member is
/// PendingPrimary meanwhile. (Found rerunning primary-stopped-gracefully.toml and
/// operator-deletes-session-and-changes-timeout.toml over REST: a graceful stop, and a deleted
/// Primary that had already heard 404, waited out the whole failoverTimeout.)
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_that_leaves_hands_over_at_once_and_an_operators_delete_waits() {
    let s = Service::start(false, None).await;
    for (group, leaving) in [("Leaving", true), ("Deleted", false)] {
        let g = format!("{CF}/groups/{group}");
        let body = format!(
            r#"{{"Id":"{group}","Name":"n","Description":"d","FailoverTimeout":"00:00:05"}}"#
        );
        assert_eq!(s.post(&format!("{CF}/groups"), &body).await.0, 201);
        for (id, name) in [("a-1", "adapter-a"), ("b-1", "adapter-b")] {
            let session = format!(r#"{{"Id":"{id}","Name":"{name}"}}"#);
            assert_eq!(
                s.post(&format!("{g}/clientsessions"), &session).await.0,
                201
            );
        }
        let hb = |id: &str| format!("{g}/clientsessions/{id}/heartbeat");
        let (_, r) = s
            .heartbeat_after_startup_wait(&hb("a-1"), r#"{"FailoverScore":100}"#)
            .await;
        assert_eq!(r["Role"], 1, "{group}: a-1 is Primary: {r}");
        let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
        assert_eq!(r["Role"], 0, "{group}: {r}");
        let mut delete = s.http.delete(format!("{}{g}/clientsessions/a-1", s.base));
        if leaving {
            delete = delete.header("Failover-Lab-Leaving", "true");
        }
        assert_eq!(delete.send().await.expect("answer").status().as_u16(), 204);
        let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
        let expected = if leaving { 1 } else { 2 };
        assert_eq!(r["Role"], expected, "{group}: {r}");
        if !leaving {
            // The deleted Primary's client heartbeats and hears 404: it knows it is not
            // Primary, so b-1 need not wait out the failoverTimeout (5 s).
            assert_eq!(s.post(&hb("a-1"), r#"{"FailoverScore":100}"#).await.0, 404);
            let (_, r) = s.post(&hb("b-1"), r#"{"FailoverScore":100}"#).await;
            assert_eq!(r["Role"], 1, "{group}, after the 404: {r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_members_and_administrators() {
    let users = json!({
        "members": [{"username": "adapter", "password": "MemberPassword1"}],
        "administrators": [{"username": "admin", "password": "AdminPassword1"}],
    });
    let mut s = Service::start(true, Some(users)).await;
    // Over HTTPS (the client trusts the CA made at first start): no credentials is 401 with a
    // Basic challenge, wrong ones too.
    let (status, headers, e) = s.call(Method::GET, &format!("{CF}/groups"), None).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap_or_default()
            .starts_with("Basic"),
        "{headers:?}"
    );
    assert_vendor_error(&e, "basic authentication");
    s.as_user("adapter", "wrong");
    assert_eq!(s.get(&format!("{CF}/groups")).await.0, 401);
    // A member creates groups and sessions, heartbeats and deletes sessions...
    s.as_user("adapter", "MemberPassword1");
    let group = r#"{"Id":"G","Name":"n","Description":"d","FailoverTimeout":"00:00:05"}"#;
    assert_eq!(s.post(&format!("{CF}/groups"), group).await.0, 201);
    let g = format!("{CF}/groups/G");
    assert_eq!(
        s.post(&format!("{g}/clientsessions"), r#"{"Id":"s1","Name":"a"}"#)
            .await
            .0,
        201
    );
    let (status, r) = s
        .heartbeat_after_startup_wait(
            &format!("{g}/clientsessions/s1/heartbeat"),
            r#"{"FailoverScore":100}"#,
        )
        .await;
    assert_eq!((status, r["Role"].as_u64()), (200, Some(1)));
    // ...but neither overrides, deletes groups nor changes the log level: 403.
    let (status, e) = s
        .post(
            &format!("{g}/clientsessions/s1/roleoverride"),
            r#"{"Value":"Off"}"#,
        )
        .await;
    assert_eq!(status, 403);
    assert_vendor_error(&e, "administrator");
    assert_eq!(s.delete(&g).await.0, 403);
    assert_eq!(s.get("/api/v1/configuration/logging").await.0, 403);
    assert_eq!(s.delete(&format!("{g}/clientsessions/s1")).await.0, 204);
    // An administrator may do all of it.
    s.as_user("admin", "AdminPassword1");
    assert_eq!(
        s.post(&format!("{g}/clientsessions"), r#"{"Id":"s2","Name":"b"}"#)
            .await
            .0,
        201
    );
    assert_eq!(
        s.post(
            &format!("{g}/clientsessions/s2/roleoverride"),
            r#"{"Value":"Primary"}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(s.get("/api/v1/configuration/logging").await.0, 200);
    assert_eq!(s.delete(&format!("{g}/clientsessions/s2")).await.0, 204);
    assert_eq!(s.delete(&g).await.0, 204);
}

/// adapter-a speaks the vendor's REST API, adapter-b gRPC, in one group: each takes over from
/// the other, and nothing is lost or written twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_of_a_rest_and_a_grpc_member_fails_over_both_ways() {
    let mut spec = common::spec(Mode::Hot);
    spec.failover_protocol = ClusterProtocol::Rest;
    let cluster = Cluster::start(spec.clone()).await.expect("cluster");
    let obs = Observer::start(&cluster.addrs, &spec.group_id);
    cluster
        .configure("adapter-a")
        .await
        .expect("adapter-a over REST");
    assert!(
        obs.wait_for(common::deadline(), |t| t.primary().as_deref()
            == Some("adapter-a"))
            .await,
        "adapter-a never became Primary: {:?}",
        obs.snapshot().events
    );
    // adapter-b: the same document, straight to the service's gRPC port.
    let mut doc = spec
        .client_failover_document(&format!("http://{}", cluster.addrs.arbiter))
        .expect("document");
    doc["failoverGroupId"] = Value::String(spec.group_id.clone());
    cluster
        .put_client_failover("adapter-b", &doc.to_string())
        .await
        .expect("adapter-b over gRPC");
    assert!(
        obs.wait_for(common::deadline(), |t| t.session("adapter-b").is_some()
            && t.audit.as_ref().is_some_and(|a| a.received > 0))
            .await,
        "adapter-b never joined: {:?}",
        obs.snapshot().events
    );
    let p = common::Pair { cluster, obs };
    let mut p = p;
    // The REST member dies: the gRPC member takes over.
    let epoch = p.obs.snapshot().epoch();
    p.cluster.kill("adapter-a").await.expect("kill");
    common::wait_takeover(&p, "adapter-b", epoch).await;
    // It comes back (over REST again) as Secondary; then the gRPC member dies.
    p.cluster.restart("adapter-a").await.expect("restart");
    p.cluster.configure("adapter-a").await.expect("configured");
    assert!(
        p.obs
            .wait_for(common::deadline(), |t| t
                .session("adapter-a")
                .is_some_and(|s| !s.stale && s.score == 100))
            .await,
        "adapter-a never rejoined: {:?}",
        p.obs.snapshot().events
    );
    let epoch = p.obs.snapshot().epoch();
    p.cluster.kill("adapter-b").await.expect("kill");
    common::wait_takeover(&p, "adapter-a", epoch).await;
    let audit = common::audit(&p).await;
    assert_eq!(
        (audit.lost, audit.duplicated),
        (0, 0),
        "Hot: nothing lost or written twice: {audit:?}"
    );
}
