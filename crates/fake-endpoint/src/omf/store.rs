//! What OMF clients stored, per namespace, as Edge Data Store keeps it: types, containers
//! (streams) and each container's newest values, for reading back. A request is checked whole
//! against the store ([`Namespace::check`]) before any of it is applied, so a refused request
//! changes nothing.

use std::collections::{BTreeMap, HashMap};

use super::message::{
    Action, Classification, ContainerDef, DataMessage, Index, Kind, Rejection, TypeDef,
    ValueObject, check_value,
};

/// One container's state.
#[derive(Debug, Clone)]
pub struct Container {
    pub def: ContainerDef,
    /// Deleted by an `action: delete`; data for it is refused until it is created again.
    pub deleted: bool,
    /// The newest values, at most [`super::OmfSettings::keep_values`].
    pub values: ValueLog,
}

/// A container's newest values in index order: appended at the back in the usual case (values
/// arrive in order), inserted in place otherwise, the oldest let go first.
#[derive(Debug, Clone, Default)]
pub struct ValueLog {
    values: std::collections::VecDeque<(Index, ValueObject)>,
}

impl ValueLog {
    fn position(&self, index: Index) -> Result<usize, usize> {
        self.values.binary_search_by(|(i, _)| i.cmp(&index))
    }

    /// Writes a value at its index, replacing one there.
    pub fn insert(&mut self, index: Index, value: ValueObject) {
        match self.values.back() {
            None => self.values.push_back((index, value)),
            Some((last, _)) if *last < index => self.values.push_back((index, value)),
            _ => match self.position(index) {
                Ok(at) => self.values[at].1 = value,
                Err(at) => self.values.insert(at, (index, value)),
            },
        }
    }

    /// Removes the value at an index.
    pub fn remove(&mut self, index: Index) {
        if let Ok(at) = self.position(index) {
            self.values.remove(at);
        }
    }

    /// Keeps the newest `keep`.
    pub fn keep_newest(&mut self, keep: usize) {
        while self.values.len() > keep {
            self.values.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.values.clear();
    }

    pub fn first(&self) -> Option<&ValueObject> {
        self.values.front().map(|(_, v)| v)
    }

    pub fn last(&self) -> Option<&ValueObject> {
        self.values.back().map(|(_, v)| v)
    }

    /// The values with index from `from` through `to`, in order.
    pub fn range(&self, from: Index, to: Index) -> impl Iterator<Item = &ValueObject> {
        let start = self.position(from).unwrap_or_else(|at| at);
        self.values
            .range(start..)
            .take_while(move |(i, _)| *i <= to)
            .map(|(_, v)| v)
    }
}

/// One namespace (`tenants/{tenant}/namespaces/{namespace}`).
#[derive(Debug, Default)]
pub struct Namespace {
    pub types: BTreeMap<String, TypeDef>,
    pub containers: BTreeMap<String, Container>,
}

/// A checked data message for one container, ready to apply.
#[derive(Debug, Clone)]
pub struct CheckedData {
    pub container: String,
    /// The group and stream the container is, by the container pattern (set after the check).
    pub target: Option<(String, u32)>,
    /// The index is a date-time (unix ms), not an integer.
    pub time_index: bool,
    /// Each value with its index and its number (the first number that is not the index:
    /// the point's value in the audit).
    pub values: Vec<(Index, f64, ValueObject)>,
}

/// A request checked against the store.
#[derive(Debug)]
pub enum Checked {
    Types(Vec<TypeDef>),
    Containers(Vec<ContainerDef>),
    /// Dynamic values, by container; static values are checked and not kept (as in Edge Data
    /// Store).
    Data(Vec<CheckedData>),
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
        messages: Vec<DataMessage>,
        action: Action,
    ) -> Result<Vec<CheckedData>, Rejection> {
        let mut out = Vec::new();
        for (i, m) in messages.into_iter().enumerate() {
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
            let time_index = ty
                .index
                .as_ref()
                .and_then(|i| ty.properties.get(i))
                .is_some_and(|p| p.kind == Kind::DateTime);
            let mut checked = Vec::with_capacity(m.values.len());
            for (j, v) in m.values.into_iter().enumerate() {
                if let Some(index) = check_value(ty, &v, (i, j), action)? {
                    let number =
                        v.0.iter()
                            .filter(|(k, _)| ty.index.as_deref() != Some(&**k))
                            .find_map(|(_, x)| x.as_f64())
                            .unwrap_or_default();
                    checked.push((index, number, v));
                }
            }
            if let Some(cid) = container {
                out.push(CheckedData {
                    container: cid.clone(),
                    target: None,
                    time_index,
                    values: checked,
                });
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
                                values: ValueLog::default(),
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
    pub fn apply_data(&mut self, data: Vec<CheckedData>, action: Action, keep: usize) {
        for d in data {
            let Some(c) = self.containers.get_mut(&d.container) else {
                continue;
            };
            for (index, _, value) in d.values {
                if action == Action::Delete {
                    c.values.remove(index);
                } else {
                    c.values.insert(index, value);
                }
            }
            c.values.keep_newest(keep);
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
