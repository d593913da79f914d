//! OTLP protobuf bodies, all three signals: decoding never panics, never
//! returns more records than the limit or than were counted, and the
//! counting pass calls malformed only what prost refuses too. The first byte
//! picks the signal and the limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_trace::wire::limits::{count_protobuf, Limits};
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
    let signal = Signal::ALL[usize::from(selector % 3)];
    let limits = if selector & 4 == 0 {
        Limits::default()
    } else {
        Limits::new(usize::from(selector >> 3) + 1)
    };
    let counted = count_protobuf(signal, body, &limits);
    if let Err(DecodeError::MalformedProtobuf(m)) = &counted {
        let decodes = match signal {
            Signal::Spans => ExportTraceServiceRequest::decode(body).is_ok(),
            Signal::DataPoints => ExportMetricsServiceRequest::decode(body).is_ok(),
            Signal::LogRecords => ExportLogsServiceRequest::decode(body).is_ok(),
        };
        assert!(!decodes, "counted as malformed ({m}) but prost decodes it");
    }
    match decode_signal(signal, Encoding::Protobuf, body, &limits) {
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
        }
        Err(DecodeError::TooLarge(_)) => {
            assert!(matches!(counted, Err(DecodeError::TooLarge(_))));
        }
        Err(_) => {}
    }
});
