//! The success bodies of OTLP/HTTP: `Export{Trace,Metrics,Logs}ServiceResponse`
//! in the request's encoding, with `partial_success` when items were left out.

use actix_web::HttpResponse;
use openclaw_trace_actors::stats::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;

use crate::wire::otlp::Encoding;

/// 200 with the response for `signal`; `rejected` items and the first
/// reason go into `partial_success` when there are any.
pub fn success(
    signal: Signal,
    encoding: Encoding,
    rejected: i64,
    error_message: String,
) -> HttpResponse {
    let partial = rejected > 0;
    match signal {
        Signal::Spans => encode(
            encoding,
            &ExportTraceServiceResponse {
                partial_success: partial.then_some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message,
                }),
            },
        ),
        Signal::DataPoints => encode(
            encoding,
            &ExportMetricsServiceResponse {
                partial_success: partial.then_some(ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message,
                }),
            },
        ),
        Signal::LogRecords => encode(
            encoding,
            &ExportLogsServiceResponse {
                partial_success: partial.then_some(ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message,
                }),
            },
        ),
    }
}

fn encode<T: Message + Serialize>(encoding: Encoding, response: &T) -> HttpResponse {
    match encoding {
        Encoding::Protobuf => HttpResponse::Ok()
            .content_type("application/x-protobuf")
            .body(response.encode_to_vec()),
        Encoding::Json => HttpResponse::Ok().json(response),
    }
}
