//! A scenario file as TOML gives it, before any check: the shapes serde reads, every field
//! optional where the language lets it be left out. [`crate::parse`] turns it into the model.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileToml {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) story: String,
    pub(crate) seed: Option<u64>,
    pub(crate) cluster: Spanned<ClusterToml>,
    #[serde(default)]
    pub(crate) step: Vec<Spanned<StepToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterToml {
    pub(crate) mode: String,
    pub(crate) failover_timeout: String,
    pub(crate) streams: Option<u32>,
    pub(crate) components: Option<u32>,
    pub(crate) rate: Option<f64>,
    pub(crate) data_collection_mode: Option<String>,
    pub(crate) warm_test_interval: Option<String>,
    pub(crate) adapters: Option<toml::Value>,
    pub(crate) group: Option<String>,
    pub(crate) history_rate: Option<u32>,
    pub(crate) auth: Option<String>,
    pub(crate) token_lifetime: Option<String>,
    pub(crate) disk_buffer: Option<bool>,
    pub(crate) tls: Option<String>,
    pub(crate) failover_protocol: Option<String>,
    pub(crate) egress: Option<String>,
    pub(crate) source_protocol: Option<String>,
    pub(crate) behaviour: Option<String>,
    #[serde(rename = "break")]
    pub(crate) break_rule: Option<toml::Value>,
    pub(crate) max_clients: Option<u32>,
    pub(crate) store: Option<String>,
    pub(crate) store_lease: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepToml {
    pub(crate) note: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) kill: Option<String>,
    pub(crate) pause: Option<String>,
    pub(crate) resume: Option<String>,
    pub(crate) stop: Option<String>,
    pub(crate) restart: Option<toml::Value>,
    pub(crate) delete_session: Option<String>,
    pub(crate) delete_group: Option<bool>,
    pub(crate) change_failover_timeout: Option<String>,
    pub(crate) unregister: Option<String>,
    pub(crate) register: Option<String>,
    pub(crate) start_twin: Option<String>,
    pub(crate) stop_twin: Option<String>,
    pub(crate) start_standalone: Option<String>,
    pub(crate) stop_standalone: Option<String>,
    pub(crate) fence_ahead: Option<u64>,
    pub(crate) member_ahead: Option<u64>,
    pub(crate) source_outage: Option<SourceToml>,
    pub(crate) source_restore: Option<SourceToml>,
    pub(crate) endpoint_outage: Option<bool>,
    pub(crate) cut_link: Option<LinkToml>,
    pub(crate) blackhole_link: Option<LinkToml>,
    pub(crate) heal_link: Option<LinkToml>,
    pub(crate) link_latency: Option<LinkToml>,
    pub(crate) set_config: Option<toml::Table>,
    pub(crate) set_data_source: Option<toml::Table>,
    pub(crate) role_override: Option<OverrideToml>,
    pub(crate) history_recovery: Option<RecoveryToml>,
    pub(crate) clock: Option<ClockToml>,
    pub(crate) isolate: Option<String>,
    pub(crate) end_isolation: Option<bool>,
    pub(crate) run_for: Option<String>,
    pub(crate) wait_until: Option<ConditionToml>,
    pub(crate) within: Option<String>,
    pub(crate) expect: Option<ConditionToml>,
    pub(crate) hold: Option<ConditionToml>,
    pub(crate) never: Option<ConditionToml>,
    pub(crate) until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceToml {
    pub(crate) component: Option<u32>,
    pub(crate) adapter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkToml {
    pub(crate) between: Vec<String>,
    pub(crate) direction: Option<String>,
    pub(crate) ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverrideToml {
    pub(crate) adapter: String,
    pub(crate) role: String,
    pub(crate) expiration: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoveryToml {
    pub(crate) adapter: String,
    pub(crate) id: String,
    pub(crate) seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProgramToml {
    pub(crate) command: Vec<String>,
    pub(crate) configure: Option<String>,
    pub(crate) put: Option<Vec<PutToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutToml {
    pub(crate) path: String,
    pub(crate) body: toml::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClockToml {
    pub(crate) adapter: String,
    pub(crate) offset: Option<String>,
    pub(crate) drift_ppm: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum NumOrText {
    Num(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionToml {
    pub(crate) primary: Option<toml::Value>,
    pub(crate) role: Option<toml::Table>,
    pub(crate) score: Option<toml::Table>,
    pub(crate) epoch: Option<NumOrText>,
    pub(crate) score_transitions: Option<Vec<String>>,
    pub(crate) role_transitions: Option<Vec<String>>,
    pub(crate) takeover_within: Option<String>,
    pub(crate) takeover_from: Option<String>,
    pub(crate) audit: Option<toml::Table>,
    pub(crate) warning: Option<AdapterText>,
    pub(crate) state: Option<toml::Table>,
    pub(crate) recovery: Option<RecoveryExpectToml>,
    pub(crate) invariants: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdapterText {
    pub(crate) adapter: String,
    pub(crate) contains: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoveryExpectToml {
    pub(crate) adapter: String,
    pub(crate) id: String,
    pub(crate) status: String,
}
