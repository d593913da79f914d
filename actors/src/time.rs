//! The clock, as every stage stores it: unix nanoseconds in an `i64`, and
//! the text forms the owner's API reads and writes (RFC 3339, durations).

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now as unix nanoseconds (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Nanoseconds in a day.
pub const DAY_NS: i64 = 86_400_000_000_000;

/// Reads an instant: RFC 3339 with any offset (`2026-11-29T10:00:00Z`,
/// `…+01:00`), or a duration back from `now_ns` (`90m`, `24h`, `7d`).
pub fn parse_instant(text: &str, now_ns: i64) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.starts_with(|c: char| c.is_ascii_digit()) && !text.contains(['-', ':']) {
        let back = humantime::parse_duration(text)
            .map_err(|e| format!("{text:?} is not a duration like 24h or 7d: {e}"))?;
        let back = i64::try_from(back.as_nanos()).unwrap_or(i64::MAX);
        return Ok(now_ns.saturating_sub(back).max(0));
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        format!("{text:?} is neither RFC 3339 (2026-11-29T10:00:00Z) nor a duration like 24h: {e}")
    })?;
    i64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| format!("{text:?} is out of range"))
        .map(|n| n.max(0))
}

/// Reads an RFC 3339 instant with any offset, as unix ns.
pub fn rfc3339_ns(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Reads a positive duration (`5m`, `1h`), in ns.
pub fn parse_duration_ns(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 5m or 1h: {e}"))?;
    match i64::try_from(d.as_nanos()) {
        Ok(0) => Err("must be more than zero".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is too long")),
    }
}

fn datetime(ns: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-29T10:00:00.123Z`.
pub fn rfc3339_ms(ns: i64) -> String {
    let t = datetime(ns);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The UTC day: `2026-11-29`.
pub fn day_label(ns: i64) -> String {
    let t = datetime(ns);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// The UTC hour: `2026-11-29T10:00Z`.
pub fn hour_label(ns: i64) -> String {
    let t = datetime(ns);
    format!(
        "{:04}-{:02}-{:02}T{:02}:00Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000_000_000;

    #[test]
    fn reads_rfc3339_and_durations() {
        assert_eq!(
            parse_instant("1970-01-01T00:00:01Z", NOW),
            Ok(1_000_000_000)
        );
        assert_eq!(
            parse_instant("1970-01-01T01:00:01+01:00", NOW),
            Ok(1_000_000_000)
        );
        assert_eq!(parse_instant("24h", NOW), Ok(NOW - DAY_NS));
        assert_eq!(parse_instant("7d", NOW), Ok(NOW - 7 * DAY_NS));
        assert!(parse_instant("yesterday", NOW).is_err());
        assert!(parse_instant("7x", NOW).is_err());
        assert!(parse_instant("", NOW).is_err());
        assert!(parse_duration_ns("0s").is_err());
        assert_eq!(parse_duration_ns("5m"), Ok(300_000_000_000));
    }

    #[test]
    fn writes_utc_labels() {
        let t = 1_764_410_400_123_000_000; // 2025-11-29T10:00:00.123Z
        assert_eq!(rfc3339_ms(t), "2025-11-29T10:00:00.123Z");
        assert_eq!(day_label(t), "2025-11-29");
        assert_eq!(hour_label(t), "2025-11-29T10:00Z");
    }
}
