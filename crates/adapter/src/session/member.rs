//! What a member of a failover group says and hears, whatever the protocol: the heartbeat it
//! sends (score, mode, claim, known epoch, watermark), how it authenticates, how a session
//! ends, and what an assignment does to its role and epoch.

use tokio::time::Instant;

use failover_core::{ClientFailoverConfig, Mode, Role};
use failover_proto::{convert, process, tls::ClientTls, v1};

use crate::{
    state::{AdapterState, Shared},
    token,
};

/// Why a session ended.
pub(crate) enum End {
    /// The document changed (or was deleted): rejoin as a new incarnation.
    ConfigChanged,
    /// The bearer token is due for renewal: reconnect as the same member.
    RenewToken,
    /// The adapter left its group (graceful stop).
    Left,
    /// The service could not be reached or refused; retried with backoff.
    Failed(String),
}

/// Resolves true when the configuration changed (anything but the mode), false if the
/// change channel closed.
pub(crate) async fn wait_config_change(
    shared: &Shared,
    cfg: &ClientFailoverConfig,
    changed: &mut tokio::sync::watch::Receiver<u64>,
) -> bool {
    loop {
        if changed.changed().await.is_err() {
            return false;
        }
        if config_changed(shared, cfg) {
            return true;
        }
    }
}

pub(crate) fn config_changed(shared: &Shared, cfg: &ClientFailoverConfig) -> bool {
    let st = shared.lock();
    if st.leaving {
        return true;
    }
    match &st.failover {
        Some(now) => {
            let mut same_mode = now.clone();
            same_mode.mode = cfg.mode;
            // A session's document names the one service it heartbeats to, of the list.
            if now.failover_services().contains(&cfg.endpoint.as_str()) {
                same_mode.endpoint.clone_from(&cfg.endpoint);
            }
            same_mode != *cfg
        }
        None => true,
    }
}

/// What the heartbeat says, for change detection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Said {
    pub(crate) score: u32,
    pub(crate) mode: Mode,
    pub(crate) claims_primary: bool,
    pub(crate) epoch: u64,
    pub(crate) known_epoch: u64,
    pub(crate) holds_data_since_ms: Option<i64>,
    pub(crate) fenced_out_epoch: u64,
}

impl Said {
    /// True when a heartbeat must go at once rather than at the next tick: the score, mode,
    /// claimed role or known epoch changed since `before`.
    pub(crate) fn calls_for_heartbeat(&self, before: &Said) -> bool {
        self.score != before.score
            || self.mode != before.mode
            || self.claims_primary != before.claims_primary
            || self.known_epoch != before.known_epoch
            || self.holds_data_since_ms.is_some() != before.holds_data_since_ms.is_some()
            || self.fenced_out_epoch != before.fenced_out_epoch
    }
}

pub(crate) fn heartbeat(
    shared: &Shared,
    st: &AdapterState,
    cfg: &ClientFailoverConfig,
    incarnation: &str,
) -> (v1::HeartbeatRequest, Said) {
    let mode = st.mode().unwrap_or(cfg.mode);
    let score = st.score();
    let claims_primary = st.role == Some(Role::Primary);
    let watermark = if claims_primary {
        convert::watermark_to_wire(&st.egress_watermark.to_pairs())
    } else {
        Vec::new()
    };
    (
        v1::HeartbeatRequest {
            group_id: cfg.failover_group_id.clone(),
            adapter_id: shared.settings.name.clone(),
            incarnation: incarnation.to_string(),
            score,
            mode: convert::mode_to_wire(mode) as i32,
            failover_timeout_ms: u64::try_from(cfg.failover_timeout.as_millis())
                .unwrap_or(u64::MAX),
            known_epoch: st.known_epoch,
            claims_primary,
            egress_watermark: watermark,
            holds_data_since_ms: st.collecting_since_ms.unwrap_or(0),
            fenced_out_epoch: st.fenced_out_through,
            name: cfg.name.clone().unwrap_or_default(),
            description: cfg.description.clone().unwrap_or_default(),
            stats: Some(v1::AdapterStats {
                buffered_points: st.buffer.len() as u64,
                egressed_points: st.egressed,
                collected_points: st.collected,
                fenced_epoch: st.last_fence.map_or(0, |f| f.0),
                flushed_at_fence: st.last_fence.map_or(0, |f| f.1),
            }),
            leaving: false,
        },
        Said {
            score,
            mode,
            claims_primary,
            epoch: st.epoch,
            known_epoch: st.known_epoch,
            holds_data_since_ms: st.collecting_since_ms,
            fenced_out_epoch: st.fenced_out_through,
        },
    )
}

/// The `authorization` header the document asks for (bearer first: clientId and clientSecret
/// are the document's choice of a token; else basic with username and password), and when a
/// bearer token is due for renewal.
pub(crate) async fn authorization(
    shared: &Shared,
    cfg: &ClientFailoverConfig,
    tls: Option<&ClientTls>,
) -> Result<(Option<String>, Option<Instant>), String> {
    match (
        &cfg.client_id,
        &cfg.client_secret,
        &cfg.username,
        &cfg.password,
    ) {
        (Some(id), Some(secret), _, _) => {
            let url = token::token_url(cfg);
            let http = tls
                .map_or_else(reqwest::Client::builder, |t| {
                    reqwest::Client::builder().use_preconfigured_tls(t.http1_config())
                })
                .build()
                .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
            let t = token::fetch(&http, &url, id, secret.expose()).await?;
            shared.update(|st| st.tokens_fetched += 1);
            Ok((Some(t.header), Some(t.renew_at)))
        }
        (_, _, Some(username), Some(password)) => Ok((
            Some(failover_proto::auth::basic_header(
                username,
                password.expose(),
            )),
            None,
        )),
        _ => Ok((None, None)),
    }
}

/// The adapter has left its group (over gRPC or REST): no role, and the log says whether the
/// service answered.
pub(crate) fn left(shared: &Shared, cfg: &ClientFailoverConfig, answered: bool) {
    stop_acting(shared, cfg);
    tracing::info!(
        event = "left",
        group = cfg.failover_group_id,
        answered,
        "left failover group {}{}",
        cfg.failover_group_id,
        if answered {
            ""
        } else {
            " (no answer: the service will find the session stale)"
        }
    );
}

/// Drops the role this member was told (it no longer egresses as Primary), as it leaves.
pub(crate) fn stop_acting(shared: &Shared, cfg: &ClientFailoverConfig) {
    shared.update(|st| {
        if st.role.is_some() {
            st.role_changes += 1;
        }
        st.role = None;
        st.fenced_at = None;
        st.role_reason = format!("left group {}", cfg.failover_group_id);
    });
}

pub(crate) fn log_score_change(shared: &Shared, before: &Said, after: &Said) {
    if before.score != after.score {
        let st = shared.lock();
        tracing::info!(
            event = "score",
            from = before.score,
            to = after.score,
            role = st.role.map_or("None", Role::as_str),
            "score {} -> {}: {}",
            before.score,
            after.score,
            score_reason(&st)
        );
    }
}

/// Plain words for the current score.
pub fn score_reason(st: &AdapterState) -> String {
    use failover_core::modes::SourceHealth;
    match (st.mode(), st.role, &st.source_health, st.last_source_test()) {
        (Some(Mode::Cold), r, _, _) if r != Some(Role::Primary) && st.own_collection_failed() => {
            "Cold standby whose own collection failed (score 0 until a connection test passes)"
                .into()
        }
        (Some(Mode::Cold), r, _, _) if r != Some(Role::Primary) => "Cold standby (score 1)".into(),
        (Some(Mode::Warm), r, _, t) if r != Some(Role::Primary) => match t {
            Some(false) => "Warm standby: source connection test failed".into(),
            _ => "Warm standby: source connection test passed".into(),
        },
        (_, _, SourceHealth::Unreachable, _) => match &st.source_error {
            Some(e) => format!("source unreachable: collecting nothing ({e})"),
            None => "source unreachable: collecting nothing".into(),
        },
        (_, _, SourceHealth::Connected { down_components }, _) if !down_components.is_empty() => {
            format!("components {down_components:?} down")
        }
        (Some(Mode::Warm | Mode::Cold), Some(Role::Primary), SourceHealth::Connecting, _)
            if st.score() == 0 =>
        {
            "connecting to the source, which was down when last tried (score 0 until it answers)"
                .into()
        }
        (_, _, SourceHealth::Connecting, _) => "connecting to the source".into(),
        _ => "every source component collecting".into(),
    }
}

pub(crate) fn apply_assignment(shared: &Shared, a: v1::RoleAssignment) {
    let assigned = convert::role_from_wire(a.role);
    shared.update(|st| {
        st.last_assignment_at = Some(Instant::now());
        st.failover_error = None;
        st.session_id = a.session_id.clone();
        if st.role == Some(Role::Primary) && assigned != Some(Role::Primary) && a.epoch < st.epoch {
            // A service that knows only an older epoch than ours (it restarted, or the group
            // was recreated, and it is still waiting for us to reclaim the role) has decided
            // nothing about us: keep the role (failsafe) and keep claiming it.
            st.role_reason = a.reason.clone();
            return;
        }
        st.known_epoch = st.known_epoch.max(a.epoch);
        // An assignment older than an epoch we have seen is stale; one at or below the epoch
        // another writer holds at the endpoint cannot be fenced: wait for the promotion above
        // it (our heartbeat has told the service).
        let role = match assigned {
            Some(Role::Primary) if a.epoch < st.known_epoch || a.epoch <= st.fenced_out_through => {
                None
            }
            r => r,
        };
        if role != st.role || a.epoch != st.epoch {
            tracing::info!(
                event = "role",
                from = st.role.map_or("None", Role::as_str),
                to = role.map_or("None", Role::as_str),
                epoch = a.epoch,
                primary = a.primary_adapter_id,
                "role {} -> {} at epoch {}: {}",
                st.role.map_or("None", Role::as_str),
                role.map_or("None", Role::as_str),
                a.epoch,
                a.reason
            );
            if st.role == Some(Role::Primary) && role != Some(Role::Primary) {
                st.abandon_recoveries();
                if st.mode() != Some(Mode::Hot) {
                    // A Warm or Cold standby holds no data.
                    st.drop_buffer();
                }
            }
            st.fenced_at = None;
            st.role_since_unix_us = Some(process::unix_us());
            if role != st.role {
                st.role_changes += 1;
                st.promoted_at = (role == Some(Role::Primary)).then(Instant::now);
            }
        }
        st.role = role;
        st.epoch = a.epoch;
        st.primary_adapter_id = a.primary_adapter_id.clone();
        st.role_reason = a.reason.clone();
        if role == Some(Role::Secondary) && st.mode() == Some(Mode::Hot) {
            // Keep only what the Primary has not yet egressed.
            let wm = convert::watermark_from_wire(&a.primary_watermark);
            st.buffer.trim(&wm);
        }
    });
}

/// How the session reaches an `https:` failover service (trusting the adapter's CAs, checking
/// the certificate as the document says); None for plain HTTP; an error naming the endpoint.
pub(crate) fn endpoint_tls(
    shared: &Shared,
    cfg: &ClientFailoverConfig,
) -> Result<Option<ClientTls>, String> {
    if !cfg.endpoint.starts_with("https:") {
        return Ok(None);
    }
    ClientTls::new(
        cfg.validate_endpoint_certificate,
        &shared.settings.trusted_ca,
    )
    .map(Some)
    .map_err(|e| format!("TLS to {}: {e}", cfg.endpoint))
}
