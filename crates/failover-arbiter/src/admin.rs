//! Operator actions on groups: delete a session, delete an empty group, force a role. The REST
//! admin ([`crate::rest`]) and the simulator call these; each changes the group through
//! `failover_core::group::Group` and acts on what changed like any heartbeat.

use std::time::Duration;

use failover_core::{Role, group::GroupError};

use crate::Arbiter;

/// Why an operator action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No such group.
    #[error("no group {0:?}")]
    NoGroup(String),
    /// The group still has members.
    #[error("group {group:?} still has {sessions} session(s); delete them first")]
    NotEmpty {
        /// The group.
        group: String,
        /// How many sessions it has.
        sessions: usize,
    },
    /// The group refused it (no such session).
    #[error(transparent)]
    Group(#[from] GroupError),
}

impl Arbiter {
    /// Deletes a session (by session id or adapter name): its role passes on as the rules say.
    /// A member whose stream is still open rejoins as a new session with its next heartbeat.
    pub fn delete_session(&self, group: &str, session: &str) -> Result<(), AdminError> {
        let now = self.now();
        let mut state = self.lock();
        let e = state
            .groups
            .get_mut(group)
            .ok_or_else(|| AdminError::NoGroup(crate::pull::shortened(group)))?;
        let changes = e.group.remove_session(session, now)?;
        self.apply_requested(&mut state, group, &changes);
        Ok(())
    }

    /// Deletes a group with no sessions; its watchers are told it is gone.
    pub fn delete_group(&self, group: &str) -> Result<(), AdminError> {
        let mut state = self.lock();
        let e = state
            .groups
            .get(group)
            .ok_or_else(|| AdminError::NoGroup(crate::pull::shortened(group)))?;
        if !e.group.sessions().is_empty() {
            return Err(AdminError::NotEmpty {
                group: group.to_string(),
                sessions: e.group.sessions().len(),
            });
        }
        state.remove_group(group);
        drop(state);
        tracing::info!(group, "group deleted by an operator");
        self.publish(group, self.status(group));
        Ok(())
    }

    /// Forces a session's role for `expiration` (None: until cleared), or clears an override
    /// with `role` None.
    pub fn set_role_override(
        &self,
        group: &str,
        session: &str,
        role: Option<Role>,
        expiration: Option<Duration>,
    ) -> Result<(), AdminError> {
        let now = self.now();
        let mut state = self.lock();
        let e = state
            .groups
            .get_mut(group)
            .ok_or_else(|| AdminError::NoGroup(crate::pull::shortened(group)))?;
        let changes = e
            .group
            .set_override(session, role, expiration.map(|d| now + d), now)?;
        self.apply(&mut state, group, &changes);
        self.store_overrides(&state, group);
        Ok(())
    }
}
