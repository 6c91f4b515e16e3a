//! The etcd store (`--store etcd://HOST:PORT,...`): several failover services share one fleet,
//! one leading at a time, and epochs never go back.
//!
//! - **Leadership.** Each service holds a lease (`--store-lease`) and campaigns for the key
//!   `PREFIX/leader` with a transaction: create it, bound to its lease, if nobody holds it. The
//!   holder leads ([`Arbiter::lead`]). The others stand by ([`Arbiter::follow`]): they refuse
//!   heartbeats naming the leader's URL, and campaign again every [`CAMPAIGN_INTERVAL`] (at
//!   most a third of the lease), so one of them leads within that of the leader's lease
//!   expiring.
//! - **The old leader stops first.** The leader renews its lease every third of it. It stops
//!   deciding three quarters of a lease after it *sent* the last renewal etcd answered: etcd
//!   counts the lease from when it *received* that renewal, later, so the old leader has
//!   stopped a quarter lease before anyone else can win, even cut off from etcd.
//! - **Epochs.** Having won, the leader reserves a block of [`EPOCH_BLOCK`] epochs with a
//!   compare-and-swap on `PREFIX/epoch`, guarded by its lease still holding the leader key, and
//!   promotes above the block's base ([`Arbiter::lead`]); it reserves the next block before
//!   its epochs pass half of this one. An epoch is therefore never handed out twice, across
//!   leaders, restarts and groups deleted and created again.
//! - **Operator overrides** are kept under `PREFIX/overrides/GROUP` (a JSON list of
//!   [`StoredOverride`]) whenever an operator changes one; a new leader reads them all and
//!   applies each when its member joins.
//! - **What stays in memory.** Heartbeats, sessions and the groups' state live in the
//!   leader's memory, and a new leader rebuilds them as members rejoin (the Primary reclaims
//!   its role at its epoch, as after a restart). etcd sees a lease renewal per service every
//!   third of a lease, a few writes per change of leader and one per override changed, whatever
//!   the number of groups.
//!
//! Every call to etcd has a timeout of a quarter lease; a failing member is left for the next
//! one in the list; retries back off.

use std::time::Duration;

use anyhow::{Context, bail};
use failover_core::retry::Backoff;
use failover_proto::etcd::{
    self, Compare, KeyValue, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    PutRequest, RangeRequest, RequestOp, TxnRequest, compare, kv_client::KvClient,
    lease_client::LeaseClient, request_op, response_op,
};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{Arbiter, OverrideWrite, StoredOverride};

/// How often a service standing by tries to take the leader key.
pub const CAMPAIGN_INTERVAL: Duration = Duration::from_millis(250);

/// Epochs a leader reserves at a time.
pub const EPOCH_BLOCK: u64 = 1_000_000;

/// Where the store is and how this service takes part.
#[derive(Debug, Clone)]
pub struct EtcdStore {
    /// etcd's client URLs (`http://HOST:PORT`).
    pub endpoints: Vec<String>,
    /// The key prefix every key of this fleet is under.
    pub prefix: String,
    /// The lease leadership is held with.
    pub lease: Duration,
    /// This service's gRPC URL, as the others name it to members.
    pub advertise: String,
}

impl EtcdStore {
    /// Parses `etcd://HOST:PORT,HOST:PORT[/PREFIX]` (the prefix defaults to `failover-lab`).
    pub fn parse(url: &str, lease: Duration, advertise: String) -> Result<EtcdStore, String> {
        let rest = url.strip_prefix("etcd://").ok_or_else(|| {
            format!("{url:?}: a store is \"memory\" or etcd://HOST:PORT,HOST:PORT[/PREFIX]")
        })?;
        let (hosts, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, p.trim_matches('/')),
            None => (rest, "failover-lab"),
        };
        if prefix.is_empty() {
            return Err(format!("{url:?}: the key prefix after / is empty"));
        }
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            let (name, port) = host
                .rsplit_once(':')
                .ok_or_else(|| format!("{url:?}: {host:?} is not HOST:PORT"))?;
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("{url:?}: {host:?} is not HOST:PORT"));
            }
            endpoints.push(format!("http://{host}"));
        }
        Ok(EtcdStore {
            endpoints,
            prefix: prefix.to_string(),
            lease,
            advertise,
        })
    }

    fn key(&self, name: &str) -> Vec<u8> {
        format!("/{}/{name}", self.prefix).into_bytes()
    }
}

/// Takes part in the fleet until `stop` resolves, then gives up the lease (a service that stops
/// gracefully hands leadership on at once).
pub async fn run(arbiter: Arbiter, store: EtcdStore, stop: impl std::future::Future<Output = ()>) {
    let mut client = Client::new(&store);
    let mut lease = None;
    let (writes, mut written) = tokio::sync::mpsc::unbounded_channel();
    arbiter.keep_overrides_in(writes);
    tokio::select! {
        () = take_part(&arbiter, &store, &mut client, &mut lease, &mut written) => {}
        () = stop => {}
    }
    if let Some(id) = lease {
        match client.revoke(id).await {
            Ok(()) => {
                tracing::info!("etcd store: lease given up; another service may lead at once")
            }
            Err(e) => tracing::warn!(
                "etcd store: could not give up the lease ({e:#}); it expires by itself"
            ),
        }
    }
}

async fn take_part(
    arbiter: &Arbiter,
    store: &EtcdStore,
    client: &mut Client,
    lease: &mut Option<i64>,
    written: &mut tokio::sync::mpsc::UnboundedReceiver<OverrideWrite>,
) {
    let mut backoff = Backoff::seeded(&format!("{}/etcd", store.advertise));
    loop {
        match term(arbiter, store, client, lease, &mut backoff, written).await {
            Ok(never) => match never {},
            Err(e) => {
                *lease = None;
                arbiter.follow(None, format!("etcd store: {e:#}"));
                let delay = backoff.next_delay(store.lease / 2);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// One lease's life: campaign, lead while the lease holds. Ends only with an error (the lease
/// lost or etcd unreachable).
async fn term(
    arbiter: &Arbiter,
    store: &EtcdStore,
    client: &mut Client,
    lease: &mut Option<i64>,
    backoff: &mut Backoff,
    written: &mut tokio::sync::mpsc::UnboundedReceiver<OverrideWrite>,
) -> anyhow::Result<std::convert::Infallible> {
    let sent = Instant::now();
    let (id, ttl) = client.grant(store.lease).await?;
    *lease = Some(id);
    let mut renewed = (sent, ttl);
    let leader_key = store.key("leader");
    loop {
        match client
            .campaign(&leader_key, &store.advertise, id)
            .await
            .context("campaigning")?
        {
            None => break,
            Some(leader) => {
                arbiter.follow(Some(leader), "it holds the leader key in etcd".into());
                tokio::time::sleep(CAMPAIGN_INTERVAL.min(renewed.1 / 3)).await;
                if renewed.0.elapsed() >= renewed.1 / 3 {
                    renewed = client.keep_alive(id).await?;
                }
            }
        }
    }
    backoff.reset();
    let epoch_key = store.key("epoch");
    let mut floor = client.reserve_epochs(&epoch_key, &leader_key, id).await?;
    let overrides_prefix = store.key("overrides/");
    let overrides = client.read_overrides(&overrides_prefix).await?;
    tracing::info!(
        lease_ms = renewed.1.as_millis() as u64,
        groups_with_overrides = overrides.len(),
        "etcd store: this service leads"
    );
    // Writes queued while standing by were another leader's business.
    while written.try_recv().is_ok() {}
    arbiter.lead(floor, overrides);
    let mut next_renewal = renewed.0 + renewed.1 / 3;
    let lost =
        "the lease was not renewed within three quarters of it: stepped down before it can expire";
    loop {
        // Nothing this leader does may outlive this: past it, etcd may let another lead.
        let deadline = renewed.0 + renewed.1 * 3 / 4;
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => bail!(lost),
            Some((group, overrides, n)) = written.recv() => {
                let mut key = overrides_prefix.clone();
                key.extend_from_slice(group.as_bytes());
                let write = client.write_overrides(&key, &overrides, &leader_key, id);
                match tokio::time::timeout_at(deadline, write).await {
                    Ok(Ok(())) => arbiter.overrides_written(n),
                    // Kept in memory still; a leader after this one would not know it.
                    Ok(Err(e)) => tracing::warn!(group, "etcd store: the group's overrides were not kept: {e:#}"),
                    Err(_) => bail!(lost),
                }
            }
            () = tokio::time::sleep_until(next_renewal) => {
                match tokio::time::timeout_at(deadline, client.keep_alive(id)).await {
                    Ok(Ok(r)) => {
                        renewed = r;
                        next_renewal = renewed.0 + renewed.1 / 3;
                    }
                    Ok(Err(e)) => {
                        // Again soon (not at once: no loop spins on a refusal).
                        next_renewal = Instant::now() + renewed.1 / 8;
                        tracing::warn!("etcd store: renewing the lease: {e:#}; stepping down in {:?} unless renewed", deadline.saturating_duration_since(Instant::now()));
                    }
                    Err(_) => bail!(lost),
                }
            }
        }
        if arbiter.highest_epoch() >= floor + EPOCH_BLOCK / 2 {
            let reserve = client.reserve_epochs(&epoch_key, &leader_key, id);
            floor = tokio::time::timeout_at(deadline, reserve)
                .await
                .map_err(|_| anyhow::anyhow!(lost))??;
            arbiter.raise_promotion_floor(floor);
            tracing::info!("etcd store: reserved epochs above {floor}");
        }
    }
}

/// etcd's KV and Lease services on one member at a time, moving to the next after a failure.
struct Client {
    channels: Vec<Channel>,
    current: usize,
}

impl Client {
    fn new(store: &EtcdStore) -> Client {
        let timeout = (store.lease / 4).max(Duration::from_millis(100));
        let channels = store
            .endpoints
            .iter()
            .filter_map(|url| {
                Channel::from_shared(url.clone())
                    .ok()
                    .map(|e| e.connect_timeout(timeout).timeout(timeout).connect_lazy())
            })
            .collect();
        Client {
            channels,
            current: 0,
        }
    }

    fn channel(&self) -> anyhow::Result<Channel> {
        self.channels
            .get(self.current)
            .cloned()
            .context("no etcd endpoint")
    }

    /// Notes a failed call: the next goes to the next member.
    fn failed<T>(&mut self, what: &str, status: tonic::Status) -> anyhow::Result<T> {
        let at = self.current;
        self.current = (self.current + 1) % self.channels.len().max(1);
        bail!(
            "{what} at etcd member {} of {}: {} ({})",
            at + 1,
            self.channels.len(),
            status.message(),
            status.code()
        )
    }

    async fn grant(&mut self, ttl: Duration) -> anyhow::Result<(i64, Duration)> {
        let request = LeaseGrantRequest {
            ttl: ttl.as_secs().max(1) as i64,
            id: 0,
        };
        match LeaseClient::new(self.channel()?).lease_grant(request).await {
            Ok(r) => {
                let r = r.into_inner();
                if !r.error.is_empty() {
                    bail!("granting a lease: {}", r.error);
                }
                Ok((r.id, Duration::from_secs(r.ttl.max(1) as u64)))
            }
            Err(s) => self.failed("granting a lease", s),
        }
    }

    /// Renews the lease; answers when it was sent and the lease etcd gave.
    async fn keep_alive(&mut self, id: i64) -> anyhow::Result<(Instant, Duration)> {
        let sent = Instant::now();
        let request = tokio_stream::once(LeaseKeepAliveRequest { id });
        let answer = match LeaseClient::new(self.channel()?)
            .lease_keep_alive(request)
            .await
        {
            Ok(r) => r.into_inner().message().await,
            Err(s) => return self.failed("renewing the lease", s),
        };
        match answer {
            Ok(Some(r)) if r.ttl > 0 => Ok((sent, Duration::from_secs(r.ttl as u64))),
            Ok(_) => bail!("the lease expired in etcd"),
            Err(s) => self.failed("renewing the lease", s),
        }
    }

    async fn revoke(&mut self, id: i64) -> anyhow::Result<()> {
        match LeaseClient::new(self.channel()?)
            .lease_revoke(LeaseRevokeRequest { id })
            .await
        {
            Ok(_) => Ok(()),
            Err(s) => self.failed("giving up the lease", s),
        }
    }

    async fn txn(&mut self, what: &str, request: TxnRequest) -> anyhow::Result<etcd::TxnResponse> {
        match KvClient::new(self.channel()?).txn(request).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => self.failed(what, s),
        }
    }

    /// Takes the leader key for `lease` if nobody holds it: None when won, else the URL the
    /// holder advertises.
    async fn campaign(
        &mut self,
        key: &[u8],
        advertise: &str,
        lease: i64,
    ) -> anyhow::Result<Option<String>> {
        let r = self
            .txn(
                "campaigning",
                TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Create as i32,
                        key: key.to_vec(),
                        target_union: Some(compare::TargetUnion::CreateRevision(0)),
                        range_end: Vec::new(),
                    }],
                    success: vec![put(key, advertise.as_bytes(), lease)],
                    failure: vec![range(key)],
                },
            )
            .await?;
        if r.succeeded {
            return Ok(None);
        }
        match first_kv(&r, 0) {
            // Our own (an answer lost before): we lead.
            Some(kv) if kv.lease == lease => Ok(None),
            Some(kv) => Ok(Some(String::from_utf8_lossy(&kv.value).into_owned())),
            // Gone between the compare and the read: campaign again.
            None => bail!("the leader key was released while read; campaigning again"),
        }
    }

    /// Every group's overrides under `prefix`.
    async fn read_overrides(
        &mut self,
        prefix: &[u8],
    ) -> anyhow::Result<std::collections::BTreeMap<String, Vec<StoredOverride>>> {
        let request = RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            ..Default::default()
        };
        let r = match KvClient::new(self.channel()?).range(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return self.failed("reading the overrides", s),
        };
        let mut by_group = std::collections::BTreeMap::new();
        for kv in r.kvs {
            let group = String::from_utf8_lossy(kv.key.get(prefix.len()..).unwrap_or_default())
                .into_owned();
            match serde_json::from_slice::<Vec<StoredOverride>>(&kv.value) {
                Ok(list) => {
                    by_group.insert(group, list);
                }
                Err(e) => tracing::warn!(group, "etcd store: unreadable overrides skipped: {e}"),
            }
        }
        Ok(by_group)
    }

    /// Keeps a group's overrides at `key` (none: the key is deleted), while `lease` holds the
    /// leader key.
    async fn write_overrides(
        &mut self,
        key: &[u8],
        overrides: &[StoredOverride],
        leader_key: &[u8],
        lease: i64,
    ) -> anyhow::Result<()> {
        let op = if overrides.is_empty() {
            RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    etcd::DeleteRangeRequest {
                        key: key.to_vec(),
                        ..Default::default()
                    },
                )),
            }
        } else {
            put(key, &serde_json::to_vec(overrides)?, 0)
        };
        let r = self
            .txn(
                "keeping overrides",
                TxnRequest {
                    compare: vec![holds_leader_key(leader_key, lease)],
                    success: vec![op],
                    failure: Vec::new(),
                },
            )
            .await?;
        if !r.succeeded {
            bail!("this service no longer holds the leader key");
        }
        Ok(())
    }

    /// Reserves the next [`EPOCH_BLOCK`] epochs while `lease` holds the leader key; answers the
    /// block's base (every promotion goes above it).
    async fn reserve_epochs(
        &mut self,
        epoch_key: &[u8],
        leader_key: &[u8],
        lease: i64,
    ) -> anyhow::Result<u64> {
        let mut seen: Option<(u64, i64)> = None;
        for _ in 0..8 {
            let (base, revision) = match seen {
                Some(s) => s,
                None => {
                    let r = self
                        .txn(
                            "reading the epoch counter",
                            TxnRequest {
                                compare: Vec::new(),
                                success: vec![range(epoch_key)],
                                failure: Vec::new(),
                            },
                        )
                        .await?;
                    epoch_of(first_kv(&r, 0))?
                }
            };
            let next = base.saturating_add(EPOCH_BLOCK);
            let r = self
                .txn(
                    "reserving epochs",
                    TxnRequest {
                        compare: vec![
                            holds_leader_key(leader_key, lease),
                            Compare {
                                result: compare::CompareResult::Equal as i32,
                                target: compare::CompareTarget::Mod as i32,
                                key: epoch_key.to_vec(),
                                target_union: Some(compare::TargetUnion::ModRevision(revision)),
                                range_end: Vec::new(),
                            },
                        ],
                        success: vec![put(epoch_key, next.to_string().as_bytes(), 0)],
                        failure: vec![range(epoch_key), range(leader_key)],
                    },
                )
                .await?;
            if r.succeeded {
                return Ok(base);
            }
            if first_kv(&r, 1).is_none_or(|kv| kv.lease != lease) {
                bail!("lost the leader key while reserving epochs");
            }
            seen = Some(epoch_of(first_kv(&r, 0))?);
        }
        bail!("the epoch counter kept changing under us (8 tries)")
    }
}

/// The end of the range of keys starting with `prefix` (etcd's convention: the prefix with its
/// last byte incremented).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the keyspace.
    vec![0]
}

/// The compare that `lease` still holds the leader key: a leader's writes go through only
/// while it leads.
fn holds_leader_key(leader_key: &[u8], lease: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Lease as i32,
        key: leader_key.to_vec(),
        target_union: Some(compare::TargetUnion::Lease(lease)),
        range_end: Vec::new(),
    }
}

fn put(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            prev_kv: false,
        })),
    }
}

fn range(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

/// The key of the `i`th answer of a transaction, when it was a range that found one.
fn first_kv(r: &etcd::TxnResponse, i: usize) -> Option<&KeyValue> {
    match r.responses.get(i)?.response.as_ref()? {
        response_op::Response::ResponseRange(range) => range.kvs.first(),
        _ => None,
    }
}

/// The counter's value and its revision (0, 0 before the first reservation).
fn epoch_of(kv: Option<&KeyValue>) -> anyhow::Result<(u64, i64)> {
    match kv {
        None => Ok((0, 0)),
        Some(kv) => {
            let text = String::from_utf8_lossy(&kv.value);
            let value = text
                .trim()
                .parse::<u64>()
                .with_context(|| format!("the epoch counter holds {text:?}, not a number"))?;
            Ok((value, kv.mod_revision))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_where_its_last_byte_is_incremented() {
        assert_eq!(prefix_end(b"/p/overrides/"), b"/p/overrides0");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn store_urls_name_members_and_an_optional_prefix() {
        let s = EtcdStore::parse(
            "etcd://127.0.0.1:2379,10.0.0.2:2379/site-a",
            Duration::from_secs(2),
            "http://127.0.0.1:50053".into(),
        )
        .expect("parses");
        assert_eq!(
            s.endpoints,
            ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(s.key("leader"), b"/site-a/leader");
        let d = EtcdStore::parse("etcd://h:1", Duration::from_secs(2), String::new()).expect("ok");
        assert_eq!(d.key("epoch"), b"/failover-lab/epoch");
        for bad in [
            "http://h:1",
            "etcd://h",
            "etcd://h:x",
            "etcd://:1",
            "etcd://h:1/",
        ] {
            assert!(
                EtcdStore::parse(bad, Duration::from_secs(2), String::new()).is_err(),
                "{bad}"
            );
        }
    }
}
