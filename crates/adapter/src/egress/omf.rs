//! OMF egress: what Edge Data Store, PI Web API and CONNECT data services take, over HTTP.
//!
//! - **Messages:** the type `FailoverLabPoint` (a date-time index `Timestamp` and a float64
//!   `Value`) once, then a container per stream, `{group}.stream-{n}`, before its first value,
//!   then data: one message per stream in a batch, gzip-compressed, each request within OMF's
//!   192 KB (a batch that zips larger is split).
//! - **Fencing:** every container and data request carries `x-failover-adapter`,
//!   `x-failover-writer` and `x-failover-epoch`. The lab's endpoint fences on them and answers
//!   409 with `x-failover-fenced-epoch` to a stale writer; any other OMF endpoint ignores them.
//!   The vendor's behaviour sends `x-failover-adapter` alone, so the lab's endpoint can say who
//!   wrote what, and never fences (its egress writes the queue as it is).
//! - **Where to resume:** the fence creates the group's containers (so a stale writer is refused
//!   from then on) and reads back each container's last value (`.../streams/{id}/data/last`, as
//!   Edge Data Store reads it); buffered points at or before it are already there. An endpoint
//!   that cannot be read back resumes from the whole buffer: duplicates, never a loss.
//! - **Answers:** 2xx is taken; 409 with a fenced epoch is a stale writer; 408, 429 and 5xx are
//!   retried after a backoff. Any other 4xx first sends the type and containers again (the
//!   endpoint may have lost them: restarted, or an operator deleted them) and the points once
//!   more; refused again, they are the batch's fault and are never sent again unchanged: they
//!   are dropped, counted and reported.

use std::{collections::BTreeSet, io::Write, time::Duration};

use failover_core::{Point, clock_time, points::StreamMap};
use serde_json::{Value, json};

use super::{FenceAnswer, Resume, WriteAnswer};
use crate::state::Shared;

/// The type our adapter writes.
pub const TYPE_ID: &str = "FailoverLabPoint";
pub use failover_proto::wires::omf::{
    HEADER_ADAPTER, HEADER_EPOCH, HEADER_FENCED_EPOCH, HEADER_WRITER, MAX_BODY, container_id,
};

/// True when an endpoint URL's path ends in `/omf`.
pub fn is_omf_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.path().trim_end_matches('/').ends_with("/omf"))
}

/// An OMF endpoint.
#[derive(Debug)]
pub struct OmfSink {
    http: reqwest::Client,
    omf_url: String,
    /// Where streams are read back: the namespace's URL.
    read_base: String,
    type_sent: bool,
    /// Containers created at this endpoint, by group and stream.
    containers: BTreeSet<(String, u32)>,
    /// Said once: the endpoint cannot be read back.
    no_readback_said: bool,
    /// Points per data request: the most that last zipped within OMF's limit.
    chunk: usize,
    /// The type and containers were sent again after data was refused, and no write has been
    /// taken since: a second refusal is the data's fault.
    definitions_resent: bool,
    /// Our fencing headers go with every container and data request (failover-lab's
    /// behaviour). The vendor's behaviour fences nothing, as the vendor's adapters do: it sends
    /// `x-failover-adapter` alone, which the lab's endpoint counts under that name and any
    /// other endpoint ignores, so the audit can say which adapter wrote what.
    fencing: bool,
}

/// Most points in one data request, however well they zip.
const MAX_CHUNK: usize = 100_000;

/// What a request came back with.
struct Answer {
    status: u16,
    fenced_epoch: Option<u64>,
    reason: String,
}

impl OmfSink {
    pub fn new(settings: &crate::AdapterSettings) -> anyhow::Result<Self> {
        let url = url::Url::parse(&settings.endpoint_url)
            .map_err(|e| anyhow::anyhow!("data endpoint {}: {e}", settings.endpoint_url))?;
        let path = url.path().trim_end_matches('/');
        let namespace = path.strip_suffix("/omf").unwrap_or(path);
        let read_path = if namespace.to_ascii_lowercase().contains("/namespaces/") {
            namespace.to_string()
        } else {
            // PI Web API's /piwebapi/omf: the lab's endpoint reads it back in default/default.
            "/api/v1/tenants/default/namespaces/default".to_string()
        };
        let mut base = url.clone();
        base.set_path(&read_path);
        base.set_query(None);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot make an HTTP client: {e}"))?;
        Ok(OmfSink {
            http,
            omf_url: settings.endpoint_url.clone(),
            read_base: base.as_str().trim_end_matches('/').to_string(),
            type_sent: false,
            containers: BTreeSet::new(),
            no_readback_said: false,
            chunk: 4_096,
            definitions_resent: false,
            fencing: settings.behaviour == failover_core::Behaviour::Lab,
        })
    }

    async fn post(
        &self,
        message_type: &str,
        body: &Value,
        fencing: Option<(&Shared, u64)>,
    ) -> Result<Answer, String> {
        let json = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        self.post_zipped(message_type, gzip(&json)?, fencing).await
    }

    /// Posts a gzip-compressed body.
    async fn post_zipped(
        &self,
        message_type: &str,
        zipped: Vec<u8>,
        fencing: Option<(&Shared, u64)>,
    ) -> Result<Answer, String> {
        let mut request = self
            .http
            .post(&self.omf_url)
            .header("messagetype", message_type)
            .header("messageformat", "JSON")
            .header("omfversion", "1.2")
            .header("action", "create")
            .header("compression", "gzip")
            // PI Web API's defence against cross-site requests wants it; others ignore it.
            .header("x-requested-with", "XMLHttpRequest");
        if let Some((shared, epoch)) = fencing {
            request = request.header(HEADER_ADAPTER, &shared.settings.name);
            if self.fencing {
                request = request
                    .header(HEADER_WRITER, &shared.writer)
                    .header(HEADER_EPOCH, epoch.to_string());
            }
        }
        let response = request
            .body(zipped)
            .send()
            .await
            .map_err(|e| format!("OMF {message_type} message: {}", without_url(&e)))?;
        let status = response.status().as_u16();
        let fenced_epoch = response
            .headers()
            .get(HEADER_FENCED_EPOCH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let reason = if response.status().is_success() {
            String::new()
        } else {
            let text = response.text().await.unwrap_or_default();
            serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("Reason").and_then(Value::as_str).map(str::to_string))
                .unwrap_or(text)
                .chars()
                .take(300)
                .collect()
        };
        Ok(Answer {
            status,
            fenced_epoch,
            reason,
        })
    }

    /// Posts the type, once per sink.
    async fn ensure_type(&mut self) -> Result<(), String> {
        if self.type_sent {
            return Ok(());
        }
        let body = json!([{
            "id": TYPE_ID,
            "type": "object",
            "classification": "dynamic",
            "properties": {
                "Timestamp": {"type": "string", "format": "date-time", "isindex": true},
                "Value": {"type": ["number", "null"], "format": "float64"}
            }
        }]);
        let a = self.post("type", &body, None).await?;
        match a.status {
            200..=299 => {
                self.type_sent = true;
                Ok(())
            }
            s => Err(format!(
                "the OMF endpoint refused our type ({s}): {}",
                a.reason
            )),
        }
    }

    /// Creates containers with the fencing headers: Ok(None) when taken, Ok(Some(answer)) when
    /// refused as stale or not fenced.
    async fn create_containers(
        &mut self,
        shared: &Shared,
        group: &str,
        epoch: u64,
        streams: &BTreeSet<u32>,
    ) -> Result<Option<(u64, String)>, String> {
        self.ensure_type().await?;
        let body: Vec<Value> = streams
            .iter()
            .map(|s| json!({"id": container_id(group, *s), "typeid": TYPE_ID}))
            .collect();
        for chunk in body.chunks(1_000) {
            let a = self
                .post("container", &json!(chunk), Some((shared, epoch)))
                .await?;
            match (a.status, a.fenced_epoch) {
                (200..=299, _) => {}
                (409, Some(fenced)) => return Ok(Some((fenced, a.reason))),
                (s, _) => {
                    // Perhaps the endpoint lost our type (restarted, or an operator deleted
                    // it): send it again with the next containers.
                    self.type_sent = false;
                    return Err(format!("OMF containers ({s}): {}", a.reason));
                }
            }
        }
        self.containers
            .extend(streams.iter().map(|s| (group.to_string(), *s)));
        Ok(None)
    }

    pub(super) async fn fence(
        &mut self,
        shared: &Shared,
        group: &str,
        epoch: u64,
    ) -> Result<FenceAnswer, String> {
        // The group's streams: the source's, those buffered, and those written before.
        let mut streams: BTreeSet<u32> = {
            let st = shared.lock();
            let total: u32 = st.components.iter().map(|c| c.streams).sum();
            (0..total).chain(st.buffer.streams()).collect()
        };
        streams.extend(
            self.containers
                .iter()
                .filter(|(g, _)| g == group)
                .map(|(_, s)| *s),
        );
        if streams.is_empty() {
            return Err(
                "waiting for data or the source's list of streams: an OMF endpoint is fenced on \
                 the group's containers"
                    .into(),
            );
        }
        if let Some((fenced_epoch, detail)) = self
            .create_containers(shared, group, epoch, &streams)
            .await?
        {
            return Ok(FenceAnswer {
                granted: false,
                fenced_epoch,
                resume: Resume::Times(StreamMap::default()),
                detail,
            });
        }
        let mut times = StreamMap::default();
        let mut readable = true;
        for s in &streams {
            let url = format!(
                "{}/streams/{}/data/last",
                self.read_base,
                container_id(group, *s)
            );
            let response = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("reading back the OMF endpoint: {}", without_url(&e)))?;
            if !response.status().is_success() {
                readable = false;
                break;
            }
            let last: Value = response
                .json()
                .await
                .map_err(|e| format!("reading back the OMF endpoint: {}", without_url(&e)))?;
            if let Some(ms) = last
                .get("Timestamp")
                .and_then(Value::as_str)
                .and_then(|t| clock_time::parse_utc_ms(t).ok())
            {
                times.insert(*s, ms);
            }
        }
        if !readable {
            times.clear();
            if !self.no_readback_said {
                self.no_readback_said = true;
                tracing::warn!(
                    "the OMF endpoint cannot be read back (GET {}/streams/{{id}}/data/last): a \
                     takeover resends the whole buffer, so points may be written twice",
                    self.read_base
                );
            }
        }
        Ok(FenceAnswer {
            granted: true,
            fenced_epoch: epoch,
            resume: Resume::Times(times),
            detail: String::new(),
        })
    }

    pub(super) async fn write(
        &mut self,
        shared: &Shared,
        group: &str,
        epoch: u64,
        batch: &[Point],
    ) -> Result<WriteAnswer, String> {
        let new: BTreeSet<u32> = batch
            .iter()
            .map(|p| p.stream_id)
            .filter(|s| !self.containers.contains(&(group.to_string(), *s)))
            .collect();
        if !new.is_empty()
            && let Some((fenced_epoch, _)) =
                self.create_containers(shared, group, epoch, &new).await?
        {
            return Ok(refused(epoch, fenced_epoch));
        }
        let (mut accepted, mut done) = (0u64, 0usize);
        // Parts go in order, so what is done is always a prefix of the batch. They start at
        // the size that last fitted and adapt: halved when a part zips over OMF's limit, grown
        // when parts zip to under a third of it. The next part is written and zipped on another
        // thread while this one is posted, so the endpoint's work and ours overlap.
        let mut queue: std::collections::VecDeque<Vec<Point>> =
            batch.chunks(self.chunk).map(<[Point]>::to_vec).collect();
        let zip = |part: Vec<Point>| {
            let group = group.to_string();
            tokio::task::spawn_blocking(move || {
                let zipped = gzip(&data_json(&group, &part));
                (part, zipped)
            })
        };
        let mut pending = queue.pop_front().map(zip);
        while let Some(job) = pending.take() {
            let (part, zipped) = job
                .await
                .map_err(|e| format!("writing an OMF message: {e}"))?;
            let zipped = zipped?;
            if part.len() > 1 && zipped.len() > MAX_BODY {
                let (a, b) = part.split_at(part.len() / 2);
                self.chunk = a.len().max(1);
                queue.push_front(b.to_vec());
                pending = Some(zip(a.to_vec()));
                continue;
            }
            if zipped.len() < MAX_BODY / 3 && part.len() == self.chunk {
                self.chunk = (self.chunk * 3 / 2).min(MAX_CHUNK);
            }
            pending = queue.pop_front().map(zip);
            let a = self
                .post_zipped("data", zipped, Some((shared, epoch)))
                .await?;
            match (a.status, a.fenced_epoch) {
                (200..=299, _) => {
                    accepted += part.len() as u64;
                    done += part.len();
                    self.definitions_resent = false;
                }
                (409, Some(fenced)) => return Ok(refused(epoch, fenced)),
                (408 | 429 | 500..=599, _) => {
                    return Err(format!(
                        "the OMF endpoint answered {}: {}",
                        a.status, a.reason
                    ));
                }
                (s, _) if !self.definitions_resent => {
                    // The endpoint may have lost our type or containers (restarted, or an
                    // operator deleted them): send them again, then the same points once more.
                    // Only a second refusal drops them.
                    self.type_sent = false;
                    self.containers.clear();
                    self.definitions_resent = true;
                    return Err(format!(
                        "the OMF endpoint refused data ({s}): {}; sending the type and \
                         containers again before one more try",
                        a.reason
                    ));
                }
                (s, _) => {
                    return Ok(WriteAnswer::Rejected {
                        through: done + part.len(),
                        rejected: part.len() as u64,
                        reason: format!("the OMF endpoint refused data ({s}): {}", a.reason),
                    });
                }
            }
        }
        Ok(WriteAnswer::Accepted { accepted })
    }
}

fn refused(epoch: u64, fenced_epoch: u64) -> WriteAnswer {
    if fenced_epoch > epoch {
        WriteAnswer::Stale { fenced_epoch }
    } else {
        WriteAnswer::NotFenced { fenced_epoch }
    }
}

/// The body of one data message per stream of the batch, written straight as JSON text (a
/// `serde_json::Value` per point would cost more than the gzip).
pub fn data_json(group: &str, batch: &[Point]) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut by_stream: std::collections::BTreeMap<u32, Vec<&Point>> = Default::default();
    for p in batch {
        by_stream.entry(p.stream_id).or_default().push(p);
    }
    // A batch holds a few ticks of many streams: each data time is written once.
    let times: std::collections::BTreeMap<i64, String> = batch
        .iter()
        .map(|p| (p.timestamp_ms, String::new()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_keys()
        .map(|t| (t, clock_time::format_utc_ms(t)))
        .collect();
    let mut out = String::with_capacity(batch.len() * 56 + by_stream.len() * 64);
    out.push('[');
    for (i, (stream, points)) in by_stream.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let container = serde_json::to_string(&container_id(group, *stream)).unwrap_or_default();
        let _ = write!(out, "{{\"containerid\":{container},\"values\":[");
        for (j, p) in points.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"Timestamp\":\"");
            out.push_str(times.get(&p.timestamp_ms).map_or("", String::as_str));
            out.push_str("\",\"Value\":");
            if p.value.is_finite() {
                let _ = write!(out, "{}", p.value);
            } else {
                out.push_str("null"); // JSON has no NaN or infinity
            }
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    out.into_bytes()
}

pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut zip = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    zip.write_all(bytes).map_err(|e| e.to_string())?;
    zip.finish().map_err(|e| e.to_string())
}

/// A reqwest error's words without its URL (which could hold a secret in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(at) = e.find(" for url (") {
        e.truncate(at);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write after the endpoint lost our definitions (here: an operator deleted the
    /// container) sends them again and the points once more, instead of dropping the points.
    /// Before the fix, the refusal dropped the batch (the audit counted it lost).
    #[tokio::test]
    async fn definitions_lost_by_the_endpoint_are_sent_again_not_the_points_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("address");
        let endpoint = fake_endpoint::EndpointService::default();
        let app = fake_endpoint::http_routes(endpoint.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let omf_url = format!("http://{addr}/api/v1/tenants/default/namespaces/default/omf");
        let settings = crate::test_settings(&omf_url);
        let shared = crate::state::Shared::new(
            settings.clone(),
            crate::spool::DurableBuffer::in_memory(1000),
        );
        shared.update(|st| {
            st.components = vec![failover_core::modes::Component { id: 0, streams: 1 }];
        });
        let p = |seq: u64| Point {
            stream_id: 0,
            seq,
            timestamp_ms: 1_767_225_600_000 + seq as i64 * 100,
            value: 1.0,
        };
        let mut sink = OmfSink::new(&settings).expect("sink");
        let group = "g";
        assert!(sink.fence(&shared, group, 1).await.expect("fence").granted);
        assert_eq!(
            sink.write(&shared, group, 1, &[p(0), p(1)]).await,
            Ok(WriteAnswer::Accepted { accepted: 2 })
        );
        // An operator deletes the container.
        let deleted = reqwest::Client::new()
            .post(&omf_url)
            .header("messagetype", "container")
            .header("messageformat", "JSON")
            .header("omfversion", "1.2")
            .header("action", "delete")
            .body(format!(
                r#"[{{"id":"{}","typeid":"{TYPE_ID}"}}]"#,
                container_id(group, 0)
            ))
            .send()
            .await
            .expect("answers");
        assert_eq!(deleted.status().as_u16(), 204);
        // The next write is refused; the sink says it sends its definitions again (an error:
        // the egress loop fences again, which creates the containers, then writes once more).
        let refused = sink.write(&shared, group, 1, &[p(2)]).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("again")),
            "{refused:?}"
        );
        assert!(sink.fence(&shared, group, 1).await.expect("fence").granted);
        assert_eq!(
            sink.write(&shared, group, 1, &[p(2)]).await,
            Ok(WriteAnswer::Accepted { accepted: 1 })
        );
        server.abort();
    }

    #[test]
    fn an_omf_url_is_known_by_its_path() {
        assert!(is_omf_url(
            "http://127.0.0.1:5590/api/v1/tenants/default/namespaces/default/omf"
        ));
        assert!(is_omf_url("https://pi.example.invalid/piwebapi/omf/"));
        assert!(!is_omf_url("http://127.0.0.1:50052"));
        assert!(!is_omf_url("http://127.0.0.1:50052/omfx"));
    }

    #[test]
    fn a_data_message_has_one_message_per_stream_in_order() {
        let p = |s, seq: u64| Point {
            stream_id: s,
            seq,
            timestamp_ms: 1_767_225_600_000 + seq as i64 * 100,
            value: 1.5,
        };
        let m: Value =
            serde_json::from_slice(&data_json("g", &[p(1, 0), p(0, 0), p(1, 1)])).expect("JSON");
        assert_eq!(m[0]["containerid"], "g.stream-0");
        assert_eq!(m[1]["values"][1]["Timestamp"], "2026-01-01T00:00:00.100Z");
        assert_eq!(m[1]["values"][1]["Value"], 1.5);
    }
}
