//! The clock, as every stage stores it: unix nanoseconds in an `i64`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now as unix nanoseconds (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
