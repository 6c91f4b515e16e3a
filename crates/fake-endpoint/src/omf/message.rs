//! OMF message bodies, read and checked before anything is stored: type definitions, container
//! definitions and data values. Every problem is a [`Rejection`] naming the message's index in
//! the body's array and the field at fault, so a request is answered 400 whole and nothing of it
//! is kept.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The header `messagetype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Type,
    Container,
    Data,
}

/// The header `action` (default create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// Why a request is refused, and which answer it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 400, 409, 413, ...
    pub status: u16,
    /// What is wrong, in words.
    pub reason: String,
    /// The message's index in the body's array, when one message is at fault.
    pub message_index: Option<usize>,
    /// The field at fault (`properties.Value.type`, `values[3].Timestamp`, a header's name).
    pub field: Option<String>,
}

impl Rejection {
    pub fn bad(reason: impl Into<String>) -> Self {
        Rejection {
            status: 400,
            reason: reason.into(),
            message_index: None,
            field: None,
        }
    }

    pub fn at(mut self, index: usize, field: impl Into<String>) -> Self {
        self.message_index = Some(index);
        self.field = Some(field.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

/// The kind of value a type's property holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Number,
    Boolean,
    String,
    DateTime,
    Array,
    Object,
}

/// One property of a type.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub kind: Kind,
    pub nullable: bool,
    pub is_index: bool,
}

/// Whether a type describes time series (containers) or static data (assets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    Dynamic,
    Static,
}

/// A type definition.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDef {
    pub id: String,
    pub classification: Classification,
    pub properties: BTreeMap<String, Property>,
    /// The index property (one; compound indexes are refused).
    pub index: Option<String>,
    /// The definition as sent, for reading back.
    pub definition: Value,
}

/// A container definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerDef {
    pub id: String,
    pub type_id: String,
    /// The definition as sent, for reading back.
    pub definition: Value,
}

/// A data message: values for a container, or static values of a type.
#[derive(Debug, Clone, PartialEq)]
pub struct DataMessage {
    pub container_id: Option<String>,
    pub type_id: Option<String>,
    pub values: Vec<ValueObject>,
}

/// One data value as sent: its properties in the order sent. Built straight from the JSON
/// (no map per value: a data body holds many small objects).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValueObject(pub Vec<(Key, Value)>);

/// A property's name in a value: shared by every value that names it (a body repeats the same
/// few names thousands of times).
pub type Key = std::sync::Arc<str>;

thread_local! {
    /// The names met lately on this thread, handed out again instead of copied.
    static KEYS: std::cell::RefCell<Vec<Key>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The shared name for `name`.
fn key(name: &str) -> Key {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some(k) = keys.iter().find(|k| &***k == name) {
            return k.clone();
        }
        let k: Key = name.into();
        if keys.len() >= 64 {
            keys.remove(0);
        }
        keys.push(k.clone());
        k
    })
}

impl ValueObject {
    /// A property's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| &**k == name).map(|(_, v)| v)
    }

    /// As a JSON object, for reading back.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
}

impl From<Map<String, Value>> for ValueObject {
    fn from(m: Map<String, Value>) -> Self {
        ValueObject(m.into_iter().map(|(k, v)| (key(&k), v)).collect())
    }
}

/// A name as the JSON holds it: borrowed from the body when it can be.
struct Name<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a property name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl<'de> serde::Deserialize<'de> for ValueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ValueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a value object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ValueObject, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(2));
                while let Some((name, value)) = map.next_entry::<Name<'de>, Value>()? {
                    out.push((key(&name.0), value));
                }
                Ok(ValueObject(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A data message as the fast reader takes it.
struct RawData {
    container_id: Option<String>,
    type_id: Option<String>,
    values: Option<Vec<ValueObject>>,
}

impl<'de> serde::Deserialize<'de> for RawData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawData;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a data message")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawData, A::Error> {
                let mut raw = RawData {
                    container_id: None,
                    type_id: None,
                    values: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    // Keywords in any case; a key twice is left to the careful reader.
                    let slot_taken = match key.to_ascii_lowercase().as_str() {
                        "containerid" => raw.container_id.replace(map.next_value()?).is_some(),
                        "typeid" => raw.type_id.replace(map.next_value()?).is_some(),
                        "values" => raw.values.replace(map.next_value()?).is_some(),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            false
                        }
                    };
                    if slot_taken {
                        return Err(serde::de::Error::custom("a key twice"));
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Reads a data body straight into data messages: the usual case, fast. None when the body is
/// not a well-formed array of data messages; the careful reader ([`data`] over the body as
/// JSON) then names what is wrong.
pub fn data_fast(json: &[u8]) -> Option<Vec<DataMessage>> {
    let raw: Vec<RawData> = serde_json::from_slice(json).ok()?;
    raw.into_iter()
        .map(|r| {
            let ok = |id: &Option<String>| {
                id.as_deref().is_none_or(|t| {
                    !t.is_empty() && failover_core::limits::check_id("id", t).is_ok()
                })
            };
            (ok(&r.container_id)
                && ok(&r.type_id)
                && (r.container_id.is_some() || r.type_id.is_some()))
            .then_some(DataMessage {
                container_id: r.container_id,
                type_id: r.type_id,
                values: r.values?,
            })
        })
        .collect()
}

fn object(message: &Value, index: usize) -> Result<&Map<String, Value>, Rejection> {
    message.as_object().ok_or_else(|| {
        Rejection::bad(format!("message {index} is not a JSON object")).at(index, "")
    })
}

fn text<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    index: usize,
    required: bool,
) -> Result<Option<&'a str>, Rejection> {
    match get(m, key) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => {
            Err(Rejection::bad(format!("message {index} has no {key}")).at(index, key))
        }
        Some(Value::String(s)) if s.is_empty() => {
            Err(Rejection::bad(format!("message {index}: {key} is empty")).at(index, key))
        }
        Some(Value::String(s)) => {
            failover_core::limits::check_id(key, s)
                .map_err(|e| Rejection::bad(format!("message {index}: {e}")).at(index, key))?;
            Ok(Some(s))
        }
        Some(_) => {
            Err(Rejection::bad(format!("message {index}: {key} must be a string")).at(index, key))
        }
    }
}

/// A key of an OMF object, found whatever its case (keywords are case-insensitive).
fn get<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn kind_of(type_value: &Value, format: Option<&str>) -> Result<(Kind, bool), String> {
    let names: Vec<String> = match type_value {
        Value::String(s) => vec![s.to_ascii_lowercase()],
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(|| "a type list holds only names".to_string())
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("type must be a name or a list of names".into()),
    };
    let nullable = names.iter().any(|n| n == "null");
    let mut kinds = names.iter().filter(|n| *n != "null");
    let (Some(name), None) = (kinds.next(), kinds.next()) else {
        return Err("type must name one kind (and \"null\" if it may be null)".into());
    };
    let format = format.map(str::to_ascii_lowercase);
    let format = format.as_deref();
    let kind = match (name.as_str(), format) {
        ("integer", None | Some("int64" | "int32" | "int16" | "uint64" | "uint32" | "uint16")) => {
            Kind::Integer
        }
        ("number", None | Some("float64" | "float32" | "float16")) => Kind::Number,
        ("boolean", None) => Kind::Boolean,
        ("string", Some("date-time")) => Kind::DateTime,
        ("string", None) => Kind::String,
        ("array", _) => Kind::Array,
        ("object", _) => Kind::Object,
        (name, Some(f)) => return Err(format!("{name} has no format {f:?}")),
        (name, None) => return Err(format!("{name:?} is not an OMF type")),
    };
    // Strings, arrays and objects may always be null.
    let nullable = nullable || matches!(kind, Kind::String | Kind::Array | Kind::Object);
    Ok((kind, nullable))
}

/// Reads a type message's definitions (for delete, only ids are needed).
pub fn types(body: &[Value], action: Action) -> Result<Vec<TypeDef>, Rejection> {
    body.iter()
        .enumerate()
        .map(|(i, message)| {
            let m = object(message, i)?;
            let id = text(m, "id", i, true)?.unwrap_or_default().to_string();
            if id.starts_with("__") {
                return Err(
                    Rejection::bad(format!("type id {id:?}: ids starting with __ are reserved"))
                        .at(i, "id"),
                );
            }
            if action == Action::Delete {
                return Ok(TypeDef {
                    id,
                    classification: Classification::Dynamic,
                    properties: BTreeMap::new(),
                    index: None,
                    definition: message.clone(),
                });
            }
            match text(m, "type", i, true)? {
                Some(t) if t.eq_ignore_ascii_case("object") => {}
                Some(t) => {
                    return Err(Rejection::bad(format!(
                        "type {id:?}: type must be \"object\", not {t:?}"
                    ))
                    .at(i, "type"));
                }
                None => {}
            }
            let classification = match text(m, "classification", i, true)? {
                Some(c) if c.eq_ignore_ascii_case("dynamic") => Classification::Dynamic,
                Some(c) if c.eq_ignore_ascii_case("static") => Classification::Static,
                other => {
                    return Err(Rejection::bad(format!(
                        "type {id:?}: classification must be \"dynamic\" or \"static\", not {}",
                        other.unwrap_or("")
                    ))
                    .at(i, "classification"));
                }
            };
            let Some(Value::Object(props)) = get(m, "properties") else {
                return Err(Rejection::bad(format!(
                    "type {id:?}: properties must be an object of property definitions"
                ))
                .at(i, "properties"));
            };
            let mut properties = BTreeMap::new();
            let mut indexes = Vec::new();
            for (name, p) in props {
                let field = |f: &str| format!("properties.{name}{f}");
                let Some(p) = p.as_object() else {
                    return Err(Rejection::bad(format!(
                        "type {id:?}: property {name:?} must be an object"
                    ))
                    .at(i, field("")));
                };
                let Some(type_value) = get(p, "type") else {
                    return Err(Rejection::bad(format!(
                        "type {id:?}: property {name:?} has no type (reftypeid is not supported here)"
                    ))
                    .at(i, field(".type")));
                };
                let format = match get(p, "format") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(f)) => Some(f.as_str()),
                    Some(_) => {
                        return Err(Rejection::bad(format!(
                            "type {id:?}: property {name:?}: format must be a string"
                        ))
                        .at(i, field(".format")));
                    }
                };
                let (kind, nullable) = kind_of(type_value, format).map_err(|e| {
                    Rejection::bad(format!("type {id:?}: property {name:?}: {e}"))
                        .at(i, field(".type"))
                })?;
                let is_index = get(p, "isindex").and_then(Value::as_bool) == Some(true);
                if is_index {
                    if classification == Classification::Dynamic
                        && !matches!(kind, Kind::DateTime | Kind::Integer)
                    {
                        return Err(Rejection::bad(format!(
                            "type {id:?}: index {name:?} must be a date-time string or an integer"
                        ))
                        .at(i, field(".isindex")));
                    }
                    indexes.push(name.clone());
                }
                properties.insert(
                    name.clone(),
                    Property {
                        kind,
                        nullable,
                        is_index,
                    },
                );
            }
            if indexes.len() > 1 {
                return Err(Rejection::bad(format!(
                    "type {id:?}: a compound index ({}) is not supported here",
                    indexes.join(", ")
                ))
                .at(i, "properties"));
            }
            let index = indexes.pop();
            if classification == Classification::Dynamic && index.is_none() {
                return Err(Rejection::bad(format!(
                    "type {id:?}: a dynamic type needs one property with \"isindex\": true"
                ))
                .at(i, "properties"));
            }
            Ok(TypeDef {
                id,
                classification,
                properties,
                index,
                definition: message.clone(),
            })
        })
        .collect()
}

/// Reads a container message's definitions.
pub fn containers(body: &[Value]) -> Result<Vec<ContainerDef>, Rejection> {
    body.iter()
        .enumerate()
        .map(|(i, message)| {
            let m = object(message, i)?;
            let id = text(m, "id", i, true)?.unwrap_or_default().to_string();
            let type_id = text(m, "typeid", i, true)?.unwrap_or_default().to_string();
            Ok(ContainerDef {
                id,
                type_id,
                definition: message.clone(),
            })
        })
        .collect()
}

/// Reads a data message's values (checked against their types by the store), taking the
/// body's values without copying them.
pub fn data(body: Vec<Value>) -> Result<Vec<DataMessage>, Rejection> {
    body.into_iter()
        .enumerate()
        .map(|(i, message)| {
            let Value::Object(mut m) = message else {
                return Err(Rejection::bad(format!("message {i} is not a JSON object")).at(i, ""));
            };
            let container_id = text(&m, "containerid", i, false)?.map(str::to_string);
            let type_id = text(&m, "typeid", i, false)?.map(str::to_string);
            if container_id.is_none() && type_id.is_none() {
                return Err(Rejection::bad(format!(
                    "message {i} names neither a containerid nor a typeid"
                ))
                .at(i, "containerid"));
            }
            let key = m
                .keys()
                .find(|k| k.eq_ignore_ascii_case("values"))
                .cloned()
                .unwrap_or_default();
            let Some(Value::Array(values)) = m.remove(&key) else {
                return Err(Rejection::bad(format!(
                    "message {i}: values must be an array of objects"
                ))
                .at(i, "values"));
            };
            let values = values
                .into_iter()
                .enumerate()
                .map(|(j, v)| match v {
                    Value::Object(o) => Ok(ValueObject::from(o)),
                    _ => Err(
                        Rejection::bad(format!("message {i}: values[{j}] is not an object"))
                            .at(i, format!("values[{j}]")),
                    ),
                })
                .collect::<Result<_, _>>()?;
            Ok(DataMessage {
                container_id,
                type_id,
                values,
            })
        })
        .collect()
}

/// An index value: unix milliseconds of a date-time index, or an integer index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Index(pub i64);

/// Checks one value against its type; answers its index (for a dynamic type).
pub fn check_value(
    ty: &TypeDef,
    value: &ValueObject,
    at: (usize, usize),
    action: Action,
) -> Result<Option<Index>, Rejection> {
    let (i, j) = at;
    let mut parsed_index = None;
    for (k, (name, v)) in value.0.iter().enumerate() {
        if value.0[..k].iter().any(|(seen, _)| seen == name) {
            let name: &str = name;
            return Err(Rejection::bad(format!(
                "message {i}: values[{j}] holds {name:?} twice; give it once"
            ))
            .at(i, format!("values[{j}].{name}")));
        }
        let Some(p) = ty.properties.get(&**name) else {
            return Err(Rejection::bad(format!(
                "message {i}: values[{j}].{name} is not a property of type {:?}",
                ty.id
            ))
            .at(i, format!("values[{j}].{name}")));
        };
        if action == Action::Delete && !p.is_index {
            continue; // a delete names indexes only; other fields are ignored
        }
        let fits = match (p.kind, v) {
            (_, Value::Null) => p.nullable && !p.is_index,
            (Kind::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Kind::Number, Value::Number(_)) | (Kind::Boolean, Value::Bool(_)) => true,
            (Kind::String, Value::String(_))
            | (Kind::Array, Value::Array(_))
            | (Kind::Object, Value::Object(_)) => true,
            (Kind::DateTime, Value::String(s)) => {
                match failover_core::clock_time::parse_utc_ms(s) {
                    Ok(ms) => {
                        if p.is_index {
                            parsed_index = Some(ms);
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        };
        if !fits {
            return Err(Rejection::bad(format!(
                "message {i}: values[{j}].{name} = {v} does not fit its type ({:?}{})",
                p.kind,
                if p.nullable { ", or null" } else { "" }
            ))
            .at(i, format!("values[{j}].{name}")));
        }
    }
    let (Some(index), Classification::Dynamic) = (&ty.index, ty.classification) else {
        return Ok(None); // static data (assets): no time index
    };
    let index_value = match (parsed_index, value.get(index)) {
        (Some(ms), _) => Some(ms),
        (None, Some(Value::Number(n))) => n.as_i64(),
        _ => None,
    };
    match index_value {
        Some(ix) => Ok(Some(Index(ix))),
        None => Err(
            Rejection::bad(format!("message {i}: values[{j}] has no index {index:?}"))
                .at(i, format!("values[{j}].{index}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one_type(t: Value) -> Result<TypeDef, Rejection> {
        types(&[t], Action::Create).map(|mut v| v.remove(0))
    }

    #[test]
    fn a_time_series_type_is_read_with_its_index() {
        let t = one_type(
            json!({"id": "T", "type": "object", "classification": "dynamic",
            "properties": {"Timestamp": {"type": "string", "format": "date-time", "isindex": true},
                           "Value": {"type": ["number", "null"], "format": "float64"}}}),
        )
        .expect("valid");
        assert_eq!(t.index.as_deref(), Some("Timestamp"));
        assert!(t.properties["Value"].nullable);
    }

    #[test]
    fn bad_types_name_the_message_and_field() {
        let e = types(
            &[
                json!({"id": "ok", "type": "object", "classification": "static", "properties": {}}),
                json!({"id": "T", "type": "object", "classification": "dynamic",
                       "properties": {"V": {"type": "number", "format": "int64"}}}),
            ],
            Action::Create,
        )
        .expect_err("bad format");
        assert_eq!(
            (e.status, e.message_index, e.field.as_deref()),
            (400, Some(1), Some("properties.V.type"))
        );
        let e = one_type(
            json!({"id": "T", "type": "object", "classification": "dynamic",
            "properties": {"V": {"type": "number"}}}),
        )
        .expect_err("no index");
        assert!(e.reason.contains("isindex"), "{}", e.reason);
        let e = one_type(
            json!({"id": "__T", "type": "object", "classification": "static",
            "properties": {}}),
        )
        .expect_err("reserved");
        assert_eq!(e.field.as_deref(), Some("id"));
    }

    #[test]
    fn values_must_fit_their_type() {
        let t = one_type(
            json!({"id": "T", "type": "object", "classification": "dynamic",
            "properties": {"Timestamp": {"type": "string", "format": "date-time", "isindex": true},
                           "Value": {"type": "number"}}}),
        )
        .expect("valid");
        let v = |x: Value| ValueObject::from(x.as_object().cloned().expect("object"));
        let ok = check_value(
            &t,
            &v(json!({"Timestamp": "2026-01-01T00:00:00.5Z", "Value": 1.5})),
            (0, 0),
            Action::Create,
        )
        .expect("fits");
        assert_eq!(ok, Some(Index(1_767_225_600_500)));
        let e = check_value(
            &t,
            &v(json!({"Timestamp": "2026-01-01T00:00:00Z", "Value": "high"})),
            (2, 7),
            Action::Create,
        )
        .expect_err("a string is no number");
        assert_eq!(
            (e.message_index, e.field.as_deref()),
            (Some(2), Some("values[7].Value"))
        );
        let e =
            check_value(&t, &v(json!({"Value": 1})), (0, 0), Action::Create).expect_err("no index");
        assert_eq!(e.field.as_deref(), Some("values[0].Timestamp"));
        let e = check_value(
            &t,
            &v(json!({"Timestamp": "2026-01-01T00:00:00Z", "Other": 1})),
            (0, 0),
            Action::Create,
        )
        .expect_err("unknown property");
        assert!(e.reason.contains("not a property"), "{}", e.reason);
    }
}
