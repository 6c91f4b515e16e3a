//! The endpoint's OMF ingress, as Edge Data Store, CONNECT data services and PI Web API take OMF
//! (OSIsoft Message Format 1.1 and 1.2) over HTTP, and its read-back API, as Edge Data Store
//! reads streams.
//!
//! - **Paths:** `POST /api/v1/tenants/{tenant}/namespaces/{namespace}/omf` (Edge Data Store:
//!   `default`/`default`; CONNECT: any) and `POST /piwebapi/omf` (PI Web API; stored in
//!   `default`/`default`).
//! - **Headers:** `messagetype` (type, container, data), `messageformat` (JSON), `omfversion`
//!   (1.1, 1.2), `action` (create, update, delete; default create), `compression` (gzip).
//! - **Answers:** 204 on success; 400 naming the message index and field; 409 for a conflicting
//!   redefinition or a stale epoch; 413 over [`MAX_BODY`] or when gzip expands past
//!   [`MAX_EXPANDED`]; 401 without the credentials required, 403 with wrong ones; 503 during an
//!   outage, with `Retry-After`.
//! - **The audit:** a container whose id matches the [`ContainerPattern`] (default
//!   `{group}.stream-{stream}`) is that stream of that group; each value becomes a point in the
//!   same ledger the gRPC path feeds, known by its index (see [`Tick`]).
//! - **Fencing:** OMF has no epoch. A writer that sends `x-failover-adapter`,
//!   `x-failover-writer` and `x-failover-epoch` (our adapter) is fenced as over gRPC: its first
//!   container or data message at a newer epoch fences the groups it writes, and a write from an
//!   older epoch is refused with 409 and `x-failover-fenced-epoch`. A writer that sends none is
//!   taken as any OMF endpoint takes it, and the audit counts what it duplicates or loses. One
//!   that sends `x-failover-adapter` alone (our adapter's vendor behaviour) is taken the same
//!   way, unfenced, but counted under that name (epoch 0), so the audit says who wrote what.

pub mod message;
pub mod readback;
pub mod store;

use std::{
    io::Read,
    sync::{Mutex, PoisonError},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use failover_core::Point;
use serde_json::{Value, json};

use crate::{EndpointService, record::GroupRecord};
use message::{Action, MessageType, Rejection};
use store::{Checked, CheckedData, Stores};

pub use failover_proto::wires::omf::{
    DEFAULT_CONTAINER_PATTERN, HEADER_ADAPTER, HEADER_EPOCH, HEADER_FENCED_EPOCH, HEADER_WRITER,
    MAX_BODY,
};
/// Most bytes a gzip body may expand to.
pub const MAX_EXPANDED: usize = 8 * 1024 * 1024;
/// The writer's name in the audit for OMF clients that send no fencing headers.
pub const ANONYMOUS_WRITER: &str = "omf-client";

/// How an OMF value's index maps to a sequence number of the source: the source's tick, so
/// `seq = round((index - origin) / period)`. Without it, a date-time index counts as its unix
/// milliseconds (received and duplicated are right; lost then counts milliseconds). An integer
/// index is the sequence number itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// Data time of sequence number 0 (unix ms), as the source's `--origin-unix-ms`.
    pub origin_unix_ms: i64,
    /// Ticks per second, as the source's `--rate`.
    pub rate_hz: f64,
}

impl Tick {
    /// The sequence number of a date-time index, if it falls on or after the origin.
    pub fn seq(&self, unix_ms: i64) -> Option<u64> {
        let period_ms = 1000.0 / self.rate_hz;
        let n = ((unix_ms - self.origin_unix_ms) as f64 / period_ms).round();
        (n >= 0.0 && n.is_finite()).then_some(n as u64)
    }
}

/// Which containers are which streams: a pattern with `{group}` and `{stream}` (a number of
/// up to 9 digits), each once, in either order, with any text around them.
#[derive(Debug, Clone)]
pub struct ContainerPattern {
    text: String,
    /// The text before the first placeholder, between them, and after the second.
    prefix: String,
    middle: String,
    suffix: String,
    group_first: bool,
}

impl ContainerPattern {
    /// Reads a pattern; it must hold `{group}` and `{stream}` once each, with text between
    /// them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "container pattern {text:?} must hold {{group}} and {{stream}} once each, with \
                 text between them (as the default {DEFAULT_CONTAINER_PATTERN:?})"
            )
        };
        if text.matches("{group}").count() != 1 || text.matches("{stream}").count() != 1 {
            return Err(bad());
        }
        let (g, s) = (
            text.find("{group}").ok_or_else(bad)?,
            text.find("{stream}").ok_or_else(bad)?,
        );
        let group_first = g < s;
        let (first, first_len, second) = if group_first {
            (g, "{group}".len(), s)
        } else {
            (s, "{stream}".len(), g)
        };
        let second_len = if group_first {
            "{stream}".len()
        } else {
            "{group}".len()
        };
        let middle = &text[first + first_len..second];
        if middle.is_empty() {
            return Err(bad());
        }
        Ok(ContainerPattern {
            text: text.to_string(),
            prefix: text[..first].to_string(),
            middle: middle.to_string(),
            suffix: text[second + second_len..].to_string(),
            group_first,
        })
    }

    /// The container id of a group's stream.
    pub fn container(&self, group: &str, stream: u32) -> String {
        self.text
            .replace("{group}", group)
            .replace("{stream}", &stream.to_string())
    }

    /// The group and stream a container id names, if it matches: the group is the shortest
    /// text that makes the rest match.
    pub fn stream_of(&self, container: &str) -> Option<(String, u32)> {
        let inner = container
            .strip_prefix(self.prefix.as_str())?
            .strip_suffix(self.suffix.as_str())?;
        let number = |t: &str| {
            (!t.is_empty() && t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u32>().ok())
                .flatten()
        };
        inner
            .match_indices(self.middle.as_str())
            .find_map(|(at, _)| {
                let (before, after) = (&inner[..at], &inner[at + self.middle.len()..]);
                if self.group_first {
                    (!before.is_empty())
                        .then(|| number(after).map(|n| (before.to_string(), n)))
                        .flatten()
                } else {
                    (!after.is_empty())
                        .then(|| number(before).map(|n| (after.to_string(), n)))
                        .flatten()
                }
            })
    }
}

impl Default for ContainerPattern {
    fn default() -> Self {
        match Self::parse(DEFAULT_CONTAINER_PATTERN) {
            Ok(p) => p,
            Err(e) => unreachable!("the default pattern parses: {e}"),
        }
    }
}

/// The credentials OMF requests must carry, if any.
#[derive(Clone, Default)]
pub enum OmfAuth {
    /// None (as Edge Data Store on localhost).
    #[default]
    None,
    /// HTTP basic (as PI Web API).
    Basic { user: String, password: String },
    /// A bearer token (as CONNECT data services).
    Bearer(String),
}

impl std::fmt::Debug for OmfAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.write_str(match self {
            OmfAuth::None => "None",
            OmfAuth::Basic { .. } => "Basic(..)",
            OmfAuth::Bearer(_) => "Bearer(..)",
        })
    }
}

/// The OMF ingress's settings.
#[derive(Debug, Clone)]
pub struct OmfSettings {
    pub tick: Option<Tick>,
    pub containers: ContainerPattern,
    pub auth: OmfAuth,
    /// Values kept per container for reading back (the audit keeps every point).
    pub keep_values: usize,
}

impl Default for OmfSettings {
    fn default() -> Self {
        OmfSettings {
            tick: None,
            containers: ContainerPattern::default(),
            auth: OmfAuth::None,
            keep_values: 1_000,
        }
    }
}

/// The OMF side of the endpoint: its settings and stores.
#[derive(Debug, Default)]
pub struct Omf {
    pub settings: OmfSettings,
    pub stores: Mutex<Stores>,
    operations: std::sync::atomic::AtomicU64,
}

impl Omf {
    pub fn new(settings: OmfSettings) -> Self {
        Omf {
            settings,
            ..Omf::default()
        }
    }
}

/// A fenced writer, from the extension headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fencing {
    pub adapter: String,
    pub writer: String,
    pub epoch: u64,
}

/// One header's value, refusing one sent twice or not text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Rejection> {
    let mut all = headers.get_all(name).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(Rejection::bad(format!("header {name} is sent twice")).field(name));
    }
    first
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| Rejection::bad(format!("header {name} is not text")).field(name))
}

impl Rejection {
    fn field(mut self, name: &str) -> Self {
        self.field = Some(name.to_string());
        self
    }
}

/// What the headers ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub message_type: MessageType,
    pub action: Action,
    pub gzip: bool,
    pub fencing: Option<Fencing>,
    /// The adapter named by `x-failover-adapter` sent alone: its writes are counted under
    /// that name, unfenced (the vendor behaviour names itself so; no real OMF client does).
    pub named: Option<String>,
}

/// Reads and checks the OMF headers.
pub fn read_headers(headers: &HeaderMap) -> Result<Request, Rejection> {
    let required = |name: &str| {
        header(headers, name)?
            .ok_or_else(|| Rejection::bad(format!("header {name} is required")).field(name))
    };
    let message_type = match required("messagetype")?.to_ascii_lowercase().as_str() {
        "type" => MessageType::Type,
        "container" => MessageType::Container,
        "data" => MessageType::Data,
        other => {
            return Err(Rejection::bad(format!(
                "header messagetype is {other:?}; it must be type, container or data"
            ))
            .field("messagetype"));
        }
    };
    let format = required("messageformat")?;
    if !format.eq_ignore_ascii_case("json") {
        return Err(Rejection::bad(format!(
            "header messageformat is {format:?}; only JSON is taken"
        ))
        .field("messageformat"));
    }
    let version = required("omfversion")?;
    if !matches!(version, "1.1" | "1.2") {
        return Err(Rejection::bad(format!(
            "header omfversion is {version:?}; this endpoint takes 1.1 and 1.2"
        ))
        .field("omfversion"));
    }
    let action = match header(headers, "action")?
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("create") => Action::Create,
        Some("update") => Action::Update,
        Some("delete") => Action::Delete,
        Some(other) => {
            return Err(Rejection::bad(format!(
                "header action is {other:?}; it must be create, update or delete"
            ))
            .field("action"));
        }
    };
    let gzip = match header(headers, "compression")? {
        None => false,
        Some(c) if c.eq_ignore_ascii_case("gzip") => true,
        Some(c) => {
            return Err(
                Rejection::bad(format!("header compression is {c:?}; only gzip is taken"))
                    .field("compression"),
            );
        }
    };
    let mut named = None;
    let fencing = match (
        header(headers, HEADER_ADAPTER)?,
        header(headers, HEADER_WRITER)?,
        header(headers, HEADER_EPOCH)?,
    ) {
        (None, None, None) => None,
        (Some(adapter), None, None) => {
            failover_core::limits::check_id(HEADER_ADAPTER, adapter)
                .map_err(|e| Rejection::bad(e).field(HEADER_ADAPTER))?;
            named = Some(adapter.to_string());
            None
        }
        (Some(adapter), Some(writer), Some(epoch)) => {
            failover_core::limits::check_id(HEADER_ADAPTER, adapter)
                .map_err(|e| Rejection::bad(e).field(HEADER_ADAPTER))?;
            failover_core::limits::check_text(HEADER_WRITER, writer)
                .map_err(|e| Rejection::bad(e).field(HEADER_WRITER))?;
            let epoch = epoch
                .parse::<u64>()
                .ok()
                .filter(|e| *e <= failover_core::limits::MAX_EPOCH)
                .ok_or_else(|| {
                    Rejection::bad(format!(
                        "header {HEADER_EPOCH} is {epoch:?}; it must be a whole number (0: a standalone adapter)"
                    ))
                    .field(HEADER_EPOCH)
                })?;
            Some(Fencing {
                adapter: adapter.to_string(),
                writer: writer.to_string(),
                epoch,
            })
        }
        _ => {
            return Err(Rejection::bad(format!(
                "the fencing headers go together: {HEADER_ADAPTER}, {HEADER_WRITER} and \
                 {HEADER_EPOCH}; or {HEADER_ADAPTER} alone (counted under that name, not \
                 fenced); or none"
            ))
            .field(HEADER_EPOCH));
        }
    };
    Ok(Request {
        message_type,
        action,
        gzip,
        fencing,
        named,
    })
}

/// The body, unzipped within [`MAX_EXPANDED`] when it is gzip.
pub fn unzip(body: &[u8], gzip: bool) -> Result<std::borrow::Cow<'_, [u8]>, Rejection> {
    if body.len() > MAX_BODY {
        return Err(Rejection::bad(format!(
            "the body is {} bytes; OMF takes at most {MAX_BODY} (192 KB): send smaller batches",
            body.len()
        ))
        .with_status(413));
    }
    if !gzip {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let mut out = Vec::with_capacity(body.len() * 6);
    flate2::read::GzDecoder::new(body)
        .take(MAX_EXPANDED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Rejection::bad(format!(
                "the body is not gzip (header compression: gzip): {e}"
            ))
            .field("compression")
        })?;
    if out.len() > MAX_EXPANDED {
        return Err(Rejection::bad(format!(
            "the gzip body expands past {MAX_EXPANDED} bytes; send smaller batches"
        ))
        .with_status(413));
    }
    Ok(std::borrow::Cow::Owned(out))
}

thread_local! {
    /// The unzipped body, kept for the next request on this thread: a body unzips to a few MB,
    /// and taking and freeing that much for every request costs the allocator more than the rest.
    static UNZIPPED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads the body: data, the bulk of what arrives, straight into its messages; the rest (and
/// data the fast reader cannot take) as JSON, which names what is wrong.
fn read_messages(
    body: &[u8],
    request: &Request,
) -> Result<(Option<Vec<message::DataMessage>>, Vec<Value>), Rejection> {
    let read = |json: &[u8]| {
        let fast = match request.message_type {
            MessageType::Data => message::data_fast(json),
            _ => None,
        };
        match fast {
            Some(data) => Ok((Some(data), Vec::new())),
            None => Ok((None, parse_messages(json)?)),
        }
    };
    if !request.gzip {
        return read(&unzip(body, false)?);
    }
    if body.len() > MAX_BODY {
        unzip(body, true)?; // the size refusal
    }
    UNZIPPED.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        flate2::read::GzDecoder::new(body)
            .take(MAX_EXPANDED as u64 + 1)
            .read_to_end(&mut buffer)
            .map_err(|e| {
                Rejection::bad(format!(
                    "the body is not gzip (header compression: gzip): {e}"
                ))
                .field("compression")
            })?;
        if buffer.len() > MAX_EXPANDED {
            buffer.clear();
            buffer.shrink_to(MAX_EXPANDED);
            return Err(Rejection::bad(format!(
                "the gzip body expands past {MAX_EXPANDED} bytes; send smaller batches"
            ))
            .with_status(413));
        }
        read(&buffer)
    })
}

/// The body's JSON array of messages.
pub fn parse_messages(json: &[u8]) -> Result<Vec<Value>, Rejection> {
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Array(messages)) => Ok(messages),
        Ok(_) => Err(Rejection::bad("the body must be a JSON array of messages")),
        Err(e) => Err(Rejection::bad(format!("the body is not JSON: {e}"))),
    }
}

/// The body as JSON messages, unzipped within [`MAX_EXPANDED`].
pub fn read_body(body: &[u8], gzip: bool) -> Result<Vec<Value>, Rejection> {
    parse_messages(&unzip(body, gzip)?)
}

/// Checks the credentials: 401 when missing, 403 when wrong.
fn check_auth(auth: &OmfAuth, headers: &HeaderMap) -> Result<(), Rejection> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let expected = match auth {
        OmfAuth::None => return Ok(()),
        OmfAuth::Basic { user, password } => failover_proto::auth::basic_header(user, password),
        OmfAuth::Bearer(token) => format!("Bearer {token}"),
    };
    match given {
        None => Err(
            Rejection::bad("credentials are required (header Authorization)")
                .with_status(401)
                .field("Authorization"),
        ),
        Some(g) if failover_proto::auth::same_secret(g, &expected) => Ok(()),
        Some(_) => Err(Rejection::bad("the credentials are not accepted")
            .with_status(403)
            .field("Authorization")),
    }
}

/// The answer to a refused request, shaped as CONNECT data services answers errors.
pub fn refusal(omf: &Omf, r: &Rejection, fenced_epoch: Option<u64>) -> Response {
    let op = omf
        .operations
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let resolution = match r.status {
        400 => "Correct the message and send it again; do not retry it unchanged.",
        401 | 403 => "Send the credentials the endpoint was started with.",
        409 => "Use the definition already stored, or a new id; a stale writer must stop.",
        413 => "Send smaller batches.",
        _ => "Retry later.",
    };
    let mut parameters = serde_json::Map::new();
    if let Some(i) = r.message_index {
        parameters.insert("MessageIndex".into(), json!(i.to_string()));
    }
    if let Some(f) = &r.field {
        parameters.insert("Field".into(), json!(f));
    }
    let body = json!({
        "OperationId": format!("failover-lab-{op}"),
        "Error": status.canonical_reason().unwrap_or("Error"),
        "Reason": r.reason,
        "Resolution": resolution,
        "Parameters": parameters,
    });
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(e) = fenced_epoch
        && let Ok(v) = HeaderValue::from_str(&e.to_string())
    {
        response.headers_mut().insert(HEADER_FENCED_EPOCH, v);
    }
    if r.status == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"failover-lab\", Bearer"),
        );
    }
    response
}

/// Handles one OMF request for a namespace.
pub fn ingest(
    service: &EndpointService,
    namespace: (String, String),
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let omf = &service.omf;
    if service.in_outage() {
        let mut r = refusal(
            omf,
            &Rejection::bad("data endpoint outage (simulated)").with_status(503),
            None,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    match ingest_checked(service, namespace, headers, body) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err((r, fenced)) => {
            tracing::debug!(status = r.status, reason = r.reason, "OMF request refused");
            refusal(omf, &r, fenced)
        }
    }
}

fn ingest_checked(
    service: &EndpointService,
    namespace: (String, String),
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(), (Rejection, Option<u64>)> {
    let omf = &service.omf;
    let plain = |r: Rejection| (r, None);
    check_auth(&omf.settings.auth, headers).map_err(plain)?;
    let request = read_headers(headers).map_err(plain)?;
    let (fast, messages) = read_messages(body, &request).map_err(plain)?;
    let mut stores = omf.stores.lock().unwrap_or_else(PoisonError::into_inner);
    let ns = stores.namespaces.entry(namespace).or_default();
    let checked = match request.message_type {
        MessageType::Type => {
            let types = message::types(&messages, request.action).map_err(plain)?;
            ns.check_types(&types, request.action).map_err(plain)?;
            Checked::Types(types)
        }
        MessageType::Container => {
            let containers = message::containers(&messages).map_err(plain)?;
            ns.check_containers(&containers, request.action)
                .map_err(plain)?;
            Checked::Containers(containers)
        }
        MessageType::Data => {
            let data = match fast {
                Some(data) => data,
                None => message::data(messages).map_err(plain)?,
            };
            Checked::Data(ns.check_data(data, request.action).map_err(plain)?)
        }
    };
    // The groups this request writes, fenced (or refused) before anything is applied.
    let pattern = &omf.settings.containers;
    let mut checked = checked;
    if let Checked::Data(data) = &mut checked {
        for d in data.iter_mut() {
            d.target = pattern.stream_of(&d.container);
        }
    }
    let container_groups: Vec<String> = match &checked {
        Checked::Containers(c) => c
            .iter()
            .filter_map(|c| pattern.stream_of(&c.id).map(|(g, _)| g))
            .collect(),
        _ => Vec::new(),
    };
    let mut groups_named: Vec<&str> = Vec::new();
    let data_groups: Vec<&str> = match &checked {
        Checked::Data(data) => data
            .iter()
            .filter_map(|d| d.target.as_ref().map(|(g, _)| g.as_str()))
            .collect(),
        _ => Vec::new(),
    };
    for g in container_groups
        .iter()
        .map(String::as_str)
        .chain(data_groups)
    {
        if !groups_named.contains(&g) {
            groups_named.push(g);
        }
    }
    let mut groups = service.lock_groups();
    if let Some(f) = &request.fencing {
        for group in groups_named.iter().copied() {
            failover_core::limits::check_id("group", group)
                .map_err(|e| plain(Rejection::bad(e)))?;
            let g = groups.entry(group.to_string()).or_default();
            // A data request at the epoch its writer holds is a write (counted below), as a
            // gRPC Write is; containers, or data at a newer epoch or from another writer, fence.
            let holds = g.fenced_epoch == f.epoch
                && g.fenced_by.as_deref() == Some(f.adapter.as_str())
                && g.fenced_writer.as_deref() == Some(f.writer.as_str());
            if !(holds && matches!(checked, Checked::Data(_))) {
                g.fence_calls += 1;
            }
            let reply = g.fence(&f.adapter, &f.writer, f.epoch);
            if !reply.granted {
                if let Checked::Data(data) = &checked {
                    let n: u64 = data
                        .iter()
                        .filter(|d| d.target.as_ref().is_some_and(|(g, _)| g == group))
                        .map(|d| d.values.len() as u64)
                        .sum();
                    if reply.fenced_epoch > f.epoch {
                        g.refused_stale += n;
                        g.writers
                            .entry((f.adapter.clone(), f.epoch))
                            .or_default()
                            .refused_stale += n;
                    } else {
                        g.refused_not_fenced += n;
                    }
                }
                return Err((
                    Rejection::bad(format!("group {group}: {}", reply.detail))
                        .with_status(409)
                        .field(HEADER_EPOCH),
                    Some(reply.fenced_epoch),
                ));
            }
        }
    }
    match checked {
        Checked::Types(types) => ns.apply_types(types, request.action),
        Checked::Containers(containers) => ns.apply_containers(containers, request.action),
        Checked::Data(values) => {
            if request.action != Action::Delete {
                record_points(&mut groups, &omf.settings, &request, &values);
            }
            ns.apply_data(values, request.action, omf.settings.keep_values);
        }
    }
    Ok(())
}

/// Puts the values of containers that name a group's stream into that group's ledger.
fn record_points(
    groups: &mut std::collections::HashMap<String, GroupRecord>,
    settings: &OmfSettings,
    request: &Request,
    data: &[CheckedData],
) {
    let mut by_group: Vec<(String, Vec<Point>)> = Vec::new();
    for d in data {
        let Some((group, stream)) = &d.target else {
            continue;
        };
        let stream = *stream;
        let at = match by_group.iter().position(|(g, _)| g == group) {
            Some(at) => at,
            None => {
                by_group.push((group.clone(), Vec::new()));
                by_group.len() - 1
            }
        };
        let points = &mut by_group[at].1;
        points.reserve(d.values.len());
        for (index, value, _) in &d.values {
            let (seq, timestamp_ms) = if d.time_index {
                let ms = index.0;
                match settings.tick {
                    Some(t) => match t.seq(ms) {
                        Some(seq) => (seq, ms),
                        None => continue, // before the source's origin: not a point of it
                    },
                    None => (u64::try_from(ms).unwrap_or(0), ms),
                }
            } else {
                let seq = u64::try_from(index.0).unwrap_or(0);
                let ms = settings.tick.map_or(0, |t| {
                    // Rounded, as the source stamps its ticks.
                    t.origin_unix_ms + (seq as f64 * 1000.0 / t.rate_hz).round() as i64
                });
                (seq, ms)
            };
            points.push(Point {
                stream_id: stream,
                seq,
                timestamp_ms,
                value: *value,
            });
        }
    }
    for (group, points) in by_group {
        let g = groups.entry(group).or_default();
        g.write_calls += 1;
        match (&request.fencing, &request.named) {
            (Some(f), _) => g.accept(&f.adapter, f.epoch, &points),
            (None, Some(name)) => g.accept(name, 0, &points),
            (None, None) => g.accept(ANONYMOUS_WRITER, 0, &points),
        };
    }
}

#[cfg(test)]
mod tests;
