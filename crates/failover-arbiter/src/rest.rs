//! The REST admin of the failover service (modelled on the real service's):
//!
//! | call | does |
//! |---|---|
//! | `GET /api/v1/ClientFailover/groups` | lists groups |
//! | `GET /api/v1/ClientFailover/groups/{g}` | one group with its sessions |
//! | `DELETE /api/v1/ClientFailover/groups/{g}` | deletes a group with no sessions (409 otherwise) |
//! | `GET /api/v1/ClientFailover/groups/{g}/clientsessions` | lists sessions |
//! | `DELETE /api/v1/ClientFailover/groups/{g}/clientsessions/{s}` | deletes a session |
//! | `POST /api/v1/ClientFailover/groups/{g}/clientsessions/{s}/roleoverride` | `{"Value":"Primary","ExpirationPeriod":"08:00:00"}`; no ExpirationPeriod: indefinite |
//! | `DELETE /api/v1/ClientFailover/groups/{g}/clientsessions/{s}/roleoverride` | ends an override |
//!
//! `{s}` is a session id or an adapter name.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use failover_core::{Role, group::GroupError, timespan::format_timespan};
use serde_json::{Value, json};

use crate::{
    Arbiter,
    admin::AdminError,
    state::{GroupEntry, role_name},
};

/// An error answer: status and message.
#[derive(Debug)]
pub struct ApiError(StatusCode, String, Option<String>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.1 });
        if let Some(f) = self.2 {
            body["field"] = Value::String(f);
        }
        (self.0, Json(body)).into_response()
    }
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        ApiError(StatusCode::NOT_FOUND, e.to_string(), None)
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let status = match e {
            AdminError::NotEmpty { .. } => StatusCode::CONFLICT,
            AdminError::NoGroup(_) | AdminError::Group(_) => StatusCode::NOT_FOUND,
        };
        ApiError(status, e.to_string(), None)
    }
}

fn no_group(g: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no group {g:?}"), None)
}

/// The admin routes.
pub fn router(arbiter: Arbiter) -> Router {
    let base = "/api/v1/ClientFailover/groups";
    Router::new()
        .route(base, get(list_groups))
        .route(
            &format!("{base}/{{group}}"),
            get(get_group).delete(delete_group),
        )
        .route(
            &format!("{base}/{{group}}/clientsessions"),
            get(list_sessions),
        )
        .route(
            &format!("{base}/{{group}}/clientsessions/{{session}}"),
            axum::routing::delete(delete_session),
        )
        .route(
            &format!("{base}/{{group}}/clientsessions/{{session}}/roleoverride"),
            post(set_override).delete(clear_override),
        )
        .route("/api/v1/lab/leadership", get(leadership))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(arbiter)
}

fn group_json(e: &GroupEntry, now: std::time::Duration) -> Value {
    let g = &e.group;
    let status = e.status(now);
    json!({
        "Id": g.id(),
        "Name": g.name(),
        "Description": g.description(),
        "FailoverTimeout": format_timespan(g.failover_timeout()),
        "Epoch": g.epoch(),
        "Primary": g.primary().map(|p| p.adapter_id.clone()),
        "Note": g.note(),
        "Sessions": status.sessions.iter().zip(g.sessions()).map(|(s, full)| json!({
            "Id": s.session_id,
            "AdapterId": s.adapter_id,
            "Role": role_name(g.role_of(full.id)),
            "FailoverScore": s.score,
            "Mode": full.mode.map(|m| m.as_str()),
            "HeartbeatAgeMs": s.heartbeat_age_ms,
            "Stale": s.stale,
            "RoleOverride": if s.role_override.is_empty() { Value::Null } else { Value::String(s.role_override.clone()) },
        })).collect::<Vec<_>>(),
    })
}

/// Whether this service decides: `{"Standing": "Leading" | "Following" | "Stopping",
/// "Leader": the leader's URL when another leads and it is known, "Why": words, "PromotionFloor":
/// every promotion here goes above this epoch}`.
async fn leadership(State(a): State<Arbiter>) -> Json<Value> {
    let floor = a.lock().promotion_floor;
    Json(match a.standing() {
        crate::Standing::Leading => {
            json!({"Standing": "Leading", "Leader": Value::Null, "Why": "this service decides", "PromotionFloor": floor})
        }
        crate::Standing::Following { leader, why } => {
            json!({"Standing": "Following", "Leader": leader, "Why": why, "PromotionFloor": floor})
        }
        crate::Standing::Stopping => {
            json!({"Standing": "Stopping", "Leader": Value::Null, "Why": "shutting down", "PromotionFloor": floor})
        }
    })
}

/// The failover service's Prometheus metrics (names documented in docs/metrics.md).
async fn metrics(State(a): State<Arbiter>) -> axum::response::Response {
    use axum::response::IntoResponse;
    use failover_proto::metrics::Metrics;
    let now = a.now();
    let deciding = a.is_deciding();
    let state = a.lock();
    let mut m = Metrics::new();
    m.gauge(
        "failover_arbiter_deciding",
        "1 while this service decides (always with the in-memory store; with an etcd store, while it leads), else 0.",
        &[],
        u64::from(deciding) as f64,
    );
    m.counter(
        "failover_arbiter_heartbeats_total",
        "Heartbeats taken from every session.",
        &[],
        state.heartbeats,
    );
    m.counter(
        "failover_arbiter_heartbeats_refused_busy_total",
        "REST heartbeats answered 429 Too Many Requests: over --max-rest-heartbeats a second.",
        &[],
        state.heartbeats_busy,
    );
    m.gauge(
        "failover_arbiter_groups",
        "Failover groups known.",
        &[],
        state.groups.len() as f64,
    );
    for (id, e) in &state.groups {
        let g = &e.group;
        let l: &[(&str, &str)] = &[("group", id)];
        m.gauge(
            "failover_arbiter_group_epoch",
            "The group's epoch (grows at every change of Primary).",
            l,
            g.epoch() as f64,
        );
        m.counter(
            "failover_arbiter_promotions_total",
            "Members promoted to Primary.",
            l,
            e.promotions,
        );
        m.counter(
            "failover_arbiter_stale_total",
            "Members declared stale (no heartbeat within failoverTimeout).",
            l,
            e.stale_events,
        );
        for s in g.sessions() {
            let ml: &[(&str, &str)] = &[("group", id), ("adapter", &s.adapter_id)];
            m.gauge(
                "failover_arbiter_member_score",
                "A member's last reported failover score.",
                ml,
                f64::from(s.score),
            );
            m.gauge(
                "failover_arbiter_member_primary",
                "1 while the member is the group's Primary, else 0.",
                ml,
                if g.primary().is_some_and(|p| p.id == s.id) {
                    1.0
                } else {
                    0.0
                },
            );
            m.gauge(
                "failover_arbiter_member_stale",
                "1 while the member is stale, else 0.",
                ml,
                if g.is_stale(s, now) { 1.0 } else { 0.0 },
            );
            m.gauge(
                "failover_arbiter_member_heartbeat_age_seconds",
                "Time since the member's last heartbeat.",
                ml,
                now.saturating_sub(s.last_heartbeat).as_secs_f64(),
            );
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            failover_proto::metrics::CONTENT_TYPE,
        )],
        m.finish(),
    )
        .into_response()
}

async fn list_groups(State(a): State<Arbiter>) -> Json<Value> {
    let now = a.now();
    let state = a.lock();
    Json(Value::Array(
        state.groups.values().map(|e| group_json(e, now)).collect(),
    ))
}

async fn get_group(
    State(a): State<Arbiter>,
    Path(g): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = a.now();
    let state = a.lock();
    let e = state.groups.get(&g).ok_or_else(|| no_group(&g))?;
    Ok(Json(group_json(e, now)))
}

async fn list_sessions(
    State(a): State<Arbiter>,
    Path(g): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = a.now();
    let state = a.lock();
    let e = state.groups.get(&g).ok_or_else(|| no_group(&g))?;
    Ok(Json(group_json(e, now)["Sessions"].clone()))
}

async fn delete_group(
    State(a): State<Arbiter>,
    Path(g): Path<String>,
) -> Result<StatusCode, ApiError> {
    a.delete_group(&g)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_session(
    State(a): State<Arbiter>,
    Path((g, s)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    a.delete_session(&g, &s)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The group as the admin shows it now.
fn group_view(a: &Arbiter, g: &str) -> Result<Json<Value>, ApiError> {
    let now = a.now();
    let state = a.lock();
    let e = state.groups.get(g).ok_or_else(|| no_group(g))?;
    Ok(Json(group_json(e, now)))
}

/// Reads `{"Value":"Primary"|"Secondary"|"Off","ExpirationPeriod":"hh:mm:ss"|null}` with the
/// vendor API's own reader (names and values without regard to case, 1, 2 and 0 for Primary,
/// Secondary and Off); `Off` (None) ends an override, like DELETE. Unlike the vendor API, an
/// unknown key is refused, so a typo is not taken for no expiration. A refusal names its field
/// (`Value`, `ExpirationPeriod`, the unknown key, or `document`).
pub fn parse_override(
    bytes: &[u8],
) -> Result<(Option<Role>, Option<std::time::Duration>), (String, String)> {
    let refusal = |e: crate::cfs_api::json::BadRequest| {
        (e.field.unwrap_or_else(|| "document".into()), e.message)
    };
    let body = crate::cfs_api::json::parse_body(
        bytes,
        r#"{"Value":"Primary","ExpirationPeriod":"08:00:00"}"#,
    )
    .map_err(refusal)?;
    if let Some(key) = body
        .keys()
        .find(|k| !["value", "expirationperiod"].contains(&k.to_ascii_lowercase().as_str()))
    {
        return Err((
            key.to_string(),
            format!("unknown field {key:?}; accepted: Value, ExpirationPeriod"),
        ));
    }
    crate::cfs_api::json::override_request(&body).map_err(refusal)
}

async fn set_override(
    State(a): State<Arbiter>,
    Path((g, s)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // Any content type (curl's default, text/plain, JSON): the body is read as JSON.
    let (role, expiration) =
        parse_override(&body).map_err(|(f, m)| ApiError(StatusCode::BAD_REQUEST, m, Some(f)))?;
    a.set_role_override(&g, &s, role, expiration.filter(|_| role.is_some()))?;
    a.overrides_kept()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e, None))?;
    group_view(&a, &g)
}

async fn clear_override(
    State(a): State<Arbiter>,
    Path((g, s)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    a.set_role_override(&g, &s, None, None)?;
    a.overrides_kept()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e, None))?;
    group_view(&a, &g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_bodies_are_read_as_the_vendor_api_reads_them() {
        let parse = |body: &str| parse_override(body.as_bytes());
        assert_eq!(
            parse(r#"{"Value":"Primary","ExpirationPeriod":"08:00:00"}"#).expect("ok"),
            (
                Some(Role::Primary),
                Some(std::time::Duration::from_secs(8 * 3600))
            )
        );
        assert_eq!(
            parse(r#"{"Value":"Secondary"}"#).expect("ok"),
            (Some(Role::Secondary), None)
        );
        assert_eq!(parse(r#"{"Value":"Off"}"#).expect("ok"), (None, None));
        // As the vendor API: any case, and the numbers of its enum.
        assert_eq!(
            parse(r#"{"value":"primary"}"#).expect("ok"),
            (Some(Role::Primary), None)
        );
        assert_eq!(
            parse(r#"{"Value":1}"#).expect("ok"),
            (Some(Role::Primary), None)
        );
        assert_eq!(parse(r#"{"Value":0}"#).expect("ok"), (None, None));
        let field = |body: &str| parse(body).unwrap_err().0;
        assert_eq!(field(r#"{"Value":"Maybe"}"#), "Value");
        assert_eq!(
            field(r#"{"Value":"Primary","ExpirationPeriod":"8h"}"#),
            "ExpirationPeriod"
        );
        assert_eq!(field(r#"{"Value":"Primary","Extra":1}"#), "Extra");
        assert_eq!(field("[]"), "document");
        assert_eq!(field("{"), "document");
    }
}
