//! [`parse`]: a scenario file's text into the model, every value checked, or the first
//! refusal with its line and field.

use std::{path::Path, time::Duration};

use failover_core::{DataCollectionMode, Mode, Role};

use crate::cluster::{
    ARBITER, ClusterAuth, ClusterEgress, ClusterProtocol, ClusterSource, ClusterSpec, ClusterTls,
    ENDPOINT, SOURCE,
};

use toml::Spanned;

use crate::{checker::*, model::*, raw::*};

/// Checks one scenario's text (`file` names it in errors).
pub fn parse(file: &str, text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let raw: FileToml = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        let message = e.message().to_string();
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| {
                message.starts_with("unknown field") || message.starts_with("missing field")
            })
            .unwrap_or("syntax")
            .to_string();
        ScenarioError {
            file: file.to_string(),
            line,
            field,
            message,
        }
    })?;
    let cluster_line = line_of(text, raw.cluster.span().start);
    let c = raw.cluster.into_inner();
    let (adapters, programs) = match &c.adapters {
        None => (
            vec!["adapter-a".to_string(), "adapter-b".to_string()],
            Default::default(),
        ),
        Some(v) => crate::program::programs_of(v).map_err(|(field, message)| ScenarioError {
            file: file.to_string(),
            line: cluster_line,
            field,
            message,
        })?,
    };
    let mut ck = Checker {
        file: file.to_string(),
        adapters: &adapters,
        line: cluster_line,
        step_ids: Vec::new(),
        etcd: false,
    };
    if adapters.len() < 2
        || adapters.iter().any(|a| {
            a.is_empty()
                || [
                    ARBITER,
                    SOURCE,
                    ENDPOINT,
                    "primary",
                    "secondary",
                    "all",
                    "none",
                ]
                .contains(&a.as_str())
        })
    {
        return Err(ck.err("cluster.adapters", "name two or more adapters, none of them arbiter, source, endpoint, primary, secondary, all or none"));
    }
    let mode: Mode = c
        .mode
        .parse()
        .map_err(|e: failover_core::config::ModeError| ck.err("cluster.mode", e.to_string()))?;
    let failover_timeout = ck.duration("cluster.failover_timeout", &c.failover_timeout)?;
    if failover_timeout < failover_core::config::MIN_FAILOVER_TIMEOUT
        || failover_timeout > Duration::from_secs(600)
    {
        return Err(ck.err(
            "cluster.failover_timeout",
            "must be from 00:00:00.100 to 00:10:00 in a scenario",
        ));
    }
    let streams = c.streams.unwrap_or(8);
    let components = c.components.unwrap_or(4);
    if streams == 0 || streams > 100_000 || components == 0 || components > streams {
        return Err(ck.err("cluster.streams", format!("need 1 to 100000 streams and 1 to streams components (got {streams} streams, {components} components)")));
    }
    let rate = c.rate.unwrap_or(10.0);
    if !(rate.is_finite() && rate > 0.0 && rate <= 10_000.0) {
        return Err(ck.err(
            "cluster.rate",
            format!("must be above 0 and at most 10000 Hz, not {rate}"),
        ));
    }
    let data_collection_mode: DataCollectionMode = match &c.data_collection_mode {
        None => DataCollectionMode::CurrentOnly,
        Some(m) => m.parse().map_err(|e: failover_core::ConfigError| {
            ck.err("cluster.data_collection_mode", e.message)
        })?,
    };
    let warm_test_interval = match &c.warm_test_interval {
        None => Duration::from_secs(1),
        Some(t) => ck.duration("cluster.warm_test_interval", t)?,
    };
    let auth = match c.auth.as_deref() {
        None => ClusterAuth::None,
        Some("basic") => ClusterAuth::Basic,
        Some("bearer") => ClusterAuth::Bearer {
            token_lifetime: match &c.token_lifetime {
                None => Duration::from_secs(3600),
                Some(t) => ck.duration("cluster.token_lifetime", t)?,
            },
        },
        Some(other) => {
            return Err(ck.err(
                "cluster.auth",
                format!(
                    "{other:?} is not supported; accepted: \"basic\" (the failover service then \
                     requires the ClientFailover document's username and password) or \"bearer\" \
                     (it issues tokens to the documents' clientId and clientSecret)"
                ),
            ));
        }
    };
    if c.token_lifetime.is_some() && !matches!(auth, ClusterAuth::Bearer { .. }) {
        return Err(ck.err(
            "cluster.token_lifetime",
            "applies only with auth = \"bearer\"",
        ));
    }
    if let ClusterAuth::Bearer { token_lifetime } = auth
        && token_lifetime < Duration::from_secs(1)
    {
        return Err(ck.err(
            "cluster.token_lifetime",
            "tokens live at least 00:00:01 (the failover service's minimum)",
        ));
    }
    let tls = match c.tls.as_deref() {
        None | Some("off") => ClusterTls::Off,
        Some("trusted-ca") => ClusterTls::TrustedCa,
        Some("unchecked") => ClusterTls::Unchecked,
        Some(other) => {
            return Err(ck.err(
                "cluster.tls",
                format!(
                    "{other:?} is not supported; accepted: \"off\", \"trusted-ca\" (the failover \
                     service serves TLS with a self-signed certificate, the adapters validate it \
                     against its CA) or \"unchecked\" (validateEndpointCertificate false)"
                ),
            ));
        }
    };
    let behaviour = match c.behaviour.as_deref() {
        None => failover_core::Behaviour::Lab,
        Some(b) => b
            .parse::<failover_core::Behaviour>()
            .map_err(|e| ck.err("cluster.behaviour", e))?,
    };
    let vendor = behaviour == failover_core::Behaviour::Vendor;
    let failover_protocol = match c.failover_protocol.as_deref() {
        // The vendor's adapters speak its REST API.
        None if vendor => ClusterProtocol::Rest,
        Some("grpc") if vendor => {
            return Err(ck.err(
                "cluster.failover_protocol",
                "behaviour = \"vendor\" speaks the vendor's REST API: use \"rest\" (the default \
                 with it), not \"grpc\"",
            ));
        }
        None | Some("grpc") => ClusterProtocol::Grpc,
        Some("rest") => ClusterProtocol::Rest,
        Some(other) => {
            return Err(ck.err(
                "cluster.failover_protocol",
                format!(
                    "{other:?} is not supported; accepted: \"grpc\" (failover-lab's heartbeat \
                     stream, roles pushed at once) or \"rest\" (the vendor's Client Failover \
                     Service REST API, roles pulled in heartbeat answers)"
                ),
            ));
        }
    };
    if failover_protocol == ClusterProtocol::Rest && matches!(auth, ClusterAuth::Bearer { .. }) {
        return Err(ck.err(
            "cluster.failover_protocol",
            "\"rest\" takes auth = \"basic\" or none (the vendor's on-premises service knows no bearer tokens)",
        ));
    }
    let egress = match c.egress.as_deref() {
        // The vendor's adapters egress OMF.
        None if vendor => ClusterEgress::Omf,
        Some("grpc") if vendor => {
            return Err(ck.err(
                "cluster.egress",
                "behaviour = \"vendor\" egresses OMF: use \"omf\" (the default with it), not \
                 \"grpc\" (the lab's DataEndpoint needs the fencing the vendor's design lacks)",
            ));
        }
        None | Some("grpc") => ClusterEgress::Grpc,
        Some("omf") => ClusterEgress::Omf,
        Some(other) => {
            return Err(ck.err(
                "cluster.egress",
                format!(
                    "{other:?} is not supported; accepted: \"grpc\" (the lab's DataEndpoint, \
                     fenced by epoch) or \"omf\" (OMF over HTTP, as Edge Data Store, PI Web API \
                     and CONNECT take it)"
                ),
            ));
        }
    };
    if egress == ClusterEgress::Omf && rate > 1000.0 {
        return Err(ck.err(
            "cluster.rate",
            format!(
                "{rate} Hz is too fast for egress = \"omf\": an OMF value is known by its \
                 timestamp in milliseconds, so ticks must be at least 1 ms apart (1000 Hz at most)"
            ),
        ));
    }
    let source_protocol = match c.source_protocol.as_deref() {
        None | Some("grpc") => ClusterSource::Grpc,
        Some("mqtt") => ClusterSource::Mqtt,
        Some("opcua") => ClusterSource::OpcUa,
        Some(other) => {
            return Err(ck.err(
                "cluster.source_protocol",
                format!(
                    "{other:?} is not supported; accepted: \"grpc\" (the lab's DataSource) or \
                     \"mqtt\" (the source's MQTT topics; no history recoveries)"
                ),
            ));
        }
    };
    let broken = match &c.break_rule {
        None => failover_core::Broken::NONE,
        Some(value) => {
            let names: Vec<&str> = match value {
                toml::Value::String(one) => vec![one.as_str()],
                toml::Value::Array(many) => many.iter().filter_map(toml::Value::as_str).collect(),
                _ => Vec::new(),
            };
            if names.is_empty() {
                return Err(ck.err(
                    "cluster.break",
                    "give a rule's name (\"epoch-check\") or a list of them",
                ));
            }
            let mut broken = failover_core::Broken::NONE;
            for name in names {
                let rule: failover_core::BrokenRule = name
                    .parse()
                    .map_err(|e: String| ck.err("cluster.break", e))?;
                broken = broken.with(rule);
            }
            broken
        }
    };
    let default_within = failover_timeout * 3 + Duration::from_secs(10);
    let spec = ClusterSpec {
        behaviour,
        failover_protocol,
        egress,
        source_protocol,
        auth,
        disk_buffer: c.disk_buffer.unwrap_or(true),
        tls,
        mode,
        failover_timeout,
        streams,
        components,
        rate_hz: rate,
        seed: raw.seed.unwrap_or(1),
        warm_test_interval,
        data_collection_mode,
        adapters: adapters.clone(),
        programs,
        group_id: c.group.clone().unwrap_or_else(|| "FailoverGroup1".into()),
        history_rate: c.history_rate,
        broken,
        max_clients: ck.max_clients(c.max_clients)?,
        ..ClusterSpec::default()
    };
    let spec = crate::store::with_store(&mut ck, &c, spec)?;
    let mut steps = Vec::new();
    // `until` references to later steps: (line, field, id, index of the step).
    let mut later_refs: LaterRefs = Vec::new();
    for (i, spanned) in raw.step.iter().enumerate() {
        let context = StepContext {
            text,
            index: i,
            adapters: &adapters,
            components,
            default_within,
        };
        steps.push(step(&mut ck, &context, spanned, &mut later_refs)?);
    }
    if steps.is_empty() {
        ck.line = 1;
        return Err(ck.err("step", "a scenario needs at least one [[step]]"));
    }
    for (line, f, id, at) in later_refs {
        if !steps[at + 1..]
            .iter()
            .any(|s| s.id.as_deref() == Some(id.as_str()))
        {
            ck.line = line;
            let later: Vec<&str> = steps[at + 1..]
                .iter()
                .filter_map(|s| s.id.as_deref())
                .collect();
            return Err(ck.err(
                &f,
                if later.is_empty() {
                    format!("no later step has id {id:?}; give the step it lasts up to id = \"{id}\" (or leave until out: to the end)")
                } else {
                    format!("no later step has id {id:?}; the later ids are {}", later.join(", "))
                },
            ));
        }
    }
    let scenario = Scenario {
        path: path.to_path_buf(),
        name: raw.name,
        story: raw.story.trim().to_string(),
        seed: spec.seed,
        cluster: spec,
        steps,
    };
    if !scenario.cluster.programs.is_empty() {
        let c = &scenario.cluster;
        let flag = if c.behaviour != failover_core::Behaviour::Lab {
            Some("behaviour")
        } else if c.broken != failover_core::Broken::NONE {
            Some("break")
        } else if c.tls != ClusterTls::Off {
            Some("tls")
        } else {
            None
        };
        if let Some(flag) = flag {
            return Err(ScenarioError {
                file: file.to_string(),
                line: cluster_line,
                field: format!("cluster.{flag}"),
                message: format!(
                    "cluster.{flag} sets failover-lab's adapter's flags, which a program adapter \
                     (cluster.adapters with a command) does not take: give the program its own \
                     flags in its command"
                ),
            });
        }
        if let Some((line, why)) = crate::program::check(&scenario) {
            return Err(ScenarioError {
                file: file.to_string(),
                line,
                field: "step".into(),
                message: why,
            });
        }
    }
    Ok(scenario)
}

/// What reading one step needs to know of the file.
struct StepContext<'a> {
    text: &'a str,
    /// The step's index (0-based).
    index: usize,
    adapters: &'a [String],
    components: u32,
    default_within: Duration,
}

/// `until` references to later steps, checked once every step is read: (line, field, id,
/// index of the step).
type LaterRefs = Vec<(usize, String, String, usize)>;

/// One `[[step]]`: exactly one action, its note and id, every value checked.
fn step(
    ck: &mut Checker<'_>,
    cx: &StepContext<'_>,
    spanned: &Spanned<StepToml>,
    later_refs: &mut LaterRefs,
) -> Result<Step, ScenarioError> {
    let (text, i, adapters, components, default_within) = (
        cx.text,
        cx.index,
        cx.adapters,
        cx.components,
        cx.default_within,
    );
    let span = spanned.span();
    let header_line = line_of(text, span.start);
    ck.line = header_line;
    let s = spanned.get_ref();
    let field = |name: &str| format!("step {}.{name}", i + 1);
    if let Some(id) = &s.id {
        ck.line = key_line(text, &span, "id");
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ck.err(
                &field("id"),
                format!("{id:?} is not an id; use 1 to 64 letters, digits, - and _ (\"warm-up\")"),
            ));
        }
        if ck.step_ids.contains(id) {
            return Err(ck.err(
                &field("id"),
                format!("{id:?} is the id of an earlier step too; ids are unique"),
            ));
        }
        ck.line = header_line;
    }
    let mut actions: Vec<Action> = Vec::new();
    let mut push = |a: Action| actions.push(a);
    if let Some(t) = &s.kill {
        ck.line = key_line(text, &span, "kill");
        push(Action::Kill(ck.component(&field("kill"), t)?));
    }
    if let Some(t) = &s.pause {
        ck.line = key_line(text, &span, "pause");
        push(Action::Pause(ck.component(&field("pause"), t)?));
    }
    if let Some(t) = &s.resume {
        ck.line = key_line(text, &span, "resume");
        push(Action::Resume(ck.component(&field("resume"), t)?));
    }
    if let Some(t) = &s.stop {
        ck.line = key_line(text, &span, "stop");
        push(Action::Stop(ck.component(&field("stop"), t)?));
    }
    if let Some(t) = &s.restart {
        ck.line = key_line(text, &span, "restart");
        let f = field("restart");
        match t {
            toml::Value::String(name) => push(Action::Restart(ck.component(&f, name)?)),
            toml::Value::Table(table) => {
                let adapter = table
                    .get("adapter")
                    .and_then(toml::Value::as_str)
                    .ok_or_else(|| ck.err(&f, "a table needs adapter = \"adapter-a\" and the document fields it restarts with, such as mode = \"Warm\""))?;
                let adapter = ck.adapter(&format!("{f}.adapter"), adapter)?;
                let mut patch = ck.json_table(&f, table)?;
                patch.remove("adapter");
                if patch.is_empty() {
                    return Err(ck.err(&f, "give the document fields to change (mode = \"Warm\"), or restart = \"adapter-a\" for the same document"));
                }
                push(Action::RestartChanged { adapter, patch });
            }
            _ => {
                return Err(ck.err(
                    &f,
                    "give a component (\"adapter-a\") or a table: { adapter = \"adapter-a\", mode = \"Warm\" }",
                ));
            }
        }
    }
    if let Some(t) = &s.delete_session {
        ck.line = key_line(text, &span, "delete_session");
        push(Action::DeleteSession(
            ck.adapter(&field("delete_session"), t)?,
        ));
    }
    if let Some(yes) = s.delete_group {
        ck.line = key_line(text, &span, "delete_group");
        if !yes {
            return Err(ck.err(
                &field("delete_group"),
                "delete_group = true deletes the group; leave it out to keep it",
            ));
        }
        push(Action::DeleteGroup);
    }
    if let Some(d) = &s.change_failover_timeout {
        ck.line = key_line(text, &span, "change_failover_timeout");
        let f = field("change_failover_timeout");
        let d = ck.duration(&f, d)?;
        if d < failover_core::config::MIN_FAILOVER_TIMEOUT || d > Duration::from_secs(600) {
            return Err(ck.err(&f, "must be from 00:00:00.100 to 00:10:00 in a scenario"));
        }
        push(Action::ChangeFailoverTimeout(d));
    }
    for (key, value, registered) in [
        ("unregister", &s.unregister, false),
        ("register", &s.register, true),
    ] {
        if let Some(t) = value {
            ck.line = key_line(text, &span, key);
            push(Action::Register {
                adapter: ck.adapter(&field(key), t)?,
                registered,
            });
        }
    }
    for (key, value, running) in [
        ("start_twin", &s.start_twin, true),
        ("stop_twin", &s.stop_twin, false),
    ] {
        if let Some(t) = value {
            ck.line = key_line(text, &span, key);
            if !adapters.contains(t) {
                return Err(ck.err(
                    &field(key),
                    format!(
                        "no adapter {t:?}; a twin takes the name of one of {}",
                        adapters.join(", ")
                    ),
                ));
            }
            push(Action::Twin {
                adapter: t.clone(),
                running,
            });
        }
    }
    for (key, value, running) in [
        ("start_standalone", &s.start_standalone, true),
        ("stop_standalone", &s.stop_standalone, false),
    ] {
        if let Some(n) = value {
            ck.line = key_line(text, &span, key);
            let f = field(key);
            if adapters.contains(n) || [ARBITER, SOURCE, ENDPOINT, "intruder"].contains(&n.as_str())
            {
                return Err(ck.err(&f, format!("{n:?} is taken; a standalone adapter needs a name of its own (\"adapter-s\")")));
            }
            if n.is_empty()
                || n.len() > 64
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ck.err(
                    &f,
                    format!("{n:?} is not a name; use 1 to 64 letters, digits, - and _"),
                ));
            }
            push(Action::Standalone {
                name: n.clone(),
                running,
            });
        }
    }
    if let Some(by) = s.fence_ahead {
        ck.line = key_line(text, &span, "fence_ahead");
        if !(1..=1000).contains(&by) {
            return Err(ck.err(
                &field("fence_ahead"),
                "give 1 to 1000 epochs above the group's highest",
            ));
        }
        push(Action::FenceAhead(by));
    }
    if let Some(by) = s.member_ahead {
        ck.line = key_line(text, &span, "member_ahead");
        if by > 1000 {
            return Err(ck.err(
                &field("member_ahead"),
                "give 1 to 1000 epochs above the group's highest, or 0 for the intruder to leave",
            ));
        }
        push(Action::MemberAhead(by));
    }
    if let Some(x) = &s.source_outage {
        ck.line = key_line(text, &span, "source_outage");
        push(Action::Source {
            scope: ck.source(&field("source_outage"), x, components)?,
            down: true,
        });
    }
    if let Some(x) = &s.source_restore {
        ck.line = key_line(text, &span, "source_restore");
        push(Action::Source {
            scope: ck.source(&field("source_restore"), x, components)?,
            down: false,
        });
    }
    if let Some(d) = s.endpoint_outage {
        push(Action::EndpointOutage(d));
    }
    if let Some(l) = &s.cut_link {
        ck.line = key_line(text, &span, "cut_link");
        let (link, one_way) = ck.link(&field("cut_link"), l)?;
        push(Action::Link {
            link,
            change: LinkChange::Cut { one_way },
        });
    }
    if let Some(l) = &s.blackhole_link {
        ck.line = key_line(text, &span, "blackhole_link");
        let f = field("blackhole_link");
        if l.direction.is_some() || l.ms.is_some() {
            return Err(ck.err(
                &f,
                "a blackhole drops every byte both ways; give only between = [...]",
            ));
        }
        let (link, _) = ck.link(&f, l)?;
        push(Action::Link {
            link,
            change: LinkChange::Blackhole,
        });
    }
    if let Some(l) = &s.heal_link {
        ck.line = key_line(text, &span, "heal_link");
        let (link, _) = ck.link(&field("heal_link"), l)?;
        push(Action::Link {
            link,
            change: LinkChange::Heal,
        });
    }
    if let Some(l) = &s.link_latency {
        ck.line = key_line(text, &span, "link_latency");
        let (link, one_way) = ck.link(&field("link_latency"), l)?;
        let ms =
            l.ms.filter(|ms| *ms <= 60_000)
                .ok_or_else(|| ck.err(&field("link_latency.ms"), "give ms = 1 to 60000"))?;
        push(Action::Link {
            link,
            change: LinkChange::Latency { ms, one_way },
        });
    }
    if let Some(t) = &s.set_config {
        ck.line = key_line(text, &span, "set_config");
        let f = field("set_config");
        let adapter = t.get("adapter").and_then(toml::Value::as_str).ok_or_else(|| ck.err(&f, "needs adapter = \"adapter-a\" (or \"all\") and the fields to change, such as mode = \"Cold\""))?;
        let adapters = ck.adapters_or_all(&format!("{f}.adapter"), adapter)?;
        let mut patch = ck.json_table(&f, t)?;
        patch.remove("adapter");
        push(Action::SetConfig { adapters, patch });
    }
    if let Some(t) = &s.set_data_source {
        ck.line = key_line(text, &span, "set_data_source");
        let f = field("set_data_source");
        let adapter = t
            .get("adapter")
            .and_then(toml::Value::as_str)
            .ok_or_else(|| {
                ck.err(
                    &f,
                    "needs adapter = \"adapter-a\" (or \"all\") and dataCollectionMode",
                )
            })?;
        let adapters = ck.adapters_or_all(&format!("{f}.adapter"), adapter)?;
        let mut doc = ck.json_table(&f, t)?;
        doc.remove("adapter");
        push(Action::SetDataSource { adapters, doc });
    }
    if let Some(o) = &s.role_override {
        ck.line = key_line(text, &span, "role_override");
        let f = field("role_override");
        let role = match o.role.as_str() {
            "Primary" => Some(Role::Primary),
            "Secondary" => Some(Role::Secondary),
            "none" => None,
            other => return Err(ck.err(
                &format!("{f}.role"),
                format!(
                    "{other:?} is not accepted; use \"Primary\", \"Secondary\" or \"none\" (clears)"
                ),
            )),
        };
        let expiration = o
            .expiration
            .as_deref()
            .map(|e| ck.duration(&format!("{f}.expiration"), e))
            .transpose()?;
        push(Action::RoleOverride {
            adapter: ck.adapter(&format!("{f}.adapter"), &o.adapter)?,
            role,
            expiration,
        });
    }
    if let Some(r) = &s.history_recovery {
        ck.line = key_line(text, &span, "history_recovery");
        let f = field("history_recovery");
        if r.seconds == 0 || r.seconds > 86_400 {
            return Err(ck.err(&format!("{f}.seconds"), "must be 1 to 86400"));
        }
        push(Action::HistoryRecovery {
            adapter: ck.adapter(&format!("{f}.adapter"), &r.adapter)?,
            id: r.id.clone(),
            seconds: r.seconds,
        });
    }
    if let Some(c) = &s.clock {
        ck.line = key_line(text, &span, "clock");
        let f = field("clock");
        let offset_ms = match c.offset.as_deref() {
            None => 0,
            Some(o) => {
                let (sign, magnitude) = match o.strip_prefix('-') {
                    Some(rest) => (-1, rest),
                    None => (1, o.strip_prefix('+').unwrap_or(o)),
                };
                let d = ck.duration(&format!("{f}.offset"), magnitude)?;
                if d > Duration::from_secs(86_400) {
                    return Err(ck.err(
                        &format!("{f}.offset"),
                        "at most a day either way (\"-24:00:00\" to \"24:00:00\")",
                    ));
                }
                sign * i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            }
        };
        let drift_ppm = c.drift_ppm.unwrap_or(0.0);
        if !drift_ppm.is_finite() || drift_ppm.abs() > 100_000.0 {
            return Err(ck.err(
                &format!("{f}.drift_ppm"),
                "must be a number from -100000 to 100000 (parts per million)",
            ));
        }
        push(Action::Clock {
            adapter: ck.adapter(&format!("{f}.adapter"), &c.adapter)?,
            offset_ms,
            drift_ppm,
        });
    }
    if let Some(d) = &s.run_for {
        ck.line = key_line(text, &span, "run_for");
        push(Action::RunFor(ck.duration(&field("run_for"), d)?));
    }
    if let Some(c) = &s.wait_until {
        ck.line = key_line(text, &span, "wait_until");
        let within = match &s.within {
            Some(w) => {
                ck.line = key_line(text, &span, "within");
                let d = ck.duration(&field("within"), w)?;
                ck.line = key_line(text, &span, "wait_until");
                d
            }
            None => default_within,
        };
        push(Action::WaitUntil {
            condition: ck.condition(&field("wait_until"), c)?,
            within,
        });
    } else if s.within.is_some() {
        ck.line = key_line(text, &span, "within");
        return Err(ck.err(&field("within"), "within goes with wait_until"));
    }
    if let Some(c) = &s.expect {
        ck.line = key_line(text, &span, "expect");
        push(Action::Expect(ck.condition(&field("expect"), c)?));
    }
    for (key, toml_c) in [("hold", &s.hold), ("never", &s.never)] {
        let Some(c) = toml_c else { continue };
        ck.line = key_line(text, &span, key);
        let condition = ck.condition(&field(key), c)?;
        ck.watched(&field(key), &condition, key == "never")?;
        let until = s.until.clone();
        if let Some(u) = &until {
            // Checked against the later steps once all are read.
            later_refs.push((ck.line, field("until"), u.clone(), i));
        }
        push(if key == "hold" {
            Action::Hold { condition, until }
        } else {
            Action::Never { condition, until }
        });
    }
    if s.until.is_some() && s.hold.is_none() && s.never.is_none() {
        ck.line = key_line(text, &span, "until");
        return Err(ck.err(&field("until"), "until goes with hold or never"));
    }
    actions.extend(crate::store::actions(ck, s, text, &span, i)?);
    ck.line = header_line;
    let action = match actions.len() {
        1 => actions.pop().ok_or_else(|| ck.err(&field("action"), "missing"))?,
        0 => return Err(ck.err(&format!("step {}", i + 1), "has no action; give one of kill, pause, resume, stop, restart, source_outage, source_restore, endpoint_outage, cut_link, blackhole_link, heal_link, link_latency, set_config, set_data_source, role_override, delete_session, delete_group, change_failover_timeout, isolate, end_isolation, unregister, register, start_twin, stop_twin, start_standalone, stop_standalone, fence_ahead, member_ahead, history_recovery, run_for, wait_until, expect, hold, never")),
        n => return Err(ck.err(&format!("step {}", i + 1), format!("has {n} actions; give exactly one per [[step]]"))),
    };
    if let Some(id) = &s.id {
        ck.step_ids.push(id.clone());
    }
    Ok(Step {
        line: ck.line,
        action,
        note: s.note.clone(),
        id: s.id.clone(),
    })
}
