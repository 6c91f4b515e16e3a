//! Rules of the pair broken on purpose, to see that the checks catch them: `failover-lab sim
//! --break RULE`, a scenario's `cluster.break`, and each service's hidden `--break RULE` flag.
//! Each is a rule the services keep, most of them written after the simulator found a bug its
//! absence caused; breaking one brings the bug back. Nothing breaks any by default.
//!
//! The services take the set they break in their settings ([`Broken`]); no global or thread
//! state is involved, so one process can run a broken pair beside a sound one.

use std::fmt;

/// One rule broken on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BrokenRule {
    /// The endpoint takes writes whatever their epoch (rules 2 and 5 catch it).
    EpochCheck,
    /// Retries do not back off: every retry after 10 ms (rule 10).
    FixedRetry,
    /// A Primary that hears nothing from the failover service for failoverTimeout steps down
    /// (the old lease): the service is a single point of failure for data (rule 11).
    NoFailsafe,
    /// A standby whose own collection failed scores as usual, a Cold one 1, instead of 0: with
    /// the source down the standbys hand the role back and forth (rules 7, 9, 10).
    FailedStandbyScores,
    /// The failover service forgets the epochs of a group it deleted: a group created again
    /// promotes at epochs handed out before (rule 3).
    EpochFloor,
    /// Among members of equal score, the earliest registered is promoted, whatever data each
    /// holds: a Warm member goes before the Hot one that alone holds the data (rule 5).
    DataBlindPromotion,
    /// The failover service ignores a Primary's report that the endpoint refused it at its own
    /// epoch: the pair wedges with nobody writing (rules 4, 8).
    RefusedEpoch,
    /// A failover service that has just started promotes a group's first member at once,
    /// before the others could rejoin (rule 5).
    StartupWait,
}

impl BrokenRule {
    /// Every rule that can be broken.
    pub const ALL: [BrokenRule; 8] = [
        BrokenRule::EpochCheck,
        BrokenRule::FixedRetry,
        BrokenRule::NoFailsafe,
        BrokenRule::FailedStandbyScores,
        BrokenRule::EpochFloor,
        BrokenRule::DataBlindPromotion,
        BrokenRule::RefusedEpoch,
        BrokenRule::StartupWait,
    ];

    /// Its name on a command line and in a scenario file.
    pub fn name(self) -> &'static str {
        match self {
            BrokenRule::EpochCheck => "epoch-check",
            BrokenRule::FixedRetry => "fixed-retry",
            BrokenRule::NoFailsafe => "no-failsafe",
            BrokenRule::FailedStandbyScores => "failed-standby-scores",
            BrokenRule::EpochFloor => "epoch-floor",
            BrokenRule::DataBlindPromotion => "data-blind-promotion",
            BrokenRule::RefusedEpoch => "refused-epoch",
            BrokenRule::StartupWait => "startup-wait",
        }
    }

    /// The service that breaks it: `fake-endpoint`, `adapter` or `failover-arbiter`.
    pub fn service(self) -> &'static str {
        match self {
            BrokenRule::EpochCheck => "fake-endpoint",
            BrokenRule::FixedRetry | BrokenRule::NoFailsafe | BrokenRule::FailedStandbyScores => {
                "adapter"
            }
            BrokenRule::EpochFloor
            | BrokenRule::DataBlindPromotion
            | BrokenRule::RefusedEpoch
            | BrokenRule::StartupWait => "failover-arbiter",
        }
    }
}

impl fmt::Display for BrokenRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BrokenRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BrokenRule::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a rule to break; accepted: {}",
                    BrokenRule::ALL.map(BrokenRule::name).join(", ")
                )
            })
    }
}

/// The rules a service breaks (none by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Broken(u16);

impl Broken {
    /// Breaks nothing.
    pub const NONE: Broken = Broken(0);

    /// These rules.
    pub fn of(rules: impl IntoIterator<Item = BrokenRule>) -> Broken {
        rules.into_iter().fold(Broken::NONE, Broken::with)
    }

    /// This set and `rule`.
    #[must_use]
    pub fn with(self, rule: BrokenRule) -> Broken {
        Broken(self.0 | Self::bit(rule))
    }

    /// True when `rule` is broken.
    pub fn has(self, rule: BrokenRule) -> bool {
        self.0 & Self::bit(rule) != 0
    }

    /// True when nothing is broken.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The rules broken, in order.
    pub fn rules(self) -> Vec<BrokenRule> {
        BrokenRule::ALL
            .into_iter()
            .filter(|r| self.has(*r))
            .collect()
    }

    fn bit(rule: BrokenRule) -> u16 {
        let i = BrokenRule::ALL.iter().position(|r| *r == rule).unwrap_or(0);
        1 << i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_sets_hold_what_was_put_in() {
        for r in BrokenRule::ALL {
            assert_eq!(r.name().parse::<BrokenRule>(), Ok(r));
        }
        let e = "fencing".parse::<BrokenRule>().expect_err("unknown");
        assert!(
            e.contains("epoch-check") && e.contains("startup-wait"),
            "{e}"
        );
        let b = Broken::of([BrokenRule::EpochFloor, BrokenRule::FixedRetry]);
        assert!(b.has(BrokenRule::EpochFloor) && b.has(BrokenRule::FixedRetry));
        assert!(!b.has(BrokenRule::EpochCheck));
        assert_eq!(b.rules(), [BrokenRule::FixedRetry, BrokenRule::EpochFloor]);
        assert!(Broken::NONE.is_none() && !b.is_none());
    }
}
