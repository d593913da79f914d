//! OTLP protobuf bodies, all three signals: decoding never panics, never
//! returns more records than the limit or than were counted, and the
//! counting pass calls malformed only what prost refuses too. The first byte
//! picks the signal and the limits.

#![no_main]

mod shared;

use libfuzzer_sys::fuzz_target;
use openclaw_trace::wire::limits::count_protobuf;
use openclaw_trace::wire::otlp::{decode_signal, Encoding};
use openclaw_trace::wire::DecodeError;
use openclaw_trace_actors::stats::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let signal = [Signal::Spans, Signal::DataPoints, Signal::LogRecords][usize::from(selector % 3)];
    let limits = shared::limits(selector);
    let counted = count_protobuf(signal, body, &limits);
    if let Err(DecodeError::MalformedProtobuf(m)) = &counted {
        let decodes = match signal {
            Signal::Spans => ExportTraceServiceRequest::decode(body).is_ok(),
            Signal::DataPoints => ExportMetricsServiceRequest::decode(body).is_ok(),
            Signal::LogRecords => ExportLogsServiceRequest::decode(body).is_ok(),
        };
        assert!(!decodes, "counted as malformed ({m}) but prost decodes it");
    }
    let decoded = decode_signal(signal, Encoding::Protobuf, body, &limits);
    // Other decoding errors are the decoder's own, whatever the count said.
    let _ = shared::check_otlp(&limits, counted, decoded);
});
