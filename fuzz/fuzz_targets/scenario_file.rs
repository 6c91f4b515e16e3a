//! The scenario file parser on arbitrary text: it never panics, and every refusal names a line
//! inside the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = failover_lab::scenario::parse("fuzz.toml", text, Path::new("fuzz.toml")) {
        let lines = text.lines().count().max(1);
        assert!(e.line <= lines + 1, "line {} of {lines}: {e}", e.line);
    }
});
