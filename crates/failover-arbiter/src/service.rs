//! The `failover.v1.Arbiter` gRPC service: heartbeat streams, group status and watch.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use failover_core::{
    group::{Group, GroupError, Heartbeat, SessionId},
    limits::{self, MAX_FAILOVER_TIMEOUT, MAX_SCORE, MIN_FAILOVER_TIMEOUT},
};
use failover_proto::{convert, process, v1};
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    Arbiter, Standing,
    state::{Outbound, assignment_message},
};

/// Most watermark entries a heartbeat may carry.
pub const MAX_WATERMARK_STREAMS: usize = limits::MAX_WATERMARK_STREAMS;

/// Checks a heartbeat against the limits of `failover_core::limits` and turns it into the
/// group's form.
pub fn validate_heartbeat(hb: v1::HeartbeatRequest) -> Result<(String, Heartbeat), Status> {
    let invalid = Status::invalid_argument;
    limits::check_id("group_id", &hb.group_id).map_err(invalid)?;
    limits::check_id("adapter_id", &hb.adapter_id).map_err(invalid)?;
    // An incarnation holds the adapter's name and more: it gets the text limit.
    if hb.incarnation.is_empty() {
        return Err(invalid("incarnation must not be empty".to_string()));
    }
    limits::check_text("incarnation", &hb.incarnation).map_err(invalid)?;
    limits::check_text("name", &hb.name).map_err(invalid)?;
    limits::check_text("description", &hb.description).map_err(invalid)?;
    if hb.score > MAX_SCORE {
        return Err(Status::invalid_argument(format!(
            "score must be 0 to 100, not {}",
            hb.score
        )));
    }
    let mode =
        convert::mode_from_wire(hb.mode).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let timeout = Duration::from_millis(hb.failover_timeout_ms);
    if !(MIN_FAILOVER_TIMEOUT..=MAX_FAILOVER_TIMEOUT).contains(&timeout) {
        return Err(Status::invalid_argument(format!(
            "failover_timeout_ms must be {} to {}, not {}",
            MIN_FAILOVER_TIMEOUT.as_millis(),
            MAX_FAILOVER_TIMEOUT.as_millis(),
            hb.failover_timeout_ms
        )));
    }
    limits::check_epoch("known_epoch", hb.known_epoch).map_err(invalid)?;
    limits::check_epoch("fenced_out_epoch", hb.fenced_out_epoch).map_err(invalid)?;
    if hb.egress_watermark.len() > MAX_WATERMARK_STREAMS {
        return Err(Status::invalid_argument(
            "egress_watermark lists too many streams",
        ));
    }
    let opt = |s: String| if s.is_empty() { None } else { Some(s) };
    Ok((
        hb.group_id,
        Heartbeat {
            adapter_id: hb.adapter_id,
            incarnation: hb.incarnation,
            score: hb.score,
            mode: Some(mode),
            failover_timeout: timeout,
            name: opt(hb.name),
            description: opt(hb.description),
            known_epoch: hb.known_epoch,
            claims_primary: hb.claims_primary,
            watermark: convert::watermark_pairs(&hb.egress_watermark),
            holds_data_since_ms: (hb.holds_data_since_ms > 0).then_some(hb.holds_data_since_ms),
            fenced_out_epoch: hb.fenced_out_epoch,
        },
    ))
}

/// The status a refused heartbeat ends its stream with.
fn refusal(e: GroupError) -> Status {
    match e {
        GroupError::NameInUse { .. } | GroupError::SessionIdInUse { .. } => {
            Status::already_exists(e.to_string())
        }
        GroupError::NoSuchSession { .. } => Status::not_found(e.to_string()),
        GroupError::Full { .. } => Status::resource_exhausted(e.to_string()),
        GroupError::FixedField { .. } => Status::failed_precondition(e.to_string()),
    }
}

/// What became of one heartbeat.
enum Taken {
    /// The session it belongs to.
    Member(String, SessionId),
    /// The member left; the stream ends.
    Left,
}

impl Arbiter {
    /// Takes one heartbeat from a session's stream; answers on `tx`.
    fn on_heartbeat(&self, hb: v1::HeartbeatRequest, tx: &Outbound) -> Result<Taken, Status> {
        if let Some(why) = self.refusal() {
            return Err(Status::unavailable(why));
        }
        let stats = hb.stats;
        let leaving = hb.leaving;
        let (group_id, hb) = validate_heartbeat(hb)?;
        let now = self.now();
        let mut state = self.lock();
        let state = &mut *state;
        state.heartbeats += 1;
        if leaving {
            let left = state.groups.get_mut(&group_id).and_then(|e| {
                let s =
                    e.group.sessions().iter().find(|s| {
                        s.adapter_id == hb.adapter_id && s.incarnation == hb.incarnation
                    })?;
                let id = s.id;
                e.outbound.remove(&id);
                Some(e.group.leave(id, now))
            });
            if let Some(changes) = left {
                self.apply(state, &group_id, &changes);
            }
            let _ = tx.try_send(Ok(v1::RoleAssignment {
                role: v1::Role::Unspecified as i32,
                reason: format!("{} left group {group_id}", hb.adapter_id),
                ..Default::default()
            }));
            return Ok(Taken::Left);
        }
        if !state.groups.contains_key(&group_id) && state.groups.len() >= limits::MAX_GROUPS {
            return Err(Status::resource_exhausted(format!(
                "this failover service keeps at most {} groups; delete unused ones first",
                limits::MAX_GROUPS
            )));
        }
        if !state.groups.contains_key(&group_id) {
            let entry = state.new_entry(Group::new(group_id.clone(), &hb), now);
            state.groups.insert(group_id.clone(), entry);
        }
        let Some(entry) = state.groups.get_mut(&group_id) else {
            return Err(Status::internal(
                "the group vanished while taking a heartbeat",
            ));
        };
        entry.heartbeats += 1;
        let (id, mut changes) = entry
            .group
            .heartbeat(hb, now, &mut state.next_session)
            .map_err(refusal)?;
        changes.extend(entry.restore_overrides(now));
        entry.outbound.insert(id, tx.clone());
        if let Some(stats) = stats {
            entry.stats.insert(id, stats);
        }
        let reply = assignment_message(&entry.group, id);
        self.apply(state, &group_id, &changes);
        if let Some(e) = state.groups.get_mut(&group_id) {
            e.note_data(id, None, process::unix_ms());
        }
        // The answer to this heartbeat (a push above may already have told it the same).
        let _ = tx.try_send(Ok(reply));
        Ok(Taken::Member(group_id, id))
    }

    /// A session's stream ended: stop pushing to it. The session itself stays until it is
    /// stale (Doc: failover follows failoverTimeout, not a closed connection).
    fn detach(&self, group_id: &str, id: SessionId, tx: &Outbound) {
        let mut state = self.lock();
        if let Some(e) = state.groups.get_mut(group_id)
            && e.outbound.get(&id).is_some_and(|t| t.same_channel(tx))
        {
            e.outbound.remove(&id);
            e.group.disconnected(id);
        }
    }
}

type AssignmentStream = Pin<Box<dyn Stream<Item = Result<v1::RoleAssignment, Status>> + Send>>;
type StatusStream = Pin<Box<dyn Stream<Item = Result<v1::GroupStatus, Status>> + Send>>;

#[tonic::async_trait]
impl v1::arbiter_server::Arbiter for Arbiter {
    type HeartbeatStream = AssignmentStream;
    type WatchGroupStream = StatusStream;

    async fn heartbeat(
        &self,
        request: Request<Streaming<v1::HeartbeatRequest>>,
    ) -> Result<Response<Self::HeartbeatStream>, Status> {
        let presented = request
            .metadata()
            .get(failover_proto::auth::HEADER)
            .and_then(|v| v.to_str().ok());
        let admitted_until = self
            .authenticator()
            .check(presented, tokio::time::Instant::now())
            .inspect_err(|status| tracing::warn!(%status, "heartbeat stream refused"))?;
        let mut inbound = request.into_inner();
        let arbiter = self.clone();
        let stream = process::task_stream(move |tx: Outbound| async move {
            let mut session: Option<(String, SessionId)> = None;
            let token_expiry = async move {
                match admitted_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(token_expiry);
            loop {
                let message = tokio::select! {
                    m = inbound.message() => m,
                    () = &mut token_expiry => Err(Status::unauthenticated(
                        "the access token expired: renew it before it does, and reconnect",
                    )),
                };
                let refused = match message {
                    Ok(Some(hb)) => match arbiter.on_heartbeat(hb, &tx) {
                        Ok(Taken::Member(g, id)) => {
                            session = Some((g, id));
                            continue;
                        }
                        Ok(Taken::Left) => {
                            session = None;
                            break;
                        }
                        Err(status) => status,
                    },
                    Ok(None) => break,
                    // Undecodable (too large, malformed) or the connection failed: say why,
                    // if anyone is still listening.
                    Err(status) => status,
                };
                if refused.code() == tonic::Code::Unavailable && !arbiter.is_deciding() {
                    // Said once when this service stopped deciding, not per heartbeat.
                    tracing::debug!(%refused, "heartbeat refused");
                } else {
                    tracing::warn!(%refused, "heartbeat refused");
                }
                let _ = tx.send(Err(refused)).await;
                break;
            }
            if let Some((g, id)) = session {
                arbiter.detach(&g, id, &tx);
            }
        });
        Ok(Response::new(stream))
    }

    async fn watch_group(
        &self,
        request: Request<v1::GroupRequest>,
    ) -> Result<Response<Self::WatchGroupStream>, Status> {
        let group = request.into_inner().group_id;
        if let Standing::Following { .. } = self.standing()
            && let Some(why) = self.refusal()
        {
            // A service standing by knows no group: watch the leader's.
            return Err(Status::unavailable(why));
        }
        let (mut rx, now) = self.watch(&group);
        let arbiter = self.clone();
        let stream = process::task_stream(move |tx| async move {
            if tx.send(Ok(now)).await.is_err() {
                return;
            }
            loop {
                let status = match rx.recv().await {
                    Ok(s) => s,
                    // Fell behind: carry on from the status now.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        arbiter.status(&group)
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok(status)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_group(
        &self,
        request: Request<v1::GroupRequest>,
    ) -> Result<Response<v1::GroupStatus>, Status> {
        if let Standing::Following { .. } = self.standing()
            && let Some(why) = self.refusal()
        {
            return Err(Status::unavailable(why));
        }
        Ok(Response::new(self.status(&request.into_inner().group_id)))
    }
}

/// Serves the gRPC side until `shutdown` resolves.
pub async fn serve(
    arbiter: Arbiter,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    match tls {
        Some(config) => {
            serve_incoming(
                arbiter,
                failover_proto::tls::incoming(listener, config),
                shutdown,
            )
            .await
        }
        None => serve_incoming(arbiter, process::incoming(listener), shutdown).await,
    }
}

/// Serves gRPC (and the token endpoint) on the connections of `incoming` until `shutdown`
/// resolves: TCP or TLS for [`serve`], a simulator's network otherwise.
pub async fn serve_incoming<IO: process::ServerConn>(
    arbiter: Arbiter,
    incoming: impl Stream<Item = std::io::Result<IO>> + Send,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let health = process::health_service("failover.v1.Arbiter").await;
    // HTTP/1.1 too, for the token endpoint.
    let token_endpoint = tonic::service::Routes::from(arbiter.authenticator().token_router());
    let (interval, timeout) = process::FAILOVER_SERVICE_KEEPALIVE;
    process::server_builder_with_keepalive(interval, timeout)
        .accept_http1(true)
        .add_routes(token_endpoint)
        .add_service(health)
        .add_service(v1::arbiter_server::ArbiterServer::new(arbiter))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(adapter: &str, known_epoch: u64, claims_primary: bool) -> v1::HeartbeatRequest {
        v1::HeartbeatRequest {
            group_id: "g".into(),
            adapter_id: adapter.into(),
            incarnation: format!("{adapter}-1"),
            score: 100,
            mode: v1::Mode::Hot as i32,
            failover_timeout_ms: 4000,
            known_epoch,
            claims_primary,
            ..Default::default()
        }
    }

    /// Found by the simulator (`failover-lab sim --seed 30480 --modes Hot --faults
    /// mode-switch,crash,timeout-change,latency,endpoint-outage,graceful-stop --swarm off`): a
    /// group deleted (as a failoverTimeout change is done) and created again by a restarted
    /// adapter, which knew no epoch, promoted it at epoch 1 although the service had handed out
    /// epoch 2 under that id; and a member claiming an older epoch than one handed out since was
    /// adopted at it. Epochs of a group id now never go back while the service runs; and a
    /// group created again waits a heartbeat interval (2 s here, in paused time) for every member
    /// to rejoin.
    #[tokio::test(start_paused = true)]
    async fn a_group_created_again_promotes_above_every_epoch_it_handed_out() {
        let arbiter = Arbiter::new();
        tokio::spawn(crate::clock::run(arbiter.clone()));
        // Past the service's start-up wait (a heartbeat interval, 2 s here).
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let (tx, _rx) = tokio::sync::mpsc::channel(64);
        arbiter.on_heartbeat(beat("a", 0, false), &tx).expect("a");
        arbiter.on_heartbeat(beat("b", 0, false), &tx).expect("b");
        assert_eq!(arbiter.status("g").epoch, 1);
        arbiter.delete_session("g", "a").expect("a deleted");
        assert_eq!(arbiter.status("g").epoch, 2, "b promoted");
        arbiter.delete_session("g", "b").expect("b deleted");
        arbiter.delete_group("g").expect("group deleted");

        // b, Primary at epoch 2 before, may reclaim its role at that epoch.
        arbiter
            .on_heartbeat(beat("b", 2, true), &tx)
            .expect("b again");
        let s = arbiter.status("g");
        assert_eq!((s.epoch, s.primary_adapter_id.as_str()), (2, "b"));
        arbiter.delete_session("g", "b").expect("b deleted");
        arbiter.delete_group("g").expect("group deleted");

        // A new process that knows no epoch: not at once (the others may rejoin), and above 2,
        // not at 1.
        let mut fresh = beat("a", 0, false);
        fresh.incarnation = "a-2".into();
        arbiter.on_heartbeat(fresh, &tx).expect("a again");
        assert_eq!(
            arbiter.status("g").epoch,
            0,
            "promoted before the others could rejoin"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let s = arbiter.status("g");
        assert_eq!((s.epoch, s.primary_adapter_id.as_str()), (3, "a"));
        arbiter.delete_session("g", "a").expect("a deleted");
        arbiter.delete_group("g").expect("group deleted");

        // A member claiming an epoch older than one handed out since is not adopted at it.
        let mut old = beat("b", 2, true);
        old.incarnation = "b-2".into();
        arbiter.on_heartbeat(old, &tx).expect("b claims 2");
        let s = arbiter.status("g");
        assert_ne!(s.epoch, 2, "adopted at an epoch handed out before: {s:?}");
        assert!(s.epoch == 0 || s.epoch > 3, "{s:?}");
    }

    /// Found by the simulator (seed 203871, Hot): the failover service restarted; adapter-a,
    /// itself restarted meanwhile (it knew no epoch and held data only since its restart), was
    /// the first to rejoin and was promoted at once as a lone member, over adapter-b, which
    /// rejoined a moment later holding the 0.6 s adapter-a had lost: they were lost. A service
    /// now waits a heartbeat interval after its own start before a group's first promotion,
    /// then picks the member holding data since the earliest, above every epoch reported.
    #[tokio::test(start_paused = true)]
    async fn a_restarted_service_waits_for_every_member_before_its_first_promotion() {
        let arbiter = Arbiter::new();
        tokio::spawn(crate::clock::run(arbiter.clone()));
        let (tx, _rx) = tokio::sync::mpsc::channel(64);
        let mut fresh = beat("a", 0, false);
        fresh.holds_data_since_ms = 13_900;
        arbiter.on_heartbeat(fresh, &tx).expect("a");
        assert_eq!(
            arbiter.status("g").epoch,
            0,
            "a lone newcomer promoted at once"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut holder = beat("b", 13, false);
        holder.holds_data_since_ms = 1_000;
        arbiter.on_heartbeat(holder, &tx).expect("b");
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let s = arbiter.status("g");
        assert_eq!((s.epoch, s.primary_adapter_id.as_str()), (14, "b"), "{s:?}");
    }
}
