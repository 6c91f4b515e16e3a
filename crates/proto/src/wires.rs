//! The contracts of the vendor's wires that both ends of the lab share: the OMF extension
//! headers the lab's adapter and endpoint fence with, OMF's body limit and the container of a
//! group's stream, the root of the source's MQTT topics and the nodes of its OPC UA address
//! space. One definition, so the two ends cannot drift apart.

/// OMF: what the lab's adapter sends and its endpoint honours (docs/omf.md).
pub mod omf {
    /// OMF's largest body, as received (192 KB).
    pub const MAX_BODY: usize = 192 * 1024;
    /// The writer's adapter name.
    pub const HEADER_ADAPTER: &str = "x-failover-adapter";
    /// The writer's process (a twin with the same name is another writer).
    pub const HEADER_WRITER: &str = "x-failover-writer";
    /// The writer's epoch.
    pub const HEADER_EPOCH: &str = "x-failover-epoch";
    /// In a 409 to a refused writer: the epoch the group is fenced at.
    pub const HEADER_FENCED_EPOCH: &str = "x-failover-fenced-epoch";
    /// Which containers are which streams, by default: `{group}` and `{stream}`.
    pub const DEFAULT_CONTAINER_PATTERN: &str = "{group}.stream-{stream}";

    /// The container of a group's stream, by [`DEFAULT_CONTAINER_PATTERN`].
    pub fn container_id(group: &str, stream: u32) -> String {
        format!("{group}.stream-{stream}")
    }
}

/// MQTT: the source's topics (docs/mqtt.md).
pub mod mqtt {
    /// The root of the source's topics: `{ROOT}/{component}/{stream}` and
    /// `{ROOT}/{component}/status`.
    pub const ROOT: &str = "failover-lab";
}

/// OPC UA: the source's address space (docs/opcua.md). Every node is a string NodeId in the
/// namespace [`opcua::NAMESPACE_URI`]:
///
/// ```text
/// Objects/
///   FailoverLabSource            (folder, "source")
///     TickOriginUnixMs           (Int64, "source.tick-origin-unix-ms"): data time of tick 0
///     TickRateHz                 (Double, "source.tick-rate-hz"): ticks per second
///     Component0                 (folder, "component-0")
///       Up                       (Boolean, "component-0.up"): the component's health
///       Stream0                  (Double, "stream-0"): a point per tick, source time = data time
///       Stream1 ...
/// ```
pub mod opcua {
    /// The namespace of the source's nodes.
    pub const NAMESPACE_URI: &str = "urn:failover-lab:data-source";
    /// The source's folder under Objects.
    pub const SOURCE_FOLDER: &str = "source";
    /// Data time of tick 0, in unix milliseconds.
    pub const TICK_ORIGIN: &str = "source.tick-origin-unix-ms";
    /// Ticks per second.
    pub const TICK_RATE: &str = "source.tick-rate-hz";

    /// A component's folder.
    pub fn component_folder(component: u32) -> String {
        format!("component-{component}")
    }

    /// A component's health: true while it is up.
    pub fn component_up(component: u32) -> String {
        format!("component-{component}.up")
    }

    /// A stream's variable.
    pub fn stream(stream: u32) -> String {
        format!("stream-{stream}")
    }

    /// The stream of a stream variable's NodeId string, if it is one.
    pub fn stream_of(node: &str) -> Option<u32> {
        node.strip_prefix("stream-")?.parse().ok()
    }

    /// The component of a component's health variable's NodeId string, if it is one.
    pub fn component_of_up(node: &str) -> Option<u32> {
        node.strip_prefix("component-")?
            .strip_suffix(".up")?
            .parse()
            .ok()
    }

    /// OPC UA's DateTime counts 100 ns ticks from 1601-01-01; this many of them come before the
    /// unix epoch.
    pub const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

    /// An OPC UA DateTime's ticks (100 ns since 1601) of a time in unix milliseconds.
    pub fn ticks_of_unix_ms(unix_ms: i64) -> i64 {
        UNIX_EPOCH_TICKS.saturating_add(unix_ms.saturating_mul(10_000))
    }

    /// The unix milliseconds of an OPC UA DateTime's ticks (rounded down).
    pub fn unix_ms_of_ticks(ticks: i64) -> i64 {
        ticks.saturating_sub(UNIX_EPOCH_TICKS).div_euclid(10_000)
    }

    /// The tick of a data time: ticks are `1000 / rate` ms apart from the origin (rounded to
    /// the nearest tick, so a time written with millisecond precision finds its tick).
    pub fn tick_of(origin_unix_ms: i64, rate_hz: f64, time_unix_ms: i64) -> Option<u64> {
        if !(rate_hz.is_finite() && rate_hz > 0.0) || time_unix_ms < origin_unix_ms {
            return None;
        }
        let ticks = ((time_unix_ms - origin_unix_ms) as f64 * rate_hz / 1000.0).round();
        (ticks >= 0.0 && ticks < u64::MAX as f64).then_some(ticks as u64)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn opcua_nodes_are_read_back() {
        use super::opcua::*;
        assert_eq!(stream_of(&stream(12)), Some(12));
        assert_eq!(component_of_up(&component_up(3)), Some(3));
        assert_eq!(stream_of("component-1.up"), None);
        assert_eq!(component_of_up("stream-1"), None);
        // 3 Hz: tick 7 is written 2333 ms after the origin (truncated) and found again.
        assert_eq!(tick_of(1000, 3.0, 1000 + 2333), Some(7));
        assert_eq!(tick_of(1000, 1000.0, 1000 + 5), Some(5));
        assert_eq!(tick_of(1000, 10.0, 999), None);
        assert_eq!(tick_of(1000, 0.0, 2000), None);
        // 1970-01-01 is 11,644,473,600 s after 1601-01-01; times before it are negative.
        assert_eq!(ticks_of_unix_ms(0), 11_644_473_600 * 10_000_000);
        assert_eq!(
            unix_ms_of_ticks(ticks_of_unix_ms(1_767_225_600_123)),
            1_767_225_600_123
        );
        assert_eq!(unix_ms_of_ticks(ticks_of_unix_ms(-5)), -5);
        assert_eq!(unix_ms_of_ticks(UNIX_EPOCH_TICKS - 1), -1, "rounded down");
    }

    #[test]
    fn the_default_container_id_follows_the_default_pattern() {
        assert_eq!(
            super::omf::DEFAULT_CONTAINER_PATTERN
                .replace("{group}", "g")
                .replace("{stream}", "3"),
            super::omf::container_id("g", 3)
        );
    }
}
