//! Timespans as the vendor documents write them: `hh:mm:ss`, with optional fractions
//! (`hh:mm:ss.fff`) and an optional day count (`d.hh:mm:ss`), as .NET's `TimeSpan` prints them.

use std::time::Duration;

/// Why a timespan string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a timespan: {reason}; expected hh:mm:ss or hh:mm:ss.fff, for example \"00:01:00\""
)]
pub struct TimespanError {
    /// The text that was refused (cut to 40 characters).
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn refuse(text: &str, reason: &'static str) -> TimespanError {
    TimespanError {
        text: text.chars().take(40).collect(),
        reason,
    }
}

fn digits(text: &str, part: &str, max: u64, reason: &'static str) -> Result<u64, TimespanError> {
    if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse(text, reason));
    }
    let value: u64 = part.parse().map_err(|_| refuse(text, reason))?;
    if value > max {
        return Err(refuse(text, reason));
    }
    Ok(value)
}

/// Parses `[d.]hh:mm:ss[.f…]` into a duration.
pub fn parse_timespan(text: &str) -> Result<Duration, TimespanError> {
    if text.starts_with('-') {
        return Err(refuse(text, "a timespan cannot be negative"));
    }
    let (days, clock) = match text.split_once('.') {
        // A dot before the first colon separates days; a dot after it starts the fraction.
        Some((d, rest)) if !d.contains(':') => {
            if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refuse(text, "days must be digits"));
            }
            (digits(text, d, 10_000, "days must be 0 to 10000")?, rest)
        }
        _ => (0, text),
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse(text, "it needs three parts separated by ':'"));
    };
    let h = digits(text, h, 23, "hours must be 00 to 23")?;
    let m = digits(text, m, 59, "minutes must be 00 to 59")?;
    let s = digits(text, s, 59, "seconds must be 00 to 59")?;
    let nanos = match fraction {
        None => 0,
        Some(f) if f.is_empty() || f.len() > 7 || !f.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(refuse(text, "the fraction must be 1 to 7 digits"));
        }
        Some(f) => {
            let padded = format!("{f:0<9}");
            padded
                .parse::<u32>()
                .map_err(|_| refuse(text, "bad fraction"))?
        }
    };
    let secs = ((days * 24 + h) * 60 + m) * 60 + s;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration as `hh:mm:ss` or `hh:mm:ss.fff` (with `d.` in front past a day).
pub fn format_timespan(d: Duration) -> String {
    let total = d.as_secs();
    let (days, rem) = (total / 86_400, total % 86_400);
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let millis = d.subsec_millis();
    let mut out = String::new();
    if days > 0 {
        out.push_str(&format!("{days}."));
    }
    out.push_str(&format!("{h:02}:{m:02}:{s:02}"));
    if millis > 0 {
        out.push_str(&format!(".{millis:03}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_point_at_what_is_wrong() {
        let why = |t: &str| parse_timespan(t).expect_err(t).reason;
        assert_eq!(why("-00:00:01"), "a timespan cannot be negative");
        assert_eq!(why("99999.00:00:00"), "days must be 0 to 10000");
        assert_eq!(why("x.00:00:01"), "days must be digits");
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_timespan("00:01:00"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_timespan("00:00:04"), Ok(Duration::from_secs(4)));
        assert_eq!(
            parse_timespan("08:00:00"),
            Ok(Duration::from_secs(8 * 3600))
        );
        assert_eq!(
            parse_timespan("00:00:01.5"),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_timespan("00:00:00.250"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            parse_timespan("1.02:00:00"),
            Ok(Duration::from_secs(26 * 3600))
        );
        assert_eq!(
            parse_timespan("00:00:00.0000001"),
            Ok(Duration::from_nanos(100))
        );
    }

    #[test]
    fn refuses_what_is_not_a_timespan() {
        for bad in [
            "",
            "60",
            "1:2",
            "00:60:00",
            "24:00:00",
            "00:00:60",
            "aa:bb:cc",
            "00:00:00:00",
            "-1:00:00",
            "00:01:00.",
            "00:01:00.12345678",
            " 00:01:00",
            "00:01:00x",
            "１:00:00",
            "99999999999:00:00",
        ] {
            let err = parse_timespan(bad).expect_err(bad);
            assert!(err.to_string().contains("hh:mm:ss"), "{err}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["00:01:00", "00:00:04", "00:00:01.500", "2.03:04:05"] {
            let d = parse_timespan(text).expect(text);
            assert_eq!(format_timespan(d), text);
        }
    }
}
