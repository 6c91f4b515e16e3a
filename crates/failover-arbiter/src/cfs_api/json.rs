//! The vendor's JSON, read leniently and written as documented. Requests: an object (a UTF-8
//! byte-order mark before it is skipped), field names matched without regard to case
//! (`FailoverScore` or `failoverScore`), unknown fields ignored (older clients send more), enum
//! values by name (any case) or number, timespans as .NET writes them (`hh:mm:ss`,
//! `d.hh:mm:ss`, a fraction). Answers: the documented field names, roles and overrides as
//! numbers (Secondary 0, Primary 1, PendingPrimary 2; Off 0, Primary 1), times as ISO 8601 UTC.

use std::time::Duration;

use failover_core::{
    Mode, Role,
    limits::{self, MAX_FAILOVER_TIMEOUT, MAX_SCORE, MIN_FAILOVER_TIMEOUT},
    timespan::parse_timespan,
};
use serde_json::{Map, Value};

use crate::pull::PullHeartbeat;

/// A request the API cannot take, and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// The field (None: the body as a whole).
    pub field: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> BadRequest {
    BadRequest {
        field: Some(field.to_string()),
        message: message.into(),
    }
}

/// A request body: a JSON object.
#[derive(Debug)]
pub struct Body(Map<String, Value>);

/// Reads a body as a JSON object (a byte-order mark before it is skipped).
pub fn parse_body(bytes: &[u8], example: &str) -> Result<Body, BadRequest> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let whole = |message: String| BadRequest {
        field: None,
        message,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(whole(format!(
            "the body is empty; send a JSON object like {example}"
        )));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Body(map)),
        Ok(_) => Err(whole(format!(
            "the body must be a JSON object like {example}"
        ))),
        Err(e) => Err(whole(format!(
            "the body is not valid JSON ({e}); send an object like {example}"
        ))),
    }
}

impl Body {
    /// A field, by name without regard to case (the first of `names` present).
    fn get(&self, names: &[&str]) -> Option<(&str, &Value)> {
        names.iter().find_map(|name| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(k, v)| (k.as_str(), v))
        })
    }

    /// The fields' names, as sent.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// A field's value, by name without regard to case.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.get(&[name]).map(|(_, v)| v)
    }

    /// A string field; null counts as absent.
    fn string(&self, name: &str) -> Result<Option<String>, BadRequest> {
        match self.get(&[name]) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.clone())),
            Some((k, other)) => Err(bad(k, format!("{k}: {other} must be a string"))),
        }
    }

    /// An object field, kept as given (AdditionalData).
    fn object(&self, name: &str) -> Result<Option<Value>, BadRequest> {
        match self.get(&[name]) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, v @ Value::Object(_))) => Ok(Some(v.clone())),
            Some((k, other)) => Err(bad(k, format!("{k}: {other} must be an object"))),
        }
    }

    /// A timespan field.
    fn timespan(&self, name: &str) -> Result<Option<Duration>, BadRequest> {
        match self.get(&[name]) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((k, Value::String(t))) => parse_timespan(t)
                .map(Some)
                .map_err(|e| bad(k, format!("{k}: {e}"))),
            Some((k, other)) => Err(bad(
                k,
                format!("{k}: {other} must be a timespan string such as \"00:01:00\""),
            )),
        }
    }
}

/// A group to create: its id, settings and AdditionalData.
pub fn group_request(
    body: &Body,
) -> Result<(String, failover_core::group::GroupSettings, Option<Value>), BadRequest> {
    let id = body.string("Id")?.ok_or_else(|| {
        bad(
            "Id",
            "Id: required; the failover group's id (the adapters' failoverGroupId)",
        )
    })?;
    limits::check_id("Id", &id).map_err(|e| bad("Id", e))?;
    let name = body.string("Name")?;
    let description = body.string("Description")?;
    for (field, v) in [("Name", &name), ("Description", &description)] {
        if let Some(v) = v {
            limits::check_text(field, v).map_err(|e| bad(field, e))?;
        }
    }
    let timeout = body.timespan("FailoverTimeout")?.ok_or_else(|| {
        bad(
            "FailoverTimeout",
            "FailoverTimeout: required; a timespan such as \"00:01:00\"",
        )
    })?;
    if !(MIN_FAILOVER_TIMEOUT..=MAX_FAILOVER_TIMEOUT).contains(&timeout) {
        return Err(bad(
            "FailoverTimeout",
            format!(
                "FailoverTimeout: must be {} to {}",
                failover_core::timespan::format_timespan(MIN_FAILOVER_TIMEOUT),
                failover_core::timespan::format_timespan(MAX_FAILOVER_TIMEOUT)
            ),
        ));
    }
    let settings = failover_core::group::GroupSettings {
        name: name.filter(|n| !n.is_empty()),
        description: description.filter(|d| !d.is_empty()),
        failover_timeout: timeout,
    };
    Ok((id, settings, body.object("AdditionalData")?))
}

/// A session to register: its id, name (the id when none is given) and AdditionalData.
pub fn session_request(body: &Body) -> Result<(String, String, Option<Value>), BadRequest> {
    let id = body.string("Id")?.ok_or_else(|| {
        bad(
            "Id",
            "Id: required; the client's own session id (a GUID, say), the same at every retry",
        )
    })?;
    limits::check_id("Id", &id).map_err(|e| bad("Id", e))?;
    let name = body
        .string("Name")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.clone());
    limits::check_id("Name", &name).map_err(|e| bad("Name", e))?;
    Ok((id, name, body.object("AdditionalData")?))
}

/// A heartbeat. `FailoverScore` (or the older `FailoverStatus`) is a number 0 to 100, or such a
/// number in a string; a fraction is rounded, and a score above 0 never rounds down to 0 (0
/// means "collects nothing"). `LastDataProcessedTime` (the vendor's adapters send it) is a UTC
/// time, with `Z`, `+00:00` or no zone. failover-lab's adapters add `Mode`, `KnownEpoch`,
/// `ClaimsPrimary` and `Watermark` (`[[stream, seq], ...]`).
pub fn heartbeat_request(body: &Body) -> Result<PullHeartbeat, BadRequest> {
    let (k, v) = body
        .get(&["FailoverScore", "FailoverStatus"])
        .ok_or_else(|| {
            bad(
                "FailoverScore",
                "FailoverScore: required; a number from 0 to 100",
            )
        })?;
    let value = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite() && (0.0..=f64::from(MAX_SCORE)).contains(x))
    .ok_or_else(|| bad(k, format!("{k}: {v} must be a number from 0 to 100")))?;
    // In range, so the cast is exact after rounding.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let mut score = value.round() as u32;
    if score == 0 && value > 0.0 {
        score = 1;
    }
    let mode = match body.get(&["Mode"]) {
        None | Some((_, Value::Null)) => None,
        Some((k, Value::String(m))) => Some(m.parse::<Mode>().map_err(|_| {
            bad(
                k,
                format!("{k}: {m:?} is not a mode; use Hot, Warm or Cold"),
            )
        })?),
        Some((k, other)) => return Err(bad(k, format!("{k}: {other} must be a string"))),
    };
    let known_epoch = match body.get(&["KnownEpoch"]) {
        None | Some((_, Value::Null)) => 0,
        Some((k, v)) => {
            let e = v
                .as_u64()
                .ok_or_else(|| bad(k, format!("{k}: {v} must be a whole number")))?;
            limits::check_epoch(k, e).map_err(|m| bad(k, m))?;
            e
        }
    };
    let fenced_out_epoch = match body.get(&["FencedOutEpoch"]) {
        None | Some((_, Value::Null)) => 0,
        Some((k, v)) => {
            let e = v
                .as_u64()
                .ok_or_else(|| bad(k, format!("{k}: {v} must be a whole number")))?;
            limits::check_epoch(k, e).map_err(|m| bad(k, m))?;
            e
        }
    };
    let claims_primary = match body.get(&["ClaimsPrimary"]) {
        None | Some((_, Value::Null)) => false,
        Some((k, v)) => v
            .as_bool()
            .ok_or_else(|| bad(k, format!("{k}: {v} must be true or false")))?,
    };
    let watermark = match body.get(&["Watermark"]) {
        None | Some((_, Value::Null)) => None,
        Some((k, Value::Array(pairs))) => {
            if pairs.len() > limits::MAX_WATERMARK_STREAMS {
                return Err(bad(k, format!("{k}: lists too many streams")));
            }
            let pair = |p: &Value| -> Option<(u32, u64)> {
                let p = p.as_array()?;
                match p.as_slice() {
                    [s, q] => Some((u32::try_from(s.as_u64()?).ok()?, q.as_u64()?)),
                    _ => None,
                }
            };
            Some(
                pairs
                    .iter()
                    .map(|p| {
                        pair(p).ok_or_else(|| {
                            bad(
                                k,
                                format!("{k}: {p} must be a [stream, seq] pair of whole numbers"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
        Some((k, other)) => return Err(bad(k, format!("{k}: {other} must be an array"))),
    };
    let holds_data_since_ms = match body.get(&["HoldsDataSince"]) {
        None | Some((_, Value::Null)) => None,
        Some((k, v)) => Some(v.as_i64().filter(|ms| *ms > 0).ok_or_else(|| {
            bad(
                k,
                format!("{k}: {v} must be a positive whole number (unix milliseconds)"),
            )
        })?),
    };
    let last_data_processed_ms = match body.get(&["LastDataProcessedTime"]) {
        None | Some((_, Value::Null)) => None,
        Some((k, Value::String(t))) => Some(
            failover_core::clock_time::parse_dotnet_utc_ms(t)
                .map_err(|e| bad(k, format!("{k}: {e}")))?,
        ),
        Some((k, other)) => {
            return Err(bad(
                k,
                format!("{k}: {other} must be a UTC time in a string"),
            ));
        }
    };
    Ok(PullHeartbeat {
        last_data_processed_ms,
        score,
        mode,
        known_epoch,
        claims_primary,
        watermark,
        holds_data_since_ms,
        fenced_out_epoch,
    })
}

/// An override: `Value` Primary (1), Secondary, or Off (0; ends it), and an optional
/// `ExpirationPeriod` for a forced role. Secondary is in the vendor's guide but not in its API
/// reference's enum; it is taken (it forces a member Secondary) and shown as 2.
pub fn override_request(body: &Body) -> Result<(Option<Role>, Option<Duration>), BadRequest> {
    let (k, v) = body.get(&["Value"]).ok_or_else(|| {
        bad(
            "Value",
            "Value: required; \"Primary\", \"Secondary\" or \"Off\"",
        )
    })?;
    let role = match v {
        Value::String(s) if s.eq_ignore_ascii_case("primary") => Some(Role::Primary),
        Value::String(s) if s.eq_ignore_ascii_case("secondary") => Some(Role::Secondary),
        Value::String(s) if s.eq_ignore_ascii_case("off") => None,
        Value::Number(n) if n.as_u64() == Some(1) => Some(Role::Primary),
        Value::Number(n) if n.as_u64() == Some(0) => None,
        Value::Number(n) if n.as_u64() == Some(2) => Some(Role::Secondary),
        other => {
            return Err(bad(
                k,
                format!(
                    "{k}: {other} is not accepted; use \"Primary\" (1), \"Secondary\" or \"Off\" (0)"
                ),
            ));
        }
    };
    let expiration = match body.timespan("ExpirationPeriod")? {
        Some(d) if d.is_zero() => {
            return Err(bad(
                "ExpirationPeriod",
                "ExpirationPeriod: must be above 00:00:00 (leave it out for no expiration)",
            ));
        }
        // Only a forced role expires; with Off it means nothing.
        d => d.filter(|_| role.is_some()),
    };
    Ok((role, expiration))
}

/// The vendor's log levels, lowest first, and the filter each sets.
pub const LOG_LEVELS: [(&str, &str); 6] = [
    ("Verbose", "trace"),
    ("Debug", "debug"),
    ("Information", "info"),
    ("Warning", "warn"),
    ("Error", "error"),
    ("Fatal", "error"),
];

/// `{"LogLevel": "Information"}`: the filter directive to set.
pub fn log_level_request(body: &Body) -> Result<(&'static str, &'static str), BadRequest> {
    let level = body.string("LogLevel")?.ok_or_else(|| {
        bad(
            "LogLevel",
            "LogLevel: required; Verbose, Debug, Information, Warning, Error or Fatal",
        )
    })?;
    LOG_LEVELS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&level))
        .copied()
        .ok_or_else(|| {
            bad(
                "LogLevel",
                format!("LogLevel: {level:?} is not a level; use Verbose, Debug, Information, Warning, Error or Fatal"),
            )
        })
}

/// The vendor's name of the log level a filter directive sets (`info` -> Information).
pub fn log_level_name(directive: &str) -> &'static str {
    LOG_LEVELS
        .iter()
        .find(|(_, d)| *d == directive)
        .map_or("Information", |(name, _)| name)
}

/// Unix milliseconds as the vendor writes times.
pub fn time(unix_ms: i64) -> Value {
    Value::String(failover_core::clock_time::format_utc_ms(unix_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Body {
        parse_body(text.as_bytes(), "{}").expect("object")
    }

    #[test]
    fn requests_are_read_as_the_vendor_documents_them() {
        let (id, settings, extra) = group_request(&body(
            r#"{"Id":"g","Name":"n","Description":"d","FailoverTimeout":"0.00:01:00","AdditionalData":{"a":1}}"#,
        ))
        .expect("group");
        assert_eq!(id, "g");
        assert_eq!(settings.failover_timeout, Duration::from_secs(60));
        assert_eq!(extra, Some(serde_json::json!({"a":1})));
        // camelCase, a byte-order mark, null optional fields.
        let b = parse_body(
            b"\xEF\xBB\xBF{\"id\":\"g\",\"name\":null,\"failoverTimeout\":\"00:00:02\"}",
            "{}",
        )
        .expect("bom");
        assert_eq!(group_request(&b).expect("group").1.name, None);
        assert_eq!(
            group_request(&body(r#"{"Id":"g","FailoverTimeout":"00:00:00.01"}"#))
                .unwrap_err()
                .field
                .as_deref(),
            Some("FailoverTimeout")
        );
        assert_eq!(
            heartbeat_request(&body(r#"{"FailoverScore":100}"#))
                .expect("hb")
                .score,
            100
        );
        assert_eq!(
            heartbeat_request(&body(r#"{"failoverStatus":"95"}"#))
                .expect("hb")
                .score,
            95
        );
        assert_eq!(
            heartbeat_request(&body(r#"{"FailoverScore":0.2}"#))
                .expect("hb")
                .score,
            1
        );
        assert!(heartbeat_request(&body(r#"{"FailoverScore":101}"#)).is_err());
        assert!(heartbeat_request(&body(r#"{}"#)).is_err());
        assert!(
            heartbeat_request(&body(
                r#"{"FailoverScore":100,"KnownEpoch":18446744073709551615}"#
            ))
            .is_err(),
            "an epoch that would overflow the next promotion"
        );
        assert_eq!(
            override_request(&body(
                r#"{"Value":"Primary","ExpirationPeriod":"08:00:00"}"#
            ))
            .expect("ov"),
            (Some(Role::Primary), Some(Duration::from_secs(8 * 3600)))
        );
        assert_eq!(
            override_request(&body(r#"{"Value":"Off"}"#)).expect("off"),
            (None, None)
        );
        assert_eq!(
            override_request(&body(r#"{"Value":0}"#)).expect("0"),
            (None, None)
        );
        assert!(override_request(&body(r#"{"Value":"Maybe"}"#)).is_err());
        assert_eq!(
            log_level_request(&body(r#"{"LogLevel":"verbose"}"#))
                .expect("lvl")
                .1,
            "trace"
        );
        assert!(parse_body(b"[1]", "{}").is_err());
        assert!(parse_body(b"", "{}").is_err());
    }
}
