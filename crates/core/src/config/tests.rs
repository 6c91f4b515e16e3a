//! The ClientFailover document: read, validated and refused as documented.

use super::*;

const SEED: &str = include_str!("../../../../examples/ConfigureClientFailover.json");

fn doc(edit: impl FnOnce(&mut Map<String, Value>)) -> Result<ClientFailoverConfig, ConfigError> {
    let mut map = parse_json_object(SEED).expect("seed parses");
    edit(&mut map);
    ClientFailoverConfig::from_map(&map)
}

#[test]
fn accepts_the_vendor_example_byte_for_byte() {
    let cfg = ClientFailoverConfig::from_json(SEED).expect("seed accepted");
    assert_eq!(cfg.failover_group_id, "FailoverGroup1");
    assert_eq!(cfg.name.as_deref(), Some("NameExample"));
    assert_eq!(cfg.failover_timeout, Duration::from_secs(60));
    assert_eq!(cfg.heartbeat_interval(), Duration::from_secs(30));
    assert_eq!(cfg.mode, Mode::Hot);
    assert_eq!(cfg.endpoint, "https://test-endpoint.com");
    assert_eq!(cfg.password.as_ref().map(Secret::expose), Some("Password1"));
    assert_eq!(cfg.token_endpoint, None);
    assert!(cfg.validate_endpoint_certificate);
}

#[test]
fn the_vendors_other_forms_are_accepted() {
    let seed = ClientFailoverConfig::from_json(SEED).expect("seed");
    // The vendor's newer pages wrap the document in an array; Windows editors save a
    // byte-order mark before it.
    let wrapped = format!("[\n{SEED}\n]");
    assert_eq!(
        ClientFailoverConfig::from_json(&wrapped).expect("array"),
        seed
    );
    assert_eq!(
        ClientFailoverConfig::from_json(&format!("\u{feff}{SEED}")).expect("bom"),
        seed
    );
    assert_eq!(
        ClientFailoverConfig::from_json(&format!("\u{feff}{wrapped}")).expect("both"),
        seed
    );
    let two = format!("[{SEED},{SEED}]");
    let e = ClientFailoverConfig::from_json(&two).unwrap_err();
    assert!(e.to_string().contains("array of 2"), "{e}");
    assert!(ClientFailoverConfig::from_json("[]").is_err());
    assert!(ClientFailoverConfig::from_json("[1]").is_err());
}

#[test]
fn mode_is_case_sensitive() {
    for bad in ["hot", "HOT", "warm", "cold", "Hot ", "Standby", ""] {
        let err = doc(|m| {
            m.insert("mode".into(), bad.into());
        })
        .expect_err(bad);
        assert_eq!(err.field, "mode");
        assert!(
            err.message.contains("\"Hot\", \"Warm\" or \"Cold\""),
            "{err}"
        );
    }
    for good in ["Hot", "Warm", "Cold"] {
        let cfg = doc(|m| {
            m.insert("mode".into(), good.into());
        })
        .expect(good);
        assert_eq!(cfg.mode.as_str(), good);
    }
}

#[test]
fn duplicate_keys_are_refused_naming_the_key() {
    let e = ClientFailoverConfig::from_json(
        r#"{"failoverGroupId":"g","failoverTimeout":"00:00:04","mode":"Hot","mode":"Cold","endpoint":"http://h:1"}"#,
    )
    .expect_err("duplicate");
    assert_eq!(e.field, "mode");
    assert!(e.message.contains("appears twice"), "{e}");
    let e = ClientFailoverConfig::from_json(
        r#"{"failoverGroupId":"g","failoverTimeout":"00:00:04","mode":"Hot","Mode":"Cold","endpoint":"http://h:1"}"#,
    )
    .expect_err("duplicate in another case");
    assert_eq!(e.field, "Mode");
}

#[test]
fn credentials_in_the_endpoint_url_are_refused_without_echoing_them() {
    let e = ClientFailoverConfig::from_json(
        r#"{"failoverGroupId":"g","failoverTimeout":"00:00:04","mode":"Hot","endpoint":"http://user:hunter2@h:1"}"#,
    )
    .expect_err("credentials");
    assert_eq!(e.field, "endpoint");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn an_endpoint_may_list_several_failover_services() {
    let cfg = ClientFailoverConfig::from_json(
        r#"{"failoverGroupId":"g","failoverTimeout":"00:00:04","mode":"Hot","endpoint":"http://a:1, http://b:2"}"#,
    )
    .expect("a list");
    assert_eq!(cfg.failover_services(), ["http://a:1", "http://b:2"]);
    for bad in [
        "http://a:1,",
        "http://a:1,,http://b:2",
        "http://a:1,ftp://b",
    ] {
        let doc = format!(
            r#"{{"failoverGroupId":"g","failoverTimeout":"00:00:04","mode":"Hot","endpoint":"{bad}"}}"#
        );
        let e = ClientFailoverConfig::from_json(&doc).expect_err(bad);
        assert_eq!(e.field, "endpoint", "{bad}");
    }
}

#[test]
fn required_fields_are_named() {
    for field in ["failoverGroupId", "failoverTimeout", "mode", "endpoint"] {
        let err = doc(|m| {
            m.remove(field);
        })
        .expect_err(field);
        assert_eq!(err.field, field);
        assert!(err.message.contains("required"), "{err}");
    }
}

#[test]
fn bad_values_are_refused_with_the_field() {
    let cases: Vec<(&str, Value)> = vec![
        ("failoverTimeout", "1 minute".into()),
        ("failoverTimeout", "00:00:00".into()),
        ("failoverTimeout", "00:00:00.050".into()),
        ("failoverTimeout", 60.into()),
        ("endpoint", "ftp://x".into()),
        ("endpoint", "not a url".into()),
        ("validateEndpointCertificate", "yes".into()),
        ("failoverGroupId", "  ".into()),
        ("failoverGroupId", 5.into()),
        ("name", Value::Array(vec![])),
        ("tokenEndpoint", "mailto:a@b".into()),
    ];
    for (field, value) in cases {
        let err = doc(|m| {
            m.insert(field.into(), value.clone());
        })
        .expect_err(field);
        assert_eq!(err.field, field, "{value}: {err}");
    }
}

#[test]
fn unknown_fields_and_non_objects_are_refused() {
    let err = doc(|m| {
        m.insert("failoverTimeoutt".into(), "00:01:00".into());
    })
    .expect_err("unknown");
    assert_eq!(err.field, "failoverTimeoutt");
    assert!(err.message.contains("failoverTimeout"));
    assert_eq!(
        ClientFailoverConfig::from_json("[]")
            .expect_err("array")
            .field,
        "document"
    );
    let err = ClientFailoverConfig::from_json("{\"mode\":").expect_err("truncated");
    assert!(err.message.contains("not valid JSON"), "{err}");
}

#[test]
fn field_names_ignore_case_but_values_do_not() {
    let cfg = doc(|m| {
        let v = m.remove("failoverGroupId").expect("present");
        m.insert("FailoverGroupId".into(), v);
    })
    .expect("accepted");
    assert_eq!(cfg.failover_group_id, "FailoverGroup1");
}

#[test]
fn secrets_stay_hidden() {
    let cfg = doc(|m| {
        m.insert("clientId".into(), "app".into());
        m.insert("clientSecret".into(), "S3cret!".into());
    })
    .expect("accepted");
    let shown = format!("{cfg:?} {}", Value::Object(cfg.to_public_json()));
    assert!(!shown.contains("Password1"), "{shown}");
    assert!(!shown.contains("S3cret!"), "{shown}");
    let full = Value::Object(cfg.to_full_json()).to_string();
    assert!(full.contains("Password1") && full.contains("S3cret!"));
}

#[test]
fn public_json_round_trips_through_the_parser() {
    let cfg = ClientFailoverConfig::from_json(SEED).expect("seed");
    let again = ClientFailoverConfig::from_map(&cfg.to_full_json()).expect("round trip");
    assert_eq!(cfg, again);
}

#[test]
fn merge_patch_changes_only_what_it_names() {
    let cfg = ClientFailoverConfig::from_json(SEED).expect("seed");
    let mut map = cfg.to_full_json();
    let patch = parse_json_object(r#"{"Mode":"Cold","name":null}"#).expect("patch");
    merge_patch(&mut map, &patch);
    let patched = ClientFailoverConfig::from_map(&map).expect("patched");
    assert_eq!(patched.mode, Mode::Cold);
    assert_eq!(patched.name, None);
    assert_eq!(patched.password, cfg.password);
}

#[test]
fn history_only_and_backfill_warnings() {
    let cfg = ClientFailoverConfig::from_json(SEED).expect("seed");
    let history = DataSourceConfig {
        data_collection_mode: DataCollectionMode::HistoryOnly,
    };
    assert_eq!(
        failover_warnings(Some(&cfg), &history),
        vec![HISTORY_ONLY_WARNING.to_string()]
    );
    assert!(failover_warnings(None, &history).is_empty());
    assert!(failover_warnings(Some(&cfg), &DataSourceConfig::default()).is_empty());
    assert_eq!(
        DataCollectionMode::CurrentWithBackfill.effective(true),
        DataCollectionMode::CurrentOnly
    );
    assert_eq!(
        DataCollectionMode::CurrentWithBackfill.effective(false),
        DataCollectionMode::CurrentWithBackfill
    );
    let err = "currentonly"
        .parse::<DataCollectionMode>()
        .expect_err("case");
    assert_eq!(err.field, "dataCollectionMode");
}
