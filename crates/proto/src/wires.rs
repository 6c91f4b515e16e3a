//! The contracts of the vendor's wires that both ends of the lab share: the OMF extension
//! headers the lab's adapter and endpoint fence with, OMF's body limit and the container of a
//! group's stream, and the root of the source's MQTT topics. One definition, so the two ends
//! cannot drift apart.

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

#[cfg(test)]
mod tests {
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
