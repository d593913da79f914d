//! Native JSON bodies, every `Kind`: decoding never panics, never returns
//! more records than the limit, and refuses for size only what the counting
//! pass refuses. The first byte picks the kind and the limits.

#![no_main]

mod shared;

use libfuzzer_sys::fuzz_target;
use openclaw_trace::wire::limits::count_native_json;
use openclaw_trace::wire::native::{decode, Kind};
use openclaw_trace::wire::DecodeError;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = [Kind::LlmCall, Kind::Error, Kind::Event, Kind::Metric][usize::from(selector & 3)];
    let limits = shared::limits(selector);
    let counted = count_native_json(body, &limits);
    match decode(kind, body, &limits) {
        Ok(batch) => {
            let counts = counted.expect("a body that decodes is counted within the limits");
            assert!(batch.len() <= limits.max_records);
            assert_eq!(batch.len(), counts.records, "one record per element");
            assert!(counts.values <= limits.max_values);
        }
        Err(DecodeError::TooLarge(message)) => {
            assert!(matches!(counted, Err(DecodeError::TooLarge(_))));
            assert!(
                message.contains("TRACE_MAX_RECORDS_PER_REQUEST"),
                "{message}"
            );
        }
        // The count refuses what it cannot read, before the decoder can.
        Err(DecodeError::Malformed(m)) if counted.is_err() => {
            assert_eq!(counted, Err(DecodeError::Malformed(m)));
        }
        Err(_) => assert!(counted.is_ok()),
    }
});
