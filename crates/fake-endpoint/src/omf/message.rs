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
    pub values: Vec<Map<String, Value>>,
}

fn object<'a>(message: &'a Value, index: usize) -> Result<&'a Map<String, Value>, Rejection> {
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
                    if !matches!(kind, Kind::DateTime | Kind::Integer) {
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

/// Reads a data message's values (checked against their types by the store).
pub fn data(body: &[Value]) -> Result<Vec<DataMessage>, Rejection> {
    body.iter()
        .enumerate()
        .map(|(i, message)| {
            let m = object(message, i)?;
            let container_id = text(m, "containerid", i, false)?.map(str::to_string);
            let type_id = text(m, "typeid", i, false)?.map(str::to_string);
            if container_id.is_none() && type_id.is_none() {
                return Err(Rejection::bad(format!(
                    "message {i} names neither a containerid nor a typeid"
                ))
                .at(i, "containerid"));
            }
            let Some(Value::Array(values)) = get(m, "values") else {
                return Err(Rejection::bad(format!(
                    "message {i}: values must be an array of objects"
                ))
                .at(i, "values"));
            };
            let values = values
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    v.as_object().cloned().ok_or_else(|| {
                        Rejection::bad(format!("message {i}: values[{j}] is not an object"))
                            .at(i, format!("values[{j}]"))
                    })
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
    value: &Map<String, Value>,
    at: (usize, usize),
    action: Action,
) -> Result<Option<Index>, Rejection> {
    let (i, j) = at;
    for (name, v) in value {
        let Some(p) = ty.properties.get(name) else {
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
                failover_core::clock_time::parse_utc_ms(s).is_ok()
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
    let Some(index) = &ty.index else {
        return Ok(None);
    };
    let index_value = match value.get(index) {
        Some(Value::String(s)) => failover_core::clock_time::parse_utc_ms(s).ok(),
        Some(Value::Number(n)) => n.as_i64(),
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
        let v = |x: Value| x.as_object().cloned().expect("object");
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
