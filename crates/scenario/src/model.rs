//! The scenario model: a story ([`Scenario`]), its steps and their actions, and the conditions
//! they wait for or expect, as plain data with their words (`Display`), checked when read.

use std::{fmt, path::PathBuf, time::Duration};

use failover_core::{Role, timespan::format_timespan};
use serde_json::{Map, Value};

use crate::cluster::ClusterSpec;
use crate::raw::NumOrText;

/// A refused scenario file: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The field at fault.
    pub field: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// A scenario, checked and ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file it came from.
    pub path: PathBuf,
    /// Its title.
    pub name: String,
    /// The story it tells, in plain words.
    pub story: String,
    /// Seed of the source's values.
    pub seed: u64,
    /// The pair it runs on.
    pub cluster: ClusterSpec,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

/// One step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Line in the file.
    pub line: usize,
    /// What it does.
    pub action: Action,
    /// The author's comment, shown in progress and on failure.
    pub note: Option<String>,
    /// A name later steps refer to (`"same as step ID"`, `takeover_from = "ID"`).
    pub id: Option<String>,
}

/// An adapter by name or by its role at the moment the step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A component by name (`adapter-a`, `arbiter`, `source`, `endpoint`).
    Named(String),
    /// Whichever adapter is Primary.
    Primary,
    /// Whichever live adapter is not Primary.
    Secondary,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Named(n) => f.write_str(n),
            Target::Primary => f.write_str("the Primary"),
            Target::Secondary => f.write_str("the Secondary"),
        }
    }
}

/// What part of the source an outage hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceScope {
    /// The whole source.
    Whole,
    /// One component, for every adapter or for one.
    Component {
        /// The component.
        component: u32,
        /// Only for this adapter.
        adapter: Option<Target>,
    },
    /// One adapter's connection.
    Connection(Target),
}

pub use crate::cluster::LinkChange;

/// A link between an adapter and a service, as the scenario names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The adapter.
    pub adapter: Target,
    /// arbiter, source or endpoint.
    pub service: String,
    /// True when the file named the adapter first (one-way faults go from first to second).
    pub adapter_first: bool,
}

/// A step's action.
#[derive(Debug, Clone)]
pub enum Action {
    /// SIGKILL.
    Kill(Target),
    /// SIGSTOP.
    Pause(Target),
    /// SIGCONT.
    Resume(Target),
    /// SIGTERM.
    Stop(Target),
    /// Start again (after stopping it if it runs).
    Restart(Target),
    /// Fail (`down`) or restore part of the source.
    Source {
        /// What part.
        scope: SourceScope,
        /// Fail or restore.
        down: bool,
    },
    /// Start or end an endpoint outage.
    EndpointOutage(bool),
    /// Cut every link of a failover service (a cluster on an etcd store): to etcd, and from
    /// every adapter.
    Isolate(Target),
    /// Heal every link an `isolate` cut.
    EndIsolation,
    /// Cut, heal or slow a link.
    Link {
        /// Which link.
        link: Link,
        /// What to do to it.
        change: LinkChange,
    },
    /// PATCH the ClientFailover document of adapters at runtime.
    SetConfig {
        /// Which adapters.
        adapters: Vec<Target>,
        /// The merge patch.
        patch: Map<String, Value>,
    },
    /// PUT an adapter's DataSource settings.
    SetDataSource {
        /// Which adapters.
        adapters: Vec<Target>,
        /// The document.
        doc: Map<String, Value>,
    },
    /// An operator's role override at the failover service (None: clear it).
    RoleOverride {
        /// The adapter.
        adapter: Target,
        /// Forced role.
        role: Option<Role>,
        /// How long (None: until cleared).
        expiration: Option<Duration>,
    },
    /// Start again an adapter stopped or killed, configured with the cluster's document with
    /// these fields changed (`restart = { adapter = "adapter-a", mode = "Warm" }`).
    RestartChanged {
        /// The adapter.
        adapter: Target,
        /// The fields changed.
        patch: Map<String, Value>,
    },
    /// An operator deletes an adapter's session at the failover service (it rejoins with its
    /// next heartbeat as a new session).
    DeleteSession(Target),
    /// An operator deletes every session of the group, then the group, again until the group
    /// is gone (members still running rejoin and create it anew).
    DeleteGroup,
    /// failoverTimeout changed the documented way: every adapter's document changed, then
    /// sessions and group deleted until the members have rejoined with the new value.
    ChangeFailoverTimeout(Duration),
    /// Deletes an adapter's ClientFailover document (false: it leaves its group and egresses
    /// standalone), or puts the cluster's back (true).
    Register {
        /// The adapter.
        adapter: Target,
        /// Put back (true) or deleted (false).
        registered: bool,
    },
    /// A second adapter process with an adapter's name and document, on ports of its own,
    /// starts (true) or stops gracefully (false).
    Twin {
        /// The adapter whose name it takes.
        adapter: String,
        /// Starts or stops.
        running: bool,
    },
    /// A standalone adapter (no ClientFailover document) with this name, on the same source and
    /// endpoint, starts (true) or stops gracefully (false).
    Standalone {
        /// Its name.
        name: String,
        /// Starts or stops.
        running: bool,
    },
    /// An intruder fences the endpoint this many epochs above the highest the group has seen.
    FenceAhead(u64),
    /// A member named `intruder` joins the group announcing this many epochs above the highest
    /// the group has seen, with score 0 (0: it leaves).
    MemberAhead(u64),
    /// Start a history recovery of the last `seconds` on an adapter.
    HistoryRecovery {
        /// The adapter.
        adapter: Target,
        /// Its id.
        id: String,
        /// How much history.
        seconds: u64,
    },
    /// Set an adapter's clock apart from the machine's (a fault: only the vendor's behaviour
    /// reads its clock for its data).
    Clock {
        /// The adapter.
        adapter: Target,
        /// Ahead (positive) or behind, in ms.
        offset_ms: i64,
        /// Drift from then on, in parts per million (positive: runs fast).
        drift_ppm: f64,
    },
    /// Let time pass.
    RunFor(Duration),
    /// Wait until a condition holds, failing after `within`.
    WaitUntil {
        /// The condition.
        condition: Condition,
        /// The deadline.
        within: Duration,
    },
    /// Check a condition now.
    Expect(Condition),
    /// From now until the step `until` begins (None: to the end), the condition holds at every
    /// change the failover service reports.
    Hold {
        /// The condition (primary, role, score, epoch).
        condition: Condition,
        /// The id of the step it lasts up to.
        until: Option<String>,
    },
    /// From now until the step `until` begins (None: to the end), the condition never holds
    /// and none of its transitions happens.
    Never {
        /// The condition (primary, role, score, epoch, transitions).
        condition: Condition,
        /// The id of the step it lasts up to.
        until: Option<String>,
    },
}

/// A comparison with a number: `0`, `"> 0"`, `"<= 3000"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmp {
    /// The operator.
    pub op: Op,
    /// The number (with `at_step`: unused; the figure recorded at that step is compared).
    pub value: i64,
    /// Compare with the same figure as it was when the step with this id ended
    /// (`"same as step warm-up"`, `"more than at step warm-up"`, `"less than at step ..."`).
    pub at_step: Option<String>,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// ==
    Eq,
    /// !=
    Ne,
    /// <
    Lt,
    /// <=
    Le,
    /// >
    Gt,
    /// >=
    Ge,
}

/// The words of a comparison with an earlier step's figure, and their operators.
const RELATIVE: [(&str, Op); 4] = [
    ("same as step ", Op::Eq),
    ("more than at step ", Op::Gt),
    ("less than at step ", Op::Lt),
    ("not as at step ", Op::Ne),
];

impl Cmp {
    /// The comparison with `base` (the figure recorded at `at_step`) in place of the step.
    pub fn against(&self, base: i64) -> Cmp {
        Cmp {
            op: self.op,
            value: base,
            at_step: None,
        }
    }

    /// True when `actual` satisfies the comparison.
    pub fn holds(&self, actual: i64) -> bool {
        match self.op {
            Op::Eq => actual == self.value,
            Op::Ne => actual != self.value,
            Op::Lt => actual < self.value,
            Op::Le => actual <= self.value,
            Op::Gt => actual > self.value,
            Op::Ge => actual >= self.value,
        }
    }

    /// A comparison written as text (`">= 3"`), if it is one.
    pub fn from_text(text: &str) -> Option<Cmp> {
        Self::parse(&NumOrText::Text(text.to_string())).ok()
    }

    pub(crate) fn parse(v: &NumOrText) -> Result<Cmp, String> {
        match v {
            NumOrText::Num(n) => Ok(Cmp {
                op: Op::Eq,
                value: *n,
                at_step: None,
            }),
            NumOrText::Text(t) => {
                let t = t.trim();
                if let Some((op, step)) = RELATIVE
                    .iter()
                    .find_map(|(words, op)| t.strip_prefix(words).map(|s| (*op, s.trim())))
                {
                    if step.is_empty() {
                        return Err(format!(
                            "{t:?} names no step; write \"same as step ID\" with the id of an earlier step"
                        ));
                    }
                    return Ok(Cmp {
                        op,
                        value: 0,
                        at_step: Some(step.to_string()),
                    });
                }
                let ops = [
                    (">=", Op::Ge),
                    ("<=", Op::Le),
                    ("==", Op::Eq),
                    ("!=", Op::Ne),
                    (">", Op::Gt),
                    ("<", Op::Lt),
                ];
                let (op, rest) = ops
                    .iter()
                    .find_map(|(s, op)| t.strip_prefix(s).map(|r| (*op, r)))
                    .unwrap_or((Op::Eq, t));
                rest.trim()
                    .parse::<i64>()
                    .map(|value| Cmp {
                        op,
                        value,
                        at_step: None,
                    })
                    .map_err(|_| format!("{t:?} is not a comparison; write a number (5), an operator and a number (\"> 0\", \"<= 3000\"), or a comparison with an earlier step (\"same as step ID\", \"more than at step ID\", \"less than at step ID\", \"not as at step ID\")"))
            }
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(step) = &self.at_step {
            let words = RELATIVE
                .iter()
                .find(|(_, op)| *op == self.op)
                .map_or("same as step ", |(w, _)| w);
            return write!(f, "{words}{step}");
        }
        let op = match self.op {
            Op::Eq => "",
            Op::Ne => "!= ",
            Op::Lt => "< ",
            Op::Le => "<= ",
            Op::Gt => "> ",
            Op::Ge => ">= ",
        };
        write!(f, "{op}{}", self.value)
    }
}

/// A score change to look for: `adapter-b 1 -> 100` (from `none` when it joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreStep {
    /// The adapter.
    pub adapter: String,
    /// Before (None: joined).
    pub from: Option<u32>,
    /// After.
    pub to: u32,
}

/// A role change to look for: `adapter-a Primary -> Secondary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleStep {
    /// The adapter.
    pub adapter: String,
    /// Before (`None` before it joined).
    pub from: String,
    /// After.
    pub to: String,
}

/// The endpoint audit figures a condition can check.
pub const AUDIT_FIELDS: [&str; 8] = [
    "expected",
    "received",
    "lost",
    "duplicated",
    "out_of_order",
    "refused_stale",
    "largest_gap_ms",
    "epoch",
];

/// Who must be Primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryIs {
    /// Nobody (`"none"`).
    Nobody,
    /// Somebody (`"any"`).
    Anyone,
    /// One of these (`"adapter-a"`, or `["adapter-a", "adapter-b"]`).
    OneOf(Vec<String>),
}

impl PrimaryIs {
    /// True when `primary` (None: nobody) is as required.
    pub fn holds(&self, primary: Option<&str>) -> bool {
        match (self, primary) {
            (PrimaryIs::Nobody, p) => p.is_none(),
            (PrimaryIs::Anyone, p) => p.is_some(),
            (PrimaryIs::OneOf(names), Some(p)) => names.iter().any(|n| n == p),
            (PrimaryIs::OneOf(_), None) => false,
        }
    }
}

impl fmt::Display for PrimaryIs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrimaryIs::Nobody => write!(f, "none"),
            PrimaryIs::Anyone => write!(f, "any"),
            PrimaryIs::OneOf(names) if names.len() == 1 => write!(f, "{}", names[0]),
            PrimaryIs::OneOf(names) => write!(f, "one of {}", names.join(", ")),
        }
    }
}

/// What must hold; every part given must hold.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    /// Who is Primary.
    pub primary: Option<PrimaryIs>,
    /// Roles by adapter: Primary, Secondary or Stale.
    pub roles: Vec<(String, String)>,
    /// Scores by adapter.
    pub scores: Vec<(String, Cmp)>,
    /// The group's epoch.
    pub epoch: Option<Cmp>,
    /// Score changes seen so far, in this order (others may come between).
    pub score_transitions: Vec<ScoreStep>,
    /// Role changes seen so far, in this order (others may come between).
    pub role_transitions: Vec<RoleStep>,
    /// From the last fault (or the start of step `takeover_from`) to the first point accepted
    /// from the Primary at its epoch.
    pub takeover_within: Option<Duration>,
    /// The id of the step `takeover_within` counts from (None: the last fault).
    pub takeover_from: Option<String>,
    /// Endpoint audit figures.
    pub audit: Vec<(String, Cmp)>,
    /// A warning in an adapter's FailoverState.
    pub warning: Option<(Target, String)>,
    /// Fields of an adapter's FailoverState.
    pub state: Option<(Target, Vec<(String, Value)>)>,
    /// A history recovery's status on an adapter (`absent`: none with that id).
    pub recovery: Option<(Target, String, String)>,
    /// Rules of [`invariants`] that must hold on everything observed so far (their numbers).
    pub invariants: Vec<u8>,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = &self.primary {
            parts.push(format!("primary {p}"));
        }
        for (a, r) in &self.roles {
            parts.push(format!("{a} {r}"));
        }
        for (a, c) in &self.scores {
            parts.push(format!("{a} score {c}"));
        }
        if let Some(e) = &self.epoch {
            parts.push(format!("epoch {e}"));
        }
        for s in &self.score_transitions {
            parts.push(format!(
                "{} score {} -> {}",
                s.adapter,
                s.from.map_or("none".into(), |x| x.to_string()),
                s.to
            ));
        }
        for r in &self.role_transitions {
            parts.push(format!("{} {} -> {}", r.adapter, r.from, r.to));
        }
        if let Some(t) = self.takeover_within {
            parts.push(format!("takeover within {}", format_timespan(t)));
        }
        for (k, c) in &self.audit {
            parts.push(format!("audit {k} {c}"));
        }
        if let Some((a, w)) = &self.warning {
            parts.push(format!("{a} warns {w:?}"));
        }
        if let Some((a, fields)) = &self.state {
            for (k, v) in fields {
                parts.push(format!("{a} {k} = {v}"));
            }
        }
        if let Some((a, id, status)) = &self.recovery {
            parts.push(format!("{a} recovery {id} {status}"));
        }
        if !self.invariants.is_empty() {
            let rules: Vec<String> = self.invariants.iter().map(u8::to_string).collect();
            parts.push(format!("invariant rules {} kept", rules.join(", ")));
        }
        f.write_str(&parts.join(", "))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Kill(t) => write!(f, "SIGKILL {t}"),
            Action::Pause(t) => write!(f, "pause (SIGSTOP) {t}"),
            Action::Resume(t) => write!(f, "resume (SIGCONT) {t}"),
            Action::Stop(t) => write!(f, "stop (SIGTERM) {t}"),
            Action::Restart(t) => write!(f, "restart {t}"),
            Action::RestartChanged { adapter, patch } => write!(
                f,
                "restart {adapter} with its document changed: {}",
                Value::Object(patch.clone())
            ),
            Action::DeleteSession(t) => write!(f, "operator: delete the session of {t}"),
            Action::DeleteGroup => write!(f, "operator: delete every session and the group"),
            Action::ChangeFailoverTimeout(d) => write!(
                f,
                "operator: change failoverTimeout to {} (documents changed, sessions and group deleted)",
                format_timespan(*d)
            ),
            Action::Register {
                adapter,
                registered: false,
            } => write!(
                f,
                "delete the ClientFailover document of {adapter} (it leaves and egresses standalone)"
            ),
            Action::Register {
                adapter,
                registered: true,
            } => write!(f, "put the ClientFailover document of {adapter} back"),
            Action::Twin {
                adapter,
                running: true,
            } => write!(f, "a second {adapter} starts (same name and document)"),
            Action::Twin {
                adapter,
                running: false,
            } => write!(f, "the second {adapter} stops"),
            Action::Standalone {
                name,
                running: true,
            } => write!(f, "a standalone adapter {name} starts on the same endpoint"),
            Action::Standalone {
                name,
                running: false,
            } => write!(f, "the standalone adapter {name} stops"),
            Action::FenceAhead(by) => write!(
                f,
                "an intruder fences the endpoint {by} epochs above the group's highest"
            ),
            Action::MemberAhead(0) => write!(f, "the intruder member leaves"),
            Action::MemberAhead(by) => write!(
                f,
                "an intruder member announces an epoch {by} above the group's highest"
            ),
            Action::Source { scope, down } => {
                let what = match scope {
                    SourceScope::Whole => "the whole source".to_string(),
                    SourceScope::Component {
                        component,
                        adapter: None,
                    } => format!("source component {component}"),
                    SourceScope::Component {
                        component,
                        adapter: Some(a),
                    } => format!("source component {component} for {a}"),
                    SourceScope::Connection(a) => format!("the source connection of {a}"),
                };
                write!(f, "{} {what}", if *down { "fail" } else { "restore" })
            }
            Action::EndpointOutage(down) => write!(
                f,
                "endpoint outage {}",
                if *down { "starts" } else { "ends" }
            ),
            Action::Isolate(t) => write!(
                f,
                "isolate the failover service {t} (its links to etcd and from every adapter cut)"
            ),
            Action::EndIsolation => write!(f, "heal every isolated failover service's links"),
            Action::Link { link, change } => {
                let (a, b) = if link.adapter_first {
                    (link.adapter.to_string(), link.service.clone())
                } else {
                    (link.service.clone(), link.adapter.to_string())
                };
                match change {
                    LinkChange::Cut { one_way: false } => write!(f, "cut the link {a} <-> {b}"),
                    LinkChange::Cut { one_way: true } => {
                        write!(f, "cut the link {a} -> {b} (one way)")
                    }
                    LinkChange::Heal => write!(f, "heal the link {a} <-> {b}"),
                    LinkChange::Blackhole => {
                        write!(f, "blackhole the link {a} <-> {b} (connections stay open)")
                    }
                    LinkChange::Latency { ms, one_way } => {
                        write!(
                            f,
                            "add {ms} ms latency {a} {} {b}",
                            if *one_way { "->" } else { "<->" }
                        )
                    }
                }
            }
            Action::SetConfig { adapters, patch } => write!(
                f,
                "PATCH ClientFailover of {} with {}",
                adapters
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                Value::Object(patch.clone())
            ),
            Action::SetDataSource { adapters, doc } => write!(
                f,
                "PUT DataSource of {} = {}",
                adapters
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                Value::Object(doc.clone())
            ),
            Action::RoleOverride {
                adapter,
                role: Some(r),
                expiration,
            } => write!(
                f,
                "operator override: {adapter} {r}{}",
                expiration.map_or(" until cleared".into(), |e| format!(
                    " for {}",
                    format_timespan(e)
                ))
            ),
            Action::RoleOverride {
                adapter,
                role: None,
                ..
            } => write!(f, "clear the override of {adapter}"),
            Action::HistoryRecovery {
                adapter,
                id,
                seconds,
            } => {
                write!(
                    f,
                    "start history recovery {id} of the last {seconds} s on {adapter}"
                )
            }
            Action::Clock {
                adapter,
                offset_ms,
                drift_ppm,
            } => {
                let sign = if *offset_ms < 0 { "-" } else { "" };
                let offset = format_timespan(Duration::from_millis(offset_ms.unsigned_abs()));
                write!(
                    f,
                    "set the clock of {adapter} {sign}{offset} from the machine's"
                )?;
                if *drift_ppm != 0.0 {
                    write!(f, ", drifting {drift_ppm} ppm")?;
                }
                Ok(())
            }
            Action::RunFor(d) => write!(f, "run for {}", format_timespan(*d)),
            Action::WaitUntil { condition, within } => write!(
                f,
                "wait until {condition} (within {})",
                format_timespan(*within)
            ),
            Action::Expect(c) => write!(f, "expect {c}"),
            Action::Hold { condition, until } => match until {
                Some(u) => write!(f, "hold {condition} until step {u}"),
                None => write!(f, "hold {condition} to the end"),
            },
            Action::Never { condition, until } => match until {
                Some(u) => write!(f, "never {condition} until step {u}"),
                None => write!(f, "never {condition} to the end"),
            },
        }
    }
}
