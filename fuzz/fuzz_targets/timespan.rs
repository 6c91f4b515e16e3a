//! The timespan parser on arbitrary text: it never panics, and what it accepts formats and
//! parses back to the same duration (to the millisecond the format keeps).
#![no_main]

use std::time::Duration;

use failover_core::timespan::{format_timespan, parse_timespan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_timespan(text) {
        let shown = format_timespan(d);
        let back = parse_timespan(&shown).expect("a formatted timespan parses");
        assert_eq!(
            back,
            Duration::new(d.as_secs(), d.subsec_millis() * 1_000_000),
            "{text:?} -> {shown:?}"
        );
    }
});
