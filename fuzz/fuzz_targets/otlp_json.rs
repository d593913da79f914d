//! OTLP JSON bodies, all three signals: decoding never panics and never
//! returns more records than the limit or than were counted. The first byte
//! picks the signal and the limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_trace::wire::limits::{count_otlp_json, Limits};
use openclaw_trace::wire::otlp::{decode_signal, Encoding};
use openclaw_trace::wire::DecodeError;
use openclaw_trace_actors::stats::Signal;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let signal = Signal::ALL[usize::from(selector % 3)];
    let limits = if selector & 4 == 0 {
        Limits::default()
    } else {
        Limits::new(usize::from(selector >> 3) + 1)
    };
    let counted = count_otlp_json(signal, body, &limits);
    match decode_signal(signal, Encoding::Json, body, &limits) {
        Ok(decoded) => {
            let counts = counted.expect("a body that decodes is counted within the limits");
            assert!(counts.records <= limits.max_records);
            assert!(counts.values <= limits.max_values);
            assert!(decoded.received <= counts.records);
            assert_eq!(
                decoded.batch.len() + decoded.rejected.len(),
                decoded.received
            );
        }
        Err(DecodeError::TooLarge(_)) => {
            assert!(matches!(counted, Err(DecodeError::TooLarge(_))));
        }
        // The count refuses what it cannot read, before the decoder can.
        Err(DecodeError::Malformed(m)) if counted.is_err() => {
            assert_eq!(counted, Err(DecodeError::Malformed(m)));
        }
        Err(_) => assert!(counted.is_ok()),
    }
});
