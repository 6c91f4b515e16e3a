//! The adapter's REST API (default port 5590), as the vendor documents it:
//!
//! | path | methods |
//! |---|---|
//! | `/api/v1/configuration/System/ClientFailover` | GET, PUT, POST (create only), PATCH (merge), DELETE |
//! | `/api/v1/ClientFailover` | GET, PUT (the seed page's path) |
//! | `/api/v1/diagnostics/FailoverState` | GET |
//! | `/api/v1/configuration/Source1/DataSource` | GET, PUT (`dataCollectionMode`) |
//! | `/api/v1/configuration/Source1/HistoryRecoveries` | GET, POST `{"Id","StartTime","EndTime"}` |
//!
//! A change takes effect at once, without a restart. A refused document gets 400 with
//! `{"error": "...", "field": "..."}` naming the field and what is accepted; bodies over 1 MiB
//! get 413. GET never shows the password or the client secret.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use failover_core::{
    ClientFailoverConfig, ConfigError, DataSourceConfig, Mode, Role,
    clock_time::{format_utc_ms, parse_utc_ms},
    config::{merge_patch, parse_json_object},
};
use serde_json::{Map, Value, json};

use crate::state::{AdapterState, Recovery, RecoveryStatus, Shared};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// What the REST handlers need.
#[derive(Debug, Clone)]
pub struct Api {
    shared: Arc<Shared>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    let cf = "/api/v1/configuration/System/ClientFailover";
    Router::new()
        .route(
            cf,
            get(get_failover)
                .put(put_failover)
                .post(post_failover)
                .patch(patch_failover)
                .delete(delete_failover),
        )
        // The vendor's pages spell it with a lowercase `system` too.
        .route(
            "/api/v1/configuration/system/ClientFailover",
            get(get_failover)
                .put(put_failover)
                .post(post_failover)
                .patch(patch_failover)
                .delete(delete_failover),
        )
        .route(
            "/api/v1/ClientFailover",
            get(get_failover).put(put_failover),
        )
        .route("/api/v1/diagnostics/FailoverState", get(failover_state))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/configuration/Source1/DataSource",
            get(get_data_source).put(put_data_source),
        )
        .route(
            "/api/v1/configuration/Source1/HistoryRecoveries",
            get(list_recoveries).post(post_recovery),
        )
        .route(CLOCK_PATH, get(get_clock).put(put_clock))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such path; see docs/configuration.md, \"The adapter's REST API\"",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(too_large_as_json))
        .with_state(Api { shared })
}

/// The body limit's own answer is plain text: give it the documented `{"error","field"}` shape.
async fn too_large_as_json(response: Response) -> Response {
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!(
            "the body is larger than {} MiB; a ClientFailover document is a few hundred bytes",
            MAX_BODY >> 20
        ),
        field: Some("document".into()),
    }
    .into_response()
}

fn text(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| ConfigError::new("document", "is not UTF-8 text").into())
}

fn ok_json(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

/// Installs a ClientFailover document (None: remove it); returns the warnings in force.
pub fn apply_failover(shared: &Shared, new: Option<ClientFailoverConfig>) -> Vec<String> {
    shared.update(|st| {
        let old = st.failover.take();
        let only_mode = match (&old, &new) {
            (Some(o), Some(n)) => {
                let mut same = o.clone();
                same.mode = n.mode;
                same == *n
            }
            _ => false,
        };
        if only_mode {
            if let (Some(o), Some(n)) = (&old, &new)
                && o.mode != n.mode
            {
                tracing::info!(event = "mode", from = %o.mode, to = %n.mode, "mode changed {} -> {} at runtime", o.mode, n.mode);
                if st.role != Some(Role::Primary) && n.mode != Mode::Hot {
                    st.drop_buffer();
                }
            }
        } else {
            if old.is_some() || new.is_some() {
                tracing::info!(
                    event = "config",
                    group = new.as_ref().map(|n| n.failover_group_id.as_str()),
                    mode = new.as_ref().map(|n| n.mode.as_str()),
                    "ClientFailover {}",
                    if new.is_some() { "configured" } else { "removed: standalone" }
                );
            }
            let same_group = matches!((&old, &new), (Some(o), Some(n)) if o.failover_group_id == n.failover_group_id);
            if !same_group {
                // What it collected so far went to another group (standalone, it egressed to its
                // own): it holds this group's data only from now on, and must not say it holds
                // it since its collection began. Found by the simulator (seed 1063017, Hot,
                // with a failoverTimeout wait): an adapter back from standalone was promoted over
                // the standby holding the only copy of 1.6 s of data, which was then lost.
                st.collecting_since_ms = None;
            }
            st.role = None;
            st.fenced_at = None;
            st.epoch = 0;
            if !same_group {
                // Epochs belong to a group: a new group starts from nothing. Within the same
                // group they are kept, so a rejoining member tells the service the newest it saw.
                st.known_epoch = 0;
                st.fenced_out_through = 0;
            }
            st.session_id.clear();
            st.primary_adapter_id.clear();
            st.failover_error = None;
            st.role_reason = if new.is_some() {
                "waiting for the failover service".into()
            } else {
                "failover not configured".into()
            };
        }
        st.failover = new;
        let warnings = st.warnings();
        for w in &warnings {
            tracing::warn!("{w}");
        }
        warnings
    })
}

fn applied(warnings: Vec<String>) -> Response {
    ok_json(json!({ "Message": "ClientFailover applied", "Warnings": warnings }))
}

async fn get_failover(State(api): State<Api>) -> ApiResult {
    match &api.shared.lock().failover {
        Some(cfg) => Ok(ok_json(Value::Object(cfg.to_public_json()))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ClientFailover is not configured",
        )),
    }
}

async fn put_failover(State(api): State<Api>, body: Bytes) -> ApiResult {
    let cfg = ClientFailoverConfig::from_json(text(&body)?)?;
    Ok(applied(apply_failover(&api.shared, Some(cfg))))
}

async fn post_failover(State(api): State<Api>, body: Bytes) -> ApiResult {
    let cfg = ClientFailoverConfig::from_json(text(&body)?)?;
    if api.shared.lock().failover.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ClientFailover is already configured; use PUT to replace it or PATCH to change it",
        ));
    }
    Ok(applied(apply_failover(&api.shared, Some(cfg))))
}

async fn patch_failover(State(api): State<Api>, body: Bytes) -> ApiResult {
    let patch = parse_json_object(text(&body)?)?;
    let Some(mut full) = api
        .shared
        .lock()
        .failover
        .as_ref()
        .map(ClientFailoverConfig::to_full_json)
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ClientFailover is not configured; PUT a whole document first",
        ));
    };
    merge_patch(&mut full, &patch);
    let cfg = ClientFailoverConfig::from_map(&full)?;
    Ok(applied(apply_failover(&api.shared, Some(cfg))))
}

async fn delete_failover(State(api): State<Api>) -> ApiResult {
    if api.shared.lock().failover.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ClientFailover is not configured",
        ));
    }
    apply_failover(&api.shared, None);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The FailoverState document.
pub fn failover_state_json(st: &AdapterState) -> Value {
    let role = match (&st.failover, st.role) {
        (None, _) => "Standalone",
        (Some(_), Some(r)) => r.as_str(),
        (Some(_), None) => "None",
    };
    json!({
        "Role": role,
        // Ours: the data time of the last point collected; the vendor's behaviour: the receive
        // time of the last message handed to egress, as its heartbeats say.
        "LastDataProcessedTime": match st.behaviour {
            failover_core::Behaviour::Lab => st.last_data_unix_ms.map(format_utc_ms),
            failover_core::Behaviour::Vendor => st.last_data_processed_ms.map(format_utc_ms),
        },
        "Behaviour": st.behaviour.as_str(),
        "HeardLastDataProcessedTime": st.heard_last_data_processed_ms.map(format_utc_ms),
        "HotQueueCutoff": st.queue_cutoff_ms.map(format_utc_ms),
        "FailoverScore": st.score().to_string(),
        "AdapterState": "Running",
        "Mode": st.mode().map(Mode::as_str),
        "FailoverGroupId": st.failover.as_ref().map(|f| f.failover_group_id.clone()),
        "Epoch": st.epoch,
        "PrimaryAdapterId": if st.primary_adapter_id.is_empty() { Value::Null } else { st.primary_adapter_id.clone().into() },
        "SessionId": if st.session_id.is_empty() { Value::Null } else { st.session_id.clone().into() },
        "Reason": st.role_reason,
        "ScoreReason": crate::session::score_reason(st),
        "DataCollectionMode": st.data_source.data_collection_mode.as_str(),
        "EffectiveDataCollectionMode": st.collection_mode().as_str(),
        "FailoverServiceError": st.failover_error,
        "EndpointError": st.endpoint_error,
        "SourceError": st.source_error,
        "BufferedPoints": st.buffer.len(),
        "BufferDroppedPoints": st.buffer.dropped(),
        "BufferDiskBytes": st.buffer.disk_bytes(),
        "BufferDiskError": st.buffer.disk_error(),
        "RestoredPoints": st.restored,
        "EgressedPoints": st.egressed,
        "RefusedStalePoints": st.refused_stale,
        "RoleSinceUnixUs": st.role_since_unix_us,
        "FencedAtUnixUs": st.fenced_unix_us,
        "AccessTokensFetched": st.tokens_fetched,
        "Warnings": st.warnings(),
    })
}

/// The adapter's Prometheus metrics (names documented in docs/metrics.md).
pub fn metrics_text(st: &AdapterState, adapter: &str) -> String {
    use failover_proto::metrics::Metrics;
    let standalone = crate::egress::standalone_group(adapter);
    let group = st
        .failover
        .as_ref()
        .map_or(standalone.as_str(), |f| f.failover_group_id.as_str());
    let l: &[(&str, &str)] = &[("adapter", adapter), ("group", group)];
    let role = match (&st.failover, st.role) {
        (None, _) => "Standalone",
        (Some(_), Some(r)) => r.as_str(),
        (Some(_), None) => "None",
    };
    let mut m = Metrics::new();
    for r in ["Primary", "Secondary", "None", "Standalone"] {
        m.gauge(
            "failover_adapter_role",
            "1 for the adapter's current role (Primary, Secondary, None or Standalone), else 0.",
            &[("adapter", adapter), ("group", group), ("role", r)],
            if r == role { 1.0 } else { 0.0 },
        );
    }
    m.gauge(
        "failover_adapter_score",
        "The failover score the adapter reports (0-100).",
        l,
        f64::from(st.score()),
    );
    m.gauge(
        "failover_adapter_epoch",
        "Epoch of the adapter's last role assignment.",
        l,
        st.epoch as f64,
    );
    m.counter(
        "failover_adapter_heartbeats_sent_total",
        "Heartbeats sent to the failover service.",
        l,
        st.heartbeats_sent,
    );
    m.counter(
        "failover_adapter_heartbeats_refused_busy_total",
        "REST heartbeats the failover service refused for overload (429), each waited out as told.",
        l,
        st.heartbeats_refused_busy,
    );
    m.counter(
        "failover_adapter_role_changes_total",
        "Times the adapter's role changed.",
        l,
        st.role_changes,
    );
    m.gauge(
        "failover_adapter_buffered_points",
        "Points held for egress (a Hot Secondary's buffer, or a Primary's backlog).",
        l,
        st.buffer.len() as f64,
    );
    m.counter(
        "failover_adapter_buffer_dropped_points_total",
        "Points dropped because the buffer was full.",
        l,
        st.buffer.dropped(),
    );
    m.gauge(
        "failover_adapter_buffer_disk_bytes",
        "Bytes of the egress buffer on disk (0 without --buffer-dir).",
        l,
        st.buffer.disk_bytes() as f64,
    );
    m.counter(
        "failover_adapter_points_collected_total",
        "Points received from the data source.",
        l,
        st.collected,
    );
    m.counter(
        "failover_adapter_points_egressed_total",
        "Points the data endpoint accepted from this adapter.",
        l,
        st.egressed,
    );
    m.counter(
        "failover_adapter_points_refused_stale_total",
        "Points the data endpoint refused because this adapter's epoch was stale.",
        l,
        st.refused_stale,
    );
    if let Some(t) = st.last_takeover {
        m.gauge(
            "failover_adapter_takeover_duration_seconds",
            "Last takeover by this adapter: promotion to its first accepted write.",
            l,
            t.as_secs_f64(),
        );
    }
    m.finish()
}

async fn metrics(State(api): State<Api>) -> Response {
    let text = metrics_text(&api.shared.lock(), &api.shared.settings.name);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            failover_proto::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}

async fn failover_state(State(api): State<Api>) -> ApiResult {
    Ok(ok_json(failover_state_json(&api.shared.lock())))
}

async fn get_data_source(State(api): State<Api>) -> ApiResult {
    Ok(ok_json(Value::Object(
        api.shared.lock().data_source.to_json(),
    )))
}

async fn put_data_source(State(api): State<Api>, body: Bytes) -> ApiResult {
    let cfg = DataSourceConfig::from_map(&parse_json_object(text(&body)?)?)?;
    let warnings = api.shared.update(|st| {
        if st.data_source != cfg {
            tracing::info!(
                event = "config",
                mode = cfg.data_collection_mode.as_str(),
                "dataCollectionMode set"
            );
        }
        st.data_source = cfg;
        let w = st.warnings();
        for x in &w {
            tracing::warn!("{x}");
        }
        w
    });
    Ok(ok_json(
        json!({ "Message": "DataSource applied", "Warnings": warnings }),
    ))
}

fn recovery_json(r: &Recovery) -> Value {
    json!({
        "Id": r.id,
        "StartTime": format_utc_ms(r.start_unix_ms),
        "EndTime": format_utc_ms(r.end_unix_ms),
        "Status": r.status.name(),
        "Detail": match &r.status {
            RecoveryStatus::Failed(e) => e.clone(),
            RecoveryStatus::Abandoned => "this adapter lost the Primary role; history recovery does not carry over a failover".into(),
            RecoveryStatus::Pending => "waits until this adapter is Primary".into(),
            _ => String::new(),
        },
        "Points": r.points,
    })
}

async fn list_recoveries(State(api): State<Api>) -> ApiResult {
    let st = api.shared.lock();
    Ok(ok_json(Value::Array(
        st.recoveries.iter().map(recovery_json).collect(),
    )))
}

fn field_text<'a>(map: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
    {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(s),
        Some(_) => Err(ConfigError::new(name, "must be a non-empty string").into()),
        None => Err(ConfigError::new(name, "is required").into()),
    }
}

/// failover-lab's clock fault (not the vendor's API): how far this adapter's clock is set from
/// the machine's. Only the vendor's behaviour stamps data with it; failover-lab's design reads no
/// clock for its decisions.
pub const CLOCK_PATH: &str = "/api/v1/lab/Clock";

/// Farthest a clock fault may set the clock, either way: a day.
const MAX_CLOCK_OFFSET_MS: i64 = 86_400_000;

/// Fastest a clock fault may make the clock drift, either way: 10%.
const MAX_DRIFT_PPM: f64 = 100_000.0;

fn clock_json(shared: &Shared) -> Value {
    let c = shared.clock();
    json!({
        "OffsetMs": c.offset_ms,
        "DriftPpm": c.drift_ppm,
        "OffsetNowMs": c.offset_now_ms(),
        "Now": format_utc_ms(shared.clock_ms()),
    })
}

async fn get_clock(State(api): State<Api>) -> ApiResult {
    Ok(ok_json(clock_json(&api.shared)))
}

/// `{"OffsetMs": -3000, "DriftPpm": 0}`: both optional (0), both bounded.
async fn put_clock(State(api): State<Api>, body: Bytes) -> ApiResult {
    let map = parse_json_object(text(&body)?)?;
    for key in map.keys() {
        if !["offsetms", "driftppm"].contains(&key.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::new(
                key.chars().take(60).collect::<String>(),
                "unknown field; accepted: OffsetMs, DriftPpm",
            )
            .into());
        }
    }
    let get = |name: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let offset_ms = match get("OffsetMs") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .filter(|ms| ms.abs() <= MAX_CLOCK_OFFSET_MS)
            .ok_or_else(|| {
                ConfigError::new(
                    "OffsetMs",
                    format!("{v} must be a whole number of ms from -86400000 to 86400000"),
                )
            })?,
    };
    let drift_ppm = match get("DriftPpm") {
        None | Some(Value::Null) => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|p| p.is_finite() && p.abs() <= MAX_DRIFT_PPM)
            .ok_or_else(|| {
                ConfigError::new(
                    "DriftPpm",
                    format!("{v} must be a number from -100000 to 100000"),
                )
            })?,
    };
    api.shared.set_clock(offset_ms, drift_ppm);
    tracing::warn!(
        event = "clock",
        offset_ms,
        drift_ppm,
        "clock fault: this adapter's clock is set {offset_ms} ms from the machine's, drifting \
         {drift_ppm} ppm"
    );
    Ok(ok_json(clock_json(&api.shared)))
}

async fn post_recovery(State(api): State<Api>, body: Bytes) -> ApiResult {
    let map = parse_json_object(text(&body)?)?;
    for key in map.keys() {
        if !["id", "starttime", "endtime"].contains(&key.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::new(
                key.chars().take(60).collect::<String>(),
                "unknown field; accepted: Id, StartTime, EndTime",
            )
            .into());
        }
    }
    let id = field_text(&map, "Id")?.to_string();
    let start = parse_utc_ms(field_text(&map, "StartTime")?)
        .map_err(|e| ConfigError::new("StartTime", e))?;
    let end =
        parse_utc_ms(field_text(&map, "EndTime")?).map_err(|e| ConfigError::new("EndTime", e))?;
    if end < start {
        return Err(ConfigError::new("EndTime", "must not be before StartTime").into());
    }
    if api.shared.lock().recoveries.iter().any(|r| r.id == id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("history recovery {id:?} exists"),
        ));
    }
    let recovery = Recovery {
        id,
        start_unix_ms: start,
        end_unix_ms: end,
        status: RecoveryStatus::Pending,
        points: 0,
    };
    let view = recovery_json(&recovery);
    api.shared.update(|st| st.recoveries.push(recovery));
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

#[cfg(test)]
mod tests {

    /// An adapter that joins a group (from standalone, or from another group) holds that
    /// group's data only from then on: it no longer claims its collection's whole history,
    /// which it egressed elsewhere. A change of document within the group keeps the claim.
    #[test]
    fn joining_a_group_restarts_what_the_adapter_says_it_holds() {
        let settings = crate::test_settings("http://127.0.0.1:9");
        let shared =
            crate::state::Shared::new(settings, crate::spool::DurableBuffer::in_memory(10));
        let doc = |group: &str, timeout: &str| {
            let mut c = failover_core::ClientFailoverConfig::from_json(crate::rest::tests::EXAMPLE)
                .expect("the vendor's example");
            c.failover_group_id = group.into();
            c.failover_timeout =
                failover_core::timespan::parse_timespan(timeout).expect("timespan");
            c
        };
        let since = |s: &crate::state::Shared| s.lock().collecting_since_ms;
        shared.update(|st| st.collecting_since_ms = Some(1_000));
        super::apply_failover(&shared, Some(doc("g", "00:00:04")));
        assert_eq!(since(&shared), None, "from standalone into a group");
        shared.update(|st| st.collecting_since_ms = Some(2_000));
        super::apply_failover(&shared, Some(doc("g", "00:00:06")));
        assert_eq!(
            since(&shared),
            Some(2_000),
            "the same group, another failoverTimeout"
        );
        super::apply_failover(&shared, Some(doc("h", "00:00:06")));
        assert_eq!(since(&shared), None, "another group");
    }

    pub(super) const EXAMPLE: &str = include_str!("../../../examples/ConfigureClientFailover.json");
}
