//! The failover session over the vendor's Client Failover Service REST API, as the vendor's
//! adapters use it: create the group (`POST {endpoint}/groups`, 200 or 201), register a session
//! under our own id (`POST .../clientsessions` `{"Id","Name"}`, safe to repeat), then heartbeat
//! every failoverTimeout/2 (`POST .../heartbeat` `{"FailoverScore":n}`) and take the role from
//! each answer. Nothing is pushed: a new role reaches us in the answer to our next heartbeat.
//! We heartbeat at once when our score, mode or claim changes, as over gRPC.
//!
//! PendingPrimary (2) is taken as "not yet": we stay Secondary until an answer says Primary.
//!
//! Epochs: failover-arbiter answers with its epoch (an extension field, `Epoch`), and we fence
//! the endpoint at it as over gRPC. The vendor's service hands out none; then we fence at the
//! wall-clock millisecond at which we first heard Primary, so a later promotion fences higher
//! as long as the members' clocks agree to within a heartbeat interval.
//!
//! Leaving (the document deleted or replaced, a graceful stop) deletes our session, the
//! vendor's "unregister", so the role passes on at once. A session the service no longer
//! knows (404: deleted by an operator, or the service restarted) is registered again.
//! failover-lab's extensions ride along in both directions (`Mode`, `KnownEpoch`,
//! `ClaimsPrimary`, `Watermark` in heartbeats; `Epoch`, `Reason`, `PrimaryName`,
//! `PrimaryWatermark` in answers); the vendor's service ignores them.

use std::{sync::Arc, time::Duration};

use failover_core::{
    Behaviour, ClientFailoverConfig, Role, behaviour, clock_time::format_utc_ms, retry::Backoff,
    timespan::format_timespan,
};
use failover_proto::{convert, tls, v1};
use serde_json::{Value, json};

use super::member::{
    End, apply_assignment, authorization, config_changed, endpoint_tls, heartbeat, left,
    log_score_change, stop_acting,
};
use crate::state::Shared;

/// True when a URL's path names the vendor's API (`.../clientfailover`, any case).
pub fn is_vendor_endpoint(url: &str) -> bool {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split_once('/')
        .map_or("", |(_, p)| p);
    path.to_ascii_lowercase().contains("clientfailover")
}

/// One HTTP exchange's outcome.
struct Answer {
    status: u16,
    body: Value,
    /// `Retry-After` in whole seconds, when the answer has one (an HTTP date is not read).
    retry_after: Option<Duration>,
}

/// The client of one session.
struct Client {
    http: reqwest::Client,
    base: String,
    authorization: Option<String>,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        self.send_with(method, path, body, None).await
    }

    /// [`Client::send`] with one more header.
    async fn send_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        header: Option<(&str, &str)>,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        if let Some(a) = &self.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            format!(
                "cannot reach the failover service at {}: {}",
                self.base,
                tls::explain(&e)
            )
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }
}

/// Words for a refusal: the vendor's `Reason` (and `Resolution`), or the body.
fn refusal(what: &str, a: &Answer) -> String {
    let reason = a
        .body
        .get("Reason")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| a.body.to_string().chars().take(300).collect());
    match a.body.get("Resolution").and_then(Value::as_str) {
        Some(r) => format!("{what}: HTTP {}: {reason} ({r})", a.status),
        None => format!("{what}: HTTP {}: {reason}", a.status),
    }
}

fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Creates the group (or finds it the same) and registers our session. Returns the
/// failoverTimeout in force: the document's, or (the vendor's behaviour, V2) the group's own
/// when the group exists with another one (409).
async fn register(
    c: &Client,
    cfg: &ClientFailoverConfig,
    session_path: &str,
    name: &str,
    id: &str,
    vendor: bool,
) -> Result<Duration, String> {
    let group = json!({
        "Id": cfg.failover_group_id,
        "Name": cfg.name,
        "Description": cfg.description,
        "FailoverTimeout": format_timespan(cfg.failover_timeout),
    });
    let a = c
        .send(reqwest::Method::POST, "/groups", Some(group))
        .await?;
    let g = segment(&cfg.failover_group_id);
    let mut failover_timeout = cfg.failover_timeout;
    match a.status {
        200 | 201 => {}
        409 if vendor => {
            failover_timeout = group_timeout(c, &g)
                .await
                .map_err(|e| format!("{}; {e}", refusal("creating the failover group", &a)))?;
            if failover_timeout != cfg.failover_timeout {
                tracing::warn!(
                    group = cfg.failover_group_id,
                    "the failover group exists with failoverTimeout {}; adopting it (the vendor's \
                     adapters do), not the document's {}",
                    format_timespan(failover_timeout),
                    format_timespan(cfg.failover_timeout)
                );
            }
        }
        _ => return Err(refusal("creating the failover group", &a)),
    }
    let a = c
        .send(
            reqwest::Method::POST,
            &format!("/groups/{g}/clientsessions"),
            Some(json!({ "Id": id, "Name": name })),
        )
        .await?;
    if !matches!(a.status, 200 | 201) {
        return Err(refusal("registering the session", &a));
    }
    tracing::info!(
        group = cfg.failover_group_id,
        session = id,
        path = session_path,
        "registered with the failover service's REST API"
    );
    Ok(failover_timeout)
}

/// The group's own failoverTimeout (`GET /groups/{g}`).
async fn group_timeout(c: &Client, g: &str) -> Result<Duration, String> {
    let a = c
        .send(reqwest::Method::GET, &format!("/groups/{g}"), None)
        .await?;
    if a.status != 200 {
        return Err(refusal("reading the failover group", &a));
    }
    a.body
        .get("FailoverTimeout")
        .and_then(Value::as_str)
        .and_then(|t| failover_core::timespan::parse_timespan(t).ok())
        .ok_or_else(|| format!("the failover group has no FailoverTimeout: {}", a.body))
}

/// What an answer means for us, as an assignment.
fn assignment(
    shared: &Shared,
    body: &Value,
    session_id: &str,
    cfg: &ClientFailoverConfig,
) -> Result<v1::RoleAssignment, String> {
    let role_number = body
        .get("Role")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("the heartbeat's answer has no Role: {body}"))?;
    let (role, pending) = match role_number {
        1 => (Role::Primary, false),
        0 => (Role::Secondary, false),
        2 => (Role::Secondary, true),
        other => {
            return Err(format!(
                "the heartbeat's answer has an unknown Role {other}"
            ));
        }
    };
    let vendor = shared.settings.behaviour == Behaviour::Vendor;
    let st = shared.lock();
    // The vendor's behaviour reads Role and LastDataProcessedTime only (V1).
    let epoch = match body
        .get("Epoch")
        .and_then(Value::as_u64)
        .filter(|_| !vendor)
    {
        Some(e) => e,
        // The vendor's service: the millisecond we first heard Primary, kept while Primary.
        None if role == Role::Primary && st.role == Some(Role::Primary) => st.epoch,
        None if role == Role::Primary => u64::try_from(shared.clock_ms())
            .unwrap_or(0)
            .max(st.known_epoch + 1),
        None => st.epoch,
    };
    drop(st);
    let mut reason = body
        .get("Reason")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if pending {
        reason = format!(
            "PendingPrimary: waiting for the previous Primary to hear it is not ({reason})"
        );
    }
    let watermark: Vec<(u32, u64)> = body
        .get("PrimaryWatermark")
        .filter(|_| !vendor)
        .and_then(Value::as_array)
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| {
                    Some((
                        u32::try_from(p.get(0)?.as_u64()?).ok()?,
                        p.get(1)?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(v1::RoleAssignment {
        role: convert::role_to_wire(role) as i32,
        epoch,
        primary_adapter_id: body
            .get("PrimaryName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        primary_watermark: convert::watermark_to_wire(&watermark),
        reason,
        heartbeat_interval_ms: u64::try_from(cfg.heartbeat_interval().as_millis())
            .unwrap_or(u64::MAX),
        session_id: session_id.to_string(),
    })
}

/// The heartbeat body of the vendor's behaviour (V1): the score and LastDataProcessedTime
/// alone, `0001-01-01T00:00:00` (.NET's empty DateTime) before any data was processed.
fn vendor_heartbeat_body(hb: &v1::HeartbeatRequest, last_data_processed_ms: Option<i64>) -> Value {
    json!({
        "FailoverScore": hb.score,
        "LastDataProcessedTime": last_data_processed_ms
            .map_or_else(|| NO_TIME.to_string(), format_utc_ms),
    })
}

/// .NET's `default(DateTime)`, as the vendor's adapters send it before any data.
const NO_TIME: &str = "0001-01-01T00:00:00";

/// The heartbeat body: the vendor's score and failover-lab's extensions.
fn heartbeat_body(hb: &v1::HeartbeatRequest) -> Value {
    json!({
        "FailoverScore": hb.score,
        "Mode": convert::mode_from_wire(hb.mode).ok().map(|m| m.as_str()),
        "KnownEpoch": hb.known_epoch,
        "FencedOutEpoch": hb.fenced_out_epoch,
        "ClaimsPrimary": hb.claims_primary,
        "HoldsDataSince": (hb.holds_data_since_ms > 0).then_some(hb.holds_data_since_ms),
        "Watermark": hb.egress_watermark.iter().map(|w| json!([w.stream_id, w.seq])).collect::<Vec<_>>(),
    })
}

/// The longest wait a 429's `Retry-After` is followed for: past it, the session heartbeats
/// anyway (a service that says "come back in an hour" would leave the group without us).
const MAX_TOLD_WAIT: Duration = Duration::from_secs(60);

/// Runs one session over the REST API until it ends.
pub(super) async fn session(
    shared: &Arc<Shared>,
    cfg: &ClientFailoverConfig,
    incarnation: &str,
    changed: &mut tokio::sync::watch::Receiver<u64>,
    backoff: &mut Backoff,
) -> End {
    let tls = match endpoint_tls(shared, cfg) {
        Ok(tls) => tls,
        Err(e) => return End::Failed(e),
    };
    let vendor = shared.settings.behaviour == Behaviour::Vendor;
    // An answer later than a heartbeat interval is as good as none (the vendor's adapters wait
    // 30 s, V1).
    let timeout = if vendor {
        behaviour::HTTP_TIMEOUT
    } else {
        cfg.heartbeat_interval()
            .clamp(Duration::from_millis(200), Duration::from_secs(10))
    };
    let http = match tls
        .as_ref()
        .map_or_else(reqwest::Client::builder, |t| {
            reqwest::Client::builder().use_preconfigured_tls(t.http1_config())
        })
        .timeout(timeout)
        .build()
    {
        Ok(h) => h,
        Err(e) => return End::Failed(format!("cannot make an HTTP client: {e}")),
    };
    let (authorization, token_renewal) = match authorization(shared, cfg, tls.as_ref()).await {
        Ok(a) => a,
        Err(e) => return End::Failed(e),
    };
    let client = Client {
        http,
        base: cfg.endpoint.trim_end_matches('/').to_string(),
        authorization,
    };
    // Our session id: the incarnation (the same across reconnects, new at a restart or a new
    // document).
    let session_id = incarnation.to_string();
    let name = shared.settings.name.clone();
    let path = format!(
        "/groups/{}/clientsessions/{}",
        segment(&cfg.failover_group_id),
        segment(&session_id)
    );
    let failover_timeout = match register(&client, cfg, &path, &name, &session_id, vendor).await {
        Ok(t) => t,
        Err(e) => return End::Failed(e),
    };
    let interval = if vendor {
        behaviour::heartbeat_interval(failover_timeout)
    } else {
        cfg.heartbeat_interval()
    };
    let mut ticker = tokio::time::interval(interval);
    // The vendor's behaviour: PendingPrimary confirmations sent in a row since the last tick.
    let mut confirmations = 0u32;
    let mut confirm_now = false;
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (_, mut said) = heartbeat(shared, &shared.lock(), cfg, incarnation);
    let renewal = async move {
        match token_renewal {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(renewal);
    let end = loop {
        let due = confirm_now
            || tokio::select! {
                _ = ticker.tick() => true,
                () = &mut renewal => break End::RenewToken,
                r = changed.changed() => {
                    if r.is_err() {
                        break End::Failed("adapter shutting down".into());
                    }
                    if shared.lock().leaving {
                        break End::Left;
                    }
                    if config_changed(shared, cfg) {
                        break End::ConfigChanged;
                    }
                    // The vendor's adapters heartbeat on their timer only.
                    let (_, now_said) = heartbeat(shared, &shared.lock(), cfg, incarnation);
                    !vendor && now_said.calls_for_heartbeat(&said)
                }
            };
        confirm_now = false;
        if !due {
            continue;
        }
        let (hb, now_said) = heartbeat(shared, &shared.lock(), cfg, incarnation);
        log_score_change(shared, &said, &now_said);
        said = now_said;
        shared.lock().heartbeats_sent += 1;
        let body = if vendor {
            vendor_heartbeat_body(&hb, shared.lock().last_data_processed_ms)
        } else {
            heartbeat_body(&hb)
        };
        let answer = match client
            .send(
                reqwest::Method::POST,
                &format!("{path}/heartbeat"),
                Some(body),
            )
            .await
        {
            Ok(a) => a,
            Err(e) => break End::Failed(e),
        };
        match answer.status {
            200 if vendor => {
                match vendor_answer(shared, &answer.body, &session_id, cfg, failover_timeout) {
                    // V3: PendingPrimary changes nothing; up to 10 heartbeats in a row confirm
                    // it, then the timer's next tick starts another chain.
                    Ok(true) if confirmations < behaviour::PENDING_CONFIRMATIONS => {
                        confirmations += 1;
                        confirm_now = true;
                    }
                    Ok(_) => {
                        confirmations = 0;
                        backoff.reset();
                    }
                    Err(e) => break End::Failed(e),
                }
            }
            200 => match assignment(shared, &answer.body, &session_id, cfg) {
                Ok(a) => {
                    backoff.reset();
                    apply_assignment(shared, a);
                }
                Err(e) => break End::Failed(e),
            },
            // Deleted by an operator, or the service restarted: register again.
            404 => {
                tracing::info!(
                    session = session_id,
                    "{}; registering again",
                    refusal("the failover service no longer knows our session", &answer)
                );
                if let Err(e) = register(&client, cfg, &path, &name, &session_id, vendor).await {
                    break End::Failed(e);
                }
            }
            // The service is over its limit: wait as told (Retry-After, or a heartbeat
            // interval without one; at most MAX_TOLD_WAIT), with jitter, keeping our role (the
            // service does not make us stale for the wait), then heartbeat at once.
            429 => {
                let told = answer.retry_after.unwrap_or(interval).min(MAX_TOLD_WAIT);
                let wait = backoff.told(told);
                shared.lock().heartbeats_refused_busy += 1;
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    "{}; waiting as told",
                    refusal("heartbeat", &answer)
                );
                let until = tokio::time::Instant::now() + wait;
                let interrupted = loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => break None,
                        r = changed.changed() => {
                            if r.is_err() {
                                break Some(End::Failed("adapter shutting down".into()));
                            }
                            if shared.lock().leaving {
                                break Some(End::Left);
                            }
                            if config_changed(shared, cfg) {
                                break Some(End::ConfigChanged);
                            }
                        }
                    }
                };
                if let Some(end) = interrupted {
                    break end;
                }
                confirm_now = true;
                ticker.reset();
            }
            _ => break End::Failed(refusal("heartbeat", &answer)),
        }
    };
    if matches!(end, End::ConfigChanged | End::Left) {
        leave(shared, cfg, &client, &path).await;
    }
    end
}

/// Takes a heartbeat's answer as the vendor's adapters do: PendingPrimary changes nothing
/// (returns true); otherwise the role is applied, a promoted member hands its whole queue to
/// its egress (V4), and a Hot Secondary that stays Secondary drops what it received at or
/// before the answered LastDataProcessedTime minus failoverTimeout/2 (V5).
fn vendor_answer(
    shared: &Shared,
    body: &Value,
    session_id: &str,
    cfg: &ClientFailoverConfig,
    failover_timeout: Duration,
) -> Result<bool, String> {
    if body.get("Role").and_then(Value::as_u64) == Some(2) {
        return Ok(true);
    }
    let heard = body
        .get("LastDataProcessedTime")
        .and_then(Value::as_str)
        .and_then(|t| failover_core::clock_time::parse_dotnet_utc_ms(t).ok())
        // .NET's empty DateTime (year 1): no data processed; nothing is trimmed by it.
        .filter(|ms| *ms > 0);
    let a = assignment(shared, body, session_id, cfg)?;
    let before = shared.lock().role;
    apply_assignment(shared, a);
    shared.update(|st| {
        st.heard_last_data_processed_ms = heard;
        match (before, st.role) {
            (Some(Role::Primary), _) | (_, None | Some(Role::Secondary)) => {}
            (_, Some(Role::Primary)) => {
                // The queue goes to egress as a whole: it is processed, as far as the service
                // will hear.
                if let Some(newest) = st.received.newest_ms() {
                    st.last_data_processed_ms = Some(newest);
                }
            }
        }
        if before == Some(Role::Secondary)
            && st.role == Some(Role::Secondary)
            && st.mode() == Some(failover_core::Mode::Hot)
            && let Some(heard) = heard
        {
            let cutoff = behaviour::trim_cutoff_ms(heard, failover_timeout);
            let through = st.received.trim_through(cutoff);
            st.buffer.trim(&through);
            st.queue_cutoff_ms = Some(cutoff);
        }
    });
    Ok(false)
}

/// Deletes our session (the vendor's unregister), waiting at most a heartbeat interval (capped
/// at 2 s) for the answer, so the role passes on at once. We stop acting on our role first,
/// then say so (`Failover-Lab-Leaving: true`, ours; the vendor's service ignores it), so
/// failover-arbiter tells the next Primary at once instead of PendingPrimary.
async fn leave(shared: &Shared, cfg: &ClientFailoverConfig, client: &Client, path: &str) {
    stop_acting(shared, cfg);
    let wait = cfg.heartbeat_interval().min(Duration::from_secs(2));
    // The vendor's adapters delete their session with no more said.
    let vendor = shared.settings.behaviour == Behaviour::Vendor;
    let delete = client.send_with(
        reqwest::Method::DELETE,
        path,
        None,
        Some((LEAVING_HEADER, "true")).filter(|_| !vendor),
    );
    let answered = tokio::time::timeout(wait, delete)
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|a| matches!(a.status, 204 | 200 | 404));
    left(shared, cfg, answered);
}

/// The header that says a DELETE of our session is us leaving (failover-arbiter's
/// `cfs_api::LEAVING_HEADER`).
const LEAVING_HEADER: &str = "Failover-Lab-Leaving";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendors_endpoint_is_told_from_ours() {
        assert!(is_vendor_endpoint(
            "https://cfs.example:5590/api/v1/clientfailover"
        ));
        assert!(is_vendor_endpoint(
            "https://cfs.example:5590/api/v1/ClientFailover/"
        ));
        assert!(is_vendor_endpoint(
            "https://uswe.datahub.connect.aveva.com/api/v1/Tenants/t/Namespaces/n/ClientFailover/"
        ));
        assert!(!is_vendor_endpoint("http://127.0.0.1:50053"));
        assert!(!is_vendor_endpoint("https://clientfailover.example:50053"));
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
