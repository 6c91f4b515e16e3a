//! The source's OPC UA node manager: the address space in memory (async-opcua's defaults for
//! reads and subscriptions), and **history reads of the stream variables** (HistoryRead with
//! ReadRawModifiedDetails), served from the same points as the gRPC `ReadHistory`.
//!
//! - A read returns the stream's values whose source timestamp is in `[startTime, endTime)`
//!   (OPC UA's time domain: the start included, the end not), oldest first, up to the last tick
//!   produced. A null `endTime` reads up to the last tick produced.
//! - Reverse reads (a null `startTime`, or `startTime` after `endTime`) and modified values are
//!   not served: such a read is refused with `BadHistoryOperationUnsupported`. Bounding values
//!   are not returned (`returnBounds` is ignored: many clients ask for them by default). The `Up` flags and the tick variables keep no history
//!   (`BadUserAccessDenied`: they lack the HistoryRead access level).
//! - One answer holds at most `numValuesPerNode` values per node (0: no limit of the client's)
//!   and at most [`VALUES_PER_ANSWER`] in all, shared among the nodes read; the rest follows a
//!   continuation point per node, as the specification's HistoryRead describes.
//! - `--history-rate N` (the scenarios' `history_rate`) throttles it as it throttles gRPC: one
//!   answer holds at most a tenth of a second's worth, and comes after the time it is worth.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use failover_proto::wires::opcua as nodes;
use opcua::{
    server::{
        ContinuationPoint,
        address_space::AddressSpace,
        diagnostics::NamespaceMetadata,
        node_manager::{
            HistoryNode, RequestContext, ServerContext,
            memory::{InMemoryNodeManagerImpl, InMemoryNodeManagerImplBuilder},
        },
    },
    types::{
        DataValue, DateTime, HistoryData, Identifier, ReadRawModifiedDetails, StatusCode,
        TimestampsToReturn, Variant,
    },
};

use crate::Shared;

/// The most values one history answer holds, over all its nodes, when not throttled.
pub const VALUES_PER_ANSWER: usize = 100_000;

/// Builds [`SourceNodes`] for async-opcua's in-memory node manager.
pub(crate) struct SourceNodesBuilder {
    pub namespace: NamespaceMetadata,
    pub shared: Arc<Shared>,
}

impl InMemoryNodeManagerImplBuilder for SourceNodesBuilder {
    type Impl = SourceNodes;

    fn build(self, context: ServerContext, space: &mut AddressSpace) -> SourceNodes {
        let mut namespace = self.namespace;
        namespace.namespace_index = context
            .type_tree
            .write()
            .namespaces_mut()
            .add_namespace(&namespace.namespace_uri);
        space.add_namespace(&namespace.namespace_uri, namespace.namespace_index);
        SourceNodes {
            namespaces: vec![namespace],
            shared: self.shared,
        }
    }
}

/// The source's namespace: values set by the source every tick, and their history.
pub(crate) struct SourceNodes {
    namespaces: Vec<NamespaceMetadata>,
    shared: Arc<Shared>,
}

#[async_trait]
impl InMemoryNodeManagerImpl for SourceNodes {
    async fn init(&self, _space: &mut AddressSpace, _context: ServerContext) {}

    fn name(&self) -> &str {
        "failover-lab"
    }

    fn namespaces(&self) -> Vec<NamespaceMetadata> {
        self.namespaces.clone()
    }

    async fn history_read_raw_modified(
        &self,
        _context: &RequestContext,
        details: &ReadRawModifiedDetails,
        nodes: &mut [&mut &mut HistoryNode],
        timestamps: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        // Bounding values are not returned, asked for or not.
        if details.is_read_modified {
            return Err(StatusCode::BadHistoryOperationUnsupported);
        }
        let ticks = tick_range(&self.shared, &details.start_time, &details.end_time)?;
        let budget = match self.shared.settings.history_rate {
            Some(rate) => usize::try_from(rate / 10).unwrap_or(usize::MAX).max(1),
            None => VALUES_PER_ANSWER,
        };
        let mut per_node = (budget / nodes.len().max(1)).max(1);
        if details.num_values_per_node > 0 {
            per_node =
                per_node.min(usize::try_from(details.num_values_per_node).unwrap_or(usize::MAX));
        }
        let now = DateTime::now();
        let mut served = 0_usize;
        for node in nodes.iter_mut() {
            let stream = match &node.node_id().identifier {
                Identifier::String(s) => nodes::stream_of(s.as_ref()),
                _ => None,
            }
            .filter(|s| *s < self.shared.settings.streams);
            let Some(stream) = stream else {
                node.set_status(StatusCode::BadHistoryOperationUnsupported);
                continue;
            };
            let from = match node.continuation_point() {
                None => ticks.first,
                Some(cp) => match cp.get::<u64>() {
                    Some(next) => *next,
                    None => {
                        node.set_status(StatusCode::BadContinuationPointInvalid);
                        continue;
                    }
                },
            };
            let values: Vec<DataValue> = ticks
                .after(from)
                .take(per_node)
                .map(|seq| self.value(stream, seq, timestamps, now))
                .collect();
            served += values.len();
            let next = from + values.len() as u64;
            node.set_next_continuation_point(
                (!values.is_empty() && ticks.after(next).next().is_some())
                    .then(|| ContinuationPoint::new(Box::new(next))),
            );
            node.set_result(HistoryData {
                data_values: Some(values),
            });
            node.set_status(StatusCode::Good);
        }
        if let Some(rate) = self.shared.settings.history_rate {
            tokio::time::sleep(Duration::from_secs_f64(
                served as f64 / f64::from(rate.max(1)),
            ))
            .await;
        }
        Ok(())
    }
}

impl SourceNodes {
    fn value(
        &self,
        stream: u32,
        seq: u64,
        timestamps: TimestampsToReturn,
        now: DateTime,
    ) -> DataValue {
        let server = matches!(
            timestamps,
            TimestampsToReturn::Server | TimestampsToReturn::Both
        );
        DataValue {
            value: Some(Variant::Double(crate::point_value(
                self.shared.settings.seed,
                stream,
                seq,
            ))),
            status: Some(StatusCode::Good),
            source_timestamp: Some(super::opcua_time(self.shared.timestamp_ms(seq))),
            server_timestamp: server.then_some(now),
            ..Default::default()
        }
    }
}

/// The ticks a history read covers: `first..=last` (empty when `last` is None or before
/// `first`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticks {
    first: u64,
    last: Option<u64>,
}

impl Ticks {
    /// The ticks from `from` on.
    fn after(self, from: u64) -> impl Iterator<Item = u64> {
        let end = self.last.map_or(0, |l| l.saturating_add(1));
        from.max(self.first)..end.max(from.max(self.first))
    }
}

/// The produced ticks whose data time is in `[start, end)` (a null `end`: no end).
fn tick_range(shared: &Shared, start: &DateTime, end: &DateTime) -> Result<Ticks, StatusCode> {
    if start.is_null() || (!end.is_null() && start.ticks() > end.ticks()) {
        return Err(StatusCode::BadHistoryOperationUnsupported);
    }
    let produced = *shared.produced.borrow();
    let first = first_tick_at_or_after(shared, start.ticks());
    let last = if end.is_null() {
        produced
    } else {
        first_tick_at_or_after(shared, end.ticks())
            .checked_sub(1)
            .map(|l| produced.map_or(l, |p| p.min(l)))
            .filter(|_| produced.is_some())
    };
    Ok(Ticks { first, last })
}

/// The first tick whose data time (as an OPC UA DateTime) is at or after `ticks`.
fn first_tick_at_or_after(shared: &Shared, ticks: i64) -> u64 {
    let at = |seq: u64| nodes::ticks_of_unix_ms(shared.timestamp_ms(seq));
    let ms = nodes::unix_ms_of_ticks(ticks);
    let guess = ((ms - shared.origin_unix_ms) as f64 * shared.settings.rate_hz / 1000.0).floor();
    let mut seq = if guess.is_finite() && guess > 0.0 {
        // Saturates at u64::MAX for a time far in the future.
        guess as u64
    } else {
        0
    };
    // The guess is within a tick or two of the answer (milliseconds truncated both ways).
    while seq > 0 && at(seq - 1) >= ticks {
        seq -= 1;
    }
    while seq < u64::MAX && at(seq) < ticks {
        seq += 1;
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_after_stay_in_the_range() {
        let t = Ticks {
            first: 3,
            last: Some(6),
        };
        assert_eq!(t.after(0).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
        assert_eq!(t.after(5).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(t.after(7).count(), 0);
        assert_eq!(
            Ticks {
                first: 3,
                last: None
            }
            .after(0)
            .count(),
            0
        );
        assert_eq!(
            Ticks {
                first: 3,
                last: Some(2)
            }
            .after(0)
            .count(),
            0
        );
    }

    fn source(produced: Option<u64>) -> Shared {
        let settings = crate::SourceSettings {
            streams: 2,
            components: 1,
            rate_hz: 3.0,
            seed: 1,
            origin_unix_ms: Some(1_000),
            history_rate: None,
            max_clients: None,
        };
        let (ticks, _) = tokio::sync::broadcast::channel(1);
        Shared {
            settings,
            origin_unix_ms: 1_000,
            faults: std::sync::Mutex::default(),
            fault_version: tokio::sync::watch::Sender::new(0),
            produced: tokio::sync::watch::Sender::new(produced),
            ticks,
            holders: std::sync::Mutex::default(),
        }
    }

    fn at(shared: &Shared, seq: u64) -> DateTime {
        DateTime::from(nodes::ticks_of_unix_ms(shared.timestamp_ms(seq)))
    }

    #[test]
    fn a_time_range_finds_its_ticks_start_included_end_not() {
        let s = source(Some(10));
        // 3 Hz: ticks 333.3 ms apart, their times truncated to the millisecond.
        let range = |start: DateTime, end: DateTime| tick_range(&s, &start, &end);
        assert_eq!(
            range(at(&s, 2), at(&s, 5)),
            Ok(Ticks {
                first: 2,
                last: Some(4)
            })
        );
        let just_after_2 = DateTime::from(at(&s, 2).ticks() + 1);
        assert_eq!(
            range(just_after_2, DateTime::from(at(&s, 5).ticks() + 1)),
            Ok(Ticks {
                first: 3,
                last: Some(5)
            })
        );
        assert_eq!(
            range(at(&s, 0), DateTime::null()),
            Ok(Ticks {
                first: 0,
                last: Some(10)
            }),
            "no end: up to the last tick produced"
        );
        assert_eq!(
            range(at(&s, 8), at(&s, 1_000)),
            Ok(Ticks {
                first: 8,
                last: Some(10)
            }),
            "not past the last tick produced"
        );
        let before_origin = DateTime::from(nodes::ticks_of_unix_ms(0));
        assert_eq!(
            range(before_origin, at(&s, 1)).map(|t| t.after(0).count()),
            Ok(1)
        );
        assert_eq!(
            range(at(&s, 5), at(&s, 2)),
            Err(StatusCode::BadHistoryOperationUnsupported),
            "reverse reads"
        );
        assert_eq!(
            range(DateTime::null(), at(&s, 2)),
            Err(StatusCode::BadHistoryOperationUnsupported)
        );
        let nothing_yet = source(None);
        assert_eq!(
            tick_range(&nothing_yet, &at(&s, 0), &DateTime::null()).map(|t| t.after(0).count()),
            Ok(0)
        );
    }
}
