//! The checks a file's values pass on the way in: names of adapters and components, links,
//! durations, comparisons, transitions; each refusal names the file, line and field.

use std::time::Duration;

use failover_core::timespan::parse_timespan;
use serde_json::{Map, Value};

use crate::cluster::{ARBITER, ENDPOINT, LINK_SERVICES, SOURCE};

use crate::{invariants, model::*, raw::*};

/// The line of `key = ...` in the table whose header starts at `span` (up to the next header;
/// the header's line if not found).
pub(crate) fn key_line(text: &str, span: &std::ops::Range<usize>, key: &str) -> usize {
    let start_line = line_of(text, span.start);
    let body = text.get(span.start..).unwrap_or("");
    body.lines()
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.trim_start().starts_with('['))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(start_line, |(i, _)| start_line + i)
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.matches('\n').count() + 1)
}

pub(crate) struct Checker<'a> {
    pub(crate) file: String,
    pub(crate) adapters: &'a [String],
    pub(crate) line: usize,
    /// Ids of the steps before the one being read.
    pub(crate) step_ids: Vec<String>,
    /// The cluster's failover services share an etcd store (it has `arbiter-2`, `etcd-1` to
    /// `etcd-3` and `leader`).
    pub(crate) etcd: bool,
}

impl Checker<'_> {
    pub(crate) fn err(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.clone(),
            line: self.line,
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn duration(&self, field: &str, text: &str) -> Result<Duration, ScenarioError> {
        parse_timespan(text).map_err(|e| self.err(field, e.to_string()))
    }

    pub(crate) fn adapter(&self, field: &str, name: &str) -> Result<Target, ScenarioError> {
        match name {
            "primary" => Ok(Target::Primary),
            "secondary" => Ok(Target::Secondary),
            n if self.adapters.iter().any(|a| a == n) => Ok(Target::Named(n.to_string())),
            n => Err(self.err(
                field,
                format!(
                    "no adapter {n:?}; use one of {} or \"primary\" / \"secondary\"",
                    self.adapters.join(", ")
                ),
            )),
        }
    }

    pub(crate) fn adapters_or_all(
        &self,
        field: &str,
        name: &str,
    ) -> Result<Vec<Target>, ScenarioError> {
        if name == "all" {
            Ok(self
                .adapters
                .iter()
                .map(|a| Target::Named(a.clone()))
                .collect())
        } else {
            Ok(vec![self.adapter(field, name)?])
        }
    }

    pub(crate) fn component(&self, field: &str, name: &str) -> Result<Target, ScenarioError> {
        if [ARBITER, SOURCE, ENDPOINT].contains(&name)
            || (self.etcd && crate::cluster::STORE_COMPONENTS.contains(&name))
        {
            return Ok(Target::Named(name.to_string()));
        }
        if crate::cluster::STORE_COMPONENTS.contains(&name) {
            return Err(self.err(
                field,
                format!("{name:?} is a component of a cluster whose failover services share an etcd store; give [cluster] store = \"etcd\""),
            ));
        }
        self.adapter(field, name).map_err(|_| {
            self.err(
                field,
                format!(
                    "no component {name:?}; use an adapter ({}), \"primary\", \"secondary\", \"arbiter\", \"source\" or \"endpoint\"",
                    self.adapters.join(", ")
                ),
            )
        })
    }

    /// `[cluster] max_clients`: at least 1 when given.
    pub(crate) fn max_clients(&self, n: Option<u32>) -> Result<Option<u32>, ScenarioError> {
        match n {
            Some(0) => Err(self.err(
                "cluster.max_clients",
                "the source takes at least 1 client (leave it out for any number)",
            )),
            n => Ok(n),
        }
    }

    pub(crate) fn link(&self, field: &str, l: &LinkToml) -> Result<(Link, bool), ScenarioError> {
        let [a, b] = l.between.as_slice() else {
            return Err(self.err(field, "between must name two ends, an adapter and arbiter, source or endpoint: between = [\"adapter-a\", \"arbiter\"]"));
        };
        let is_service = |s: &str| LINK_SERVICES.contains(&s);
        let (adapter, service, adapter_first) = if is_service(b) {
            (a, b, true)
        } else if is_service(a) {
            (b, a, false)
        } else {
            return Err(self.err(
                field,
                format!(
                    "one end of {:?} must be arbiter, source or endpoint",
                    l.between
                ),
            ));
        };
        let one_way = match l.direction.as_deref() {
            None | Some("both") => false,
            Some("one-way") => true,
            Some(other) => {
                return Err(self.err(
                    field,
                    format!("direction {other:?} is not accepted; use \"both\" or \"one-way\""),
                ));
            }
        };
        Ok((
            Link {
                adapter: self.adapter(field, adapter)?,
                service: service.clone(),
                adapter_first,
            },
            one_way,
        ))
    }

    pub(crate) fn source(
        &self,
        field: &str,
        s: &SourceToml,
        components: u32,
    ) -> Result<SourceScope, ScenarioError> {
        if let Some(c) = s.component
            && c >= components
        {
            return Err(self.err(
                field,
                format!(
                    "component {c} does not exist; the cluster has components 0 to {}",
                    components - 1
                ),
            ));
        }
        Ok(match (s.component, &s.adapter) {
            (None, None) => SourceScope::Whole,
            (Some(component), adapter) => SourceScope::Component {
                component,
                adapter: adapter
                    .as_deref()
                    .map(|a| self.adapter(field, a))
                    .transpose()?,
            },
            (None, Some(a)) => SourceScope::Connection(self.adapter(field, a)?),
        })
    }

    pub(crate) fn json_table(
        &self,
        field: &str,
        t: &toml::Table,
    ) -> Result<Map<String, Value>, ScenarioError> {
        match serde_json::to_value(t) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(self.err(field, "must be a table of JSON-like values")),
        }
    }

    pub(crate) fn condition(
        &self,
        field: &str,
        c: &ConditionToml,
    ) -> Result<Condition, ScenarioError> {
        let mut out = Condition::default();
        if let Some(p) = &c.primary {
            let f = format!("{field}.primary");
            let name = |n: &str| match self.adapter(&f, n)? {
                Target::Named(n) => Ok(n),
                _ => Err(self.err(
                    &f,
                    "name an adapter, a list of adapters, \"any\" or \"none\"",
                )),
            };
            out.primary = Some(match p {
                toml::Value::String(s) if s == "none" => PrimaryIs::Nobody,
                toml::Value::String(s) if s == "any" => PrimaryIs::Anyone,
                toml::Value::String(s) => PrimaryIs::OneOf(vec![name(s)?]),
                toml::Value::Array(list) if !list.is_empty() => PrimaryIs::OneOf(
                    list.iter()
                        .map(|v| {
                            v.as_str()
                                .ok_or_else(|| {
                                    self.err(&f, format!("{v:?} is not an adapter's name"))
                                })
                                .and_then(name)
                        })
                        .collect::<Result<_, _>>()?,
                ),
                other => {
                    return Err(self.err(
                        &f,
                        format!("{other:?} is not accepted; name an adapter (\"adapter-a\"), a list of adapters ([\"adapter-a\", \"adapter-b\"]), \"any\" or \"none\""),
                    ));
                }
            });
        }
        let named = |f: &str, k: &str| -> Result<String, ScenarioError> {
            if self.adapters.iter().any(|a| a == k) {
                Ok(k.to_string())
            } else {
                Err(self.err(
                    f,
                    format!(
                        "no adapter {k:?}; the cluster has {}",
                        self.adapters.join(", ")
                    ),
                ))
            }
        };
        for (k, v) in c.role.iter().flatten() {
            let f = format!("{field}.role.{k}");
            let role = v
                .as_str()
                .filter(|r| ["Primary", "Secondary", "Stale"].contains(r))
                .ok_or_else(|| {
                    self.err(
                        &f,
                        format!("{v:?} is not a role; use \"Primary\", \"Secondary\" or \"Stale\""),
                    )
                })?;
            out.roles.push((named(&f, k)?, role.to_string()));
        }
        for (k, v) in c.score.iter().flatten() {
            let f = format!("{field}.score.{k}");
            let cmp = toml_cmp(v).map_err(|m| self.err(&f, m))?;
            out.scores.push((named(&f, k)?, cmp));
        }
        if let Some(e) = &c.epoch {
            out.epoch = Some(Cmp::parse(e).map_err(|m| self.err(&format!("{field}.epoch"), m))?);
        }
        for t in c.score_transitions.iter().flatten() {
            let f = format!("{field}.score_transitions");
            let (adapter, from, to) = split_transition(t).ok_or_else(|| self.err(&f, format!("{t:?} is not a transition; write \"adapter-b 1 -> 100\" (from \"none\" when it joined)")))?;
            let num = |s: &str| {
                s.parse::<u32>()
                    .map_err(|_| self.err(&f, format!("{s:?} in {t:?} is not a score")))
            };
            out.score_transitions.push(ScoreStep {
                adapter: named(&f, adapter)?,
                from: if from == "none" {
                    None
                } else {
                    Some(num(from)?)
                },
                to: num(to)?,
            });
        }
        for t in c.role_transitions.iter().flatten() {
            let f = format!("{field}.role_transitions");
            let (adapter, from, to) = split_transition(t).ok_or_else(|| {
                self.err(
                    &f,
                    format!("{t:?} is not a transition; write \"adapter-a Primary -> Secondary\""),
                )
            })?;
            for r in [from, to] {
                if !["None", "Primary", "Secondary"].contains(&r) {
                    return Err(self.err(
                        &f,
                        format!("{r:?} in {t:?} is not a role; use None, Primary or Secondary"),
                    ));
                }
            }
            out.role_transitions.push(RoleStep {
                adapter: named(&f, adapter)?,
                from: from.into(),
                to: to.into(),
            });
        }
        if let Some(t) = &c.takeover_within {
            out.takeover_within = Some(self.duration(&format!("{field}.takeover_within"), t)?);
        }
        if let Some(step) = &c.takeover_from {
            let f = format!("{field}.takeover_from");
            if out.takeover_within.is_none() {
                return Err(self.err(&f, "goes with takeover_within"));
            }
            self.earlier_step(&f, step)?;
            out.takeover_from = Some(step.clone());
        }
        for (k, v) in c.audit.iter().flatten() {
            let f = format!("{field}.audit.{k}");
            if !AUDIT_FIELDS.contains(&k.as_str()) {
                return Err(self.err(
                    &f,
                    format!("unknown audit figure; use {}", AUDIT_FIELDS.join(", ")),
                ));
            }
            out.audit
                .push((k.clone(), toml_cmp(v).map_err(|m| self.err(&f, m))?));
        }
        if let Some(w) = &c.warning {
            out.warning = Some((
                self.adapter(&format!("{field}.warning.adapter"), &w.adapter)?,
                w.contains.clone(),
            ));
        }
        if let Some(s) = &c.state {
            let f = format!("{field}.state");
            let adapter = s
                .get("adapter")
                .and_then(toml::Value::as_str)
                .ok_or_else(|| self.err(&f, "needs adapter = \"...\" and FailoverState fields, such as Role = \"Secondary\""))?;
            let target = self.adapter(&format!("{f}.adapter"), adapter)?;
            let mut fields = Vec::new();
            for (k, v) in s.iter().filter(|(k, _)| *k != "adapter") {
                if let toml::Value::Table(t) = v {
                    let one =
                        |key: &str| t.len() == 1 && t.get(key).is_some_and(toml::Value::is_str);
                    if !(one("contains") || one("matches")) {
                        return Err(self.err(
                            &format!("{f}.{k}"),
                            "a table here takes one key: contains = \"text\" (the field holds that text) or matches = \"regular expression\"",
                        ));
                    }
                    if let Some(pattern) = t.get("matches").and_then(toml::Value::as_str)
                        && let Err(e) = regex_lite::Regex::new(pattern)
                    {
                        return Err(self.err(
                            &format!("{f}.{k}.matches"),
                            format!("{pattern:?} is not a regular expression: {e}"),
                        ));
                    }
                }
                fields.push((
                    k.clone(),
                    serde_json::to_value(v)
                        .map_err(|e| self.err(&format!("{f}.{k}"), e.to_string()))?,
                ));
            }
            out.state = Some((target, fields));
        }
        if let Some(r) = &c.recovery {
            let f = format!("{field}.recovery");
            let statuses = [
                "Pending",
                "Running",
                "Completed",
                "Abandoned",
                "Failed",
                "absent",
            ];
            if !statuses.contains(&r.status.as_str()) {
                return Err(self.err(
                    &f,
                    format!(
                        "status {:?} is not accepted; use {}",
                        r.status,
                        statuses.join(", ")
                    ),
                ));
            }
            out.recovery = Some((
                self.adapter(&format!("{f}.adapter"), &r.adapter)?,
                r.id.clone(),
                r.status.clone(),
            ));
        }
        if let Some(v) = &c.invariants {
            let f = format!("{field}.invariants");
            let listed = |v: &toml::Value| v.as_integer().and_then(|n| u8::try_from(n).ok());
            out.invariants = match v {
                toml::Value::String(s) if s == "all" => invariants::RULES.to_vec(),
                toml::Value::Array(list) if !list.is_empty() => list
                    .iter()
                    .map(|r| {
                        listed(r)
                            .filter(|n| invariants::RULES.contains(n))
                            .ok_or_else(|| {
                                self.err(
                                    &f,
                                    format!(
                                        "{r:?} is not a rule every run keeps; use \"all\" or a list of {}",
                                        invariants::RULES.map(|r| r.to_string()).join(", ")
                                    ),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(self.err(
                        &f,
                        format!("{other:?} is not accepted; use \"all\" or a list of rule numbers, such as [1, 2]"),
                    ));
                }
            };
        }
        let checks_something = out.primary.is_some()
            || !out.roles.is_empty()
            || !out.scores.is_empty()
            || out.epoch.is_some()
            || !out.score_transitions.is_empty()
            || !out.role_transitions.is_empty()
            || out.takeover_within.is_some()
            || !out.audit.is_empty()
            || out.warning.is_some()
            || out.state.is_some()
            || out.recovery.is_some()
            || !out.invariants.is_empty();
        if !checks_something {
            return Err(self.err(
                field,
                "an empty condition checks nothing; give at least one of primary, role, score, epoch, score_transitions, role_transitions, takeover_within, audit, warning, state, recovery, invariants",
            ));
        }
        // Comparisons with earlier steps must name one.
        let mut relative: Vec<(String, &Cmp)> = Vec::new();
        relative.extend(
            out.scores
                .iter()
                .map(|(a, c)| (format!("{field}.score.{a}"), c)),
        );
        relative.extend(out.epoch.iter().map(|c| (format!("{field}.epoch"), c)));
        relative.extend(
            out.audit
                .iter()
                .map(|(k, c)| (format!("{field}.audit.{k}"), c)),
        );
        for (f, cmp) in relative {
            if let Some(step) = &cmp.at_step {
                self.earlier_step(&f, step)?;
            }
        }
        Ok(out)
    }

    /// A `hold` or `never` condition watches the failover service's view only: primary, role,
    /// score and epoch (and, for `never`, role and score transitions).
    pub(crate) fn watched(
        &self,
        field: &str,
        c: &Condition,
        never: bool,
    ) -> Result<(), ScenarioError> {
        let unwatchable = [
            ("takeover_within", c.takeover_within.is_some()),
            ("audit", !c.audit.is_empty()),
            ("warning", c.warning.is_some()),
            ("state", c.state.is_some()),
            ("recovery", c.recovery.is_some()),
            ("invariants", !c.invariants.is_empty()),
            (
                "score_transitions",
                !never && !c.score_transitions.is_empty(),
            ),
            ("role_transitions", !never && !c.role_transitions.is_empty()),
        ];
        if let Some((part, _)) = unwatchable.iter().find(|(_, given)| *given) {
            return Err(self.err(
                &format!("{field}.{part}"),
                if never {
                    "never watches primary, role, score, epoch and the transitions, at every change the failover service reports"
                } else {
                    "hold watches primary, role, score and epoch, at every change the failover service reports (use never for transitions)"
                },
            ));
        }
        Ok(())
    }

    /// `step` is the id of a step before this one.
    pub(crate) fn earlier_step(&self, field: &str, step: &str) -> Result<(), ScenarioError> {
        if self.step_ids.iter().any(|s| s == step) {
            return Ok(());
        }
        Err(self.err(
            field,
            if self.step_ids.is_empty() {
                format!("no earlier step has id {step:?}; give that step id = \"{step}\"")
            } else {
                format!(
                    "no earlier step has id {step:?}; the earlier ids are {}",
                    self.step_ids.join(", ")
                )
            },
        ))
    }
}

pub(crate) fn toml_cmp(v: &toml::Value) -> Result<Cmp, String> {
    match v {
        toml::Value::Integer(n) => Ok(Cmp {
            op: Op::Eq,
            value: *n,
            at_step: None,
        }),
        toml::Value::String(s) => Cmp::parse(&NumOrText::Text(s.clone())),
        other => Err(format!(
            "{other:?} is not a number or a comparison such as \"> 0\""
        )),
    }
}

/// Splits `name FROM -> TO`.
pub(crate) fn split_transition(t: &str) -> Option<(&str, &str, &str)> {
    let (left, to) = t.split_once("->")?;
    let mut words = left.split_whitespace();
    let (adapter, from) = (words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let to = to.trim();
    (!to.is_empty() && !to.contains(' ')).then_some((adapter, from, to))
}
