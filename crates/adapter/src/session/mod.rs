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
            && cfg.endpoint.starts_with("https:")
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
        let end = match protocol {
            FailoverProtocol::Grpc => {
                grpc::session(&shared, &cfg, &incarnation, &mut changed, &mut backoff).await
            }
            _ => rest::session(&shared, &cfg, &incarnation, &mut changed, &mut backoff).await,
        };
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
                if let Some(line) = errors.record(&error, origin.elapsed()) {
                    if primary {
                        tracing::warn!(
                            endpoint = cfg.endpoint,
                            "failover service: {line}; keeping the Primary role (failsafe) until the service demotes us or the endpoint refuses our write"
                        );
                    } else {
                        tracing::warn!(endpoint = cfg.endpoint, "failover service: {line}");
                    }
                }
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
