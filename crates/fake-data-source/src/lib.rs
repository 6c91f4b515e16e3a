//! fake-data-source: a deterministic data source for the adapters to collect from.
//!
//! It produces `streams` streams at `rate_hz` ticks per second; at tick `n` every stream
//! produces point `(stream, n)` with timestamp `origin + n * period` and a value that depends
//! only on the seed, the stream and `n`, so both adapters of a pair see identical points.
//! Streams are grouped into components (contiguous ranges of equal size).
//!
//! Faults can be injected and healed through the `InjectFault` call: the whole source (every
//! subscription ends, every call is refused), one component (its points stop and subscribers
//! are told it is down; for every client or for one client only), or one client's connection
//! (that client's subscription ends and its calls are refused).
//!
//! [`run`] serves `failover.v1.DataSource` and the gRPC health service on a given listener
//! until the shutdown future resolves; [`run_with_wires`] serves the same points over the
//! vendor's wires too: MQTT ([`mqtt`]) and OPC UA ([`opcua`]).

pub mod mqtt;
pub mod opcua;

use std::{
    collections::BTreeSet,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use failover_proto::{process, v1};
use futures::Stream;
use tokio::sync::{broadcast, watch};
use tonic::{Request, Response, Status};

/// How the source is shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceSettings {
    /// Number of streams.
    pub streams: u32,
    /// Number of components the streams are split into.
    pub components: u32,
    /// Ticks per second (each tick: one point per stream).
    pub rate_hz: f64,
    /// Seed of the values.
    pub seed: u64,
    /// Data time of seq 0 (unix ms); None: now. A restarted source given the same origin goes
    /// on with the sequence numbers it would have reached.
    pub origin_unix_ms: Option<i64>,
    /// Most history points served per second (None: as fast as possible), to make history
    /// recoveries take a while.
    pub history_rate: Option<u32>,
    /// Most clients connected at once (None: any number), as sources that take one client
    /// connection do: a client holds its place while it has a subscription open; another is
    /// refused (RESOURCE_EXHAUSTED) on subscribe, connection test and history read until a
    /// place is free. This is why Cold exists: a Hot or Warm standby cannot connect.
    pub max_clients: Option<u32>,
}

impl SourceSettings {
    /// Checks the settings, naming what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.streams == 0 || self.streams > 1_000_000 {
            return Err(format!(
                "streams must be 1 to 1000000, not {}",
                self.streams
            ));
        }
        if self.components == 0 || self.components > self.streams {
            return Err(format!(
                "components must be 1 to streams ({}), not {}",
                self.streams, self.components
            ));
        }
        if !(self.rate_hz.is_finite() && self.rate_hz > 0.0 && self.rate_hz <= 100_000.0) {
            return Err(format!(
                "rate must be above 0 and at most 100000 Hz, not {}",
                self.rate_hz
            ));
        }
        if self.max_clients == Some(0) {
            return Err("max clients must be at least 1 (or unset: any number)".into());
        }
        Ok(())
    }

    /// The data time of tick `seq` after the origin, in whole ms.
    pub fn tick_offset_ms(&self, seq: u64) -> i64 {
        // Rounded: 0.999... ms truncated would give two ticks at 1000 Hz one timestamp.
        (seq as f64 * 1000.0 / self.rate_hz).round() as i64
    }

    /// Time between ticks.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate_hz)
    }

    /// The component a stream belongs to.
    pub fn component_of(&self, stream: u32) -> u32 {
        let per = self.streams.div_ceil(self.components);
        stream / per
    }

    /// Components with their stream ranges.
    pub fn component_ranges(&self) -> Vec<(u32, u32, u32)> {
        let per = self.streams.div_ceil(self.components);
        (0..self.components)
            .map(|c| {
                let first = c * per;
                let count = per.min(self.streams.saturating_sub(first));
                (c, first, count)
            })
            .filter(|(_, _, count)| *count > 0)
            .collect()
    }
}

/// The value of point `(stream, seq)`: a slow wave plus seeded noise.
pub fn point_value(seed: u64, stream: u32, seq: u64) -> f64 {
    let mut x = seed ^ (u64::from(stream) << 32) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let noise = (x >> 11) as f64 / (1u64 << 53) as f64;
    let phase = (seq as f64) * 0.05 + f64::from(stream);
    50.0 + 40.0 * phase.sin() + noise
}

#[derive(Debug, Default, Clone)]
struct Faults {
    source_down: bool,
    down_components: BTreeSet<u32>,
    /// Components failed for one client only: (client, component).
    down_for_client: BTreeSet<(String, u32)>,
    cut_clients: BTreeSet<String>,
}

impl Faults {
    /// Components down for `client` (for everyone, or for it alone).
    fn down_for(&self, client: &str) -> Vec<u32> {
        let mut down: BTreeSet<u32> = self.down_components.clone();
        down.extend(
            self.down_for_client
                .iter()
                .filter(|(c, _)| c == client)
                .map(|(_, comp)| *comp),
        );
        down.into_iter().collect()
    }
}

/// Ticks produced in one wake-up: seqs `first..=last`, every stream.
#[derive(Debug)]
struct Produced {
    first: u64,
    last: u64,
    batch: v1::PointBatch,
}

#[derive(Debug)]
struct Shared {
    settings: SourceSettings,
    origin_unix_ms: i64,
    faults: Mutex<Faults>,
    /// Bumped on every fault change, so subscriptions react at once.
    fault_version: watch::Sender<u64>,
    /// (produced any, last seq).
    produced: watch::Sender<Option<u64>>,
    ticks: broadcast::Sender<Arc<Produced>>,
    /// The clients holding a place (with [`SourceSettings::max_clients`]): open subscriptions
    /// per client.
    holders: Mutex<std::collections::BTreeMap<String, usize>>,
}

/// A client's place at a source that takes few clients, held while its subscription lives.
#[derive(Debug)]
struct Place {
    shared: Arc<Shared>,
    client: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut holders = self
            .shared
            .holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = holders.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                holders.remove(&self.client);
                tracing::info!(client = self.client, "let go of its place at the source");
            }
        }
    }
}

impl Shared {
    /// Whether `client` may connect: it holds a place already, or one is free.
    fn admit(&self, client: &str) -> Result<(), Status> {
        let Some(max) = self.settings.max_clients else {
            return Ok(());
        };
        let holders = self.holders.lock().unwrap_or_else(PoisonError::into_inner);
        if holders.contains_key(client)
            || holders.len() < usize::try_from(max).unwrap_or(usize::MAX)
        {
            return Ok(());
        }
        let held: Vec<&str> = holders.keys().map(String::as_str).collect();
        Err(Status::resource_exhausted(format!(
            "the data source takes {max} client(s) at a time and {} connected ({}); {client:?} must wait until one lets go",
            if held.len() == 1 {
                "one is"
            } else {
                "they are"
            },
            held.join(", ")
        )))
    }

    /// Takes a place for `client` (held until the place is dropped), or says why not.
    fn hold(shared: &Arc<Shared>, client: &str) -> Result<Option<Place>, Status> {
        if shared.settings.max_clients.is_none() {
            return Ok(None);
        }
        shared.admit(client)?;
        *shared
            .holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(client.to_string())
            .or_default() += 1;
        Ok(Some(Place {
            shared: shared.clone(),
            client: client.to_string(),
        }))
    }

    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn refuse(&self, client: &str) -> Result<(), Status> {
        let f = self.faults();
        if f.source_down {
            return Err(Status::unavailable("data source is down"));
        }
        if f.cut_clients.contains(client) {
            return Err(Status::unavailable(format!(
                "connection of client {client:?} to the data source is cut"
            )));
        }
        Ok(())
    }

    fn timestamp_ms(&self, seq: u64) -> i64 {
        self.origin_unix_ms + self.settings.tick_offset_ms(seq)
    }

    fn tick_batch(&self, first: u64, last: u64, keep: impl Fn(u32) -> bool) -> v1::PointBatch {
        let streams = self.settings.streams;
        let n = usize::try_from((last - first + 1) * u64::from(streams)).unwrap_or(0);
        let mut b = v1::PointBatch {
            stream_ids: Vec::with_capacity(n),
            seqs: Vec::with_capacity(n),
            timestamps_ms: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
        };
        for seq in first..=last {
            let ts = self.timestamp_ms(seq);
            for s in (0..streams).filter(|s| keep(*s)) {
                b.stream_ids.push(s);
                b.seqs.push(seq);
                b.timestamps_ms.push(ts);
                b.values.push(point_value(self.settings.seed, s, seq));
            }
        }
        b
    }

    fn info(&self) -> v1::SourceInfo {
        let f = self.faults();
        let last = *self.produced.borrow();
        v1::SourceInfo {
            streams: self.settings.streams,
            components: self
                .settings
                .component_ranges()
                .into_iter()
                .map(|(id, first_stream, stream_count)| v1::ComponentInfo {
                    id,
                    first_stream,
                    stream_count,
                    down: f.down_components.contains(&id),
                })
                .collect(),
            rate_hz: self.settings.rate_hz,
            origin_unix_ms: self.origin_unix_ms,
            last_seq: last.unwrap_or(0),
            produced_any: last.is_some(),
            source_down: f.source_down,
            clients_cut: f.cut_clients.iter().cloned().collect(),
            period_us: u64::try_from(self.settings.period().as_micros()).unwrap_or(u64::MAX),
        }
    }
}

/// Most points in one subscription message (about 1.8 MB on the wire).
pub const MAX_UPDATE_POINTS: u64 = 65_536;

/// Produces ticks on the clock until dropped.
async fn produce(shared: Arc<Shared>) {
    let period = shared.settings.period();
    // Wake at most every 10 ms; at higher rates one wake-up carries several ticks.
    let wake = period.max(Duration::from_millis(10));
    // Sequence numbers count from the origin, so a restart given the same origin goes on.
    let since_origin = Duration::from_millis(
        u64::try_from(process::unix_ms() - shared.origin_unix_ms).unwrap_or(0),
    );
    let start = tokio::time::Instant::now()
        .checked_sub(since_origin)
        .unwrap_or_else(tokio::time::Instant::now);
    let mut next_seq = (since_origin.as_secs_f64() / period.as_secs_f64()).ceil() as u64;
    let mut interval = tokio::time::interval(wake);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let elapsed = start.elapsed().as_secs_f64();
        let due = (elapsed / period.as_secs_f64()).floor() as u64;
        if due < next_seq {
            continue;
        }
        let (first, last) = (next_seq, due);
        next_seq = due + 1;
        if shared.faults().source_down {
            // A down source produces nothing anyone can collect, but time goes on.
            shared.produced.send_replace(Some(last));
            continue;
        }
        // A late wake-up (a busy machine) can owe many ticks: send them in messages of at most
        // MAX_UPDATE_POINTS points, so no subscriber meets a message beyond its size limit.
        let per_message = (MAX_UPDATE_POINTS / u64::from(shared.settings.streams.max(1))).max(1);
        let mut from = first;
        while from <= last {
            let to = last.min(from + per_message - 1);
            let batch = shared.tick_batch(from, to, |_| true);
            // No subscribers is fine.
            let _ = shared.ticks.send(Arc::new(Produced {
                first: from,
                last: to,
                batch,
            }));
            from = to + 1;
        }
        shared.produced.send_replace(Some(last));
    }
}

/// The DataSource service.
#[derive(Debug, Clone)]
pub struct DataSourceService {
    shared: Arc<Shared>,
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<v1::SourceUpdate, Status>> + Send>>;
type BatchStream = Pin<Box<dyn Stream<Item = Result<v1::PointBatch, Status>> + Send>>;

#[tonic::async_trait]
impl v1::data_source_server::DataSource for DataSourceService {
    type SubscribeStream = UpdateStream;
    type ReadHistoryStream = BatchStream;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let client = request.into_inner().client_id;
        self.shared.refuse(&client)?;
        let place = Shared::hold(&self.shared, &client)?;
        tracing::info!(client, "subscribed");
        let shared = self.shared.clone();
        let mut ticks = shared.ticks.subscribe();
        let mut faults_changed = shared.fault_version.subscribe();
        let stream = process::task_stream(move |tx| async move {
            // The client's place is held as long as this subscription lives.
            let _place = place;
            let mut last_down: Option<Vec<u32>> = None;
            loop {
                let f = shared.faults();
                if let Err(status) = shared.refuse(&client) {
                    tracing::info!(client, %status, "subscription ended by fault");
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                let down = f.down_for(&client);
                if last_down.as_ref() != Some(&down) {
                    // Tell the subscriber about component health at once.
                    let update = v1::SourceUpdate {
                        batch: None,
                        down_components: down.clone(),
                    };
                    if tx.send(Ok(update)).await.is_err() {
                        return;
                    }
                    last_down = Some(down.clone());
                }
                tokio::select! {
                    changed = faults_changed.changed() => {
                        if changed.is_err() { return; }
                    }
                    tick = ticks.recv() => match tick {
                        Ok(p) => {
                            let batch = if down.is_empty() {
                                p.batch.clone()
                            } else {
                                let settings = shared.settings;
                                shared.tick_batch(p.first, p.last, |s| !down.contains(&settings.component_of(s)))
                            };
                            let update = v1::SourceUpdate { batch: Some(batch), down_components: down.clone() };
                            if tx.send(Ok(update)).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            // Never skip points silently: end the subscription so the client sees it.
                            let _ = tx.send(Err(Status::resource_exhausted(format!(
                                "subscriber {client:?} fell {n} ticks behind; resubscribe"
                            )))).await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn test_connection(
        &self,
        request: Request<v1::ClientRequest>,
    ) -> Result<Response<v1::TestConnectionReply>, Status> {
        let client = request.into_inner().client_id;
        let reply = match self
            .shared
            .refuse(&client)
            .and_then(|()| self.shared.admit(&client))
        {
            Ok(()) => v1::TestConnectionReply {
                ok: true,
                detail: "connection test passed".into(),
            },
            Err(status) => v1::TestConnectionReply {
                ok: false,
                detail: status.message().to_string(),
            },
        };
        Ok(Response::new(reply))
    }

    async fn read_history(
        &self,
        request: Request<v1::HistoryRequest>,
    ) -> Result<Response<Self::ReadHistoryStream>, Status> {
        let req = request.into_inner();
        self.shared.refuse(&req.client_id)?;
        self.shared.admit(&req.client_id)?;
        let Some(last) = *self.shared.produced.borrow() else {
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        };
        if req.from_seq > req.to_seq {
            return Err(Status::invalid_argument(format!(
                "from_seq {} is after to_seq {}",
                req.from_seq, req.to_seq
            )));
        }
        let to = req.to_seq.min(last);
        let shared = self.shared.clone();
        // About 10,000 points per message, or a tenth of a second's worth when throttled.
        let streams = u64::from(shared.settings.streams);
        let points_per_msg = shared
            .settings
            .history_rate
            .map_or(10_000, |r| (u64::from(r) / 10).max(1));
        let ticks_per_msg = (points_per_msg / streams).max(1);
        let pause = shared.settings.history_rate.map(|r| {
            Duration::from_secs_f64((ticks_per_msg * streams) as f64 / f64::from(r.max(1)))
        });
        let stream = process::task_stream(move |tx| async move {
            let mut seq = req.from_seq;
            while seq <= to {
                let end = (seq + ticks_per_msg - 1).min(to);
                let batch = shared.tick_batch(seq, end, |_| true);
                if tx.send(Ok(batch)).await.is_err() {
                    return;
                }
                seq = end + 1;
                if let Some(p) = pause {
                    tokio::time::sleep(p).await;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn describe(
        &self,
        _request: Request<v1::DescribeRequest>,
    ) -> Result<Response<v1::SourceInfo>, Status> {
        Ok(Response::new(self.shared.info()))
    }

    async fn inject_fault(
        &self,
        request: Request<v1::SourceFault>,
    ) -> Result<Response<v1::SourceInfo>, Status> {
        let fault = request.into_inner();
        {
            let mut f = self
                .shared
                .faults
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match &fault.target {
                Some(v1::source_fault::Target::WholeSource(_)) => f.source_down = fault.down,
                Some(v1::source_fault::Target::Component(c)) => {
                    if *c >= self.shared.settings.components {
                        return Err(Status::invalid_argument(format!(
                            "component {c} does not exist; the source has components 0 to {}",
                            self.shared.settings.components - 1
                        )));
                    }
                    if !fault.for_client.is_empty() {
                        let key = (fault.for_client.clone(), *c);
                        if fault.down {
                            f.down_for_client.insert(key);
                        } else {
                            f.down_for_client.remove(&key);
                        }
                    } else if fault.down {
                        f.down_components.insert(*c);
                    } else {
                        f.down_components.remove(c);
                    }
                }
                Some(v1::source_fault::Target::ClientId(client)) => {
                    if fault.down {
                        f.cut_clients.insert(client.clone());
                    } else {
                        f.cut_clients.remove(client);
                    }
                }
                None => {
                    return Err(Status::invalid_argument(
                        "fault target missing: whole_source, component or client_id",
                    ));
                }
            }
        }
        tracing::info!(target = ?fault.target, down = fault.down, for_client = fault.for_client, "fault injected");
        self.shared.fault_version.send_modify(|v| *v += 1);
        Ok(Response::new(self.shared.info()))
    }
}

/// Serves the data source on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    settings: SourceSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), ?settings, "data source serving");
    serve(process::incoming(listener), settings, shutdown).await
}

/// The vendor's wires a source serves besides gRPC (none by default).
#[derive(Debug, Default)]
pub struct ExtraWires {
    /// MQTT 3.1.1 on this listener ([`mqtt`]).
    pub mqtt: Option<tokio::net::TcpListener>,
    /// OPC UA on this listener, set up so ([`opcua`]).
    pub opcua: Option<(tokio::net::TcpListener, opcua::OpcUaSettings)>,
}

/// [`run`], and the vendor's wires in `wires`: the same points and faults.
pub async fn run_with_wires(
    listener: tokio::net::TcpListener,
    wires: ExtraWires,
    settings: SourceSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        mqtt = ?wires.mqtt.as_ref().and_then(|l| l.local_addr().ok()),
        opcua = ?wires.opcua.as_ref().and_then(|(l, _)| l.local_addr().ok()),
        ?settings,
        "data source serving"
    );
    serve_with_wires(process::incoming(listener), wires, settings, shutdown).await
}

/// Serves the data source on the connections of `incoming` until `shutdown` resolves: TCP for
/// [`run`], a simulator's network otherwise.
pub async fn serve<IO: process::ServerConn>(
    incoming: impl tokio_stream::Stream<Item = std::io::Result<IO>> + Send,
    settings: SourceSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with_wires(incoming, ExtraWires::default(), settings, shutdown).await
}

/// [`serve`], and the vendor's wires in `wires`.
pub async fn serve_with_wires<IO: process::ServerConn>(
    incoming: impl tokio_stream::Stream<Item = std::io::Result<IO>> + Send,
    wires: ExtraWires,
    settings: SourceSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let (ticks, _) = broadcast::channel(4096);
    let shared = Arc::new(Shared {
        settings,
        origin_unix_ms: settings.origin_unix_ms.unwrap_or_else(process::unix_ms),
        faults: Mutex::new(Faults::default()),
        fault_version: watch::Sender::new(0),
        produced: watch::Sender::new(None),
        ticks,
        holders: Mutex::default(),
    });
    let producer = tokio::spawn(produce(shared.clone()));
    let mut wire_tasks = Vec::new();
    if let Some(l) = wires.mqtt {
        wire_tasks.push(tokio::spawn(mqtt::serve(l, shared.clone())));
    }
    if let Some((l, opcua_settings)) = wires.opcua {
        wire_tasks.push(tokio::spawn(opcua::serve(
            l,
            opcua_settings,
            shared.clone(),
        )));
    }
    let service = DataSourceService { shared };
    let health = process::health_service("failover.v1.DataSource").await;
    let result = process::server_builder()
        .add_service(health)
        .add_service(v1::data_source_server::DataSourceServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    producer.abort();
    for t in wire_tasks {
        t.abort();
    }
    result.map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_split_streams_evenly() {
        let s = SourceSettings {
            streams: 10,
            components: 4,
            rate_hz: 10.0,
            seed: 1,
            origin_unix_ms: None,
            history_rate: None,
            max_clients: None,
        };
        assert_eq!(
            s.component_ranges(),
            vec![(0, 0, 3), (1, 3, 3), (2, 6, 3), (3, 9, 1)]
        );
        assert_eq!(s.component_of(9), 3);
        assert_eq!(s.component_of(5), 1);
        let even = SourceSettings {
            streams: 4000,
            components: 4,
            rate_hz: 10.0,
            seed: 1,
            origin_unix_ms: None,
            history_rate: None,
            max_clients: None,
        };
        assert!(even.component_ranges().iter().all(|(_, _, n)| *n == 1000));
    }

    /// At 1000 Hz every tick has a millisecond of its own (OMF knows a value by its
    /// timestamp in ms). Found by a scenario at 1000 Hz over OMF: truncating 0.999... ms made
    /// two ticks share a timestamp, and the endpoint counted one lost and one duplicated.
    #[test]
    fn every_tick_at_1000_hz_has_its_own_millisecond() {
        let s = SourceSettings {
            streams: 1,
            components: 1,
            rate_hz: 1000.0,
            seed: 1,
            origin_unix_ms: None,
            history_rate: None,
            max_clients: None,
        };
        for seq in 0..200_000u64 {
            assert_eq!(s.tick_offset_ms(seq), seq as i64, "tick {seq}");
        }
        let slow = SourceSettings { rate_hz: 3.0, ..s };
        assert_eq!(slow.tick_offset_ms(1), 333);
        assert_eq!(slow.tick_offset_ms(2), 667);
    }

    #[test]
    fn values_are_deterministic_and_differ_between_points() {
        assert_eq!(point_value(7, 3, 99), point_value(7, 3, 99));
        assert_ne!(point_value(7, 3, 99), point_value(7, 3, 100));
        assert_ne!(point_value(7, 3, 99), point_value(8, 3, 99));
    }

    #[test]
    fn bad_settings_are_named() {
        let ok = SourceSettings {
            streams: 8,
            components: 2,
            rate_hz: 10.0,
            seed: 0,
            origin_unix_ms: None,
            history_rate: None,
            max_clients: None,
        };
        assert!(ok.validate().is_ok());
        assert!(
            SourceSettings { streams: 0, ..ok }
                .validate()
                .unwrap_err()
                .contains("streams")
        );
        assert!(
            SourceSettings {
                components: 9,
                ..ok
            }
            .validate()
            .unwrap_err()
            .contains("components")
        );
        assert!(
            SourceSettings {
                rate_hz: f64::NAN,
                ..ok
            }
            .validate()
            .unwrap_err()
            .contains("rate")
        );
    }
}
