//! The ClientFailover document parser on arbitrary text: it never panics, and what it accepts
//! obeys the documented rules.
#![no_main]

use failover_core::{
    ClientFailoverConfig,
    config::{MAX_FAILOVER_TIMEOUT, MIN_FAILOVER_TIMEOUT},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = ClientFailoverConfig::from_json(text) {
        assert!((MIN_FAILOVER_TIMEOUT..=MAX_FAILOVER_TIMEOUT).contains(&cfg.failover_timeout));
        assert!(!cfg.failover_group_id.is_empty());
    }
});
