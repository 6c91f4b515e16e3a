//! The simulated observer host: it watches the group's statuses, samples the data flow, and at
//! the end audits the endpoint, as the harness's observer does for processes.

use super::*;

/// Records every status of the group the failover service publishes (each change, and each
/// heartbeat's count), reconnecting whenever the watch ends (the service restarted).
pub(crate) async fn watch_statuses(arbiter: tonic::transport::Channel, shared: Arc<Mutex<Shared>>) {
    let mut client = v1::arbiter_client::ArbiterClient::new(arbiter);
    loop {
        if let Ok(resp) = client
            .watch_group(v1::GroupRequest {
                group_id: GROUP.into(),
            })
            .await
        {
            let mut stream = resp.into_inner();
            while let Ok(Some(s)) = stream.message().await {
                let now = turmoil::sim_elapsed().unwrap_or_default();
                record_status(&mut lock(&shared), &s, now);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One status as the observer keeps it: each change of epoch, Primary, live members and
/// existence (so every promotion, each in a status of its own), and the heartbeat count.
fn record_status(sh: &mut Shared, s: &v1::GroupStatus, now: Duration) {
    sh.highest_epoch = sh.highest_epoch.max(s.highest_epoch).max(s.epoch);
    let at_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    // The simulated clock is the only one: no service wall clock to keep.
    let seen = StatusPoint {
        service_us: 0,
        ..failover_proto::convert::status_point(Some(s), at_ms)
    };
    for (kind, text) in failover_dashboard::narrate::story(sh.last_status.as_ref(), s) {
        sh.events.push(Event {
            at_ms,
            kind: kind.into(),
            text,
        });
    }
    sh.last_status = Some(s.clone());
    let key = |p: &StatusPoint| {
        (
            p.epoch,
            p.primary.clone(),
            p.live()
                .map(|(a, r)| (a.to_string(), r.to_string()))
                .collect::<Vec<_>>(),
            p.exists,
            p.promotions,
        )
    };
    if sh.timeline.last().is_none_or(|l| key(l) != key(&seen)) {
        sh.timeline.push(seen);
    }
}

/// Samples the endpoint's record of the group every [`SAMPLE_EVERY`], with the failover
/// service's heartbeat count read at the same time (`GetGroup`; the status watch speaks only
/// when a status changes, and heartbeats, refused ones too, go on meanwhile).
async fn sample_data_flow(
    mut endpoint: v1::data_endpoint_client::DataEndpointClient<tonic::transport::Channel>,
    mut arbiter: v1::arbiter_client::ArbiterClient<tonic::transport::Channel>,
    shared: Arc<Mutex<Shared>>,
    end: Duration,
) {
    let request = v1::AuditRequest {
        group_id: GROUP.into(),
        ..Default::default()
    };
    loop {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        if now >= end {
            return;
        }
        let heartbeats = arbiter
            .get_group(v1::GroupRequest {
                group_id: GROUP.into(),
            })
            .await
            .ok()
            .map(tonic::Response::into_inner)
            .and_then(|g| g.exists.then_some(g.heartbeats));
        if let Ok(a) = endpoint.audit(request.clone()).await {
            let a = a.into_inner();
            let mut accepted = BTreeMap::new();
            for w in &a.writers {
                *accepted.entry(w.adapter_id.clone()).or_default() += w.accepted;
            }
            let mut sh = lock(&shared);
            let status = sh.timeline.last();
            let sample = Sample {
                at_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
                adapters: Sample::adapters_at(&world::ADAPTERS, status, &accepted),
                received: a.received,
                epoch: status.map_or(0, |t| t.epoch),
                fences: a.fence_calls,
                writes: a.write_calls,
                heartbeats,
            };
            sh.samples.push(sample);
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

pub(crate) fn add_observer(
    sim: &mut turmoil::Sim<'_>,
    options: &SimOptions,
    clean: Vec<(u64, u64)>,
    shared: Arc<Mutex<Shared>>,
) {
    let (end, settled) = (
        options.duration(),
        options.faults_end() + options.failover_timeout * 3 / 2 + Duration::from_secs(1),
    );
    let options = options.clone();
    sim.client(OBSERVER, async move {
        let network = world::network();
        let arbiter =
            failover_proto::net::lazy_channel(&url(ARBITER, ARBITER_PORT), &network, None)?;
        let endpoint =
            failover_proto::net::lazy_channel(&url(ENDPOINT, ENDPOINT_PORT), &network, None)?;
        let source = failover_proto::net::lazy_channel(&url(SOURCE, SOURCE_PORT), &network, None)?;
        let (arbiter_channel, endpoint_channel) = (arbiter.clone(), endpoint.clone());
        let mut endpoint = v1::data_endpoint_client::DataEndpointClient::new(endpoint);
        let mut source = v1::data_source_client::DataSourceClient::new(source);
        tokio::spawn(sample_data_flow(
            endpoint.clone(),
            v1::arbiter_client::ArbiterClient::new(arbiter.clone()),
            shared.clone(),
            end,
        ));
        tokio::spawn(watch_statuses(arbiter, shared.clone()));
        let audit_request = v1::AuditRequest {
            group_id: GROUP.into(),
            ..Default::default()
        };
        let mut intruder: Option<watch::Sender<bool>> = None;
        loop {
            let now = turmoil::sim_elapsed().unwrap_or_default();
            let commands: Vec<Command> = lock(&shared).commands.drain(..).collect();
            let highest_epoch = lock(&shared).highest_epoch;
            for c in commands {
                // Until it is carried out (a held message is retried).
                loop {
                    let done = match c {
                        Command::SourceDown(down) => source
                            .inject_fault(v1::SourceFault {
                                down,
                                target: Some(v1::source_fault::Target::WholeSource(true)),
                                for_client: String::new(),
                            })
                            .await
                            .is_ok(),
                        Command::EndpointDown(down) => endpoint
                            .set_outage(v1::OutageRequest { down })
                            .await
                            .is_ok(),
                        Command::FenceAhead => intruder::fence(
                            endpoint_channel.clone(),
                            GROUP,
                            highest_epoch + EPOCH_AHEAD,
                        )
                        .await
                        .is_ok(),
                        Command::IntruderMember(true) => {
                            let (stop, stopped) = watch::channel(false);
                            intruder = Some(stop);
                            tokio::spawn(intruder::member(
                                arbiter_channel.clone(),
                                intruder::Member {
                                    group: GROUP.into(),
                                    name: String::new(),
                                    description: String::new(),
                                    failover_timeout: options.failover_timeout,
                                    mode: options.mode,
                                    epoch: highest_epoch + EPOCH_AHEAD,
                                },
                                stopped,
                            ));
                            true
                        }
                        Command::IntruderMember(false) => {
                            if let Some(stop) = intruder.take() {
                                stop.send_replace(true);
                            }
                            true
                        }
                    };
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if now >= settled
                && lock(&shared).received_after_faults.is_none()
                && let Ok(a) = endpoint.audit(audit_request.clone()).await
            {
                lock(&shared).received_after_faults = Some(a.into_inner().received);
            }
            if now >= end {
                // With who delivered each tick: the picture's coverage, and the holes rule 5
                // reports.
                let full = v1::AuditRequest {
                    include_coverage: true,
                    ..audit_request.clone()
                };
                if let Ok(a) = endpoint.audit(full).await {
                    lock(&shared).audit = Some(a.into_inner());
                }
                let standalone = v1::AuditRequest {
                    group_id: format!("standalone/{STANDALONE_NAME}"),
                    ..Default::default()
                };
                if let Ok(a) = endpoint.audit(standalone).await {
                    lock(&shared).standalone_received = a.into_inner().received;
                }
                for (from, through) in &clean {
                    let request = v1::AuditRequest {
                        group_id: GROUP.into(),
                        has_from_seq: true,
                        from_seq: *from,
                        has_through_seq: true,
                        through_seq: *through,
                        expected_streams: 8,
                        include_diagnostics: false,
                        include_coverage: false,
                    };
                    if let Ok(a) = endpoint.audit(request).await {
                        lock(&shared)
                            .clean_audits
                            .push(((*from, *through), a.into_inner()));
                    }
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
