//! Any adapter program in a pair: `[cluster.adapters.NAME]` with a `command` the lab starts,
//! kills, pauses, stops and restarts like its own adapter, configured through the vendor's
//! configuration REST API (`configure = "rest"`) or by its command line alone
//! (`configure = "command-line"`). Roles, scores and epochs come from the failover service and
//! the verdict from the endpoint's audit, so the lab needs nothing else of it; what it would
//! need (its FailoverState, its clock, a twin of it) is refused when the file is read.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Action, Condition, Scenario, Target};

/// How a program adapter gets its ClientFailover document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Configure {
    /// The lab PUTs the `put` documents, then the ClientFailover document, to its REST API at
    /// `{rest}` (`/api/v1/configuration/System/ClientFailover`, as the vendor's adapters take
    /// it), one adapter after the other.
    Rest,
    /// Its command line carries everything (`{config_file}`, `{failover}`, `{group}` ...): the
    /// lab starts it when it would configure it, one adapter after the other, and PUTs nothing.
    CommandLine,
}

/// An adapter the lab runs from a command instead of its own binary.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterProgram {
    /// The program and its arguments, with [`PLACEHOLDERS`] in any of them.
    pub command: Vec<String>,
    /// How it is configured.
    pub configure: Configure,
    /// Documents PUT to its REST API before the ClientFailover document, as (path from the
    /// REST root, body), placeholders filled in every string of the body (`configure = "rest"`).
    pub put: Vec<(String, Value)>,
}

/// The placeholders a command (and a `put` document) may hold, and what each becomes.
pub const PLACEHOLDERS: [(&str, &str); 12] = [
    (
        "{bin}",
        "the folder of failover-lab's binaries (its own adapter: {bin}/adapter)",
    ),
    ("{name}", "the adapter's name in the file"),
    (
        "{rest}",
        "host:port its REST API must listen on (the lab's own, free)",
    ),
    ("{rest_port}", "the port of {rest}"),
    (
        "{source}",
        "the data source's URL, through the adapter's link to it",
    ),
    (
        "{endpoint}",
        "the data endpoint's URL, through the adapter's link to it",
    ),
    (
        "{failover}",
        "the failover service's URL, through the adapter's link to it (with \
         /api/v1/clientfailover on the REST protocol), as the ClientFailover document has it",
    ),
    ("{group}", "the failoverGroupId"),
    ("{mode}", "Hot, Warm or Cold"),
    ("{failover_timeout}", "the failoverTimeout, hh:mm:ss.fff"),
    (
        "{data_dir}",
        "a folder of its own in the log folder, made before it starts",
    ),
    (
        "{config_file}",
        "a file holding the ClientFailover document the lab would PUT",
    ),
];

/// Fills the placeholders of `text` from `values` (each a `{name}` of [`PLACEHOLDERS`]).
pub fn fill(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = text.to_string();
    for (key, value) in values {
        out = out.replace(key, value);
    }
    out
}

/// Fills the placeholders in every string of a JSON document.
pub fn fill_json(doc: &Value, values: &BTreeMap<&str, String>) -> Value {
    match doc {
        Value::String(s) => Value::String(fill(s, values)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_json(v, values)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_json(v, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every string in a JSON document (where placeholders may be).
pub fn strings_of(doc: &Value) -> Vec<String> {
    match doc {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings_of).collect(),
        Value::Object(map) => map.values().flat_map(strings_of).collect(),
        _ => Vec::new(),
    }
}

/// The first `{...}` in `text` that is not a placeholder, if any.
pub fn unknown_placeholder(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        let end = tail.find('}')?;
        let candidate = &tail[..=end];
        if !PLACEHOLDERS.iter().any(|(p, _)| *p == candidate) {
            return Some(candidate.to_string());
        }
        rest = &tail[end + 1..];
    }
    None
}

/// The adapters' names in file order, and the programs among them.
pub type Programs = (Vec<String>, BTreeMap<String, AdapterProgram>);

/// `cluster.adapters`: a list of names (failover-lab's adapters), or a table of tables, one per
/// adapter in file order, each failover-lab's (`{}`) or a program (`command = [...]`).
pub(crate) fn programs_of(v: &toml::Value) -> Result<Programs, (String, String)> {
    let err = |f: &str, m: String| (format!("cluster.adapters{f}"), m);
    match v {
        toml::Value::Array(names) => names
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err("", "a list of adapter names, or a table".into()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|names| (names, Default::default())),
        toml::Value::Table(table) => {
            let mut names = Vec::new();
            let mut programs = std::collections::BTreeMap::new();
            for (name, spec) in table {
                names.push(name.clone());
                let f = format!(".{name}");
                let raw: crate::raw::ProgramToml = match spec.clone().try_into() {
                    Ok(r) => r,
                    Err(_) if spec.as_table().is_some_and(toml::Table::is_empty) => continue,
                    Err(e) => return Err(err(&f, e.message().to_string())),
                };
                if raw.command.is_empty() || raw.command[0].trim().is_empty() {
                    return Err(err(
                        &format!("{f}.command"),
                        "give the program and its arguments, as [\"{bin}/adapter\", \"--name\", \"{name}\"]"
                            .into(),
                    ));
                }
                let configure = match raw.configure.as_deref() {
                    None | Some("rest") => Configure::Rest,
                    Some("command-line") => Configure::CommandLine,
                    Some(other) => {
                        return Err(err(
                            &format!("{f}.configure"),
                            format!(
                                "{other:?} is not accepted; use \"rest\" (the lab PUTs the \
                                 ClientFailover document to its REST API) or \"command-line\" \
                                 (its command carries everything)"
                            ),
                        ));
                    }
                };
                let mut put = Vec::new();
                for (i, p) in raw.put.unwrap_or_default().into_iter().enumerate() {
                    if !p.path.starts_with('/') {
                        return Err(err(
                            &format!("{f}.put[{i}].path"),
                            format!(
                                "{:?} must start with / (a path from the REST root, as /api/v1/configuration/OpcUa1/DataSource)",
                                p.path
                            ),
                        ));
                    }
                    let body = serde_json::to_value(&p.body)
                        .map_err(|e| err(&format!("{f}.put[{i}].body"), e.to_string()))?;
                    put.push((p.path, body));
                }
                if configure == Configure::CommandLine && !put.is_empty() {
                    return Err(err(
                        &format!("{f}.put"),
                        "configure = \"command-line\" takes no put documents (the lab PUTs nothing)".into(),
                    ));
                }
                let texts =
                    raw.command
                        .iter()
                        .cloned()
                        .chain(put.iter().flat_map(|(path, body)| {
                            std::iter::once(path.clone()).chain(strings_of(body))
                        }));
                for t in texts {
                    if let Some(bad) = unknown_placeholder(&t) {
                        return Err(err(
                            &format!("{f}.command"),
                            format!(
                                "{bad} is not a placeholder; known: {}",
                                PLACEHOLDERS
                                    .iter()
                                    .map(|(p, _)| *p)
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            ),
                        ));
                    }
                }
                programs.insert(
                    name.clone(),
                    AdapterProgram {
                        command: raw.command,
                        configure,
                        put,
                    },
                );
            }
            Ok((names, programs))
        }
        _ => Err(err("", "a list of adapter names, or a table".into())),
    }
}

/// Why a step cannot be told of a pair with program adapters (None: it can): the lab knows a
/// program adapter by what the failover service and the endpoint say, not by its REST state,
/// its buffer or its clock.
pub fn step_refusal(
    action: &Action,
    programs: &BTreeMap<String, AdapterProgram>,
) -> Option<String> {
    let is_program = |t: &Target| match t {
        Target::Named(n) => programs.contains_key(n),
        // A role may be any adapter at that moment.
        Target::Primary | Target::Secondary => !programs.is_empty(),
    };
    let command_line = |t: &Target| match t {
        Target::Named(n) => programs
            .get(n)
            .is_some_and(|p| p.configure == Configure::CommandLine),
        Target::Primary | Target::Secondary => programs
            .values()
            .any(|p| p.configure == Configure::CommandLine),
    };
    let condition = |c: &Condition| -> Option<&'static str> {
        if c.state.as_ref().is_some_and(|(t, _)| is_program(t)) {
            Some("state reads failover-lab's FailoverState")
        } else if c.warning.as_ref().is_some_and(|(t, _)| is_program(t)) {
            Some("warning reads failover-lab's FailoverState")
        } else if c.recovery.as_ref().is_some_and(|(t, _, _)| is_program(t)) {
            Some("recovery reads failover-lab's history recoveries")
        } else {
            None
        }
    };
    let why = match action {
        Action::Expect(c)
        | Action::WaitUntil { condition: c, .. }
        | Action::Hold { condition: c, .. }
        | Action::Never { condition: c, .. } => condition(c)?,
        Action::HistoryRecovery { adapter, .. } if is_program(adapter) => {
            "history_recovery uses failover-lab's history recovery API"
        }
        Action::Clock { adapter, .. } if is_program(adapter) => {
            "clock sets failover-lab's adapter clock (PUT /api/v1/lab/Clock)"
        }
        Action::SetDataSource { .. } if !programs.is_empty() => {
            "set_data_source PUTs failover-lab's DataSource document"
        }
        Action::Twin { adapter, .. } if programs.contains_key(adapter) => {
            "start_twin starts failover-lab's adapter under the program's name"
        }
        Action::SetConfig { .. } | Action::Register { .. } | Action::ChangeFailoverTimeout(_)
            if programs
                .values()
                .any(|p| p.configure == Configure::CommandLine) =>
        {
            "a program configured by its command line takes no ClientFailover document over REST"
        }
        Action::RestartChanged { adapter, .. } if command_line(adapter) => {
            "a program configured by its command line takes no ClientFailover document over REST"
        }
        _ => return None,
    };
    Some(format!(
        "{why}; the lab knows a program adapter by what the failover service and the endpoint \
         say only"
    ))
}

/// The program adapters of a scenario whose steps the lab can tell (the file's check).
pub fn check(s: &Scenario) -> Option<(usize, String)> {
    s.steps.iter().find_map(|step| {
        step_refusal(&step.action, &s.cluster.programs).map(|why| (step.line, why))
    })
}
