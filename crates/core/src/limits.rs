//! One set of limits, enforced alike by the adapter's REST API, the failover service and the
//! data endpoint (and written in the proto's comments and docs/bad-input.md), so a
//! document one part accepts is never refused by another.

use std::time::Duration;

/// Longest group id, adapter name or session id, in bytes (REST, heartbeat, fence, write).
pub const MAX_ID_LEN: usize = 256;
/// Longest free text (the group's name and description), in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Shortest failoverTimeout accepted (heartbeats then go every 50 ms).
pub const MIN_FAILOVER_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest failoverTimeout accepted.
pub const MAX_FAILOVER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Highest failover score (every data-source connection good).
pub const MAX_SCORE: u32 = 100;
/// Most points in one write to the endpoint.
pub const MAX_BATCH_POINTS: usize = 1_000_000;
/// Most streams in one watermark (a heartbeat's, a fence's).
pub const MAX_WATERMARK_STREAMS: usize = 1_000_000;
/// Highest epoch a member may report (i64::MAX: every epoch fits the signed figures of audits
/// and scenarios, and a promotion above it cannot overflow).
pub const MAX_EPOCH: u64 = i64::MAX as u64;
/// Most members of one failover group (a pair, with room for spares and mistakes).
pub const MAX_SESSIONS_PER_GROUP: usize = 64;
/// Most failover groups one failover service keeps.
pub const MAX_GROUPS: usize = 10_000;

/// Checks an epoch a member reports: at most [`MAX_EPOCH`].
pub fn check_epoch(field: &str, value: u64) -> Result<(), String> {
    if value > MAX_EPOCH {
        return Err(format!(
            "{field} is {value}; at most {MAX_EPOCH} is accepted"
        ));
    }
    Ok(())
}

/// Checks an id (group id, adapter name, session id): 1 to [`MAX_ID_LEN`] bytes, no control
/// characters. The error names the field and the rule.
pub fn check_id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(format!(
            "{field} is {} bytes long; at most {MAX_ID_LEN} are accepted",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not hold control characters"));
    }
    Ok(())
}

/// Checks free text (name, description): at most [`MAX_TEXT_LEN`] bytes.
pub fn check_text(field: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_TEXT_LEN {
        return Err(format!(
            "{field} is {} bytes long; at most {MAX_TEXT_LEN} are accepted",
            value.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_by_length_and_content() {
        assert!(check_id("failoverGroupId", "g").is_ok());
        assert!(check_id("failoverGroupId", &"x".repeat(MAX_ID_LEN)).is_ok());
        let long = check_id("failoverGroupId", &"x".repeat(300)).expect_err("too long");
        assert!(long.contains("300 bytes") && long.contains("256"), "{long}");
        assert!(check_id("adapter_id", "").is_err());
        assert!(check_id("adapter_id", "a\nb").is_err());
        assert!(check_text("description", &"d".repeat(MAX_TEXT_LEN)).is_ok());
        assert!(check_text("description", &"d".repeat(MAX_TEXT_LEN + 1)).is_err());
    }
}
