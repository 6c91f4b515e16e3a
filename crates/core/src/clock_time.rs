//! UTC timestamps as the REST APIs write them (`2026-11-22T06:26:41.123Z`), without a date
//! library: unix milliseconds to and from RFC 3339 in UTC.

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats unix milliseconds as `YYYY-MM-DDTHH:MM:SS.fffZ`.
pub fn format_utc_ms(unix_ms: i64) -> String {
    let (days, ms) = (
        unix_ms.div_euclid(86_400_000),
        unix_ms.rem_euclid(86_400_000),
    );
    let (y, m, d) = civil_from_days(days);
    let s = ms / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f…]Z` (UTC only) into unix milliseconds.
pub fn parse_utc_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a UTC time like \"2026-11-22T06:26:41Z\"");
    let t = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix('z'))
        .ok_or_else(bad)?;
    let (date, time) = t.split_once(['T', 't']).ok_or_else(bad)?;
    let num = |s: &str, len: usize| -> Result<i64, String> {
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let mut dp = date.split('-');
    let (Some(y), Some(mo), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
        return Err(bad());
    };
    let (y, mo, d) = (num(y, 4)?, num(mo, 2)?, num(d, 2)?);
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (time, None),
    };
    let mut tp = hms.split(':');
    let (Some(h), Some(mi), Some(s), None) = (tp.next(), tp.next(), tp.next(), tp.next()) else {
        return Err(bad());
    };
    let (h, mi, s) = (num(h, 2)?, num(mi, 2)?, num(s, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return Err(bad());
    }
    let ms = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<3}")[..3].parse::<i64>().map_err(|_| bad())?
        }
        Some(_) => return Err(bad()),
    };
    let days = days_from_civil(y, mo, d);
    if civil_from_days(days) != (y, mo, d) {
        return Err(bad());
    }
    Ok(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

/// Parses a time as .NET writes a `DateTime` in JSON, as the vendor's adapters send
/// `LastDataProcessedTime`: [`parse_utc_ms`]'s form, or with `+00:00` for `Z`, or with no zone
/// at all (taken as UTC: `0001-01-01T00:00:00`, .NET's empty DateTime, is how they say "none").
pub fn parse_dotnet_utc_ms(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Some(base) = t.strip_suffix("+00:00") {
        return parse_utc_ms(&format!("{base}Z")).map_err(|_| dotnet_bad(text));
    }
    if t.ends_with(['Z', 'z']) {
        return parse_utc_ms(t).map_err(|_| dotnet_bad(text));
    }
    parse_utc_ms(&format!("{t}Z")).map_err(|_| dotnet_bad(text))
}

fn dotnet_bad(text: &str) -> String {
    format!(
        "{text:?} is not a UTC time like \"2026-11-22T06:26:41.1234567Z\" (\"+00:00\" or no zone \
         are taken as UTC too)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotnet_times_are_read_with_or_without_their_zone() {
        let ms = parse_utc_ms("2026-11-22T06:26:41.123Z").unwrap();
        for t in [
            "2026-11-22T06:26:41.1234567Z",
            "2026-11-22T06:26:41.1234567+00:00",
            "2026-11-22T06:26:41.123",
        ] {
            assert_eq!(parse_dotnet_utc_ms(t), Ok(ms), "{t}");
        }
        assert!(parse_dotnet_utc_ms("0001-01-01T00:00:00").is_ok_and(|ms| ms < 0));
        assert!(parse_dotnet_utc_ms("2026-11-22T06:26:41+01:00").is_err());
        assert!(parse_dotnet_utc_ms("yesterday").is_err());
    }

    #[test]
    fn round_trips_and_known_values() {
        assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_utc_ms("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        for ms in [0, 951_868_800_123, 1_795_000_000_999, 4_102_444_800_000] {
            assert_eq!(parse_utc_ms(&format_utc_ms(ms)), Ok(ms));
        }
        assert_eq!(
            parse_utc_ms("2026-11-22T06:26:41.5Z").map(|m| m % 1000),
            Ok(500)
        );
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-11-22 06:26:41",
            "2026-11-22T06:26:41+01:00",
            "x",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(parse_utc_ms(bad).is_err(), "{bad}");
        }
    }
}
