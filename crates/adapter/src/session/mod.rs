//! The adapter's failover session: one heartbeat stream to the failover service.
//!
//! Heartbeats go every failoverTimeout/2, and at once when the score, mode, claimed role or
//! known epoch changes. Every assignment the service sends (answers and pushes) sets the role
//! and epoch.
//!
//! The failover service is no single point of failure for data (ours; Patroni calls it
//! failsafe mode): a Primary that loses the service keeps its role and egresses until the
//! service demotes it or the endpoint refuses its write (another member fenced it out). A
//! Secondary never promotes itself. The endpoint's fence keeps that safe: a new Primary fences
//! at a newer epoch before it writes, and from then on every write of the old one is refused.
//!
//! Leaving: when the document is deleted or replaced, or the adapter stops gracefully, the
//! session says so in a last heartbeat (`leaving`), so its role passes on at once.
//!
//! Retries back off with jitter, capped at a quarter of failoverTimeout; a repeated error is
//! logged once per 10 s with a count.
//!
//! The session's incarnation (name, process id, process start time, configuration version)
//! changes only with the configuration or a restart, so a reconnect after a blip continues the
//! same session, while a restarted adapter or a new group rejoins as a new member.
//!
//! Several failover services (the document's endpoint lists them, comma-separated: services
//! sharing an etcd store, one leading): a session heartbeats to one at a time. When it fails
//! or is refused, the next is tried at once, or the leader a refusal names; only after every
//! service failed in a row does it back off.
//!
//! The session speaks one of two protocols ([`protocol_of`]): failover-lab's gRPC heartbeat
//! stream ([`grpc`]) or the vendor's Client Failover Service REST API ([`rest`]). What a member
//! says and hears is the same on both ([`member`]).

mod grpc;
pub(crate) mod member;
mod rest;

use std::sync::Arc;

use tokio::time::Instant;

use failover_core::{
    ClientFailoverConfig, Role,
    retry::{Backoff, RepeatLog},
};

use crate::{FailoverProtocol, state::Shared};
use failover_proto::process;
use member::{End, wait_config_change};

pub use member::score_reason;
pub use rest::is_vendor_endpoint;

/// The protocol a document's endpoint is spoken with.
pub fn protocol_of(chosen: FailoverProtocol, cfg: &ClientFailoverConfig) -> FailoverProtocol {
    match chosen {
        FailoverProtocol::Auto if is_vendor_endpoint(&cfg.endpoint) => FailoverProtocol::Rest,
        FailoverProtocol::Auto => FailoverProtocol::Grpc,
        other => other,
    }
}

/// How often a repeated error is logged.
pub const REPEAT_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the session for as long as the adapter runs.
pub async fn run(shared: Arc<Shared>) {
    let mut changed = shared.changed.subscribe();
    let mut config_version = 0u64;
    // When this process started: part of the incarnation, since a process id alone repeats
    // across restarts (an adapter is PID 1 in every start of its container; every simulated
    // host shares one). Found by the simulator (`failover-lab sim --seed 21 --modes Hot`): a
    // restarted Primary kept its session and role with an empty buffer, and the points
    // produced while it was down were lost although the Hot Secondary held them.
    let started_us = process::unix_us();
    // The configuration whose unchecked certificate was warned about.
    let mut warned_version = None;
    let mut backoff = Backoff::seeded(&format!("{}/{started_us}/session", shared.settings.name))
        .broken(shared.settings.broken);
    let mut errors = RepeatLog::new(REPEAT_LOG_INTERVAL);
    let origin = Instant::now();
    // The failover service tried now (of the document's list), and how many failed in a row.
    let mut service = 0usize;
    let mut failed_in_a_row = 0usize;
    loop {
        if shared.lock().leaving {
            return;
        }
        let cfg = shared.lock().failover.clone();
        let Some(cfg) = cfg else {
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        };
        let incarnation = format!(
            "{}-{}-{started_us}-{config_version}",
            shared.settings.name,
            std::process::id(),
        );
        if warned_version != Some(config_version)
            && cfg
                .failover_services()
                .iter()
                .any(|s| s.starts_with("https:"))
            && !cfg.validate_endpoint_certificate
        {
            tracing::warn!(
                endpoint = cfg.endpoint,
                "{}",
                failover_core::config::UNCHECKED_CERTIFICATE_WARNING
            );
            warned_version = Some(config_version);
        }
        let protocol = match shared.settings.behaviour {
            // The vendor's adapters speak its REST API only.
            failover_core::Behaviour::Vendor => FailoverProtocol::Rest,
            failover_core::Behaviour::Lab => protocol_of(shared.settings.failover_protocol, &cfg),
        };
        let services: Vec<String> = cfg
            .failover_services()
            .into_iter()
            .map(str::to_string)
            .collect();
        service %= services.len().max(1);
        // This attempt's document names one service (the others are tried after it).
        let mut attempt = cfg.clone();
        if let Some(url) = services.get(service) {
            attempt.endpoint = url.clone();
        }
        let answered_before = shared.lock().last_assignment_at;
        let end = match protocol {
            FailoverProtocol::Grpc => {
                grpc::session(&shared, &attempt, &incarnation, &mut changed, &mut backoff).await
            }
            _ => rest::session(&shared, &attempt, &incarnation, &mut changed, &mut backoff).await,
        };
        if shared.lock().last_assignment_at != answered_before {
            failed_in_a_row = 0;
        }
        match end {
            End::ConfigChanged => {
                config_version += 1;
                backoff.reset();
                errors.clear();
            }
            End::Left => return,
            // Reconnect at once with a fresh token: the same incarnation, so the same member.
            End::RenewToken => {}
            End::Failed(error) => {
                let primary = shared.update(|st| {
                    st.failover_error = Some(error.clone());
                    crate::state::broken_lease(st);
                    st.role == Some(Role::Primary)
                });
                failed_in_a_row += 1;
                service = next_service(&services, service, &error);
                if let Some(line) = errors.record(&error, origin.elapsed()) {
                    if primary {
                        tracing::warn!(
                            endpoint = attempt.endpoint,
                            "failover service: {line}; keeping the Primary role (failsafe) until the service demotes us or the endpoint refuses our write"
                        );
                    } else {
                        tracing::warn!(endpoint = attempt.endpoint, "failover service: {line}");
                    }
                }
                if failed_in_a_row < services.len() {
                    // Another service may answer: try it now.
                    continue;
                }
                failed_in_a_row = 0;
                let delay = backoff.next_delay(failover_core::retry::cap_for(cfg.failover_timeout));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    r = wait_config_change(&shared, &cfg, &mut changed) => {
                        if r { config_version += 1; backoff.reset(); errors.clear(); }
                    }
                }
            }
        }
    }
}

/// The service to try after `current` failed with `error`: the leader the refusal names when
/// it is in the list, else the next in the list.
fn next_service(services: &[String], current: usize, error: &str) -> usize {
    const NAMED: &str = "the leader is ";
    let named = error.find(NAMED).map(|at| {
        error[at + NAMED.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_end_matches([';', ',', ')'])
    });
    if let Some(url) = named
        && let Some(i) = services
            .iter()
            .position(|s| s.trim_end_matches('/') == url.trim_end_matches('/'))
    {
        return i;
    }
    (current + 1) % services.len().max(1)
}

#[cfg(test)]
mod tests {
    use super::next_service;

    #[test]
    fn a_refusal_naming_the_leader_sends_the_session_there_else_to_the_next() {
        let services = [
            "http://a:1".to_string(),
            "http://b:2".into(),
            "http://c:3".into(),
        ];
        let refusal = "this failover service stands by: another one leads; the leader is http://c:3 (roles are kept meanwhile)";
        assert_eq!(next_service(&services, 0, refusal), 2);
        assert_eq!(next_service(&services, 0, "connection refused"), 1);
        assert_eq!(next_service(&services, 2, "connection refused"), 0);
        let unknown =
            "this failover service stands by: another one leads; the leader is http://z:9 (roles)";
        assert_eq!(next_service(&services, 1, unknown), 2);
        assert_eq!(next_service(&services[..1], 0, "x"), 0);
    }
}
