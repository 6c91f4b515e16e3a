//! The vendor's Client Failover Service REST API, so the vendor's adapters (and failover-lab's,
//! with `--failover-protocol rest`) can use this service. Served on its own port
//! (`--cfs-listen`), over HTTPS with a self-signed certificate made at first start (as the
//! vendor's installer does), or plain HTTP when asked (`--cfs-plain-http`).
//!
//! | call | rights | answers |
//! |---|---|---|
//! | `GET /api/v1/clientfailover` | member | `{"Version"}` |
//! | `GET /api/v1/clientfailover/groups?skip=&count=` | member | groups, `Total-Count` header |
//! | `POST /api/v1/clientfailover/groups` | member | 201 created, 200 the same exists, 409 it differs |
//! | `GET /api/v1/clientfailover/groups/{g}` | member | the group |
//! | `DELETE /api/v1/clientfailover/groups/{g}` | administrator | 204; 409 while it has sessions |
//! | `GET /api/v1/clientfailover/groups/{g}/status` | member | `{"Primary","PendingPrimary","LastDataProcessedTime"}` |
//! | `GET /api/v1/clientfailover/groups/{g}/clientsessions` | member | sessions |
//! | `POST /api/v1/clientfailover/groups/{g}/clientsessions` | member | `{"Id","Name"}`: 201, 200 the same, 409 |
//! | `GET /api/v1/clientfailover/groups/{g}/clientsessions/{s}` | member | the session |
//! | `DELETE /api/v1/clientfailover/groups/{g}/clientsessions/{s}` | member | 204 (ours: with `Failover-Lab-Leaving: true`, the session's own client leaves) |
//! | `POST /api/v1/clientfailover/groups/{g}/clientsessions/{s}/heartbeat` | member | `{"Role","LastDataProcessedTime"}`; 429 with `Retry-After` past `--max-rest-heartbeats` ([`busy`]) |
//! | `POST /api/v1/clientfailover/groups/{g}/clientsessions/{s}/roleoverride` | administrator | `{"Value","RoleOverrideExpirationTime"}` |
//! | `GET`/`PUT /api/v1/configuration` | administrator | `{"Logging":{"LogLevel"}}` |
//! | `GET`/`PUT /api/v1/configuration/logging` | administrator | `{"LogLevel"}`, changed at runtime |
//! | `GET /api/v1/health` | member | ours: DeviceStatus (Good, Standby, Shutdown), NextHealthMessageExpected, FailoverObjectCount |
//!
//! Paths are matched without regard to case (ids keep theirs); the CONNECT form
//! `/api/v1/tenants/{t}/namespaces/{n}/clientfailover/...` is taken too. Every refusal has the
//! vendor's error shape: `{"OperationId","Error","Reason","Resolution"}`, with the field at fault
//! in `AdditionalParameters.Field`.

pub mod busy;
pub mod json;
pub mod users;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use failover_core::{Role, group::GroupError};
use failover_proto::process;
use serde_json::{Value, json};

use crate::{
    Arbiter,
    admin::AdminError,
    pull::{Created, PullError, PullRole, previous_primary, pull_role},
    state::GroupEntry,
};
use json::{BadRequest, parse_body, time};
use users::{Refusal, Rights, Users};

/// The header with which a session's own client says its DELETE is it leaving (ours).
pub const LEAVING_HEADER: &str = "failover-lab-leaving";

/// Most a request body may hold.
const BODY_LIMIT: usize = 64 * 1024;

/// How often the vendor's service sends its health (NextHealthMessageExpected is this far off).
const HEALTH_INTERVAL_MS: i64 = 60_000;

/// The API's shared state.
#[derive(Debug, Clone)]
struct Api {
    arbiter: Arbiter,
    users: Arc<Users>,
    /// Heartbeats past it are answered 429 (None: no limit).
    limit: Option<Arc<busy::HeartbeatLimit>>,
}

/// The routes of the vendor's API; heartbeats past `max_heartbeats` a second are answered 429
/// ([`busy`]).
pub fn router(arbiter: Arbiter, users: Users, max_heartbeats: Option<u32>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Api {
            arbiter,
            users: Arc::new(users),
            limit: max_heartbeats.map(|n| Arc::new(busy::HeartbeatLimit::new(n))),
        })
}

/// A refusal in the vendor's error shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    resolution: String,
    field: Option<String>,
}

fn error(status: StatusCode, reason: impl Into<String>, resolution: impl Into<String>) -> ApiError {
    ApiError {
        status,
        reason: reason.into(),
        resolution: resolution.into(),
        field: None,
    }
}

impl From<BadRequest> for ApiError {
    fn from(b: BadRequest) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            reason: b.message,
            resolution: "Correct the request body and send it again.".into(),
            field: b.field,
        }
    }
}

impl From<PullError> for ApiError {
    fn from(e: PullError) -> Self {
        let (status, resolution) = match &e {
            PullError::NoGroup(_) => (
                StatusCode::NOT_FOUND,
                "Create the group first (POST .../clientfailover/groups).",
            ),
            PullError::NoSession { .. } => (
                StatusCode::NOT_FOUND,
                "Register the session (POST .../groups/{groupId}/clientsessions) and heartbeat again.",
            ),
            PullError::GroupDiffers { .. } => (
                StatusCode::CONFLICT,
                "Use the group's settings, or delete its sessions and the group and create it again.",
            ),
            PullError::Group(GroupError::NoSuchSession { .. }) => {
                (StatusCode::NOT_FOUND, "Check the session id.")
            }
            PullError::Group(GroupError::NameInUse { .. }) => (
                StatusCode::CONFLICT,
                "Give each adapter its own name, or wait until the other session is stale (failoverTimeout).",
            ),
            PullError::Group(_) => (
                StatusCode::CONFLICT,
                "Use another session id, or delete the existing session first.",
            ),
            PullError::TooManyGroups(_) => (
                StatusCode::CONFLICT,
                "Delete groups that are no longer used.",
            ),
            PullError::NotDeciding(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Retry with the leader the message names, or after the service restarts.",
            ),
        };
        error(status, e.to_string(), resolution)
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let (status, resolution) = match &e {
            AdminError::NotEmpty { .. } => (
                StatusCode::CONFLICT,
                "Delete the group's client sessions first (DELETE .../clientsessions/{sessionId}).",
            ),
            AdminError::NoGroup(_) | AdminError::Group(_) => {
                (StatusCode::NOT_FOUND, "Check the group and session ids.")
            }
        };
        error(status, e.to_string(), resolution)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::BAD_REQUEST => "The request is not valid.",
            StatusCode::UNAUTHORIZED => "Authentication is required.",
            StatusCode::FORBIDDEN => "The request is not authorized.",
            StatusCode::NOT_FOUND => "Not found.",
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed.",
            StatusCode::CONFLICT => "Conflict.",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests.",
            StatusCode::NOT_IMPLEMENTED => "Not implemented.",
            StatusCode::SERVICE_UNAVAILABLE => "Service unavailable.",
            _ => "An error occurred.",
        };
        let mut body = json!({
            "OperationId": format!("{:032x}", rand::random::<u128>()),
            "Error": title,
            "Reason": self.reason,
            "Resolution": self.resolution,
        });
        if let Some(f) = self.field {
            body["AdditionalParameters"] = json!({ "Field": f });
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Client Failover Service\""),
            );
        }
        response
    }
}

/// What a path names, with its ids.
#[derive(Debug, PartialEq, Eq)]
enum Resource {
    Info,
    Groups,
    Group(String),
    Status(String),
    Sessions(String),
    Session(String, String),
    Heartbeat(String, String),
    RoleOverride(String, String),
    Configuration,
    Logging,
    HealthEndpoints,
    Health,
}

/// Decodes `%XX` escapes of one path segment.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The resource a path names (literal segments without regard to case), None if none.
fn resource(path: &str) -> Option<Resource> {
    let raw: Vec<&str> = path.trim_matches('/').split('/').collect();
    let segs: Vec<String> = raw
        .iter()
        .map(|s| percent_decode(s))
        .collect::<Option<_>>()?;
    let is = |i: usize, word: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(word));
    if !(is(0, "api") && (is(1, "v1") || is(1, "v1-preview"))) {
        return None;
    }
    let rest: &[String] = if is(2, "clientfailover") {
        &segs[3..]
    } else if is(2, "tenants") && is(4, "namespaces") && is(6, "clientfailover") {
        &segs[7..]
    } else if is(2, "configuration") {
        return match segs.len() {
            3 => Some(Resource::Configuration),
            4 if is(3, "logging") => Some(Resource::Logging),
            4 | 5 if is(3, "healthendpoints") => Some(Resource::HealthEndpoints),
            _ => None,
        };
    } else if is(2, "health") && segs.len() == 3 {
        return Some(Resource::Health);
    } else {
        return None;
    };
    let word = |i: usize, w: &str| rest.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
    let id = |i: usize| rest[i].clone();
    Some(match rest.len() {
        0 => Resource::Info,
        1 if word(0, "groups") => Resource::Groups,
        2 if word(0, "groups") => Resource::Group(id(1)),
        3 if word(0, "groups") && word(2, "status") => Resource::Status(id(1)),
        3 if word(0, "groups") && word(2, "clientsessions") => Resource::Sessions(id(1)),
        4 if word(0, "groups") && word(2, "clientsessions") => Resource::Session(id(1), id(3)),
        5 if word(0, "groups") && word(2, "clientsessions") && word(4, "heartbeat") => {
            Resource::Heartbeat(id(1), id(3))
        }
        5 if word(0, "groups") && word(2, "clientsessions") && word(4, "roleoverride") => {
            Resource::RoleOverride(id(1), id(3))
        }
        _ => return None,
    })
}

/// The methods a resource takes, and the rights each needs.
fn allowed(r: &Resource) -> &'static [(&'static str, Rights)] {
    use Rights::{Administrator as A, Member as M};
    match r {
        Resource::Info | Resource::Status(_) | Resource::Health => &[("GET", M)],
        Resource::Groups | Resource::Sessions(_) => &[("GET", M), ("POST", M)],
        Resource::Group(_) => &[("GET", M), ("DELETE", A)],
        Resource::Session(_, _) => &[("GET", M), ("DELETE", M)],
        Resource::Heartbeat(_, _) => &[("POST", M)],
        // DELETE (ours) ends an override like {"Value":"Off"}.
        Resource::RoleOverride(_, _) => &[("POST", A), ("DELETE", A)],
        Resource::Configuration | Resource::Logging => &[("GET", A), ("PUT", A)],
        Resource::HealthEndpoints => &[("GET", A), ("PUT", A), ("POST", A), ("DELETE", A)],
    }
}

async fn dispatch(
    State(api): State<Api>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&api, &method, &uri, &headers, &body) {
        // An override changed here is answered once its etcd store (if any) kept it.
        Ok(r) => match api.arbiter.overrides_kept().await {
            Ok(()) => r,
            Err(why) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                why,
                "Set the override again once the service leads and reaches its store.",
            )
            .into_response(),
        },
        Err(e) => e.into_response(),
    }
}

fn handle(
    api: &Api,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let Some(res) = resource(uri.path()) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "no such resource: {}",
                uri.path().chars().take(200).collect::<String>()
            ),
            "The API lives under /api/v1/clientfailover (groups, clientsessions, heartbeat, roleoverride, status) and /api/v1/configuration.",
        ));
    };
    let methods = allowed(&res);
    let Some((_, needed)) = methods.iter().find(|(m, _)| *m == method.as_str()) else {
        let allow: Vec<&str> = methods.iter().map(|(m, _)| *m).collect();
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not taken here"),
            format!("Use {}.", allow.join(" or ")),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return Ok(r);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    api.users.admit(presented, *needed).map_err(|r| match r {
        Refusal::Unauthenticated(m) => error(
            StatusCode::UNAUTHORIZED,
            m,
            "Send the username and password of a member (or an administrator) with basic authentication.",
        ),
        Refusal::Forbidden(m) => error(
            StatusCode::FORBIDDEN,
            m,
            "Use an administrator's account.",
        ),
    })?;
    let a = &api.arbiter;
    let ok = |v: Value| (StatusCode::OK, axum::Json(v)).into_response();
    Ok(match (res, method.as_str()) {
        (Resource::Info, _) => ok(json!({ "Version": env!("CARGO_PKG_VERSION") })),
        (Resource::Groups, "GET") => list_groups(a, uri)?,
        (Resource::Groups, _) => {
            let b = parse_body(
                body,
                r#"{"Id":"FailoverGroup1","Name":"...","Description":"...","FailoverTimeout":"00:01:00"}"#,
            )?;
            let (id, settings, extra) = json::group_request(&b)?;
            let created = a.create_group(&id, settings, extra)?;
            let status = match created {
                Created::New => StatusCode::CREATED,
                Created::Same => StatusCode::OK,
            };
            let state = a.lock();
            let e = state.groups.get(&id).ok_or_else(|| no_group(&id))?;
            (status, axum::Json(group_json(e))).into_response()
        }
        (Resource::Group(g), "GET") => {
            let state = a.lock();
            ok(group_json(
                state.groups.get(&g).ok_or_else(|| no_group(&g))?,
            ))
        }
        (Resource::Group(g), _) => {
            a.delete_group(&g)?;
            StatusCode::NO_CONTENT.into_response()
        }
        (Resource::Status(g), _) => {
            let now = a.now();
            let state = a.lock();
            ok(status_json(
                state.groups.get(&g).ok_or_else(|| no_group(&g))?,
                now,
            ))
        }
        (Resource::Sessions(g), "GET") => {
            let now = a.now();
            let state = a.lock();
            let e = state.groups.get(&g).ok_or_else(|| no_group(&g))?;
            ok(Value::Array(
                e.group
                    .sessions()
                    .iter()
                    .map(|s| session_json(e, s.id, now))
                    .collect(),
            ))
        }
        (Resource::Sessions(g), _) => {
            let b = parse_body(
                body,
                r#"{"Id":"<the client's own session id>","Name":"adapter-a"}"#,
            )?;
            let (id, name, extra) = json::session_request(&b)?;
            let created = a.register_session(&g, &id, &name, extra)?;
            let now = a.now();
            let state = a.lock();
            let e = state.groups.get(&g).ok_or_else(|| no_group(&g))?;
            let sid = e.group.find_session(&id).map_err(PullError::from)?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, axum::Json(session_json(e, sid, now))).into_response()
        }
        (Resource::Session(g, s), "GET") => {
            let now = a.now();
            let state = a.lock();
            let e = state.groups.get(&g).ok_or_else(|| no_group(&g))?;
            let sid = e.group.find_session(&s).map_err(PullError::from)?;
            ok(session_json(e, sid, now))
        }
        (Resource::Session(g, s), _) => {
            // Ours: the session's own client says it leaves, so it no longer acts as Primary
            // and its role passes on at once. Without it, a delete is an operator's, and a
            // deleted Primary may still act until it would have gone stale (PendingPrimary).
            let leaving = headers
                .get(LEAVING_HEADER)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            if leaving {
                a.leave_pull_session(&g, &s)?;
            } else {
                a.delete_session(&g, &s)?;
            }
            StatusCode::NO_CONTENT.into_response()
        }
        (Resource::Heartbeat(g, s), _) => {
            if api.limit.as_ref().is_some_and(|l| !l.admit()) {
                return Ok(busy::too_many(a, &g, &s));
            }
            let b = parse_body(body, r#"{"FailoverScore":100}"#)?;
            let hb = json::heartbeat_request(&b)?;
            let answer = a.pull_heartbeat(&g, &s, hb)?;
            ok(json!({
                "Role": answer.role.number(),
                "LastDataProcessedTime": answer.last_data_processed_unix_ms.map(time),
                // failover-lab's extensions (the vendor's adapters ignore them).
                "Epoch": answer.epoch,
                "Reason": answer.reason,
                "PrimaryName": answer.primary_name,
                "PrimaryWatermark": answer
                    .primary_watermark
                    .iter()
                    .map(|(s, q)| json!([s, q]))
                    .collect::<Vec<_>>(),
            }))
        }
        (Resource::RoleOverride(g, s), m) => {
            let (role, expiration) = if m == "DELETE" {
                (None, None)
            } else {
                let b = parse_body(body, r#"{"Value":"Primary","ExpirationPeriod":"08:00:00"}"#)?;
                json::override_request(&b)?
            };
            a.set_role_override(&g, &s, role, expiration)?;
            ok(json!({
                "Value": override_number(role),
                "RoleOverrideExpirationTime": expiration
                    .map(|d| time(process::unix_ms().saturating_add(millis(d)))),
            }))
        }
        (Resource::Configuration, "GET") => ok(configuration_json()),
        (Resource::Configuration, _) => {
            let b = parse_body(body, r#"{"Logging":{"LogLevel":"Information"}}"#)?;
            let logging = match b.field("Logging") {
                Some(Value::Object(map)) => Value::Object(map.clone()),
                Some(Value::Null) | None => Value::Null,
                Some(other) => {
                    return Err(BadRequest {
                        field: Some("Logging".into()),
                        message: format!("Logging: {other} must be an object like {{\"LogLevel\":\"Information\"}}"),
                    }
                    .into());
                }
            };
            if let Some(endpoints) = b.field("HealthEndpoints")
                && endpoints.as_array().is_some_and(|a| !a.is_empty())
            {
                return Err(health_endpoints_refusal());
            }
            if !logging.is_null() {
                let inner = parse_body(logging.to_string().as_bytes(), "{}")?;
                set_log_level(&inner)?;
            }
            ok(configuration_json())
        }
        (Resource::Logging, "GET") => ok(logging_json()),
        (Resource::Logging, _) => {
            let b = parse_body(body, r#"{"LogLevel":"Information"}"#)?;
            set_log_level(&b)?;
            ok(logging_json())
        }
        (Resource::HealthEndpoints, "GET") => ok(json!([])),
        (Resource::HealthEndpoints, _) => return Err(health_endpoints_refusal()),
        (Resource::Health, _) => ok(health_json(a)),
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn health_endpoints_refusal() -> ApiError {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "failover-lab sends no OMF health messages, so it keeps no health endpoints",
        "Read the service's health with GET /api/v1/health instead.",
    )
}

fn set_log_level(b: &json::Body) -> Result<(), ApiError> {
    let (name, directive) = json::log_level_request(b)?;
    process::set_log_filter(directive).map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot change the log level: {e}"),
            "Restart the service with RUST_LOG set instead.",
        )
    })?;
    tracing::info!(level = name, "log level changed over the REST API");
    Ok(())
}

fn logging_json() -> Value {
    let current = process::log_filter().unwrap_or_else(|| "info".into());
    json!({ "LogLevel": json::log_level_name(&current) })
}

fn configuration_json() -> Value {
    json!({ "Logging": logging_json(), "HealthEndpoints": [] })
}

fn no_group(g: &str) -> ApiError {
    ApiError::from(PullError::NoGroup(crate::pull::shortened(g)))
}

fn override_number(role: Option<Role>) -> u8 {
    match role {
        None => 0,
        Some(Role::Primary) => 1,
        Some(Role::Secondary) => 2,
    }
}

fn list_groups(a: &Arbiter, uri: &Uri) -> Result<Response, ApiError> {
    let mut skip = 0usize;
    let mut count = usize::MAX;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            v.parse::<usize>().map_err(|_| {
                ApiError::from(BadRequest {
                    field: Some(k.to_string()),
                    message: format!("{k}: {v:?} must be a whole number 0 or above"),
                })
            })
        };
        if k.eq_ignore_ascii_case("skip") {
            skip = number()?;
        } else if k.eq_ignore_ascii_case("count") {
            count = number()?;
        }
    }
    let state = a.lock();
    let total = state.groups.len();
    let page: Vec<Value> = state
        .groups
        .values()
        .skip(skip)
        .take(count)
        .map(group_json)
        .collect();
    let mut r = (StatusCode::OK, axum::Json(Value::Array(page))).into_response();
    r.headers_mut()
        .insert("Total-Count", HeaderValue::from(total as u64));
    Ok(r)
}

fn group_json(e: &GroupEntry) -> Value {
    let g = &e.group;
    json!({
        "Id": g.id(),
        "Name": g.name(),
        "Description": g.description(),
        "FailoverTimeout": failover_core::timespan::format_timespan(g.failover_timeout()),
        "AdditionalData": e.additional_data,
    })
}

/// A session's id on this API: the client's own, or the number of a gRPC member.
fn external_id(e: &GroupEntry, id: failover_core::group::SessionId) -> Option<String> {
    e.group
        .session(id)
        .map(|s| s.client_id.clone().unwrap_or_else(|| s.id.to_string()))
}

/// The role a session is shown: REST members as they are told (PendingPrimary included), gRPC
/// members as pushed.
fn shown_role(e: &GroupEntry, id: failover_core::group::SessionId, now: Duration) -> PullRole {
    let is_rest = e.group.session(id).is_some_and(|s| s.client_id.is_some());
    match (is_rest, e.group.role_of(id)) {
        (true, _) => pull_role(e, id, now),
        (false, Role::Primary) => PullRole::Primary,
        (false, Role::Secondary) => PullRole::Secondary,
    }
}

fn session_json(e: &GroupEntry, id: failover_core::group::SessionId, now: Duration) -> Value {
    let Some(s) = e.group.session(id) else {
        return Value::Null;
    };
    let wall_now = process::unix_ms();
    let posted = s.posted;
    let heartbeat_time = wall_now.saturating_sub(millis(now.saturating_sub(s.last_heartbeat)));
    json!({
        "Id": external_id(e, id),
        "Name": s.adapter_id,
        "Heartbeat": posted.then(|| json!({
            "FailoverScore": s.score,
            "LastDataProcessedTime": e.last_data_unix_ms.get(&id).copied().map(time),
            "HeartbeatTime": time(heartbeat_time),
        })),
        "Role": shown_role(e, id, now).number(),
        "HeartbeatPosted": posted,
        "RoleOverride": override_number(s.role_override.map(|o| o.role)),
        "RoleOverrideExpirationTime": s.role_override.and_then(|o| o.expires_at).map(|at| {
            time(wall_now.saturating_add(millis(at.saturating_sub(now))))
        }),
        "AdditionalData": e.session_data.get(&id),
    })
}

fn status_json(e: &GroupEntry, now: Duration) -> Value {
    let primary = e.group.primary().map(|p| p.id);
    // Only a REST member waits as PendingPrimary; a gRPC member is told at once.
    let pending = primary.filter(|p| shown_role(e, *p, now) == PullRole::PendingPrimary);
    // While the chosen Primary waits, the one still acting is the previous.
    let acting = match pending {
        Some(p) => previous_primary(e, p, now),
        None => primary.and_then(|id| external_id(e, id)),
    };
    json!({
        "Primary": acting,
        "PendingPrimary": pending.and_then(|id| external_id(e, id)),
        "LastDataProcessedTime": e.last_data_processed().map(time),
    })
}

fn health_json(a: &Arbiter) -> Value {
    let now = a.now();
    let state = a.lock();
    let sessions: usize = state
        .groups
        .values()
        .map(|e| {
            e.group
                .sessions()
                .iter()
                .filter(|s| !e.group.is_stale(s, now))
                .count()
        })
        .sum();
    let wall = process::unix_ms();
    json!({
        "Time": time(wall),
        "DeviceStatus": match a.standing() {
            crate::Standing::Leading => "Good",
            crate::Standing::Following { .. } => "Standby",
            crate::Standing::Stopping => "Shutdown",
        },
        "NextHealthMessageExpected": time(wall + HEALTH_INTERVAL_MS),
        "FailoverObjectCount": { "Groups": state.groups.len(), "Sessions": sessions },
    })
}

/// Connections an axum server takes from a stream of accepted ones (TLS after its handshake).
struct StreamListener<S> {
    incoming: std::pin::Pin<Box<S>>,
    addr: SocketAddr,
}

impl<S, IO> axum::serve::Listener for StreamListener<S>
where
    S: futures::Stream<Item = std::io::Result<IO>> + Send + 'static,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Io = IO;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use futures::StreamExt;
        loop {
            match self.incoming.next().await {
                Some(Ok(io)) => return (io, self.addr),
                // Failed handshakes are logged where they happen.
                Some(Err(_)) => {}
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Serves the vendor's API on `listener` (over TLS with `tls`, else plain HTTP) until
/// `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            // HTTP/1.1 only: the server is built without HTTP/2.
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let addr = listener.local_addr()?;
            let incoming = failover_proto::tls::incoming(listener, Arc::new(config));
            axum::serve(
                StreamListener {
                    incoming: Box::pin(incoming),
                    addr,
                },
                app,
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_matched_without_regard_to_case() {
        assert_eq!(
            resource("/api/v1/ClientFailover/Groups/G%201/ClientSessions/s/HEARTBEAT"),
            Some(Resource::Heartbeat("G 1".into(), "s".into()))
        );
        assert_eq!(
            resource("/api/v1/tenants/t/namespaces/n/clientfailover/groups/"),
            Some(Resource::Groups)
        );
        assert_eq!(resource("/api/v1/clientfailover"), Some(Resource::Info));
        assert_eq!(
            resource("/api/v1/configuration/logging"),
            Some(Resource::Logging)
        );
        assert_eq!(resource("/api/v2/clientfailover/groups"), None);
        assert_eq!(resource("/api/v1/clientfailover/groups/g/x"), None);
        assert_eq!(resource("/api/v1/clientfailover/groups/%zz"), None);
    }
}
