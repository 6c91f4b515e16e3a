//! The adapter's own diagnostics and health, egressed to the data endpoint as the vendor's
//! adapters egress theirs (Doc: the adapters' "Failover status" and "Failover health" pages):
//!
//! - `Failover.FailoverStatus`: FailoverScore and FailoverRole, written at every change of
//!   either (the role `Primary`, `Secondary` or `None`);
//! - `Failover.Health`, static: Name, Description, Host, Version, FailoverGroupId, Mode and
//!   Endpoint of the failover configuration, written when the document changes (Mode too: the
//!   vendor lists it among the static values);
//! - `Failover.Health`, dynamic: DeviceStatus and NextHealthMessageExpected, every
//!   [`crate::AdapterSettings::health_interval`] (the vendor's: a minute), and with every new
//!   document.
//!
//! Every member writes its own, whatever its role, so these writes carry no fence
//! (`WriteDiagnostics`). Values wait in a bounded queue while the endpoint is unreachable
//! (the oldest dropped first and counted) and go in order; a refused or failed write backs off
//! like egress.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use failover_core::{ClientFailoverConfig, Role, retry::Backoff, timespan::format_timespan};
use failover_proto::{process, v1};
use tonic::transport::Channel;

use crate::{egress::egress_group, state::Shared};

/// Values kept while the endpoint cannot take them.
const QUEUE: usize = 10_000;
/// Most values in one write (the endpoint's limit).
const BATCH: usize = 1_000;

/// A value and the group it belongs to.
type Queued = (String, v1::DiagnosticValue);

fn value(stream: &str, fields: &[(&str, String)]) -> v1::DiagnosticValue {
    v1::DiagnosticValue {
        adapter_id: String::new(),
        stream: stream.to_string(),
        unix_ms: process::unix_ms(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_string(), within_text_limit(v)))
            .collect(),
    }
}

/// A text cut to the endpoint's limit for free text (at a character boundary), so a long
/// endpoint URL cannot make every later value refused.
fn within_text_limit(text: &str) -> String {
    let max = failover_core::limits::MAX_TEXT_LEN;
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The host name, as the vendor's health shows it.
fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn static_health(cfg: &ClientFailoverConfig) -> v1::DiagnosticValue {
    value(
        "Failover.Health",
        &[
            ("Name", cfg.name.clone().unwrap_or_default()),
            ("Description", cfg.description.clone().unwrap_or_default()),
            ("Host", host()),
            ("Version", env!("CARGO_PKG_VERSION").to_string()),
            ("FailoverGroupId", cfg.failover_group_id.clone()),
            ("Mode", cfg.mode.as_str().to_string()),
            ("FailoverTimeout", format_timespan(cfg.failover_timeout)),
            ("Endpoint", cfg.endpoint.clone()),
        ],
    )
}

fn dynamic_health(interval: Duration) -> v1::DiagnosticValue {
    let next =
        process::unix_ms().saturating_add(i64::try_from(interval.as_millis()).unwrap_or(i64::MAX));
    value(
        "Failover.Health",
        &[
            ("DeviceStatus", "Good".to_string()),
            (
                "NextHealthMessageExpected",
                failover_core::clock_time::format_utc_ms(next),
            ),
        ],
    )
}

/// Runs for as long as the adapter runs (does nothing when the interval is None).
pub async fn run(shared: Arc<Shared>, endpoint: Channel) {
    let Some(interval) = shared.settings.health_interval else {
        return;
    };
    let mut client = v1::data_endpoint_client::DataEndpointClient::new(endpoint);
    let mut changed = shared.changed.subscribe();
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut dropped = 0u64;
    let mut said_status: Option<(Option<Role>, u32)> = None;
    let mut said_config: Option<Option<ClientFailoverConfig>> = None;
    let mut health = tokio::time::interval(interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::seeded(&format!("{}/diagnostics", shared.settings.name))
        .broken(shared.settings.broken);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut push = |queue: &mut VecDeque<Queued>, item: Queued| {
        queue.push_back(item);
        while queue.len() > QUEUE {
            queue.pop_front();
            dropped += 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "diagnostics dropped while the endpoint could not take them"
                );
            }
        }
    };
    loop {
        // What changed since the last look.
        {
            let st = shared.lock();
            let group = egress_group(&shared, &st);
            if said_config.as_ref() != Some(&st.failover) {
                if let Some(cfg) = &st.failover {
                    // A new document: its static values, and the dynamic ones at once (the
                    // next in an interval), so the group's health starts with the document.
                    push(&mut queue, (group.clone(), static_health(cfg)));
                    push(&mut queue, (group.clone(), dynamic_health(interval)));
                    health.reset();
                }
                said_config = Some(st.failover.clone());
            }
            let status = (st.role, st.score());
            if said_status != Some(status) {
                push(
                    &mut queue,
                    (
                        group,
                        value(
                            "Failover.FailoverStatus",
                            &[
                                ("FailoverScore", status.1.to_string()),
                                (
                                    "FailoverRole",
                                    status.0.map_or("None", Role::as_str).to_string(),
                                ),
                            ],
                        ),
                    ),
                );
                said_status = Some(status);
            }
        }
        let can_send = retry_at.is_none_or(|at| at <= tokio::time::Instant::now());
        if can_send && !queue.is_empty() {
            match send(&shared, &mut client, &mut queue).await {
                Ok(()) => {
                    backoff.reset();
                    retry_at = None;
                }
                Err(e) => {
                    let cap = shared
                        .lock()
                        .failover
                        .as_ref()
                        .map_or(failover_core::retry::DEFAULT_CAP, |f| {
                            failover_core::retry::cap_for(f.failover_timeout)
                        });
                    let delay = backoff.next_delay(cap);
                    tracing::debug!("diagnostics not written ({e}); again in {delay:?}");
                    retry_at = Some(tokio::time::Instant::now() + delay);
                }
            }
            continue;
        }
        let retry = async {
            match retry_at {
                Some(at) if !queue.is_empty() => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = health.tick() => {
                let group = egress_group(&shared, &shared.lock());
                push(&mut queue, (group, dynamic_health(interval)));
            }
            () = retry => {}
        }
    }
}

/// Writes the queue's head (one group's run of values, up to a batch); removes what was taken.
async fn send(
    shared: &Shared,
    client: &mut v1::data_endpoint_client::DataEndpointClient<Channel>,
    queue: &mut VecDeque<Queued>,
) -> Result<(), String> {
    while let Some((group, _)) = queue.front() {
        let group = group.clone();
        let n = queue
            .iter()
            .take(BATCH)
            .take_while(|(g, _)| *g == group)
            .count();
        let values: Vec<v1::DiagnosticValue> =
            queue.iter().take(n).map(|(_, v)| v.clone()).collect();
        let request = v1::DiagnosticsRequest {
            group_id: group,
            adapter_id: shared.settings.name.clone(),
            values,
        };
        match client.write_diagnostics(request).await {
            Ok(_) => {}
            // Refused for what it holds: it would be refused again, and everything after it
            // would wait behind it. Dropped, and said once.
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                ) =>
            {
                tracing::warn!(
                    values = n,
                    "diagnostics refused by the endpoint and dropped: {}",
                    s.message()
                );
            }
            Err(s) => return Err(s.message().to_string()),
        }
        queue.drain(..n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::within_text_limit;

    #[test]
    fn long_texts_are_cut_to_the_endpoints_limit_at_a_character_boundary() {
        let long = "é".repeat(2000);
        let cut = within_text_limit(&long);
        assert!(cut.len() <= failover_core::limits::MAX_TEXT_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(within_text_limit("short"), "short");
    }
}
