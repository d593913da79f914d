//! The success bodies of OTLP/HTTP: `Export{Trace,Metrics,Logs}ServiceResponse`
//! in the request's encoding, with `partial_success` when items were left out.
//! Without one, the JSON body is `{}`: OTLP/JSON leaves unset fields out, as
//! the protobuf encoding does, rather than sending them as `null`.

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
        Encoding::Json => HttpResponse::Ok().json(without_nulls(response)),
    }
}

/// The response as a JSON object without its unset (`null`) fields.
fn without_nulls<T: Serialize>(response: &T) -> serde_json::Value {
    let mut value =
        serde_json::to_value(response).expect("an OTLP response always serializes to JSON");
    if let serde_json::Value::Object(fields) = &mut value {
        fields.retain(|_, v| !v.is_null());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body(response: HttpResponse) -> Vec<u8> {
        response
            .into_body()
            .try_into_bytes()
            .expect("a complete body")
            .to_vec()
    }

    #[test]
    fn json_success_without_rejections_is_an_empty_object() {
        for &signal in <Signal as strum::VariantArray>::VARIANTS {
            let json = body(success(signal, Encoding::Json, 0, String::new()));
            assert_eq!(json, b"{}", "{signal:?}");
            let proto = body(success(signal, Encoding::Protobuf, 0, String::new()));
            assert!(proto.is_empty(), "{signal:?}: an empty protobuf message");
        }
    }

    #[test]
    fn json_partial_success_names_the_rejections() {
        let json = body(success(
            Signal::LogRecords,
            Encoding::Json,
            2,
            "bad id".into(),
        ));
        let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(v["partialSuccess"]["rejectedLogRecords"], 2);
        assert_eq!(v["partialSuccess"]["errorMessage"], "bad id");
    }
}
