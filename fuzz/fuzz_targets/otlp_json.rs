//! OTLP JSON bodies, all three signals: decoding never panics and never
//! returns more records than the limit or than were counted. The first byte
//! picks the signal and the limits.

#![no_main]

mod shared;

use libfuzzer_sys::fuzz_target;
use openclaw_trace::wire::limits::count_otlp_json;
use openclaw_trace::wire::otlp::{decode_signal, Encoding};
use openclaw_trace::wire::DecodeError;
use openclaw_trace_actors::stats::Signal;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let signal = [Signal::Spans, Signal::DataPoints, Signal::LogRecords][usize::from(selector % 3)];
    let limits = shared::limits(selector);
    let counted = count_otlp_json(signal, body, &limits);
    let decoded = decode_signal(signal, Encoding::Json, body, &limits);
    match shared::check_otlp(&limits, counted, decoded) {
        None => {}
        // The count refuses what it cannot read, before the decoder can.
        Some((DecodeError::Malformed(m), counted)) if counted.is_err() => {
            assert_eq!(counted, Err(DecodeError::Malformed(m)));
        }
        Some((_, counted)) => assert!(counted.is_ok()),
    }
});
