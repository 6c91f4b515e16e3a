//! Reading back what OMF clients stored, as Edge Data Store's Sequential Data Store API reads
//! it (path words in any case, `Streams` or `streams`):
//!
//! - `GET /api/v1/tenants/{t}/namespaces/{n}/types`: the type definitions, as sent;
//!
//! Ids may hold `/`; the path's own words are found at its ends.
//! - `.../types/{id}`: one;
//! - `.../streams`: the containers, `[{"Id", "TypeId"}]`;
//! - `.../streams/{id}`: one;
//! - `.../streams/{id}/data/last` and `/data/first`: one value, or `null` when it holds none;
//! - `.../streams/{id}/data?startIndex=I&endIndex=J[&count=N]`: the values with index in
//!   `[I, J]` (date-time or integer), at most `count` (default and most: 10,000).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    Omf,
    message::{Index, Rejection, ValueObject},
    store::{Container, Namespace},
};

/// Most values in one range read.
pub const MAX_READ: usize = 10_000;

fn not_found(omf: &Omf, what: String) -> Response {
    super::refusal(omf, &Rejection::bad(what).with_status(404), None)
}

fn index_of(text: &str) -> Option<Index> {
    text.parse::<i64>()
        .ok()
        .or_else(|| failover_core::clock_time::parse_utc_ms(text).ok())
        .map(Index)
}

/// Answers a read of `rest` (the path after the namespace) in `ns`.
pub fn read(
    omf: &Omf,
    ns: Option<&Namespace>,
    rest: &str,
    query: &std::collections::HashMap<String, String>,
) -> Response {
    let empty = Namespace::default();
    let ns = ns.unwrap_or(&empty);
    // The stream, or the 404 naming it (boxed: an answer is large).
    let container = |id: &str| -> Result<&Container, Box<Response>> {
        ns.containers
            .get(id)
            .filter(|c| !c.deleted)
            .ok_or_else(|| Box::new(not_found(omf, format!("stream {id:?} does not exist"))))
    };
    // Ids may hold '/', so the path's own words are found at its ends, in any case.
    let rest = rest.trim_matches('/');
    let lower = rest.to_ascii_lowercase();
    let (kind, tail) = if lower == "types" || lower == "streams" {
        (lower.as_str(), "")
    } else if lower.starts_with("types/") {
        ("types", &rest["types/".len()..])
    } else if lower.starts_with("streams/") {
        ("streams", &rest["streams/".len()..])
    } else {
        ("", rest)
    };
    let tail_lower = tail.to_ascii_lowercase();
    let (id, read) = if kind != "streams" {
        (tail, "")
    } else if tail_lower.ends_with("/data/last") {
        (&tail[..tail.len() - "/data/last".len()], "last")
    } else if tail_lower.ends_with("/data/first") {
        (&tail[..tail.len() - "/data/first".len()], "first")
    } else if tail_lower.ends_with("/data") {
        (&tail[..tail.len() - "/data".len()], "data")
    } else {
        (tail, "")
    };
    let w: Vec<&str> = [kind, id, read]
        .into_iter()
        .enumerate()
        .filter(|(i, w)| *i == 0 || !w.is_empty())
        .map(|(_, w)| w)
        .collect();
    let w: Vec<&str> = match w.as_slice() {
        ["streams", id, "data"] => vec!["streams", id, "data"],
        ["streams", id, last] => vec!["streams", id, "data", last],
        other => other.to_vec(),
    };
    match w.as_slice() {
        ["types"] => axum::Json(
            ns.types
                .values()
                .map(|t| t.definition.clone())
                .collect::<Vec<_>>(),
        )
        .into_response(),
        ["types", id] => match ns.types.get(*id) {
            Some(t) => axum::Json(t.definition.clone()).into_response(),
            None => not_found(omf, format!("type {id:?} does not exist")),
        },
        ["streams"] => axum::Json(
            ns.containers
                .values()
                .filter(|c| !c.deleted)
                .map(|c| json!({"Id": c.def.id, "TypeId": c.def.type_id}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        ["streams", id] => match container(id) {
            Ok(c) => axum::Json(json!({"Id": c.def.id, "TypeId": c.def.type_id})).into_response(),
            Err(r) => *r,
        },
        ["streams", id, "data", "last"] => match container(id) {
            Ok(c) => axum::Json(c.values.last().map(ValueObject::to_json)).into_response(),
            Err(r) => *r,
        },
        ["streams", id, "data", "first"] => match container(id) {
            Ok(c) => axum::Json(c.values.first().map(ValueObject::to_json)).into_response(),
            Err(r) => *r,
        },
        ["streams", id, "data"] => {
            let c = match container(id) {
                Ok(c) => c,
                Err(r) => return *r,
            };
            let param = |name: &str| {
                query
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            };
            let bound = |name: &str| match param(name) {
                None => Ok(None),
                Some(text) => index_of(text).map(Some).ok_or_else(|| {
                    Rejection::bad(format!(
                        "{name} {text:?} is neither a UTC date-time nor an integer"
                    ))
                    .field(name)
                }),
            };
            let (from, to) = match (bound("startIndex"), bound("endIndex")) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(r), _) | (_, Err(r)) => return super::refusal(omf, &r, None),
            };
            let count = match param("count").map(str::parse::<usize>) {
                None => MAX_READ,
                Some(Ok(n)) if (1..=MAX_READ).contains(&n) => n,
                Some(_) => {
                    return super::refusal(
                        omf,
                        &Rejection::bad(format!("count must be 1 to {MAX_READ}")).field("count"),
                        None,
                    );
                }
            };
            let from = from.unwrap_or(Index(i64::MIN));
            let to = to.unwrap_or(Index(i64::MAX));
            if from > to {
                return axum::Json(Vec::<Value>::new()).into_response();
            }
            axum::Json(
                c.values
                    .range(from, to)
                    .take(count)
                    .map(ValueObject::to_json)
                    .collect::<Vec<_>>(),
            )
            .into_response()
        }
        _ => (StatusCode::NOT_FOUND, format!("no such resource: {rest}")).into_response(),
    }
}
