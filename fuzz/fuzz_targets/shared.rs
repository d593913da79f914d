//! What the targets share: the limits a selector byte picks, and the checks
//! every OTLP decoding must pass against the counting pass.

// Each target uses a part of this module.
#![allow(dead_code)]

use openclaw_trace::wire::limits::{Counts, Limits};
use openclaw_trace::wire::otlp::Decoded;
use openclaw_trace::wire::DecodeError;

/// The default limits, or (half of the time) small ones, so that refusals
/// are exercised too.
pub fn limits(selector: u8) -> Limits {
    if selector & 4 == 0 {
        Limits::default()
    } else {
        Limits::new(usize::from(selector >> 3) + 1)
    }
}

/// A decoded body was counted within the limits and yields no more items
/// than counted; a refusal for size was the count's refusal too. Any other
/// decoding error is handed back, with the count, for the target to judge.
pub fn check_otlp(
    limits: &Limits,
    counted: Result<Counts, DecodeError>,
    decoded: Result<Decoded, DecodeError>,
) -> Option<(DecodeError, Result<Counts, DecodeError>)> {
    match decoded {
        Ok(decoded) => {
            let counts = counted.expect("a body that decodes is counted within the limits");
            assert!(counts.records <= limits.max_records);
            assert!(counts.values <= limits.max_values);
            assert!(decoded.received <= counts.records);
            assert!(decoded.batch.len() <= decoded.received);
            assert_eq!(
                decoded.batch.len() + decoded.rejected.len(),
                decoded.received
            );
            None
        }
        Err(DecodeError::TooLarge(_)) => {
            assert!(matches!(counted, Err(DecodeError::TooLarge(_))));
            None
        }
        Err(e) => Some((e, counted)),
    }
}
