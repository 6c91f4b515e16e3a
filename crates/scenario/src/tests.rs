//! The language's own tests: files read, refused with their line and field, and written out.

use std::{path::Path, time::Duration};

use failover_core::Mode;
use serde_json::Value;

use crate::{cluster::ClusterProtocol, invariants, raw::*, *};

const GOOD: &str = r#"
name = "Hot: the Primary is killed"
story = "A story."
seed = 3

[cluster]
mode = "Hot"
failover_timeout = "00:00:02"

[[step]]
wait_until = { primary = "adapter-a" }

[[step]]
kill = "primary"

[[step]]
wait_until = { primary = "adapter-b", role = { adapter-a = "Stale" } }
within = "00:00:10"

[[step]]
expect = { audit = { lost = 0, duplicated = 0, refused_stale = ">= 0" }, takeover_within = "00:00:05", score_transitions = ["adapter-b none -> 100"] }
"#;

fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
    parse("t.toml", text, Path::new("t.toml"))
}

#[test]
fn a_good_file_parses_into_steps() {
    let s = parse_str(GOOD).expect("good");
    assert_eq!(s.seed, 3);
    assert_eq!(s.cluster.mode, Mode::Hot);
    assert_eq!(s.steps.len(), 4);
    assert!(matches!(s.steps[1].action, Action::Kill(Target::Primary)));
    assert_eq!(
        s.steps[1].line, 13,
        "a step is where its [[step]] header is"
    );
    match &s.steps[3].action {
        Action::Expect(c) => {
            assert_eq!(c.audit.len(), 3);
            assert_eq!(
                c.score_transitions,
                vec![ScoreStep {
                    adapter: "adapter-b".into(),
                    from: None,
                    to: 100
                }]
            );
        }
        other => panic!("{other:?}"),
    }
    match &s.steps[0].action {
        Action::WaitUntil { within, .. } => assert_eq!(*within, Duration::from_secs(16)),
        other => panic!("{other:?}"),
    }
}

fn err_of(text: &str) -> ScenarioError {
    parse_str(text).expect_err("refused")
}

#[test]
fn named_steps_relative_values_and_who_may_be_primary() {
    let text = GOOD.replace(
        "[[step]]\nkill = \"primary\"",
        "[[step]]\nid = \"before\"\nrun_for = \"00:00:01\"\n\n[[step]]\nid = \"kill-a\"\nkill = \"primary\"\n\n[[step]]\nexpect = { primary = [\"adapter-a\", \"adapter-b\"], epoch = \"more than at step before\", audit = { received = \"more than at step before\", lost = \"same as step before\" }, score = { adapter-b = \"same as step before\" }, takeover_within = \"00:00:03\", takeover_from = \"kill-a\", state = { adapter = \"adapter-b\", Reason = { contains = \"promoted\" } } }\n\n[[step]]\nexpect = { primary = \"any\" }",
    );
    let sc = parse_str(&text).expect("parses");
    assert_eq!(sc.steps[1].id.as_deref(), Some("before"));
    let Action::Expect(c) = &sc.steps[3].action else {
        panic!("{:?}", sc.steps[3].action)
    };
    assert_eq!(
        c.primary,
        Some(PrimaryIs::OneOf(vec![
            "adapter-a".into(),
            "adapter-b".into()
        ]))
    );
    assert!(
        c.primary
            .as_ref()
            .is_some_and(|p| p.holds(Some("adapter-b")) && !p.holds(None))
    );
    let epoch = c.epoch.clone().expect("epoch");
    assert_eq!(
        (epoch.op, epoch.at_step.as_deref()),
        (Op::Gt, Some("before"))
    );
    assert_eq!(epoch.to_string(), "more than at step before");
    assert!(epoch.against(2).holds(3) && !epoch.against(2).holds(2));
    assert_eq!(c.takeover_from.as_deref(), Some("kill-a"));
    let Action::Expect(any) = &sc.steps[4].action else {
        panic!()
    };
    assert!(
        any.primary
            .as_ref()
            .is_some_and(|p| p.holds(Some("adapter-a")) && !p.holds(None))
    );
    // A step that is not earlier, an unknown one, a duplicate id, a bad id.
    let e = err_of(&text.replace(
        "more than at step before\", audit",
        "more than at step later\", audit",
    ));
    assert_eq!(e.field, "step 4.expect.epoch");
    assert!(e.message.contains("before, kill-a"), "{e}");
    let e = err_of(&text.replace("id = \"kill-a\"", "id = \"before\""));
    assert!(e.message.contains("unique"), "{e}");
    let e = err_of(&text.replace("id = \"kill-a\"", "id = \"kill a\""));
    assert_eq!(e.field, "step 3.id");
    let e = err_of(&text.replace("takeover_within = \"00:00:03\", ", ""));
    assert_eq!(e.field, "step 4.expect.takeover_from");
    let e = err_of(&text.replace("primary = \"any\"", "primary = [\"adapter-c\"]"));
    assert!(e.message.contains("adapter-c"), "{e}");
    let e = err_of(&text.replace("{ contains = \"promoted\" }", "{ has = \"promoted\" }"));
    assert!(e.message.contains("contains"), "{e}");
    parse_str(&text.replace(
        "{ contains = \"promoted\" }",
        "{ matches = \"promoted, epoch [0-9]+\" }",
    ))
    .expect("a regular expression");
    let e = err_of(&text.replace("{ contains = \"promoted\" }", "{ matches = \"epoch (\" }"));
    assert!(e.message.contains("not a regular expression"), "{e}");
    assert!(Cmp::from_text("same as step").is_none());
    // Found in review: an empty condition passed without checking anything.
    for empty in ["expect = {}", "hold = {}", "never = {}"] {
        let e = err_of(&GOOD.replace("kill = \"primary\"", empty));
        assert!(e.message.contains("checks nothing"), "{empty}: {e}");
    }
}

#[test]
fn hold_and_never_watch_the_services_view_up_to_a_later_step() {
    let text = GOOD.replace(
        "[[step]]\nkill = \"primary\"",
        "[[step]]\nhold = { primary = \"adapter-a\", epoch = 1 }\nuntil = \"kill\"\n\n[[step]]\nnever = { role_transitions = [\"adapter-b Primary -> Secondary\"], primary = \"none\" }\n\n[[step]]\nid = \"kill\"\nkill = \"primary\"",
    );
    let sc = parse_str(&text).expect("parses");
    assert!(matches!(&sc.steps[1].action, Action::Hold { until: Some(u), .. } if u == "kill"));
    assert!(matches!(
        &sc.steps[2].action,
        Action::Never { until: None, .. }
    ));
    let e = err_of(&text.replace("until = \"kill\"", "until = \"later\""));
    assert_eq!(e.field, "step 2.until");
    assert!(e.message.contains("kill"), "{e}");
    let e = err_of(&text.replace(
        "hold = { primary = \"adapter-a\", epoch = 1 }",
        "hold = { audit = { lost = 0 } }",
    ));
    assert_eq!(e.field, "step 2.hold.audit");
    let e = err_of(&text.replace(
        "hold = { primary = \"adapter-a\", epoch = 1 }",
        "hold = { role_transitions = [\"adapter-a Primary -> Secondary\"] }",
    ));
    assert!(e.message.contains("use never"), "{e}");
    let e = err_of(&text.replace(
        "until = \"kill\"\n",
        "until = \"kill\"\nrun_for = \"00:00:01\"\n",
    ));
    assert!(e.message.contains("2 actions"), "{e}");
    let e = err_of(&GOOD.replace("kill = \"primary\"", "kill = \"primary\"\nuntil = \"x\""));
    assert!(e.message.contains("until goes with hold or never"), "{e}");
}

#[test]
fn a_blackhole_is_a_link_fault_both_ways() {
    let sc = parse_str(&GOOD.replace(
        "kill = \"primary\"",
        "blackhole_link = { between = [\"primary\", \"arbiter\"] }",
    ))
    .expect("parses");
    assert!(matches!(
        &sc.steps[1].action,
        Action::Link {
            change: LinkChange::Blackhole,
            ..
        }
    ));
    assert_eq!(
        sc.steps[1].action.to_string(),
        "blackhole the link the Primary <-> arbiter (connections stay open)"
    );
    let e = err_of(&GOOD.replace(
        "kill = \"primary\"",
        "blackhole_link = { between = [\"primary\", \"arbiter\"], direction = \"one-way\" }",
    ));
    assert!(e.message.contains("both ways"), "{e}");
}

#[test]
fn the_failover_protocol_is_chosen_and_checked() {
    let rest = parse_str(&GOOD.replace(
        "mode = \"Hot\"",
        "mode = \"Hot\"\nfailover_protocol = \"rest\"",
    ))
    .expect("rest");
    assert_eq!(rest.cluster.failover_protocol, ClusterProtocol::Rest);
    let e = err_of(&GOOD.replace(
        "mode = \"Hot\"",
        "mode = \"Hot\"\nfailover_protocol = \"soap\"",
    ));
    assert_eq!(e.field, "cluster.failover_protocol");
    assert!(
        e.message.contains("\"grpc\"") && e.message.contains("\"rest\""),
        "{e}"
    );
    let e = err_of(&GOOD.replace(
        "mode = \"Hot\"",
        "mode = \"Hot\"\nfailover_protocol = \"rest\"\nauth = \"bearer\"",
    ));
    assert_eq!(e.field, "cluster.failover_protocol");
    assert!(e.message.contains("bearer"), "{e}");
}

#[test]
fn the_egress_is_chosen_and_checked() {
    let omf = parse_str(&GOOD.replace("mode = \"Hot\"", "mode = \"Hot\"\negress = \"omf\""))
        .expect("omf");
    assert_eq!(omf.cluster.egress, crate::cluster::ClusterEgress::Omf);
    let e = err_of(&GOOD.replace("mode = \"Hot\"", "mode = \"Hot\"\negress = \"xml\""));
    assert_eq!(e.field, "cluster.egress");
    assert!(e.message.contains("\"omf\""), "{e}");
    // OMF knows a value by its timestamp in ms: ticks closer than 1 ms cannot be told apart.
    let e = err_of(&GOOD.replace(
        "mode = \"Hot\"",
        "mode = \"Hot\"\negress = \"omf\"\nrate = 2000.0",
    ));
    assert_eq!(e.field, "cluster.rate");
}

#[test]
fn errors_name_file_line_and_field() {
    let e = err_of(&GOOD.replace("kill = \"primary\"", "kill = \"adapter-c\""));
    assert_eq!((e.line, e.field.as_str()), (14, "step 2.kill"));
    assert!(e.message.contains("adapter-a, adapter-b"), "{e}");
    assert!(e.to_string().starts_with("t.toml:14: step 2.kill:"), "{e}");

    let e = err_of(&GOOD.replace("kill = \"primary\"", "kil = \"primary\""));
    assert_eq!(e.field, "kil");
    assert_eq!(e.line, 14, "{e}");

    let e = err_of(&GOOD.replace("mode = \"Hot\"", "mode = \"hot\""));
    assert_eq!(e.field, "cluster.mode");
    assert!(e.message.contains("\"Hot\", \"Warm\" or \"Cold\""));

    let e = err_of(&GOOD.replace("lost = 0", "lots = 0"));
    assert_eq!(e.field, "step 4.expect.audit.lots");
    assert!(e.message.contains("lost"));

    let e = err_of(&GOOD.replace("within = \"00:00:10\"", "within = \"10s\""));
    assert_eq!((e.line, e.field.as_str()), (18, "step 3.within"));

    let e = err_of(&GOOD.replace(
        "[[step]]\nkill = \"primary\"",
        "[[step]]\nkill = \"primary\"\nrun_for = \"00:00:01\"",
    ));
    assert!(e.message.contains("exactly one"), "{e}");

    let e = err_of(
        "name = \"x\"\n[cluster]\nmode = \"Hot\"\nfailover_timeout = \"00:00:02\"\n[[step]]\nrun_for = \n",
    );
    assert_eq!(e.field, "syntax");
    assert_eq!(e.line, 6, "{e}");

    let e = err_of(&GOOD.replace("\"adapter-b none -> 100\"", "\"adapter-b up\""));
    assert!(e.message.contains("not a transition"), "{e}");

    let e = err_of(&GOOD.replace("refused_stale = \">= 0\"", "refused_stale = \"lots\""));
    assert!(e.message.contains("comparison"), "{e}");

    let e = err_of(&GOOD.replace("mode = \"Hot\"", "mode = \"Hot\"\nauth = \"kerberos\""));
    assert_eq!(e.field, "cluster.auth");
    assert!(e.message.contains("accepted: \"basic\""), "{e}");

    let e = err_of(&GOOD.replace(
        "mode = \"Hot\"",
        "mode = \"Hot\"\nauth = \"basic\"\ntoken_lifetime = \"00:00:03\"",
    ));
    assert_eq!(e.field, "cluster.token_lifetime");
    let e = err_of(&GOOD.replace(
        "mode = \"Hot\"",
        "mode = \"Hot\"\nauth = \"bearer\"\ntoken_lifetime = \"00:00:00.500\"",
    ));
    assert!(e.message.contains("at least 00:00:01"), "{e}");

    let e = err_of(&GOOD.replace("mode = \"Hot\"", "mode = \"Hot\"\ntls = \"yes\""));
    assert_eq!(e.field, "cluster.tls");
    assert!(e.message.contains("\"trusted-ca\""), "{e}");
}

#[test]
fn links_and_sources_are_checked() {
    let base =
        "name = \"x\"\n[cluster]\nmode = \"Hot\"\nfailover_timeout = \"00:00:02\"\n[[step]]\n";
    let ok = parse_str(&format!(
        "{base}cut_link = {{ between = [\"arbiter\", \"primary\"], direction = \"one-way\" }}\n"
    ))
    .expect("link");
    match &ok.steps[0].action {
        Action::Link { link, change } => {
            assert_eq!(link.service, "arbiter");
            assert!(!link.adapter_first);
            assert_eq!(*change, LinkChange::Cut { one_way: true });
        }
        other => panic!("{other:?}"),
    }
    let e = err_of(&format!(
        "{base}cut_link = {{ between = [\"adapter-a\", \"adapter-b\"] }}\n"
    ));
    assert!(e.message.contains("arbiter, source or endpoint"), "{e}");
    let e = err_of(&format!("{base}source_outage = {{ component = 9 }}\n"));
    assert!(e.message.contains("components 0 to 3"), "{e}");
    let ok = parse_str(&format!(
        "{base}source_outage = {{ component = 2, adapter = \"primary\" }}\n"
    ))
    .expect("component");
    assert!(matches!(
        &ok.steps[0].action,
        Action::Source {
            scope: SourceScope::Component {
                component: 2,
                adapter: Some(Target::Primary)
            },
            down: true
        }
    ));
}

#[test]
fn comparisons() {
    let c = |s: &str| Cmp::parse(&NumOrText::Text(s.into())).expect(s);
    assert!(c("> 0").holds(1) && !c("> 0").holds(0));
    assert!(c("<=3000").holds(3000) && !c("<=3000").holds(3001));
    assert!(c("5").holds(5));
    assert!(c("!= 2").holds(3));
    assert!(Cmp::parse(&NumOrText::Text("about 5".into())).is_err());
}

#[test]
fn invariants_and_break_are_read_and_checked() {
    let head = "name = \"x\"\n[cluster]\nmode = \"Hot\"\nfailover_timeout = \"00:00:02\"\n";
    let with =
        |cluster: &str, step: &str| parse_str(&format!("{head}{cluster}\n[[step]]\n{step}\n"));
    let all = with("", "expect = { invariants = \"all\" }").expect("all");
    let Action::Expect(c) = &all.steps[0].action else {
        panic!("an expect step")
    };
    assert_eq!(c.invariants, invariants::RULES.to_vec());
    let two = with("", "expect = { invariants = [1, 2] }").expect("a list");
    let Action::Expect(c) = &two.steps[0].action else {
        panic!("an expect step")
    };
    assert_eq!(c.invariants, vec![1, 2]);
    // Rule 4 needs the simulator's schedule: no scenario can check it.
    let e = with("", "expect = { invariants = [4] }").expect_err("rule 4");
    assert_eq!(e.field, "step 1.expect.invariants");
    assert!(
        e.message
            .contains("use \"all\" or a list of 1, 2, 3, 5, 7, 10"),
        "{e}"
    );
    let e = with("", "expect = { invariants = 2 }").expect_err("a bare number");
    assert!(e.message.contains("such as [1, 2]"), "{e}");
    let e = with("", "hold = { invariants = \"all\" }").expect_err("hold");
    assert_eq!(e.field, "step 1.hold.invariants");
    let broken = with("break = \"epoch-check\"", "run_for = \"00:00:01\"").expect("break");
    assert!(
        broken
            .cluster
            .broken
            .has(failover_core::BrokenRule::EpochCheck)
    );
    let e = with("break = \"fencing\"", "run_for = \"00:00:01\"").expect_err("unknown");
    assert_eq!(e.field, "cluster.break");
    assert!(e.message.contains("accepted: epoch-check"), "{e}");
}

#[test]
fn the_operators_steps_are_read_and_bad_ones_refused() {
    let head = "name = \"x\"\n[cluster]\nmode = \"Hot\"\nfailover_timeout = \"00:00:02\"\n";
    let step = |step: &str| parse_str(&format!("{head}\n[[step]]\n{step}\n"));
    let action = |text: &str| step(text).expect(text).steps[0].action.clone();
    assert!(matches!(
        action("delete_session = \"primary\""),
        Action::DeleteSession(Target::Primary)
    ));
    assert!(matches!(action("delete_group = true"), Action::DeleteGroup));
    assert!(matches!(
        action("change_failover_timeout = \"00:00:04\""),
        Action::ChangeFailoverTimeout(d) if d == Duration::from_secs(4)
    ));
    assert!(matches!(
        action("unregister = \"adapter-b\""),
        Action::Register { adapter: Target::Named(a), registered: false } if a == "adapter-b"
    ));
    assert!(matches!(
        action("start_twin = \"adapter-a\""),
        Action::Twin { adapter, running: true } if adapter == "adapter-a"
    ));
    assert!(matches!(
        action("stop_standalone = \"adapter-s\""),
        Action::Standalone { name, running: false } if name == "adapter-s"
    ));
    assert!(matches!(action("fence_ahead = 5"), Action::FenceAhead(5)));
    assert!(matches!(action("member_ahead = 0"), Action::MemberAhead(0)));
    let Action::RestartChanged { adapter, patch } =
        action("restart = { adapter = \"adapter-b\", mode = \"Warm\" }")
    else {
        panic!("a restart with a changed document")
    };
    assert_eq!(adapter, Target::Named("adapter-b".into()));
    assert_eq!(patch.get("mode"), Some(&Value::String("Warm".into())));

    for (text, field, words) in [
        (
            "delete_group = false",
            "step 1.delete_group",
            "leave it out",
        ),
        ("fence_ahead = 0", "step 1.fence_ahead", "1 to 1000"),
        ("member_ahead = 5000", "step 1.member_ahead", "or 0"),
        (
            "change_failover_timeout = \"00:20:00\"",
            "step 1.change_failover_timeout",
            "00:10:00",
        ),
        (
            "start_twin = \"adapter-z\"",
            "step 1.start_twin",
            "adapter-a, adapter-b",
        ),
        (
            "start_standalone = \"adapter-a\"",
            "step 1.start_standalone",
            "is taken",
        ),
        (
            "start_standalone = \"a b\"",
            "step 1.start_standalone",
            "not a name",
        ),
        (
            "delete_session = \"arbiter\"",
            "step 1.delete_session",
            "no adapter",
        ),
        (
            "restart = { mode = \"Warm\" }",
            "step 1.restart",
            "adapter =",
        ),
        (
            "restart = { adapter = \"adapter-a\" }",
            "step 1.restart",
            "fields to change",
        ),
        ("restart = 3", "step 1.restart", "a component"),
    ] {
        let e = step(text).expect_err(text);
        assert_eq!(e.field, field, "{text}: {e}");
        assert!(e.message.contains(words), "{text}: {e}");
    }
}

#[test]
fn the_vendors_behaviour_brings_its_wires_and_refuses_ours() {
    let vendor = |extra: &str| GOOD.replace("mode = \"Hot\"", &format!("mode = \"Hot\"\n{extra}"));
    let s = parse_str(&vendor("behaviour = \"vendor\"")).expect("vendor");
    assert_eq!(s.cluster.behaviour, failover_core::Behaviour::Vendor);
    assert_eq!(s.cluster.egress, crate::cluster::ClusterEgress::Omf);
    assert_eq!(
        s.cluster.failover_protocol,
        crate::cluster::ClusterProtocol::Rest
    );
    let e = err_of(&vendor("behaviour = \"vendor\"\negress = \"grpc\""));
    assert_eq!(e.field, "cluster.egress");
    assert!(e.message.contains("\"omf\""), "{e}");
    let e = err_of(&vendor(
        "behaviour = \"vendor\"\nfailover_protocol = \"grpc\"",
    ));
    assert_eq!(e.field, "cluster.failover_protocol");
    let e = err_of(&vendor("behaviour = \"Vendor\""));
    assert_eq!(e.field, "cluster.behaviour");
    assert!(e.message.contains("\"lab\""), "{e}");
}

#[test]
fn a_clock_is_set_ahead_or_behind_within_a_day() {
    let head = "name = \"x\"\n[cluster]\nmode = \"Hot\"\nfailover_timeout = \"00:00:02\"\n";
    let action = |step: &str| {
        parse_str(&format!("{head}\n[[step]]\n{step}\n"))
            .expect(step)
            .steps[0]
            .action
            .clone()
    };
    match action("clock = { adapter = \"adapter-b\", offset = \"-00:00:03.500\" }") {
        Action::Clock {
            offset_ms,
            drift_ppm,
            ..
        } => assert_eq!((offset_ms, drift_ppm), (-3500, 0.0)),
        other => panic!("{other:?}"),
    }
    match action("clock = { adapter = \"primary\", offset = \"00:00:01\", drift_ppm = 200 }") {
        Action::Clock {
            offset_ms,
            drift_ppm,
            ..
        } => assert_eq!((offset_ms, drift_ppm), (1000, 200.0)),
        other => panic!("{other:?}"),
    }
    let step = |s: &str| GOOD.replace("kill = \"primary\"", s);
    let e = err_of(&step(
        "clock = { adapter = \"adapter-b\", offset = \"-25:00:00\" }",
    ));
    assert_eq!(e.field, "step 2.clock.offset");
    let e = err_of(&step(
        "clock = { adapter = \"adapter-b\", drift_ppm = 1e9 }",
    ));
    assert_eq!(e.field, "step 2.clock.drift_ppm");
    let e = err_of(&step("clock = { adapter = \"adapter-c\" }"));
    assert_eq!(e.field, "step 2.clock.adapter");
}

#[test]
fn any_adapter_program_is_read_and_what_the_lab_cannot_know_of_it_refused() {
    let with = |adapters: &str, step: &str| {
        parse_str(&format!(
            "name = \"x\"\n[cluster]\nmode = \"Hot\"\nfailover_timeout = \"00:00:02\"\n{adapters}\n[[step]]\n{step}\n"
        ))
    };
    let programs = "[cluster.adapters.vendor-b]\ncommand = [\"/opt/adapter\", \"--port\", \"{rest_port}\"]\nput = [{ path = \"/api/v1/configuration/OpcUa1/DataSource\", body = { EndpointUrl = \"{source}\" } }]\n[cluster.adapters.adapter-a]\n";
    let s = with(programs, "kill = \"primary\"").expect("programs");
    assert_eq!(s.cluster.adapters, ["vendor-b", "adapter-a"], "file order");
    let p = &s.cluster.programs["vendor-b"];
    assert_eq!(p.configure, crate::program::Configure::Rest);
    assert_eq!(p.put[0].1["EndpointUrl"], "{source}");
    assert!(
        !s.cluster.programs.contains_key("adapter-a"),
        "ours: an empty table"
    );
    let e = with(
        programs,
        "expect = { state = { adapter = \"vendor-b\", Role = \"Primary\" } }",
    )
    .expect_err("state of a program");
    assert!(e.message.contains("FailoverState"), "{e}");
    let e = with(
        programs,
        "clock = { adapter = \"primary\", offset = \"00:00:01\" }",
    )
    .expect_err("the clock of whichever is Primary");
    assert!(e.message.contains("clock"), "{e}");
    let e = with(
        "[cluster.adapters.a]\ncommand = [\"x\", \"{port}\"]\n[cluster.adapters.b]\n",
        "kill = \"a\"",
    )
    .expect_err("unknown placeholder");
    assert_eq!(e.field, "cluster.adapters.a.command");
    assert!(
        e.message.contains("{port}") && e.message.contains("{rest_port}"),
        "{e}"
    );
    let e = with(
        "[cluster.adapters.a]\ncommand = [\"x\"]\nconfigure = \"telepathy\"\n[cluster.adapters.b]\n",
        "kill = \"a\"",
    )
    .expect_err("unknown configure");
    assert_eq!(e.field, "cluster.adapters.a.configure");
    let e = with(
        "behaviour = \"vendor\"\n[cluster.adapters.a]\ncommand = [\"x\"]\n[cluster.adapters.b]\n",
        "kill = \"a\"",
    )
    .expect_err("our flags on a program");
    assert_eq!(e.field, "cluster.behaviour");
    let e = with(
        "[cluster.adapters.a]\ncommand = [\"x\"]\nconfigure = \"command-line\"\n[cluster.adapters.b]\n",
        "set_config = { adapter = \"all\", mode = \"Cold\" }",
    )
    .expect_err("a document to a command-line program");
    assert!(e.message.contains("command line"), "{e}");
}

#[test]
fn an_etcd_store_brings_its_components_and_isolation_and_is_refused_without_it() {
    let head = "name = \"n\"\n[cluster]\nmode = \"Hot\"\nfailover_timeout = \"00:00:02\"\n";
    let etcd = format!("{head}store = \"etcd\"\nstore_lease = \"00:00:03\"\n");
    let s = parse_str(&format!(
        "{etcd}[[step]]\nkill = \"leader\"\n[[step]]\nkill = \"etcd-2\"\n[[step]]\nisolate = \"arbiter-2\"\n[[step]]\nend_isolation = true\n"
    ))
    .expect("an etcd pair");
    assert_eq!(
        s.cluster.store,
        cluster::ClusterStore::Etcd {
            lease: Duration::from_secs(3)
        }
    );
    assert!(matches!(&s.steps[2].action, Action::Isolate(Target::Named(n)) if n == "arbiter-2"));
    assert!(matches!(s.steps[3].action, Action::EndIsolation));
    // Without the store, its components and isolation are refused, naming the key.
    let e = err_of(&format!("{head}[[step]]\nkill = \"etcd-1\"\n"));
    assert_eq!((e.field.as_str(), e.line), ("step 1.kill", 6), "{e}");
    assert!(e.message.contains("store = \"etcd\""), "{e}");
    let e = err_of(&format!("{head}[[step]]\nisolate = \"leader\"\n"));
    assert_eq!(e.field, "step 1.isolate", "{e}");
    let e = err_of(&format!("{etcd}[[step]]\nisolate = \"source\"\n"));
    assert!(e.message.contains("not a failover service"), "{e}");
    for (lease, why) in [("00:00:00.500", "whole seconds"), ("00:02:00", "00:01:00")] {
        let e = err_of(&format!(
            "{head}store = \"etcd\"\nstore_lease = \"{lease}\"\n[[step]]\nrun_for = \"00:00:01\"\n"
        ));
        assert_eq!(e.field, "cluster.store_lease", "{e}");
        assert!(e.message.contains(why), "{e}");
    }
    let e = err_of(&format!(
        "{head}store = \"zookeeper\"\n[[step]]\nrun_for = \"00:00:01\"\n"
    ));
    assert_eq!(e.field, "cluster.store", "{e}");
}
