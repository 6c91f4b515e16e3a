//! What an adapter does in each mode and role, and the failover score it reports
//! (docs/rules.md: B2 for scores, B10-B12 for the three modes).

use crate::config::Mode;

/// The role the failover service gave an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Collects and egresses.
    Primary,
    /// Stands by according to its mode.
    Secondary,
}

impl Role {
    /// "Primary" or "Secondary".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "Primary",
            Role::Secondary => "Secondary",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Highest score: every data-source connection good.
pub const FULL_SCORE: u32 = 100;
/// The Cold standby's score: promotable only when the Primary drops to 0.
pub const COLD_STANDBY_SCORE: u32 = 1;

/// What an adapter is doing with its source and endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Subscribed to live values, buffering them.
    pub collect: bool,
    /// Sending buffered values to the endpoint.
    pub egress: bool,
    /// Periodically testing its source connection (Warm standby).
    pub test_connection: bool,
}

/// The activity for a mode (None: failover not configured, a standalone adapter) and a role
/// (None: no role known yet, or contact with the failover service lost; treated as standby).
pub fn activity(mode: Option<Mode>, role: Option<Role>) -> Activity {
    let primary = role == Some(Role::Primary);
    match mode {
        None => Activity {
            collect: true,
            egress: true,
            test_connection: false,
        },
        Some(Mode::Hot) => Activity {
            collect: true,
            egress: primary,
            test_connection: false,
        },
        Some(Mode::Warm) => Activity {
            collect: primary,
            egress: primary,
            test_connection: !primary,
        },
        Some(Mode::Cold) => Activity {
            collect: primary,
            egress: primary,
            test_connection: false,
        },
    }
}

/// One group of streams the source serves (a "component" of the adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// Component id, as the source numbers it.
    pub id: u32,
    /// How many streams it carries: its weight in the score.
    pub streams: u32,
}

/// How the adapter's collection from its source stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceHealth {
    /// Not collecting, or a connection attempt is under way: assumed good until it fails, so
    /// that a promoted Warm or Cold adapter is not demoted while it connects.
    Connecting,
    /// Subscribed; these components are failed.
    Connected {
        /// Ids of the components the source reports failed for this adapter.
        down_components: Vec<u32>,
    },
    /// The source refused or dropped the connection.
    Unreachable,
}

/// Score of a collecting adapter: the share of streams whose component is up, 0..=100,
/// weighted by stream count (4 components of 1,000 streams, one down: 75). Any collected
/// stream scores at least 1, since 0 means "collecting nothing".
pub fn collection_score(components: &[Component], health: &SourceHealth) -> u32 {
    let down = match health {
        SourceHealth::Connecting => return FULL_SCORE,
        SourceHealth::Unreachable => return 0,
        SourceHealth::Connected { down_components } => down_components,
    };
    let total: u64 = components.iter().map(|c| u64::from(c.streams)).sum();
    if total == 0 {
        // A source that describes no components: the connection itself is all there is.
        return FULL_SCORE;
    }
    let up: u64 = components
        .iter()
        .filter(|c| !down.contains(&c.id))
        .map(|c| u64::from(c.streams))
        .sum();
    if up == 0 {
        return 0;
    }
    let score = (up * u64::from(FULL_SCORE) / total).max(1);
    u32::try_from(score).unwrap_or(FULL_SCORE)
}

/// The failover score the adapter reports (Doc): Hot, from collection in both roles; Warm
/// standby, 100 when the last connection test passed (or none ran yet), else 0; Cold standby, 1,
/// or 0 while its own last attempt to collect failed (`last_connection_test` Some(false): it
/// lost the source as Primary within failoverTimeout); a promoted Warm or Cold adapter, from its
/// collection.
///
/// The Cold standby's 0 is ours: with 1 there, two Cold adapters that both cannot reach the
/// source hand the role back and forth as fast as they can connect and fail (the simulator
/// found 530 promotions in 5 s: `failover-lab sim --seed 185 --modes Cold`).
pub fn failover_score(
    mode: Mode,
    role: Option<Role>,
    collection: u32,
    last_connection_test: Option<bool>,
) -> u32 {
    let primary = role == Some(Role::Primary);
    match (mode, primary) {
        (Mode::Hot, _) | (Mode::Warm | Mode::Cold, true) => collection,
        (Mode::Warm, false) => match last_connection_test {
            Some(false) => 0,
            Some(true) | None => FULL_SCORE,
        },
        (Mode::Cold, false) => match last_connection_test {
            Some(false) => 0,
            Some(true) | None => COLD_STANDBY_SCORE,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four_by_1000() -> Vec<Component> {
        (0..4).map(|id| Component { id, streams: 1000 }).collect()
    }

    #[test]
    fn activity_table_matches_the_domain() {
        use Mode::*;
        use Role::*;
        let a = |mode, role| activity(Some(mode), role);
        // Hot: both collect and buffer; only the Primary egresses.
        assert_eq!(
            a(Hot, Some(Secondary)),
            Activity {
                collect: true,
                egress: false,
                test_connection: false
            }
        );
        assert_eq!(
            a(Hot, Some(Primary)),
            Activity {
                collect: true,
                egress: true,
                test_connection: false
            }
        );
        // Warm: the standby only tests its connection.
        assert_eq!(
            a(Warm, Some(Secondary)),
            Activity {
                collect: false,
                egress: false,
                test_connection: true
            }
        );
        assert_eq!(
            a(Warm, Some(Primary)),
            Activity {
                collect: true,
                egress: true,
                test_connection: false
            }
        );
        // Cold: the standby does not touch the source.
        assert_eq!(
            a(Cold, Some(Secondary)),
            Activity {
                collect: false,
                egress: false,
                test_connection: false
            }
        );
        assert_eq!(
            a(Cold, Some(Primary)),
            Activity {
                collect: true,
                egress: true,
                test_connection: false
            }
        );
        // No role yet: standby behaviour, never egress.
        for mode in Mode::ALL {
            assert_eq!(a(mode, None), a(mode, Some(Secondary)));
        }
        // Standalone adapter.
        assert_eq!(
            activity(None, None),
            Activity {
                collect: true,
                egress: true,
                test_connection: false
            }
        );
    }

    #[test]
    fn score_is_weighted_by_streams() {
        let c = four_by_1000();
        let down = |ids: &[u32]| SourceHealth::Connected {
            down_components: ids.to_vec(),
        };
        assert_eq!(collection_score(&c, &down(&[])), 100);
        assert_eq!(collection_score(&c, &down(&[2])), 75);
        assert_eq!(collection_score(&c, &down(&[0, 1])), 50);
        assert_eq!(collection_score(&c, &down(&[0, 1, 2, 3])), 0);
        assert_eq!(collection_score(&c, &SourceHealth::Unreachable), 0);
        assert_eq!(collection_score(&c, &SourceHealth::Connecting), 100);
        // Unequal components weigh by their streams.
        let uneven = [
            Component {
                id: 0,
                streams: 900,
            },
            Component {
                id: 1,
                streams: 100,
            },
        ];
        assert_eq!(collection_score(&uneven, &down(&[0])), 10);
        assert_eq!(collection_score(&uneven, &down(&[1])), 90);
        // A sliver still collected is not 0.
        let sliver = [
            Component {
                id: 0,
                streams: 999,
            },
            Component { id: 1, streams: 1 },
        ];
        assert_eq!(collection_score(&sliver, &down(&[0])), 1);
        // Unknown component ids in the report change nothing.
        assert_eq!(collection_score(&c, &down(&[77])), 100);
    }

    #[test]
    fn mode_scores_match_the_domain() {
        use Mode::*;
        use Role::*;
        // Hot: 100/100 while collecting well, both roles.
        assert_eq!(failover_score(Hot, Some(Primary), 100, None), 100);
        assert_eq!(failover_score(Hot, Some(Secondary), 100, None), 100);
        assert_eq!(failover_score(Hot, Some(Secondary), 0, None), 0);
        // Warm standby: from the connection test.
        assert_eq!(failover_score(Warm, Some(Secondary), 0, None), 100);
        assert_eq!(failover_score(Warm, Some(Secondary), 0, Some(true)), 100);
        assert_eq!(failover_score(Warm, Some(Secondary), 0, Some(false)), 0);
        assert_eq!(failover_score(Warm, Some(Primary), 75, Some(false)), 75);
        // Cold standby: 1, then collection once promoted.
        assert_eq!(failover_score(Cold, Some(Secondary), 100, None), 1);
        assert_eq!(failover_score(Cold, None, 100, None), 1);
        assert_eq!(failover_score(Cold, Some(Primary), 100, None), 100);
        // A Cold standby that just lost the source as Primary does not claim it back.
        assert_eq!(failover_score(Cold, Some(Secondary), 0, Some(false)), 0);
    }
}
