//! Operator role overrides: a session forced Primary or Secondary, until cleared or until it
//! expires.

use std::time::Duration;

use super::*;

impl Group {
    /// Forces a session's role until `expires_at` (None: indefinitely), or ends an override
    /// with `role` None.
    pub fn set_override(
        &mut self,
        key: &str,
        role: Option<Role>,
        expires_at: Option<Duration>,
        now: Duration,
    ) -> Result<Vec<Transition>, GroupError> {
        let id = self.find_session(key)?;
        for s in &mut self.sessions {
            if s.id == id {
                s.role_override = role.map(|role| RoleOverride { role, expires_at });
            } else if role == Some(Role::Primary)
                && s.role_override.map(|o| o.role) == Some(Role::Primary)
            {
                // Only one member can be forced Primary.
                s.role_override = None;
            }
        }
        let adapter = self
            .session(id)
            .map(|s| s.adapter_id.clone())
            .unwrap_or_default();
        let mut changes = vec![Transition {
            kind: TransitionKind::Override {
                adapter_id: adapter.clone(),
            },
            reason: match (role, expires_at) {
                (Some(r), Some(at)) => format!(
                    "operator override: {adapter} is {r} for {}",
                    secs(at.saturating_sub(now))
                ),
                (Some(r), None) => format!("operator override: {adapter} is {r} until cleared"),
                (None, _) => format!("operator override of {adapter} cleared"),
            },
        }];
        changes.extend(self.recompute(now));
        Ok(changes)
    }

    pub(super) fn override_of(&self, s: &Session) -> Option<Role> {
        s.role_override.map(|o| o.role)
    }
}
