//! The arbiter's clock: sleeps until the earliest moment at which time alone can change a group
//! (a session going stale, an override expiring), ticks the groups then, and starts over when
//! a heartbeat or an admin call moves the deadlines.

use std::time::Duration;

use crate::Arbiter;

/// How long to sleep when no deadline is pending.
const IDLE: Duration = Duration::from_secs(3600);

/// Runs forever; abort the task to stop it.
pub async fn run(arbiter: Arbiter) {
    loop {
        if !arbiter.is_deciding() {
            // Stopping, or standing by while another service leads: wait to lead again.
            arbiter.changed().await;
            continue;
        }
        let next = {
            let state = arbiter.lock();
            state
                .groups
                .values()
                .filter_map(|e| e.group.next_deadline())
                .min()
        };
        let wake_at = match next {
            Some(t) => arbiter.instant_of(t),
            None => arbiter.instant_of(arbiter.now() + IDLE),
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {
                if !arbiter.is_deciding() {
                    continue;
                }
                let now = arbiter.now();
                let mut state = arbiter.lock();
                let ids: Vec<String> = state.groups.keys().cloned().collect();
                for id in ids {
                    let changes = match state.groups.get_mut(&id) {
                        Some(e) => e.group.tick(now),
                        None => continue,
                    };
                    if !changes.is_empty() {
                        arbiter.apply(&mut state, &id, &changes);
                    }
                }
            }
            () = arbiter.changed() => {}
        }
    }
}
