//! What OMF clients stored, per namespace, as Edge Data Store keeps it: types, containers
//! (streams) and each container's newest values, for reading back. A request is checked whole
//! against the store ([`Namespace::check`]) before any of it is applied, so a refused request
//! changes nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::message::{
    Action, Classification, ContainerDef, DataMessage, Index, Rejection, TypeDef, check_value,
};

/// One container's state.
#[derive(Debug, Clone)]
pub struct Container {
    pub def: ContainerDef,
    /// Deleted by an `action: delete`; data for it is refused until it is created again.
    pub deleted: bool,
    /// The newest values by index, at most [`super::OmfSettings::keep_values`].
    pub values: BTreeMap<Index, Map<String, Value>>,
}

/// One namespace (`tenants/{tenant}/namespaces/{namespace}`).
#[derive(Debug, Default)]
pub struct Namespace {
    pub types: BTreeMap<String, TypeDef>,
    pub containers: BTreeMap<String, Container>,
}

/// A checked data value, ready to apply.
#[derive(Debug, Clone)]
pub struct CheckedValue {
    pub container: String,
    pub index: Index,
    pub value: Map<String, Value>,
}

/// A request checked against the store.
#[derive(Debug)]
pub enum Checked {
    Types(Vec<TypeDef>),
    Containers(Vec<ContainerDef>),
    /// Dynamic values, by container; static values are checked and not kept (as in Edge Data
    /// Store).
    Data(Vec<CheckedValue>),
}

/// The stores of every namespace.
#[derive(Debug, Default)]
pub struct Stores {
    pub namespaces: HashMap<(String, String), Namespace>,
}

impl Namespace {
    /// Checks types against those stored: the same definition again is fine (idempotent); a
    /// different one under the same id is a conflict (types are immutable, as in Edge Data
    /// Store); a type a live container uses cannot be deleted.
    pub fn check_types(&self, types: &[TypeDef], action: Action) -> Result<(), Rejection> {
        for (i, t) in types.iter().enumerate() {
            match action {
                Action::Delete => {
                    if let Some(c) = self
                        .containers
                        .values()
                        .find(|c| !c.deleted && c.def.type_id == t.id)
                    {
                        return Err(Rejection::bad(format!(
                            "type {:?} is used by container {:?}; delete the container first",
                            t.id, c.def.id
                        ))
                        .with_status(409)
                        .at(i, "id"));
                    }
                }
                Action::Create | Action::Update => {
                    if let Some(old) = self.types.get(&t.id)
                        && (old.properties != t.properties
                            || old.classification != t.classification)
                    {
                        return Err(Rejection::bad(format!(
                            "type {:?} is already defined differently; types cannot change \
                             (delete it and its containers first, or use a new id)",
                            t.id
                        ))
                        .with_status(409)
                        .at(i, "properties"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks containers against the types and containers stored.
    pub fn check_containers(
        &self,
        containers: &[ContainerDef],
        action: Action,
    ) -> Result<(), Rejection> {
        for (i, c) in containers.iter().enumerate() {
            if action == Action::Delete {
                continue;
            }
            let Some(t) = self.types.get(&c.type_id) else {
                return Err(Rejection::bad(format!(
                    "container {:?}: type {:?} is not defined; send the type first",
                    c.id, c.type_id
                ))
                .at(i, "typeid"));
            };
            if t.classification != Classification::Dynamic {
                return Err(Rejection::bad(format!(
                    "container {:?}: type {:?} is static; containers hold dynamic types",
                    c.id, c.type_id
                ))
                .at(i, "typeid"));
            }
            if let Some(old) = self.containers.get(&c.id)
                && !old.deleted
                && old.def.type_id != c.type_id
            {
                return Err(Rejection::bad(format!(
                    "container {:?} already has type {:?}, not {:?}",
                    c.id, old.def.type_id, c.type_id
                ))
                .with_status(409)
                .at(i, "typeid"));
            }
        }
        Ok(())
    }

    /// Checks data values against their containers' types.
    pub fn check_data(
        &self,
        messages: &[DataMessage],
        action: Action,
    ) -> Result<Vec<CheckedValue>, Rejection> {
        let mut out = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let (ty, container) = match (&m.container_id, &m.type_id) {
                (Some(cid), _) => {
                    let Some(c) = self.containers.get(cid) else {
                        return Err(Rejection::bad(format!(
                            "message {i}: container {cid:?} is not defined; send the container first"
                        ))
                        .at(i, "containerid"));
                    };
                    if c.deleted {
                        return Err(Rejection::bad(format!(
                            "message {i}: container {cid:?} was deleted; create it again first"
                        ))
                        .at(i, "containerid"));
                    }
                    let Some(t) = self.types.get(&c.def.type_id) else {
                        return Err(Rejection::bad(format!(
                            "message {i}: the type of container {cid:?} is gone"
                        ))
                        .at(i, "containerid"));
                    };
                    (t, Some(cid))
                }
                (None, Some(tid)) => {
                    let Some(t) = self.types.get(tid) else {
                        return Err(Rejection::bad(format!(
                            "message {i}: type {tid:?} is not defined"
                        ))
                        .at(i, "typeid"));
                    };
                    if t.classification != Classification::Static {
                        return Err(Rejection::bad(format!(
                            "message {i}: type {tid:?} is dynamic; its data goes to a container"
                        ))
                        .at(i, "typeid"));
                    }
                    (t, None)
                }
                (None, None) => unreachable_names_neither(i)?,
            };
            for (j, v) in m.values.iter().enumerate() {
                let index = check_value(ty, v, (i, j), action)?;
                if let (Some(cid), Some(index)) = (container, index) {
                    out.push(CheckedValue {
                        container: cid.clone(),
                        index,
                        value: v.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Applies checked types.
    pub fn apply_types(&mut self, types: Vec<TypeDef>, action: Action) {
        for t in types {
            if action == Action::Delete {
                self.types.remove(&t.id);
            } else {
                self.types.entry(t.id.clone()).or_insert(t);
            }
        }
    }

    /// Applies checked containers.
    pub fn apply_containers(&mut self, containers: Vec<ContainerDef>, action: Action) {
        for c in containers {
            match action {
                Action::Delete => {
                    if let Some(old) = self.containers.get_mut(&c.id) {
                        old.deleted = true;
                        old.values.clear();
                    }
                }
                Action::Create | Action::Update => match self.containers.get_mut(&c.id) {
                    Some(old) => {
                        old.deleted = false;
                        old.def = c;
                    }
                    None => {
                        self.containers.insert(
                            c.id.clone(),
                            Container {
                                def: c,
                                deleted: false,
                                values: BTreeMap::new(),
                            },
                        );
                    }
                },
            }
        }
    }

    /// Applies checked values: create and update write the value at its index (replacing one
    /// there, as Edge Data Store does); delete removes it. Each container keeps its newest
    /// `keep` values.
    pub fn apply_data(&mut self, values: Vec<CheckedValue>, action: Action, keep: usize) {
        for v in values {
            let Some(c) = self.containers.get_mut(&v.container) else {
                continue;
            };
            if action == Action::Delete {
                c.values.remove(&v.index);
                continue;
            }
            c.values.insert(v.index, v.value);
            while c.values.len() > keep {
                c.values.pop_first();
            }
        }
    }
}

/// `data()` already refuses a message naming neither; kept as an error, not a panic.
fn unreachable_names_neither<T>(i: usize) -> Result<T, Rejection> {
    Err(Rejection::bad(format!(
        "message {i} names neither a containerid nor a typeid"
    ))
    .at(i, "containerid"))
}
