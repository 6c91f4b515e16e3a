//! The ClientFailover document (the vendor's `ConfigureClientFailover.json`) and the adapter's
//! data source settings: parsing, validation with messages that name the field and the accepted
//! values, JSON merge patches, and a public view that never shows a secret.

use std::{fmt, str::FromStr, time::Duration};

use serde_json::{Map, Value};

use crate::timespan::{format_timespan, parse_timespan};

pub use crate::limits::{MAX_FAILOVER_TIMEOUT, MAX_ID_LEN, MAX_TEXT_LEN, MIN_FAILOVER_TIMEOUT};

/// Hot, Warm or Cold standby (see docs/rules.md, B10-B12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The Secondary collects and buffers; it egresses its buffer when promoted.
    Hot,
    /// The Secondary only tests its source connection; it collects once promoted.
    Warm,
    /// The Secondary does not touch the source (score 1); it connects once promoted.
    Cold,
}

impl Mode {
    /// Every mode, in documentation order.
    pub const ALL: [Mode; 3] = [Mode::Hot, Mode::Warm, Mode::Cold];

    /// The exact spelling the document uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hot => "Hot",
            Mode::Warm => "Warm",
            Mode::Cold => "Cold",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a mode name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a mode; mode is case-sensitive and must be exactly \"Hot\", \"Warm\" or \"Cold\""
)]
pub struct ModeError(pub String);

impl FromStr for Mode {
    type Err = ModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ModeError(s.chars().take(40).collect()))
    }
}

/// How the adapter collects from its data source (the vendor's `dataCollectionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataCollectionMode {
    /// Live values only.
    #[default]
    CurrentOnly,
    /// Only on-demand history recoveries; no live values.
    HistoryOnly,
    /// Live values plus a backfill of what was missed (acts as CurrentOnly under failover).
    CurrentWithBackfill,
}

impl DataCollectionMode {
    /// Every collection mode.
    pub const ALL: [DataCollectionMode; 3] = [
        DataCollectionMode::CurrentOnly,
        DataCollectionMode::HistoryOnly,
        DataCollectionMode::CurrentWithBackfill,
    ];

    /// The exact spelling the document uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DataCollectionMode::CurrentOnly => "CurrentOnly",
            DataCollectionMode::HistoryOnly => "HistoryOnly",
            DataCollectionMode::CurrentWithBackfill => "CurrentWithBackfill",
        }
    }

    /// What the adapter really does: with failover configured, CurrentWithBackfill acts as
    /// CurrentOnly (Doc).
    pub fn effective(self, failover_configured: bool) -> DataCollectionMode {
        match self {
            DataCollectionMode::CurrentWithBackfill if failover_configured => {
                DataCollectionMode::CurrentOnly
            }
            other => other,
        }
    }
}

impl fmt::Display for DataCollectionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataCollectionMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataCollectionMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                ConfigError::new(
                    "dataCollectionMode",
                    format!(
                        "{:?} is not accepted; use \"CurrentOnly\", \"HistoryOnly\" or \"CurrentWithBackfill\"",
                        s.chars().take(40).collect::<String>()
                    ),
                )
            })
    }
}

/// A secret string: shown as `***` by Debug and never serialised by [`ClientFailoverConfig::to_public_json`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A refused document: which field, and what is wrong and accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field at fault (`document` for the document as a whole).
    pub field: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl ConfigError {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A valid ClientFailover document.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFailoverConfig {
    /// Adapters with the same id form a failover pair.
    pub failover_group_id: String,
    /// Free text, fixed once the group exists.
    pub name: Option<String>,
    /// Free text, fixed once the group exists.
    pub description: Option<String>,
    /// A session without a heartbeat for longer than this is stale; heartbeats go every half.
    pub failover_timeout: Duration,
    /// Hot, Warm or Cold.
    pub mode: Mode,
    /// URL of the failover service (http or https); or several, comma-separated, of failover
    /// services that share an etcd store (failover-lab's extension: see
    /// [`ClientFailoverConfig::failover_services`]).
    pub endpoint: String,
    /// Basic authentication to the failover service.
    pub username: Option<String>,
    /// Basic authentication to the failover service.
    pub password: Option<Secret>,
    /// Bearer authentication (client credentials).
    pub client_id: Option<String>,
    /// Bearer authentication (client credentials).
    pub client_secret: Option<Secret>,
    /// Where bearer tokens come from; None means the well-known default.
    pub token_endpoint: Option<String>,
    /// False skips TLS server-certificate checks.
    pub validate_endpoint_certificate: bool,
}

const FIELDS: [&str; 12] = [
    "failoverGroupId",
    "name",
    "description",
    "failoverTimeout",
    "mode",
    "endpoint",
    "username",
    "password",
    "clientId",
    "clientSecret",
    "tokenEndpoint",
    "validateEndpointCertificate",
];

/// Looks up fields by name, ignoring case as the vendor's adapters do, and refuses unknown ones.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn check_known(&self, known: &[&str]) -> Result<(), ConfigError> {
        for key in self.0.keys() {
            if !known.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                let key: String = key.chars().take(60).collect();
                return Err(ConfigError::new(
                    key,
                    format!(
                        "unknown field; the accepted fields are {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    fn text(&self, name: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() > MAX_TEXT_LEN => Err(ConfigError::new(
                name,
                format!("longer than {MAX_TEXT_LEN} characters"),
            )),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ConfigError::new(
                name,
                format!("must be a string, not {}", json_kind(other)),
            )),
        }
    }

    fn required_text(&self, name: &str, what: &str) -> Result<&'a str, ConfigError> {
        match self.text(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ConfigError::new(name, format!("must not be empty; {what}"))),
            None => Err(ConfigError::new(name, format!("is required; {what}"))),
        }
    }

    fn bool_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(ConfigError::new(
                name,
                format!("must be true or false, not {}", json_kind(other)),
            )),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that `text` is an absolute http or https URL with a host.
pub fn validate_http_url(field: &str, text: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(text).map_err(|e| {
        ConfigError::new(
            field,
            format!("{text:?} is not a URL ({e}); expected http://host:port or https://host:port"),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the URL: it holds a secret.
        return Err(ConfigError::new(
            field,
            "must not hold credentials (user:password@); give them as username and password",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            field,
            format!("{text:?} must be an http or https URL with a host"),
        ));
    }
    Ok(())
}

/// The first key that appears twice in one object of a JSON text (matched without regard to
/// case, as the fields are), found while reading it.
#[derive(Debug)]
struct DuplicateKey(Option<String>);

impl<'de> serde::Deserialize<'de> for DuplicateKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DuplicateKeyVisitor)
    }
}

struct DuplicateKeyVisitor;

impl<'de> serde::de::Visitor<'de> for DuplicateKeyVisitor {
    type Value = DuplicateKey;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<DuplicateKey, E> {
        Ok(DuplicateKey(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<DuplicateKey, E> {
        Ok(DuplicateKey(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<DuplicateKey, E> {
        Ok(DuplicateKey(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<DuplicateKey, E> {
        Ok(DuplicateKey(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<DuplicateKey, E> {
        Ok(DuplicateKey(None))
    }
    fn visit_unit<E>(self) -> Result<DuplicateKey, E> {
        Ok(DuplicateKey(None))
    }
    fn visit_none<E>(self) -> Result<DuplicateKey, E> {
        Ok(DuplicateKey(None))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<DuplicateKey, A::Error> {
        let mut found = None;
        while let Some(DuplicateKey(d)) = a.next_element::<DuplicateKey>()? {
            found = found.or(d);
        }
        Ok(DuplicateKey(found))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<DuplicateKey, A::Error> {
        let mut seen = std::collections::HashSet::new();
        let mut found = None;
        while let Some(key) = a.next_key::<String>()? {
            let DuplicateKey(inner) = a.next_value::<DuplicateKey>()?;
            if !seen.insert(key.to_ascii_lowercase()) {
                found = found.or(Some(key));
            }
            found = found.or(inner);
        }
        Ok(DuplicateKey(found))
    }
}

/// Parses a JSON text into an object, naming the document when it is not one, and a key that
/// appears twice (`"mode":"Hot","mode":"Cold"`, or `"mode"` and `"Mode"`): JSON readers
/// disagree on which one wins, so neither is taken.
pub fn parse_json_object(text: &str) -> Result<Map<String, Value>, ConfigError> {
    // A UTF-8 byte-order mark, as Windows editors save it, is no part of the document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Ok(DuplicateKey(Some(key))) = serde_json::from_str::<DuplicateKey>(text) {
        return Err(ConfigError::new(
            key.chars().take(80).collect::<String>(),
            "appears twice in one object (keys are matched without regard to case); give it once",
        ));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError::new(
            "document",
            format!("must be a JSON object, not {}", json_kind(&other)),
        )),
        Err(e) => Err(ConfigError::new(
            "document",
            format!("is not valid JSON: {e}"),
        )),
    }
}

impl ClientFailoverConfig {
    /// The failover services to heartbeat to, in the order tried: the endpoint, or each URL of
    /// a comma-separated list (failover-lab's extension, for services sharing an etcd store:
    /// one leads; the others refuse, naming it, and the adapter moves on).
    pub fn failover_services(&self) -> Vec<&str> {
        self.endpoint.split(',').map(str::trim).collect()
    }

    /// Parses and validates a document's text: an object, or (as the vendor's newer pages show
    /// it) an array holding one.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let bare = text.strip_prefix('\u{feff}').unwrap_or(text);
        if bare.trim_start().starts_with('[') {
            let items: Vec<Value> = serde_json::from_str(bare)
                .map_err(|e| ConfigError::new("document", format!("is not valid JSON: {e}")))?;
            return match items.as_slice() {
                [one] => Self::from_json(&one.to_string()),
                [] => Err(ConfigError::new(
                    "document",
                    "is an empty array; send the ClientFailover object (or an array holding it)",
                )),
                _ => Err(ConfigError::new(
                    "document",
                    format!(
                        "is an array of {} documents; send one JSON object (an adapter joins one failover group), or an array holding one",
                        items.len()
                    ),
                )),
            };
        }
        Self::from_map(&parse_json_object(bare)?)
    }

    /// Validates a parsed document.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ConfigError> {
        let f = Fields(map);
        f.check_known(&FIELDS)?;
        let failover_group_id = f
            .required_text(
                "failoverGroupId",
                "adapters with the same failoverGroupId form a failover pair",
            )?
            .to_string();
        crate::limits::check_id("failoverGroupId", &failover_group_id)
            .map_err(|e| ConfigError::new("failoverGroupId", e))?;
        let timeout_text = f.required_text(
            "failoverTimeout",
            "a timespan hh:mm:ss such as \"00:01:00\"",
        )?;
        let failover_timeout = parse_timespan(timeout_text)
            .map_err(|e| ConfigError::new("failoverTimeout", e.to_string()))?;
        if failover_timeout < MIN_FAILOVER_TIMEOUT || failover_timeout > MAX_FAILOVER_TIMEOUT {
            return Err(ConfigError::new(
                "failoverTimeout",
                format!(
                    "{timeout_text:?} is out of range; accepted from {} to {}",
                    format_timespan(MIN_FAILOVER_TIMEOUT),
                    format_timespan(MAX_FAILOVER_TIMEOUT)
                ),
            ));
        }
        let mode_text = f.required_text("mode", "exactly \"Hot\", \"Warm\" or \"Cold\"")?;
        let mode: Mode = mode_text
            .parse()
            .map_err(|e: ModeError| ConfigError::new("mode", e.to_string()))?;
        let endpoint = f
            .required_text("endpoint", "the http or https URL of the failover service")?
            .to_string();
        let services: Vec<&str> = endpoint.split(',').map(str::trim).collect();
        if services.len() > 1 && services.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::new(
                "endpoint",
                "a list of failover services is URLs separated by single commas, none empty",
            ));
        }
        for service in services {
            validate_http_url("endpoint", service)?;
        }
        let token_endpoint = f.text("tokenEndpoint")?.map(str::to_string);
        if let Some(t) = &token_endpoint {
            validate_http_url("tokenEndpoint", t)?;
        }
        let username = f.text("username")?.map(str::to_string);
        let password = f.text("password")?.map(Secret::new);
        if password.is_some() && username.is_none() {
            return Err(ConfigError::new(
                "username",
                "is required when a password is given (basic authentication)",
            ));
        }
        let client_id = f.text("clientId")?.map(str::to_string);
        let client_secret = f.text("clientSecret")?.map(Secret::new);
        if client_secret.is_some() != client_id.is_some() {
            return Err(ConfigError::new(
                if client_id.is_some() {
                    "clientSecret"
                } else {
                    "clientId"
                },
                "clientId and clientSecret go together (bearer authentication)",
            ));
        }
        Ok(ClientFailoverConfig {
            failover_group_id,
            name: f.text("name")?.map(str::to_string),
            description: f.text("description")?.map(str::to_string),
            failover_timeout,
            mode,
            endpoint,
            username,
            password,
            client_id,
            client_secret,
            token_endpoint,
            validate_endpoint_certificate: f.bool_or("validateEndpointCertificate", true)?,
        })
    }

    /// Heartbeat interval: failoverTimeout / 2 (Doc).
    pub fn heartbeat_interval(&self) -> Duration {
        self.failover_timeout / 2
    }

    /// The whole document, secrets included, for merging a PATCH onto.
    pub fn to_full_json(&self) -> Map<String, Value> {
        let mut map = self.to_public_json();
        if let Some(p) = &self.password {
            map.insert("password".into(), Value::String(p.expose().into()));
        }
        if let Some(s) = &self.client_secret {
            map.insert("clientSecret".into(), Value::String(s.expose().into()));
        }
        map
    }

    /// The document as GET shows it: every field but the password and client secret.
    pub fn to_public_json(&self) -> Map<String, Value> {
        let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        let mut map = Map::new();
        map.insert(
            "failoverGroupId".into(),
            self.failover_group_id.clone().into(),
        );
        map.insert("name".into(), opt(&self.name));
        map.insert("description".into(), opt(&self.description));
        map.insert(
            "failoverTimeout".into(),
            format_timespan(self.failover_timeout).into(),
        );
        map.insert("mode".into(), self.mode.as_str().into());
        map.insert("endpoint".into(), self.endpoint.clone().into());
        map.insert("username".into(), opt(&self.username));
        map.insert("clientId".into(), opt(&self.client_id));
        map.insert("tokenEndpoint".into(), opt(&self.token_endpoint));
        map.insert(
            "validateEndpointCertificate".into(),
            self.validate_endpoint_certificate.into(),
        );
        map
    }
}

/// Applies a JSON merge patch (RFC 7396) to `target`.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        // Patch keys replace existing keys that differ only in case.
        let existing = target.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned();
        if let Some(old) = &existing
            && old != key
            && let Some(v) = target.remove(old)
        {
            target.insert(key.clone(), v);
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let entry = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge_patch(t, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The adapter's data source settings (a subset of a real adapter's DataSource document).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataSourceConfig {
    /// How the adapter collects.
    pub data_collection_mode: DataCollectionMode,
}

impl DataSourceConfig {
    /// Parses and validates a DataSource document.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ConfigError> {
        let f = Fields(map);
        f.check_known(&["dataCollectionMode"])?;
        let data_collection_mode = match f.text("dataCollectionMode")? {
            None => DataCollectionMode::default(),
            Some(text) => text.parse()?,
        };
        Ok(DataSourceConfig {
            data_collection_mode,
        })
    }

    /// The document as GET shows it.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(
            "dataCollectionMode".into(),
            self.data_collection_mode.as_str().into(),
        );
        map
    }
}

/// The warning the vendor gives when failover and HistoryOnly meet (Doc).
pub const HISTORY_ONLY_WARNING: &str = "dataCollectionMode is HistoryOnly: on-demand history \
recovery started on this adapter will not be completed by the other adapter after a failover";

/// Warnings for a combination of failover and data source settings.
pub fn failover_warnings(
    failover: Option<&ClientFailoverConfig>,
    source: &DataSourceConfig,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if failover.is_some() {
        match source.data_collection_mode {
            DataCollectionMode::HistoryOnly => warnings.push(HISTORY_ONLY_WARNING.to_string()),
            DataCollectionMode::CurrentWithBackfill => warnings.push(
                "dataCollectionMode is CurrentWithBackfill: with failover configured the adapter \
                 behaves as CurrentOnly and does not backfill"
                    .to_string(),
            ),
            DataCollectionMode::CurrentOnly => {}
        }
    }
    if let Some(f) = failover
        && f.failover_services()
            .iter()
            .any(|s| s.starts_with("https:"))
        && !f.validate_endpoint_certificate
    {
        warnings.push(UNCHECKED_CERTIFICATE_WARNING.to_string());
    }
    warnings
}

/// The warning of an https endpoint whose certificate is not validated.
pub const UNCHECKED_CERTIFICATE_WARNING: &str = "validateEndpointCertificate is false: the failover \
    service's certificate is not checked, so the connection is encrypted but the service is not \
    authenticated";

#[cfg(test)]
mod tests;
